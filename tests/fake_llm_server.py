"""A loopback HTTP server that speaks just enough of the OpenAI and Ollama chat APIs for the examples.

The real client integrations (langchain-openai, langchain-ollama, llama-index-llms-openai-like,
llama-index-llms-ollama) send their real requests here; the tests then check what a vision model
would have been shown: how many page images, and that each is a real PNG.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image


@dataclass
class Recorded:
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def images(self) -> list[Image.Image]:
        """Every image sent, decoded (OpenAI ``image_url`` data URLs and Ollama ``images``)."""
        found: list[str] = []
        for _, body in self.requests:
            for message in body.get("messages", []):
                found += message.get("images") or []
                content = message.get("content")
                if isinstance(content, list):
                    for part in content:
                        if part.get("type") == "image_url":
                            found.append(part["image_url"]["url"].split("base64,", 1)[1])
        return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]

    def texts(self) -> list[str]:
        texts: list[str] = []
        for _, body in self.requests:
            for message in body.get("messages", []):
                content = message.get("content")
                if isinstance(content, str):
                    texts.append(content)
                elif isinstance(content, list):
                    texts += [part["text"] for part in content if part.get("type") == "text"]
        return texts


@contextmanager
def fake_llm_server() -> Iterator[tuple[str, Recorded]]:
    """Serve on 127.0.0.1 (a free port); yields the base address and what was received."""
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            recorded.requests.append((self.path, body))
            answer = f"fake model answer ({len(recorded.images())} image(s) received so far)"
            if self.path.endswith("/chat/completions"):
                self._json(
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "fake"),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                )
            elif self.path == "/api/chat":
                reply = {
                    "model": body.get("model", "fake"),
                    "created_at": "2026-01-01T00:00:00Z",
                    "message": {"role": "assistant", "content": answer},
                    "done": True,
                    "done_reason": "stop",
                }
                self._json(reply, ndjson=bool(body.get("stream", True)))
            else:
                self.send_error(404)

        def _json(self, payload: dict[str, Any], *, ndjson: bool = False) -> None:
            data = (json.dumps(payload) + ("\n" if ndjson else "")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson" if ndjson else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()
