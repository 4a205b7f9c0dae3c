"""The one fake Naestro allows: scripted LLM *text*. Everything else in tests is real."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from naestro.endpoints import Endpoint, ModelRegistry

Script = Callable[[list[BaseMessage]], Any]


class ScriptedChatModel(BaseChatModel):
    """Replies with ``script(messages)`` (a dict is sent as JSON text), after an optional delay."""

    script: Script
    delay_s: float = 0.0
    delay_for: Callable[[list[BaseMessage]], float] | None = None  # a per-call delay (a slow or hung endpoint)
    calls: int = 0
    options: list[dict[str, Any]] = Field(default_factory=list)  # per call: the options bound (temperature...)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _reply(self, messages: list[BaseMessage]) -> ChatResult:
        self.calls += 1
        value = self.script(messages)
        text = value if isinstance(value, str) else json.dumps(value)
        msg = AIMessage(text, usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15})
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._reply(messages)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        self.options.append({k: v for k, v in kwargs.items() if k != "response_format"})
        await asyncio.sleep(self.delay_for(messages) if self.delay_for is not None else self.delay_s)
        return self._reply(messages)


class ScriptedProvider:
    """A ModelProvider whose every endpoint is the same scripted model."""

    def __init__(self, script: Script, *, delay_s: float = 0.0,
                 delay_for: Callable[[list[BaseMessage]], float] | None = None, timeout_s: float = 600.0) -> None:
        self.model = ScriptedChatModel(script=script, delay_s=delay_s, delay_for=delay_for)
        ep = Endpoint(name="scripted", kind="openai", model="scripted", base_url="http://127.0.0.1:9/v1",
                      context=8192, capabilities=("json_schema",), timeout_s=timeout_s)
        self.registry = ModelRegistry(default="scripted", fast="scripted", endpoints=(ep,))

    def chat(self, endpoint: str | None) -> tuple[Endpoint, BaseChatModel]:
        return self.registry.endpoints[0], self.model


def last_text(messages: list[BaseMessage]) -> str:
    return str(messages[-1].content)


def all_text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


def stepped_agent(steps: list[tuple[str, dict[str, Any]]], seen: list[str], *, summary: str = "done") -> Script:
    """An agent whose n-th action in an attempt is ``steps[n]`` (tool, arguments), then ``finish``; the Reporter's
    call gets ``summary``. ``seen`` collects each agent call's last message: what the previous tool returned."""

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        if "Write 2-4 sentences" in all_text(messages):
            return {"summary": summary}
        n = sum(isinstance(m, AIMessage) for m in messages)
        seen.append(str(messages[-1].content))
        if n < len(steps):
            return {"thought": "step", "tool": steps[n][0], "arguments": steps[n][1]}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}
    return script
