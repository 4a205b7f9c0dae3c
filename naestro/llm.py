"""Model access: every call goes through langchain-openai to an OpenAI-compatible endpoint from models.yaml.

``ModelProvider`` is the seam: the default starts embedded llama-servers on demand; tests pass a scripted
fake chat model (LLM text is the only thing Naestro ever fakes).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Protocol

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import JsonValue

from naestro.endpoints import Endpoint, ModelRegistry
from naestro.engines.llama_server import LocalServer
from naestro.errors import EndpointUnavailable
from naestro.settings import Settings

__all__ = ["CUT_OFF", "EndpointProvider", "ModelProvider", "ModelReply", "complete_json", "complete_text"]


class ModelProvider(Protocol):
    registry: ModelRegistry

    def chat(self, endpoint: str | None) -> tuple[Endpoint, BaseChatModel]: ...


class EndpointProvider:
    """The real provider: one ChatOpenAI per endpoint; embedded endpoints get their llama-server started."""

    def __init__(self, registry: ModelRegistry, settings: Settings, *, temperature: float = 0.2) -> None:
        self.registry, self.settings, self.temperature = registry, settings, temperature
        self._cache: dict[str, tuple[Endpoint, BaseChatModel]] = {}

    def server(self, endpoint: Endpoint) -> LocalServer:
        return LocalServer(endpoint, home=self.settings.home, models_dir=self.settings.models_path)

    def base_url(self, endpoint: Endpoint) -> str:
        if endpoint.base_url is not None:
            return endpoint.base_url
        return self.server(endpoint).ensure().base_url

    def chat(self, endpoint: str | None) -> tuple[Endpoint, BaseChatModel]:
        ep = self.registry.get(endpoint)
        if ep.name not in self._cache:
            # openai and langchain-openai (~0.5 s of import) load with the first model, not with the runtime: a
            # process that builds a runtime and may never call a model (the MCP front door) starts without them.
            from langchain_openai import ChatOpenAI

            key = os.environ.get(ep.api_key_env, "") if ep.api_key_env else "local"
            model = ChatOpenAI(base_url=self.base_url(ep), api_key=key or "missing", model=ep.model,  # type: ignore[arg-type]
                               temperature=self.temperature, max_retries=1, timeout=600,
                               max_completion_tokens=2048)
            self._cache[ep.name] = (ep, model)
        return self._cache[ep.name]

    def forget(self, name: str) -> None:
        """Drop the cached client (the router calls this when it marks the endpoint down): the next call resolves
        the endpoint again, so an embedded llama-server that died is started again instead of retried at its
        old port."""
        self._cache.pop(name, None)

    def health(self, endpoint: Endpoint) -> str:
        """'up', 'stopped' (embedded, starts on demand) or 'down: reason' — without starting anything."""
        if endpoint.embedded:
            return "up" if self.server(endpoint).status() else "stopped (starts on demand)"
        assert endpoint.base_url is not None
        try:
            r = httpx.get(endpoint.base_url.rstrip("/") + "/models", timeout=3)
        except httpx.HTTPError as exc:
            return f"down: {exc.__class__.__name__}"
        return "up" if r.status_code < 500 else f"down: HTTP {r.status_code}"


CUT_OFF = "reply cut off at the token limit"  # how a reply cut at the request's token limit comes back


@dataclass(frozen=True)
class ModelReply:
    value: JsonValue
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost_usd: float
    endpoint: str


async def complete_json(provider: ModelProvider, endpoint: str | None, messages: list[BaseMessage],
                        *, schema: dict[str, JsonValue], name: str,
                        sampling: dict[str, float | int] | None = None) -> ModelReply:
    """One schema-constrained call (response_format json_schema; grammar-enforced on llama.cpp).

    ``sampling`` overrides the endpoint's request options for this call (``temperature``, ``seed``): callers that
    want independent samples of the same prompt (self-consistency) ask for them here."""
    import openai  # loaded by provider.chat's model already; here for the error classes

    ep, model = provider.chat(endpoint)
    fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    start = time.monotonic()
    try:
        msg = await model.bind(response_format=fmt, **(sampling or {})).ainvoke(messages)
    except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError) as exc:
        raise EndpointUnavailable(endpoint=ep.name, reason=str(exc)) from exc
    except openai.LengthFinishReasonError as exc:
        # The model ran away to the token limit: not a run failure, feedback for its next attempt.
        cut = exc.completion.usage
        pt, ct = (cut.prompt_tokens, cut.completion_tokens) if cut else (0, 0)
        return ModelReply(value={"__unparsed__": f"{CUT_OFF}; reply with a shorter action"},
                          prompt_tokens=pt, completion_tokens=ct, latency_s=round(time.monotonic() - start, 3),
                          cost_usd=ep.cost_usd(pt, ct), endpoint=ep.name)
    assert isinstance(msg, AIMessage)
    text = msg.content if isinstance(msg.content, str) else json.dumps(msg.content)
    try:
        value: JsonValue = json.loads(text)
    except json.JSONDecodeError:
        value = {"__unparsed__": text}  # the caller turns this into feedback for the model
    usage = msg.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    pt, ct = int(usage["input_tokens"]), int(usage["output_tokens"])
    return ModelReply(value=value, prompt_tokens=pt, completion_tokens=ct,
                      latency_s=round(time.monotonic() - start, 3), cost_usd=ep.cost_usd(pt, ct), endpoint=ep.name)


async def complete_text(provider: ModelProvider, endpoint: str | None, messages: list[BaseMessage], *,
                        sampling: dict[str, float | int] | None = None) -> ModelReply:
    """One free-text call (no response format): ``value`` is the reply's text. For code, which small models write
    better in a Markdown block than escaped inside a JSON string (``nodes.reference``)."""
    import openai

    ep, model = provider.chat(endpoint)
    start = time.monotonic()
    try:
        msg = await model.bind(**(sampling or {})).ainvoke(messages)
    except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError) as exc:
        raise EndpointUnavailable(endpoint=ep.name, reason=str(exc)) from exc
    assert isinstance(msg, AIMessage)
    text = msg.content if isinstance(msg.content, str) else json.dumps(msg.content)
    usage = msg.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    pt, ct = int(usage["input_tokens"]), int(usage["output_tokens"])
    return ModelReply(value=text, prompt_tokens=pt, completion_tokens=ct,
                      latency_s=round(time.monotonic() - start, 3), cost_usd=ep.cost_usd(pt, ct), endpoint=ep.name)
