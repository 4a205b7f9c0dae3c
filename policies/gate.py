"""The policy gate: every tool call and model call an agent makes is decided here, audited, then enforced.

allow → the call proceeds (with the policy's obligations, e.g. a timeout); deny → ``PolicyDenied``, which
the agent sees as tool feedback; ask → a ``ConsentRequest`` handed to the caller's ``Asker``, which answers
approve / deny / edited arguments (optionally remembered for the run as an approved scope). The gate decides
and never suspends: a graph node passes an asker that calls LangGraph's ``interrupt()`` (naestro/context.py),
callers outside a graph pass none, and an ask becomes a deny. Kill
switches are read at every decision: a paused run stops here (``RunPaused``), quarantined tools and
endpoints are denied by the policy itself, revoked consents are forgotten.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, JsonValue

from naestro.budget import TaskMeter
from naestro.errors import PolicyDenied, RunPaused
from naestro.events import EventLog
from naestro.redact import SecretVault, labels, redact_value
from naestro.telemetry import policy_span, span
from policies.audit import AuditLog
from policies.decision import (
    Action,
    Actor,
    ApprovedScope,
    BudgetLine,
    Context,
    Decision,
    EndpointFact,
    PolicyInput,
    Quarantine,
    RunPolicy,
    Window,
)
from policies.engines import PolicyEngine
from policies.facts import path_facts, url_facts
from policies.switches import KillSwitches, Switch

__all__ = ["Asker", "ConsentAnswer", "ConsentRequest", "Gate"]


class ConsentRequest(BaseModel):
    """The ``interrupt()`` payload: what the agent wants to do and why the policy asks."""

    kind: Literal["consent"] = "consent"
    run: str
    task: str
    role: str
    action: str
    arguments: dict[str, JsonValue]
    reasons: list[str]
    risk: Literal["medium", "high"]
    remember_scope: ApprovedScope


class ConsentAnswer(BaseModel):
    """The human's reply, given to ``Command(resume=...)``."""

    approve: bool
    arguments: dict[str, JsonValue] | None = None
    remember: bool = False
    by: str = "cli"
    purpose: str = ""


Asker = Callable[[ConsentRequest], ConsentAnswer]
"""Who answers a consent request: a graph node suspends with ``interrupt()``; may raise to suspend."""


@dataclass
class _Windows:
    """Sliding-window call counts per (action, role) for the rate-limit rule."""

    calls: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def count(self, key: tuple[str, str], window_s: float, now: float) -> int:
        q = self.calls.setdefault(key, deque())
        while q and q[0] <= now - window_s:
            q.popleft()
        return len(q)

    def add(self, key: tuple[str, str], now: float) -> None:
        self.calls.setdefault(key, deque()).append(now)


def _quarantined(active: list[Switch]) -> Quarantine:
    return Quarantine(tools=sorted({s.target for s in active if s.kind == "quarantine_tool"}),
                      models=sorted({s.target for s in active if s.kind == "quarantine_model"}))


class Gate:
    def __init__(self, engine: PolicyEngine, *, run_id: str, workspace: Path, policy: RunPolicy, audit: AuditLog | None,
                 switches: KillSwitches, registered: Callable[[], set[str]], rate_limits: dict[str, Any],
                 events: EventLog | None = None, remembered: list[ApprovedScope] | None = None,
                 on_remember: Callable[[list[ApprovedScope]], None] | None = None,
                 vault: SecretVault | None = None, protected: Collection[str] = ()) -> None:
        self.engine, self.run_id, self.policy = engine, run_id, policy
        # The run's handles: arguments arrive revealed, so its values are labelled by what they were and
        # concealed again in everything the gate writes (audit records, consent requests).
        self.vault = vault or SecretVault()
        self.workspace = workspace.resolve()
        # Files the goal says not to change (workspace-relative, from the goal's words): resolved once, as path
        # facts are, so the policy compares strings.
        self.protected = sorted({os.path.realpath(self.workspace / name) for name in protected})
        self.audit, self.switches, self.events = audit, switches, events
        self.registered, self.rate_limits = registered, rate_limits
        # Consents a human said to remember ("approve all ..."): persisted by ``on_remember`` (run.json),
        # so they survive a crash and resume, and are dropped by `naestro revoke consents RUN`.
        self.remembered: list[ApprovedScope] = list(remembered or [])
        self._on_remember = on_remember
        self._windows = _Windows()

    def _audit(self, kind: str, **data: Any) -> None:
        if self.audit is not None:  # None only for dry evaluations (naestro policy check)
            self.audit.append(kind, **self.vault.conceal(data))

    # --- building the input ----------------------------------------------------------------------------

    def _context(self, *, rate_key: str, role: str, meter: TaskMeter | None, data: Any,
                 active: list[Switch] | None) -> Context:
        limit = self.rate_limits.get(rate_key) or self.rate_limits.get("default") or {"window_s": 60}
        window_s = int(limit.get("window_s", 60))
        budget: dict[str, dict[str, BudgetLine]] = {}
        if meter is not None:
            budget["task"] = {"tokens": BudgetLine(spent=meter.tokens, limit=meter.budget.tokens),
                              "usd": BudgetLine(spent=meter.usd, limit=meter.budget.usd),
                              "wall_s": BudgetLine(spent=round(meter.elapsed_s, 3), limit=meter.wall_guard_s())}
            run = meter.run
            budget["run"] = {"tokens": BudgetLine(spent=run.tokens, limit=run.ceiling.tokens),
                             "usd": BudgetLine(spent=run.usd, limit=run.ceiling.usd)}
        p = self.policy
        return Context(
            workspace=str(self.workspace), scratch=p.scratch, roots=[str(Path(r).resolve()) for r in p.roots],
            allowed_domains=p.allow_domains, allowed_cidrs=p.allow_cidrs, approved=[*p.approve, *self.remembered],
            scopes=p.scopes, data_labels=sorted(labels(data) | self.vault.labels(data)),
            quarantined=_quarantined(self.switches.active() if active is None else active),
            window=Window(calls=self._windows.count((rate_key, role), window_s, time.monotonic()), window_s=window_s),
            budget=budget, protected=self.protected)

    def tool_input(self, *, task: str, role: str, tool: str, arguments: dict[str, JsonValue],
                   meter: TaskMeter | None = None, active: list[Switch] | None = None) -> PolicyInput:
        """The policy input for a tool call; ``active``: the kill switches as just read (else read here)."""
        rate_key = tool if tool in self.rate_limits else "default"
        return PolicyInput(
            actor=Actor(run=self.run_id, task=task, role=role, mode=self.policy.mode),
            action=Action(kind="tool", tool=tool, registered=tool in self.registered(), arguments=arguments,
                          paths=path_facts(arguments, self.workspace), urls=url_facts(arguments)),
            context=self._context(rate_key=rate_key, role=role, meter=meter, data=arguments, active=active))

    def model_input(self, *, task: str, role: str, endpoint: str, locality: str, estimate: dict[str, float],
                    text: str, meter: TaskMeter | None = None, active: list[Switch] | None = None) -> PolicyInput:
        return PolicyInput(
            actor=Actor(run=self.run_id, task=task, role=role, mode=self.policy.mode),
            action=Action(kind="model", endpoint=EndpointFact(name=endpoint, locality=locality), estimate=estimate),
            context=self._context(rate_key="model", role=role, meter=meter, data=text, active=active))

    # --- deciding --------------------------------------------------------------------------------------

    def _check_switches(self, task: str) -> list[Switch]:
        """Stop here if the run is paused; apply a consent revocation. Returns the active switches (read once
        per call: each read is a query)."""
        active = self.switches.active()
        paused = next((s for s in active if s.kind == "pause" and s.target == self.run_id), None)
        if paused is not None:
            self._audit("paused", task=task, switch=paused.id, by=paused.by, reason=paused.reason)
            raise RunPaused(run_id=self.run_id, reason=paused.reason or f"switch #{paused.id}")
        revokes = [s.id for s in active if s.kind == "revoke_consents" and s.target == self.run_id]
        if revokes:
            # A revocation is consumed (lifted) once applied: later "approve all" answers stand.
            self.switches.lift("revoke_consents", self.run_id)
            if self.remembered:
                self._audit("consents_revoked", scopes=[s.model_dump() for s in self.remembered])
            self.remembered = []
            if self._on_remember is not None:
                self._on_remember([])
            active = self.switches.active()
        return active

    def decide(self, inp: PolicyInput) -> Decision:
        """Evaluate (fail closed), audit and emit; nothing is enforced here."""
        action = inp.action.tool or f"model:{inp.action.endpoint.name if inp.action.endpoint else '?'}"
        with policy_span(action, task=inp.actor.task, role=inp.actor.role, engine=self.engine.name) as span:
            start = time.perf_counter()
            decision = self.engine.decide_input(inp)
            latency_us = round((time.perf_counter() - start) * 1e6, 1)
            span.set_attributes({"naestro.policy.verdict": decision.verdict, "naestro.policy.latency_us": latency_us,
                                 "naestro.policy.reasons": [*decision.reasons]})
        self._audit("decision", task=inp.actor.task, role=inp.actor.role, mode=inp.actor.mode, action=action,
                          arguments=inp.action.arguments, verdict=decision.verdict, reasons=decision.reasons,
                          engine=self.engine.name, latency_us=latency_us)
        if self.events is not None:
            self.events.emit("policy_decision", task=inp.actor.task, action=action, verdict=decision.verdict,
                             reasons=[*decision.reasons], engine=self.engine.name, latency_us=latency_us)
        return decision

    def _consent(self, inp: PolicyInput, decision: Decision, ask: Asker) -> ConsentAnswer:
        action = inp.action.tool or f"model:{inp.action.endpoint.name if inp.action.endpoint else '?'}"
        dirs = sorted({str(Path(p.resolved).parent) for p in inp.action.paths})
        scope = ApprovedScope(tool=action, under=dirs[0] if len(dirs) == 1 else None)
        high = any(e in " ".join(decision.reasons) for e in ("shell", "network", "outside scratch", "external"))
        request = ConsentRequest(run=self.run_id, task=inp.actor.task, role=inp.actor.role, action=action,
                                 arguments=redact_value(self.vault.conceal(inp.action.arguments)),
                                 reasons=decision.reasons,
                                 risk="high" if high else "medium", remember_scope=scope)
        if self.events is not None:
            self.events.emit("consent_requested", task=inp.actor.task, action=action, reasons=[*decision.reasons])
        # In a graph node the first pass suspends (the asker raises; the span ends marked interrupted); on
        # resume the asker returns the human's answer and the span records it.
        with span(f"naestro.consent {action}", attributes={"naestro.task.id": inp.actor.task,
                                                           "naestro.consent.risk": request.risk}) as sp:
            answer = ask(request)
            sp.set_attributes({"naestro.consent.approve": answer.approve, "naestro.consent.by": answer.by,
                               "naestro.consent.remember": answer.remember})
        self._audit("consent", task=inp.actor.task, action=action, approve=answer.approve, by=answer.by,
                          purpose=answer.purpose, remember=answer.remember, edited=answer.arguments is not None,
                          arguments=answer.arguments if answer.arguments is not None else inp.action.arguments)
        if self.events is not None:
            self.events.emit("consent_given" if answer.approve else "consent_refused", task=inp.actor.task,
                             action=action, by=answer.by, remember=answer.remember)
        if answer.approve and answer.remember:
            self.remembered.append(scope)
            if self._on_remember is not None:
                self._on_remember(list(self.remembered))
        return answer

    def authorize_tool(self, *, task: str, role: str, tool: str, arguments: dict[str, JsonValue],
                       meter: TaskMeter | None = None, ask: Asker | None = None,
                       ) -> tuple[Decision, dict[str, JsonValue]]:
        """The decision for a tool call and the arguments to call it with (a human may have edited them).

        Without ``ask`` (outside a graph node, e.g. the planner's check probe) an ask is a deny."""
        active = self._check_switches(task)
        inp = self.tool_input(task=task, role=role, tool=tool, arguments=arguments, meter=meter, active=active)
        decision = self.decide(inp)
        if decision.ask and ask is None:
            raise PolicyDenied(tool=tool, reasons=[*decision.reasons, "outside a graph node nobody can be asked"])
        if decision.ask:
            assert ask is not None
            answer = self._consent(inp, decision, ask)
            if not answer.approve:
                raise PolicyDenied(tool=tool, reasons=[f"{answer.by} refused consent", *decision.reasons], by="human")
            if answer.arguments is not None and answer.arguments != arguments:
                arguments = answer.arguments
                decision = self.decide(self.tool_input(task=task, role=role, tool=tool, arguments=arguments,
                                                       meter=meter))
                if not decision.allow and not decision.ask:  # consent never overrides a deny rule
                    raise PolicyDenied(tool=tool, reasons=decision.reasons, rules=decision.rules)
        elif not decision.allow:
            raise PolicyDenied(tool=tool, reasons=decision.reasons, rules=decision.rules)
        key = (tool if tool in self.rate_limits else "default", role)
        self._windows.add(key, time.monotonic())
        return decision, arguments

    def authorize_memory(self, *, task: str, role: str, slices: list[str], query: str) -> Decision:
        """A memory recall (issue 19): the data scope is the slices read; the policy says which a role may read.

        Never asks (a recall has no side effect): allow, or ``PolicyDenied``."""
        active = self._check_switches(task)
        arguments: dict[str, JsonValue] = {"slices": [*slices], "query": query}
        inp = PolicyInput(
            actor=Actor(run=self.run_id, task=task, role=role, mode=self.policy.mode),
            action=Action(kind="memory", tool="memory.recall", registered=True, arguments=arguments),
            context=self._context(rate_key="memory.recall", role=role, meter=None, data=query, active=active))
        decision = self.decide(inp)
        if not decision.allow:
            raise PolicyDenied(tool="memory.recall", reasons=decision.reasons)
        return decision

    def authorize_model(self, *, task: str, role: str, endpoint: str, locality: str, estimate: dict[str, float],
                        text: str, meter: TaskMeter | None = None, ask: Asker | None = None) -> Decision:
        """Without ``ask`` (outside a graph node: the planner) an ask becomes a deny that says how to approve."""
        active = self._check_switches(task)
        inp = self.model_input(task=task, role=role, endpoint=endpoint, locality=locality, estimate=estimate,
                               text=text, meter=meter, active=active)
        decision = self.decide(inp)
        if decision.ask and ask is None:
            raise PolicyDenied(tool=f"model:{endpoint}", reasons=[
                *decision.reasons, f"planning cannot wait for consent: pre-approve with --approve model:{endpoint}"])
        if decision.ask:
            assert ask is not None
            answer = self._consent(inp, decision, ask)
            if not answer.approve:
                raise PolicyDenied(tool=f"model:{endpoint}", reasons=[f"{answer.by} refused consent"], by="human")
        elif not decision.allow:
            raise PolicyDenied(tool=f"model:{endpoint}", reasons=decision.reasons, rules=decision.rules)
        self._windows.add(("model", role), time.monotonic())
        return decision
