"""Embedding speed of ColPaliEmbedder: seconds per page and per query, by family and batch size.

    python bench/embed_throughput.py --size tiny --device cpu                 # runs anywhere
    python bench/embed_throughput.py --size full --device cuda --batch-sizes 1,2,4,8,16,32

``--size full`` builds ColPali (PaliGemma-3B: SigLIP-so400m at 448 px + Gemma-2B) and ColQwen2
(Qwen2-VL-2B, 768 visual tokens per page) from their real configurations with random weights: speed
does not depend on the weights, and no checkpoint has to be downloaded. Pages are 1,240 x 1,754 (A4
at 150 dpi) synthetic page images; queries are ~12-word questions. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from colpali_milvus import ColPaliEmbedder
from models.tiny import colpali_parts, colqwen2_parts

FAMILIES = {"colpali": ("ColPali", colpali_parts), "colqwen2": ("ColQwen2", colqwen2_parts)}
QUERY = "which table reports the quarterly revenue growth of the european segment in 2023"


def synthetic_page(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    page = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(page)
    for row in range(40):  # lines of "text"
        y = 120 + row * 36
        draw.rectangle((100, y, 100 + int(rng.integers(400, 1040)), y + 14), fill=(30, 30, 30))
    draw.rectangle((150, 900, 1090, 1400), outline="black", width=4)  # a "chart"
    for bar in range(8):
        height = int(rng.integers(50, 450))
        draw.rectangle((200 + bar * 110, 1390 - height, 270 + bar * 110, 1390), fill=tuple(rng.integers(0, 255, 3)))
    return page


def build(family: str, size: str, device: str, dtype: torch.dtype) -> ColPaliEmbedder:
    import colpali_engine.models as models

    class_name, parts = FAMILIES[family]
    config, processor = parts(full_size=size == "full")
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build the random weights directly in the target precision
    try:
        with torch.device(device):
            model = getattr(models, class_name)(config)
    finally:
        torch.set_default_dtype(previous)
    return ColPaliEmbedder.from_loaded(model, processor, model_name=f"random/{family}-{size}", show_progress=False)


def timed(fn: Any, device: str, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(
    embedder: ColPaliEmbedder, pages: list[Image.Image], batch_sizes: list[int], args: argparse.Namespace
) -> list[dict[str, Any]]:
    rows = []
    vectors_per_page = embedder.embed_images(pages[:1])[0].shape[0]
    dtype = str(embedder.dtype).removeprefix("torch.")
    device = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    for batch_size in batch_sizes:
        batch = pages[:batch_size]
        embedder.batch_size = embedder.query_batch_size = batch_size
        page_s = timed(partial(embedder.embed_images, batch), args.device, args.repeats)
        # CPU-side image preprocessing alone (resize, normalise, tokenise): the rest is the model.
        preprocess_s = timed(partial(embedder.processor.process_images, batch), "cpu", args.repeats)
        query_s = timed(partial(embedder.embed_queries, [QUERY] * batch_size), args.device, args.repeats)
        rows.append(
            {
                "family": embedder.family.name,
                "size": args.size,
                "device": device,
                "dtype": dtype,
                "batch_size": batch_size,
                "vectors_per_page": vectors_per_page,
                "ms_per_page": round(page_s / batch_size * 1000, 2),
                "ms_preprocess_per_page": round(preprocess_s / batch_size * 1000, 2),
                "pages_per_s": round(batch_size / page_s, 2),
                "ms_per_query": round(query_s / batch_size * 1000, 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--families", default="colpali,colqwen2")
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    pages = [synthetic_page(seed) for seed in range(max(batch_sizes))]

    rows = []
    for family in args.families.split(","):
        rows += measure(build(family, args.size, args.device, dtype), pages, batch_sizes, args)
        if args.device == "cuda":
            torch.cuda.empty_cache()

    columns = [
        "family",
        "batch_size",
        "vectors_per_page",
        "ms_per_page",
        "ms_preprocess_per_page",
        "pages_per_s",
        "ms_per_query",
    ]
    print("\n" + " | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[column]) for column in columns))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
