"""Scripted LLM text over HTTP: an OpenAI-compatible ``/v1/chat/completions`` whose replies a script computes.

For tests where the model is called from another process (the LangGraph server): the same "only LLM text is
fake" rule as ``tests/fakes.py``, behind the real OpenAI client, HTTP and the router.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Script = Callable[[list[dict[str, Any]]], Any]  # the chat messages -> the reply (a dict is sent as JSON text)


class Cut(str):
    """A reply the server cut at the request's token limit (``finish_reason: length``)."""


@contextmanager
def scripted_openai(script: Script, requests: list[dict[str, Any]] | None = None) -> Iterator[str]:
    """Serve ``script`` on a free loopback port; yields the base URL (``http://127.0.0.1:PORT/v1``). Each request
    body is appended to ``requests`` when given (what the client sent: sampling, limits, response format)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _send(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if requests is not None:
                requests.append(request)
            value = script(request.get("messages", []))
            finish = "length" if isinstance(value, Cut) else "stop"
            content = value if isinstance(value, str) else json.dumps(value)
            self._send({"id": "cmpl-1", "object": "chat.completion", "created": int(time.time()), "model": "scripted",
                        "choices": [{"index": 0, "finish_reason": finish,
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def models_yaml(base_url: str) -> str:
    """A models.yaml with one endpoint, the scripted server."""
    return (f"default: scripted\nfast: scripted\nendpoints:\n  - name: scripted\n    kind: openai\n"
            f"    model: scripted\n    base_url: {base_url}\n    context: 8192\n    capabilities: [json_schema]\n"
            f"    locality: local\n    timeout_s: 30\n")


@contextmanager
def scripted_models(script: Script, directory: Path,
                    requests: list[dict[str, Any]] | None = None) -> Iterator[Path]:
    """``scripted_openai`` plus ``directory/models.yaml`` naming it: the file a registry, CLI or server under test
    reads (``NAESTRO_MODELS_FILE``). Yields the file's path."""
    with scripted_openai(script, requests) as base_url:
        models = directory / "models.yaml"
        models.write_text(models_yaml(base_url))
        yield models
