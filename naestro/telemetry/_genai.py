"""Span shapes for the GenAI semantic conventions (agent, chat, execute_tool) plus Naestro's cost and policy.

Attribute names follow the OpenTelemetry GenAI conventions (``gen_ai.*``, incubating in semconv 0.66b); the
``llm.*`` / ``openinference.span.kind`` duplicates are what Arize Phoenix reads for its token and cost columns.
Cost is Naestro's own (``naestro.cost_usd``, from the endpoint's price table in models.yaml): no convention
covers it yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.trace import Span, SpanKind

from naestro.endpoints import Endpoint, ModelRegistry
from naestro.llm import ModelReply
from naestro.redact import PLACEHOLDER
from naestro.telemetry._tracing import span
from naestro.toolbus import ToolResult

__all__ = ["agent_span", "chat_span", "policy_span", "record_reply", "record_tool_result", "tool_span"]


@contextmanager
def agent_span(*, role: str, task: str, attempt: int, endpoint: str, conversation: str = "") -> Iterator[Span]:
    with span(f"invoke_agent {role}", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": role, "gen_ai.agent.id": task,
            "naestro.endpoint": endpoint, "gen_ai.conversation.id": conversation or None,
            "naestro.task.id": task, "naestro.attempt": attempt, "openinference.span.kind": "AGENT"}) as sp:
        yield sp


@contextmanager
def chat_span(ep: Endpoint, *, task: str, purpose: str, conversation: str = "") -> Iterator[Span]:
    with span(f"chat {ep.model}", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": ep.kind, "gen_ai.system": ep.kind,
            "gen_ai.request.model": ep.model, "gen_ai.output.type": "json",
            "gen_ai.conversation.id": conversation or None, "server.address": ep.base_url,
            "naestro.endpoint": ep.name, "naestro.locality": ep.locality, "naestro.task.id": task,
            "naestro.purpose": purpose, "openinference.span.kind": "LLM", "llm.model_name": ep.model}) as sp:
        yield sp


def record_reply(sp: Span, reply: ModelReply, *, registry: ModelRegistry, replayed: bool = False) -> None:
    """Usage and cost of the reply; the response model is the one of the endpoint that answered (the router may
    have spilled or re-routed away from the requested one)."""
    total = reply.prompt_tokens + reply.completion_tokens
    response_model = next((e.model for e in registry.endpoints if e.name == reply.endpoint), reply.endpoint)
    sp.set_attributes({
        "gen_ai.response.model": response_model, "gen_ai.usage.input_tokens": reply.prompt_tokens,
        "gen_ai.usage.output_tokens": reply.completion_tokens, "naestro.cost_usd": reply.cost_usd,
        "naestro.endpoint.used": reply.endpoint, "naestro.latency_s": reply.latency_s, "naestro.replayed": replayed,
        "llm.token_count.prompt": reply.prompt_tokens, "llm.token_count.completion": reply.completion_tokens,
        "llm.token_count.total": total, "llm.cost.total": reply.cost_usd})


@contextmanager
def tool_span(name: str, *, task: str) -> Iterator[Span]:
    with span(f"execute_tool {name}", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.type": "function",
            "naestro.task.id": task, "openinference.span.kind": "TOOL", "tool.name": name}) as sp:
        yield sp


def record_tool_result(sp: Span, result: ToolResult, *, replayed: bool = False) -> None:
    redactions = len(PLACEHOLDER.findall(result.text))
    sp.set_attributes({"naestro.tool.ok": result.ok, "naestro.tool.duration_s": result.duration_s,
                       "naestro.tool.timed_out": result.timed_out, "naestro.tool.result_bytes": result.result_bytes,
                       "naestro.tool.args_sha256": result.args_sha256, "naestro.redactions": redactions,
                       "naestro.replayed": replayed})


@contextmanager
def policy_span(action: str, *, task: str, role: str, engine: str) -> Iterator[Span]:
    """Around one policy evaluation; the caller sets the verdict (``naestro.policy.verdict``) and reasons."""
    with span(f"naestro.policy {action}", attributes={
            "naestro.policy.action": action, "naestro.task.id": task, "naestro.role": role,
            "naestro.policy.engine": engine, "openinference.span.kind": "GUARDRAIL"}) as sp:
        yield sp
