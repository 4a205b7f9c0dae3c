"""LLM extraction of free text into the graph: off unless an endpoint is strong enough, and never in a run's path.

Measured here (FACTS.md): Graphiti's ``add_episode`` with the local Qwen2.5-Coder-1.5B took ~100 s per short
episode, failed one in six (runaway output, invalid JSON after four identical retries) and built a graph worse
than none (merged runs, invalidated true facts). So Naestro's own facts are written as typed nodes/edges
(``memory/graph.py``) and extraction is only for free text (reports, notes), in a background queue, on an endpoint
the registry says is 7B+ by its model id or is hosted (``locality: cloud``), with ``max_tokens`` clamped (Graphiti
asks for 16,384 on edge extraction), a temperature above 0 (its retries resend the same prompt: at 0 they fail
the same way) and a timeout per episode. The models of this machine's ``models.yaml`` are 0.5B and 1.5B: off.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import typing
from dataclasses import dataclass, field
from datetime import datetime

from graphiti_core.llm_client.client import LLMClient
from graphiti_core.llm_client.config import DEFAULT_MAX_TOKENS, LLMConfig, ModelSize
from graphiti_core.llm_client.openai_generic_client import OpenAIGenericClient
from graphiti_core.prompts.models import Message
from pydantic import BaseModel

from naestro.endpoints import Endpoint
from naestro.errors import MemoryUnavailable
from naestro.memory._graphiti import Graphiti  # first: it sets graphiti's switches before graphiti loads
from naestro.memory.records import Slice, group_id

__all__ = ["MIN_PARAMS_B", "ClampedClient", "ExtractionQueue", "NoExtraction", "extraction_endpoint", "params_b"]

MIN_PARAMS_B = 7.0
_PARAMS = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*b(?![a-z])", re.IGNORECASE)


def params_b(model_id: str) -> float | None:
    """Billions of parameters as a model id states them (``qwen2.5-coder-7b-instruct`` → 7.0); None if it does
    not say (``2.5`` in ``qwen2.5`` is a version: a ``b`` must follow)."""
    found = [float(m) for m in _PARAMS.findall(model_id)]
    return max(found) if found else None


def extraction_endpoint(endpoints: typing.Iterable[Endpoint]) -> Endpoint | None:
    """The endpoint extraction may use: json_schema-capable and 7B+ (or hosted), the largest first; else None."""
    fit = [(e.locality == "cloud", params_b(e.model) or 0.0, e) for e in endpoints if "json_schema" in e.capabilities]
    strong = [f for f in fit if f[0] or f[1] >= MIN_PARAMS_B]
    return max(strong, key=lambda f: (f[1], f[0]))[2] if strong else None


class NoExtraction(LLMClient):
    """Graphiti's LLM seam while extraction is off: typed writes and search never call it, so a call is refused."""

    def __init__(self) -> None:
        super().__init__(LLMConfig(model="none"))

    async def _generate_response(self, messages: list[Message], response_model: type[BaseModel] | None = None,
                                 max_tokens: int = DEFAULT_MAX_TOKENS, model_size: ModelSize = ModelSize.medium, *,
                                 model: str | None = None) -> dict[str, typing.Any]:
        raise MemoryUnavailable(reason="LLM extraction is off (no 7B+ endpoint in models.yaml)",
                                hint="Naestro writes its own facts without an LLM; add a 7B+ or hosted endpoint "
                                     "with json_schema to extract free text")


class ClampedClient(OpenAIGenericClient):
    """Graphiti's OpenAI-compatible client with every request's ``max_tokens`` clamped."""

    def __init__(self, config: LLMConfig, *, clamp: int) -> None:
        super().__init__(config, max_tokens=clamp)
        self.clamp = clamp

    async def _generate_response(self, messages: list[Message], response_model: type[BaseModel] | None = None,
                                 max_tokens: int = DEFAULT_MAX_TOKENS, model_size: ModelSize = ModelSize.medium, *,
                                 model: str | None = None) -> dict[str, typing.Any]:
        return await super()._generate_response(messages, response_model, min(max_tokens, self.clamp), model_size,
                                                model=model)


@dataclass
class _Text:
    name: str
    text: str
    slice: Slice
    valid_at: datetime


@dataclass
class ExtractionQueue:
    """One background worker feeding free text to Graphiti's ``add_episode``; failures are counted, not raised."""

    graphiti: Graphiti
    timeout_s: float = 180.0
    done: int = 0
    failed: list[str] = field(default_factory=list)
    _queue: asyncio.Queue[_Text] = field(default_factory=asyncio.Queue)
    _worker: asyncio.Task[None] | None = None

    @staticmethod
    def client_for(endpoint: Endpoint, *, api_key: str = "none", clamp: int = 1536,
                   temperature: float = 0.5) -> ClampedClient:
        if temperature <= 0:
            raise ValueError("temperature must be > 0: Graphiti retries a bad reply with the same prompt")
        base = endpoint.base_url or ""
        return ClampedClient(LLMConfig(api_key=api_key, model=endpoint.model, base_url=base.rstrip("/") + "/v1"
                                       if not base.rstrip("/").endswith("/v1") else base, temperature=temperature,
                                       max_tokens=clamp), clamp=clamp)

    def submit(self, *, name: str, text: str, slice_: Slice, valid_at: datetime) -> None:
        self._queue.put_nowait(_Text(name, text, slice_, valid_at))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._work())

    async def _work(self) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            try:
                await asyncio.wait_for(self.graphiti.add_episode(
                    name=item.name, episode_body=item.text, source_description="naestro free text",
                    reference_time=item.valid_at, group_id=group_id(item.slice)), self.timeout_s)
                self.done += 1
            except Exception as exc:  # noqa: BLE001 - a bad extraction loses that text's graph, never the run
                self.failed.append(f"{item.name}: {type(exc).__name__}: {exc}"[:300])

    async def drain(self) -> None:
        if self._worker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
