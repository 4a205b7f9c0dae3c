"""The router: which endpoint serves this model call, and what to do when it fails.

Rules, in order, for every call (each rejected endpoint keeps its reason for the event log):

1. hard filters: the policy predicate ``allowed(endpoint)`` (data scopes: e.g. no PII off-prem), required
   capabilities, prompt + reply fit the context window, not marked down (cooldown after a failure), the
   estimated cost fits the remaining budget, not already failed during this call;
2. soft filters: calls in flight below the endpoint's ``concurrency`` (queue depth), p95 latency over the
   sliding window within the SLO; an endpoint failing only these is used when nothing else is left;
3. choice, by ``router.strategy`` (requests that are ``pinned`` always get the requested endpoint when it fits):
   ``rules``: the requested endpoint when it passed; else local before cloud (registry order within a tier);
   ``bandit``: Thompson sampling picks within the best tier;
   ``cascade``: the small endpoint for a task's calls until the task fails its acceptance checks on it, then
   the large one (``cascade.py``); a call without a task, or whose tier endpoint was filtered out, falls back
   to the rules.

A call that fails with a timeout, a 5xx (llama.cpp / vLLM report OOM as 500) or a refused connection is
retried with exponential backoff (not for a refused connection: the server is gone), then the endpoint is
marked down and the call re-routed to the next candidate. Every decision, retry and re-route is emitted as an
event that says why.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from langchain_core.messages import BaseMessage
from opentelemetry import trace
from pydantic import JsonValue

from naestro.endpoints import Endpoint, ModelRegistry
from naestro.errors import EndpointUnavailable, RunError
from naestro.router.bandit import BanditStore, ThompsonBandit, open_store
from naestro.router.cascade import Cascade
from naestro.router.health import HealthBoard

__all__ = ["NoRoute", "RouteDecision", "RouteRequest", "Router", "build_router", "classify_failure", "estimate_tokens"]

T = TypeVar("T")
Emit = Callable[..., object]
Allowed = Callable[[Endpoint], bool]


class NoRoute(RunError):
    """No endpoint can serve the call; ``rejected`` says why each one was ruled out (or failed)."""

    def __init__(self, *, kind: str, rejected: dict[str, str]) -> None:
        self.kind, self.rejected = kind, rejected
        why = "; ".join(f"{name}: {reason}" for name, reason in rejected.items()) or "no endpoints configured"
        super().__init__(f"no endpoint can serve this {kind} call ({why}); "
                         f"check `naestro models` and the router section of models.yaml")


@dataclass(frozen=True)
class RouteRequest:
    """What the router needs to know about one model call.

    ``requested`` is the role's or task's preference; with the bandit or the cascade on it is only a preference
    unless ``pinned`` (they may choose another local endpoint). Either way the rules can spill away from it.
    ``task`` identifies the task across its attempts (``run/task``): the cascade escalates per task.
    """

    kind: str
    prompt_tokens: int
    max_output_tokens: int = 1024
    needs: frozenset[str] = frozenset()
    requested: str | None = None
    pinned: bool = False
    budget_usd: float | None = None
    slo_p95_s: float | None = None
    task: str | None = None


@dataclass(frozen=True)
class RouteDecision:
    endpoint: Endpoint
    rule: str
    reason: str
    spilled: bool
    rejected: dict[str, str] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    def fields(self) -> dict[str, JsonValue]:
        return {"endpoint": self.endpoint.name, "rule": self.rule, "reason": self.reason, "spilled": self.spilled,
                "rejected": dict(self.rejected), "scores": dict(self.scores)}


def estimate_tokens(messages: Sequence[BaseMessage]) -> int:
    """A deliberately high estimate (3 characters per token; code and JSON tokenize densely) + chat overhead.

    Over-estimating spills a borderline prompt to a longer context; under-estimating would fail the call.
    """
    chars = sum(len(m.content if isinstance(m.content, str) else str(m.content)) for m in messages)
    return chars // 3 + 8 * len(messages)


# How servers word "your prompt does not fit": llama.cpp, vLLM / OpenAI.
_OVERFLOW = ("exceeds the available context size", "maximum context length", "context_length_exceeded")


def classify_failure(exc: BaseException) -> str | None:
    """'timeout', 'connection', '5xx', 'not-found' or 'context' (the prompt did not fit after all: the
    token estimate was low) for failures that re-routing can fix; None otherwise."""
    import openai  # here, not at import: the runtime loads openai with its first model (naestro/llm.py)

    seen: BaseException | None = exc
    while seen is not None:
        match seen:
            case openai.BadRequestError() if any(m in str(seen) for m in _OVERFLOW):
                return "context"
            case TimeoutError() | openai.APITimeoutError() | httpx.TimeoutException():
                return "timeout"
            case openai.APIConnectionError() | httpx.TransportError() | ConnectionError():
                return "connection"
            case openai.NotFoundError():
                return "not-found"
            case openai.APIStatusError() if seen.status_code >= 500:
                return "5xx"
            case httpx.HTTPStatusError() if seen.response.status_code >= 500:
                return "5xx"
            case EndpointUnavailable() if seen.__cause__ is None:
                return "connection"
        seen = seen.__cause__
    return None


class Router:
    def __init__(self, registry: ModelRegistry, *, health: HealthBoard | None = None,
                 bandit: ThompsonBandit | None = None, store: BanditStore | None = None,
                 allowed: Allowed | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        cfg = registry.router
        self.registry, self.config = registry, cfg
        small, large = cfg.cascade.small or registry.fast, cfg.cascade.large or registry.default
        self.cascade = Cascade(small=small, large=large, small_attempts=cfg.cascade.small_attempts) \
            if cfg.mode == "cascade" and small is not None else None
        self.health = health or HealthBoard(window=cfg.latency_window, cooldown_s=cfg.down_cooldown_s)
        self.store = store if store is not None else (bandit.store if bandit else None)
        self.bandit = bandit
        self.allowed = allowed
        self._sleep = sleep
        for p in cfg.priors:
            if p.p95_latency_s is not None:
                self.health.seed_latency(p.endpoint, p.p95_latency_s)

    # -- choosing -------------------------------------------------------------------------------------------

    def _hard_reason(self, ep: Endpoint, req: RouteRequest, failed: dict[str, str]) -> str | None:
        if ep.name in failed:
            return f"failed during this call ({failed[ep.name]})"
        if self.allowed is not None and not self.allowed(ep):
            return "not allowed by policy"
        missing = sorted(req.needs - set(ep.capabilities))
        if missing:
            return f"lacks capability {', '.join(missing)}"
        need = req.prompt_tokens + req.max_output_tokens
        if need > ep.context:
            return f"context: needs ~{need} tokens, has {ep.context}"
        if self.health.is_down(ep.name):
            return f"down: {self.health.get(ep.name).last_error}"
        if req.budget_usd is not None:
            est = ep.cost_usd(req.prompt_tokens, req.max_output_tokens)
            if est > req.budget_usd:
                return f"budget: ~${est:.4f} > ${req.budget_usd:.4f} left"
        return None

    def _soft_reason(self, ep: Endpoint, req: RouteRequest) -> str | None:
        h = self.health.get(ep.name)
        if h.in_flight >= ep.concurrency:
            return f"queue: {h.in_flight} in flight (limit {ep.concurrency})"
        slo = req.slo_p95_s or self.config.slo_p95_s
        p95 = h.p95()
        if slo is not None and p95 is not None and len(h.latencies) >= min(self.config.min_samples, h.window) \
                and p95 > slo:
            return f"slo: p95 {p95:.1f}s > {slo:g}s"
        return None

    def decide(self, req: RouteRequest, *, failed: dict[str, str] | None = None) -> RouteDecision:
        failed = failed or {}
        rejected: dict[str, str] = {}
        eligible: list[Endpoint] = []
        degraded: list[Endpoint] = []
        for ep in self.registry.endpoints:
            hard = self._hard_reason(ep, req, failed)
            if hard is not None:
                rejected[ep.name] = hard
                continue
            soft = self._soft_reason(ep, req)
            if soft is not None:
                rejected[ep.name] = soft
                degraded.append(ep)
            else:
                eligible.append(ep)
        requested = req.requested
        if not eligible and not degraded:
            raise NoRoute(kind=req.kind, rejected=rejected)
        if not eligible:
            # Everything left is slow or busy: queue on the least loaded, preferring the requested one.
            ep = min(degraded, key=lambda e: (e.name != requested, self.health.get(e.name).in_flight))
            return RouteDecision(ep, "degraded", f"every endpoint is busy or over its SLO; using {ep.name} "
                                 f"({rejected[ep.name]})", spilled=ep.name != requested and requested is not None,
                                 rejected=rejected)
        names = [e.name for e in eligible]
        if self.cascade is not None and req.task is not None and not req.pinned:
            target, why = self.cascade.target(req.task)
            if target in names:
                ep = eligible[names.index(target)]
                return RouteDecision(ep, "cascade", why, False, rejected)
            rejected.setdefault(target, "unknown endpoint")
        use_bandit = self.bandit is not None and self.config.mode == "bandit" and not req.pinned
        if requested in names and not use_bandit:
            ep = eligible[names.index(requested)]
            return RouteDecision(ep, "requested", f"{ep.name} was requested and fits", False, rejected)
        local = [e for e in eligible if e.locality == "local"]
        tier = local or eligible
        spilled = requested is not None and requested not in names
        why_not = f"{requested} rejected ({rejected.get(requested or '', 'unknown endpoint')}); " if spilled else ""
        if not local:
            why_not += "no local endpoint fits; "
        if use_bandit and self.bandit is not None and len(tier) > 1:
            explore = req.budget_usd is None or req.budget_usd >= self.config.explore_min_budget_usd
            best, scores = self.bandit.choose(req.kind, [e.name for e in tier], explore=explore)
            ep = next(e for e in tier if e.name == best)
            how = "sampled" if explore else "posterior mean (budget too low to explore)"
            return RouteDecision(ep, "bandit", f"{why_not}Thompson {how}: {best} scored highest for {req.kind}",
                                 spilled, rejected, scores)
        if requested in names:  # bandit on but a single candidate in the tier
            ep = eligible[names.index(requested)]
            return RouteDecision(ep, "requested", f"{ep.name} was requested and fits", False, rejected)
        ep = tier[0]
        rule = "spill" if spilled or not local else "local-first"
        return RouteDecision(ep, rule, f"{why_not}{ep.name} is the first {ep.locality} endpoint that fits",
                             spilled or not local, rejected)

    async def call(self, req: RouteRequest, invoke: Callable[[Endpoint], Awaitable[T]], *,
                   emit: Emit | None = None, on_down: Callable[[Endpoint], object] | None = None
                   ) -> tuple[T, RouteDecision]:
        """Route, call ``invoke(endpoint)``, retry / re-route on failure; returns the result and the final decision.

        ``on_down(endpoint)`` runs when an endpoint is marked down (the provider drops its cached client).
        ``emit(event, **fields)`` receives ``route``, ``route_retry`` and ``reroute`` events (the run's EventLog);
        they are also added as events to the current OpenTelemetry span (the model call's span in a traced run).
        """
        failed: dict[str, str] = {}

        def record(event: str, **fields: JsonValue) -> None:  # the run's event log, and the current trace span
            if emit is not None:
                emit(event, **fields)
            trace.get_current_span().add_event(f"naestro.{event}", {
                k: v if isinstance(v, str | int | float | bool) else json.dumps(v) for k, v in fields.items()
                if v is not None})

        while True:
            # Decided and counted in flight with no await in between, so concurrent calls see each other's queue
            # depth; the decision log (SQLite/Postgres) is written in a worker thread, off the event loop.
            decision = self.decide(req, failed=failed)
            ep = decision.endpoint
            record("route", kind=req.kind, prompt_tokens=req.prompt_tokens, **decision.fields())
            self.health.started(ep.name)
            if self.store is not None:
                await asyncio.to_thread(self.store.add_decision, req.kind, ep.name, spilled=decision.spilled)
            for attempt in range(self.config.retries + 1):
                if attempt:
                    self.health.started(ep.name)
                start = time.monotonic()
                try:
                    result = await asyncio.wait_for(invoke(ep), timeout=ep.timeout_s)
                except Exception as exc:
                    kind = classify_failure(exc)
                    self.health.finished(ep.name, latency_s=None, error=f"{kind or 'error'}: {exc}"[:300],
                                         healthy=kind in (None, "context"))
                    if kind is None:
                        raise
                    reason = f"{kind}: {str(exc)[:200] or exc.__class__.__name__}"
                    if kind in ("timeout", "5xx") and attempt < self.config.retries:
                        delay = self.config.backoff_s * 2**attempt
                        record("route_retry", kind=req.kind, endpoint=ep.name, attempt=attempt + 1,
                               delay_s=delay, reason=reason)
                        await self._sleep(delay)
                        continue
                    if kind != "context":  # a prompt too long for it says nothing about the endpoint's health
                        self.health.mark_down(ep.name, reason)
                        if on_down is not None:
                            on_down(ep)
                    failed[ep.name] = reason
                    record("reroute", kind=req.kind, endpoint=ep.name, reason=reason,
                           cooldown_s=self.config.down_cooldown_s)
                    break
                self.health.finished(ep.name, latency_s=time.monotonic() - start)
                return result, decision

    def record_verdict(self, task: str, endpoint: str, *, passed: bool) -> bool:
        """A task attempt's acceptance verdict (``run/task``); True when the cascade escalates the task."""
        return self.cascade is not None and self.cascade.verdict(task, endpoint, passed=passed)

    def record_outcome(self, kind: str, endpoint: str, *, success: bool, cost_usd: float, latency_s: float
                       ) -> float | None:
        """An evaluator verdict for a call this router made; updates the bandit (live, and in its store)."""
        if self.bandit is None:
            return None
        return self.bandit.update(kind, endpoint, success=success, cost_usd=cost_usd, latency_s=latency_s)


def build_router(registry: ModelRegistry, *, home: Path, allowed: Allowed | None = None,
                 health: HealthBoard | None = None,
                 counted: Mapping[tuple[str, str], tuple[float, float]] | None = None) -> Router:
    """The router a CLI run uses: bandit observations in ``router.store`` (default HOME/router.sqlite).

    ``counted``: observations the registry's priors were learned from (see ``ThompsonBandit``)."""
    store = open_store(registry.router.store or home / "router.sqlite")
    return Router(registry, health=health, bandit=ThompsonBandit.from_config(store, registry.router, counted=counted),
                  store=store, allowed=allowed)
