"""The one place a routed model call happens: route, call ``complete_json`` on the chosen endpoint, re-route."""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.messages import BaseMessage
from pydantic import JsonValue

from naestro.budget import TaskMeter
from naestro.endpoints import Endpoint
from naestro.llm import EndpointProvider, ModelProvider, ModelReply, complete_json
from naestro.router.route import Emit, RouteDecision, Router, RouteRequest, estimate_tokens

__all__ = ["complete_json_routed", "remaining_usd", "request_for"]


def remaining_usd(meter: TaskMeter | None) -> float | None:
    """What the task may still spend: the smaller of its own and the run's USD headroom (None: unlimited)."""
    if meter is None:
        return None
    left = [b for b in (None if meter.budget.usd is None else meter.budget.usd - meter.usd,
                        None if meter.run.ceiling.usd is None else meter.run.ceiling.usd - meter.run.usd)
            if b is not None]
    return max(0.0, min(left)) if left else None


def request_for(messages: list[BaseMessage], *, kind: str, requested: str | None = None,
                max_output_tokens: int = 2048, meter: TaskMeter | None = None, task: str | None = None
                ) -> RouteRequest:
    """Schema-constrained calls need the json_schema capability; the prompt size is estimated from the text;
    the task's remaining USD budget rules out endpoints whose estimated cost would exceed it. ``task``
    (``run/task``) lets the cascade strategy escalate a task after its checks failed."""
    return RouteRequest(kind=kind, prompt_tokens=estimate_tokens(messages), max_output_tokens=max_output_tokens,
                        needs=frozenset({"json_schema"}), requested=requested, budget_usd=remaining_usd(meter),
                        task=task)


async def complete_json_routed(router: Router, provider: ModelProvider, req: RouteRequest,
                               messages: list[BaseMessage], *, schema: dict[str, JsonValue], name: str,
                               emit: Emit | None = None, authorize: Callable[[Endpoint], object] | None = None,
                               sampling: dict[str, float | int] | None = None) -> tuple[ModelReply, RouteDecision]:
    """``authorize(endpoint)`` runs before each attempt on the endpoint actually chosen (the policy gate: it
    raises ``PolicyDenied``, which is not a routing failure and propagates)."""

    async def invoke(ep: Endpoint) -> ModelReply:
        if authorize is not None:
            authorize(ep)
        return await complete_json(provider, ep.name, messages, schema=schema, name=name, sampling=sampling)

    def forget(ep: Endpoint) -> None:
        if isinstance(provider, EndpointProvider):
            provider.forget(ep.name)

    return await router.call(req, invoke, emit=emit, on_down=forget)
