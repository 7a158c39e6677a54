"""Tiny random-weight checkpoints of the real colpali-engine architectures, built offline.

Pretrained weights cannot be downloaded in CI, so each builder writes a checkpoint folder that
loads through the same ``from_pretrained(folder)`` path a hub checkpoint takes: a hand-made config,
random weights and a BPE tokenizer trained here with the family's special tokens. Ranking with
random weights is meaningless; these models prove loading, shapes, padding and plumbing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

_CORPUS = [
    "Describe the image.",
    "What is the revenue in the table on page two?",
    "Which chart shows the growth of the population?",
    "graph diagram nodes edges layout dot neato",
    "the quick brown fox jumps over the lazy dog",
] * 20


def _train_bpe(special_tokens: list[str], vocab_size: int = 400) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token=special_tokens[0] if "<unk>" in special_tokens else None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_CORPUS, trainer=trainer)
    return tokenizer


def colpali_parts(*, full_size: bool = False, image_size: int = 64, patch_size: int = 16) -> tuple[Any, Any]:
    """Config and processor of a PaliGemma-based ColPali (right padded).

    ``full_size`` uses the dimensions of ``vidore/colpaligemma-3b-pt-448-base`` (SigLIP-so400m at 448 px,
    Gemma-2B), for speed measurements; otherwise a tiny model with the same architecture.
    """
    from colpali_engine.models import ColPaliProcessor
    from transformers import GemmaTokenizerFast, PaliGemmaConfig, SiglipImageProcessor

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]
    tokenizer = GemmaTokenizerFast(
        tokenizer_object=_train_bpe(specials),
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        padding_side="right",
    )
    if full_size:
        image_size, patch_size = 448, 14
    image_seq_length = (image_size // patch_size) ** 2
    image_processor = SiglipImageProcessor(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    image_processor.image_seq_length = image_seq_length
    processor = ColPaliProcessor(image_processor=image_processor, tokenizer=tokenizer)

    if full_size:
        vision = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16}
        text = {
            "hidden_size": 2048,
            "intermediate_size": 16384,
            "num_hidden_layers": 18,
            "num_attention_heads": 8,
            "num_key_value_heads": 1,
            "head_dim": 256,
            "vocab_size": 257216,
        }
        projection_dim = 2048
    else:
        vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
        text = {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "vocab_size": len(tokenizer),
        }
        projection_dim = 32
    config = PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            **vision,
            "image_size": image_size,
            "patch_size": patch_size,
            "projection_dim": projection_dim,
        },
        text_config={"model_type": "gemma", **text},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        projection_dim=projection_dim,
        hidden_size=projection_dim,
    )
    config.text_config.num_image_tokens = image_seq_length
    return config, processor


def build_colpali(folder: Path, **kwargs: Any) -> Path:
    """A tiny ColPali checkpoint folder, loadable with ``from_pretrained(folder)``."""
    from colpali_engine.models import ColPali

    config, processor = colpali_parts(**kwargs)
    torch.manual_seed(0)
    ColPali(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


_QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def colqwen2_parts(*, full_size: bool = False, max_pixels: int = 64 * 64) -> tuple[Any, Any]:
    """Config and processor of a Qwen2-VL-based ColQwen2 (dynamic resolution, left padded).

    ``full_size`` uses the dimensions of ``vidore/colqwen2-base`` (Qwen2-VL-2B) and its 768-token
    page budget, for speed measurements; otherwise a tiny model with the same architecture.
    """
    from colpali_engine.models import ColQwen2Processor
    from transformers import Qwen2TokenizerFast, Qwen2VLConfig
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=_train_bpe(_QWEN_SPECIALS),
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token=None,
    )
    if full_size:
        max_pixels = 768 * 28 * 28
    size = {"shortest_edge": 28 * 28, "longest_edge": max_pixels}
    processor = ColQwen2Processor(
        image_processor=Qwen2VLImageProcessor(size=size),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=size),
    )
    token_id = tokenizer.convert_tokens_to_ids
    if full_size:
        vision = {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16, "mlp_ratio": 4}
        text = {
            "vocab_size": 151936,
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
            "rope_theta": 1_000_000.0,
        }
        head_dim = 128
    else:
        vision = {"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2}
        text = {
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            # M-RoPE splits head_dim / 2 rotary frequencies across time, height and width.
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        }
        head_dim = 16
    config = Qwen2VLConfig(
        vision_config={**vision, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
        text_config={
            **text,
            "bos_token_id": token_id("<|endoftext|>"),
            "eos_token_id": token_id("<|im_end|>"),
            "pad_token_id": token_id("<|endoftext|>"),
        },
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
    )
    assert sum(config.text_config.rope_parameters["mrope_section"]) == head_dim // 2
    return config, processor


def build_colqwen2(folder: Path, **kwargs: Any) -> Path:
    """A tiny ColQwen2 checkpoint folder, loadable with ``from_pretrained(folder)``."""
    from colpali_engine.models import ColQwen2

    config, processor = colqwen2_parts(**kwargs)
    torch.manual_seed(0)
    ColQwen2(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_lora_adapter(base_folder: Path, folder: Path, model_class: str = "ColPali") -> Path:
    """A LoRA adapter checkpoint over a local base, shaped like the public vidore ones.

    ``adapter_config.json`` names the base folder in ``base_model_name_or_path`` and the folder
    carries the processor files, exactly like ``vidore/colpali-v1.3`` over its base model.
    """
    import colpali_engine.models as colpali_models
    from peft import LoraConfig, get_peft_model
    from transformers import AutoProcessor  # noqa: F401  (keeps processor registrations loaded)

    model_cls = getattr(colpali_models, model_class)
    processor_cls = getattr(colpali_models, f"{model_class}Processor")
    base = model_cls.from_pretrained(str(base_folder))
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=r"(.*(language_model).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$|.*(custom_text_proj).*$)",
        task_type="FEATURE_EXTRACTION",
    )
    torch.manual_seed(1)
    peft_model = get_peft_model(base, lora)
    with torch.no_grad():  # LoRA starts as a no-op (B = 0); perturb B so the adapter is observable
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    peft_model.save_pretrained(folder)
    processor_cls.from_pretrained(str(base_folder)).save_pretrained(folder)
    return folder
