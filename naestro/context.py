"""What a compiled graph's nodes need at run time, passed as LangGraph runtime context (never checkpointed).

``call_tool`` and ``complete`` are the only ways a node reaches a tool or a model: each call is looked up
in the effect journal (a re-executed node replays instead of repeating), then decided by the policy gate
(deny → feedback, ask → ``interrupt()``), then made, journalled and recorded as an event. The gate only
decides; suspending for a human is this layer's job (``ask_human``), because only a graph node can. The
gate's work (policy, kill switches in SQLite, audit) runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.messages import BaseMessage
from langgraph.config import get_config
from langgraph.types import interrupt
from pydantic import JsonValue

from checkpoints.snapshots import SnapshotStore
from naestro.budget import RunBudget, TaskMeter
from naestro.endpoints import Endpoint
from naestro.errors import PolicyDenied
from naestro.events import EventLog
from naestro.journal import Journal, request_hash
from naestro.llm import ModelProvider, ModelReply, complete_json
from naestro.plan import Plan, Role
from naestro.redact import SecretVault
from naestro.router import Router, complete_json_routed, request_for
from naestro.runs import RunStatus
from naestro.telemetry import chat_span, record_reply, record_tool_result, tool_span
from naestro.tooladapter import ToolAdapter, hint_for, timeout_for
from naestro.toolbus import ToolBus, ToolResult, ToolSpec
from nodes.proposal import PROPOSED, guide_proposal, proposal_arguments
from nodes.roles import RoleSpec
from policies.gate import ConsentAnswer, ConsentRequest, Gate

if TYPE_CHECKING:
    from naestro.memory.fabric import Memory

__all__ = ["Execution", "RunContext"]

AGENT_MISTAKES = frozenset({"path_invalid", "path_confinement"})
"""Gate rules whose denial of a read-only tool is an agent's mistake (an absolute path, ``..``), not the policy
forbidding what the task set out to do: it does not keep the run from being re-planned (issue-22 slice: an
``fs.list`` of the sandbox's ``/tmp/workspace``, copied from pytest's output, skipped the re-plan of a run that
failed on its tests). A denied write, command or network call still does."""

ERROR_CHARS = 200
"""How much of a failed tool call's error an event keeps (its first line): enough to tell errors apart."""


@dataclass
class Execution:
    """One execution of a node on behalf of a task and role: the journal keys its calls by number."""

    node: str
    task_id: str
    role: Role
    attempt: int
    meter: TaskMeter | None = None
    calls: int = 0
    refused: bool = False  # a human refused consent for a call of this execution
    denied: list[str] = field(default_factory=list)  # tools the policy denied in this execution (not guide's)
    proposed: int = 0  # guide mode: actions recorded as proposals instead of run (nodes/proposal.py)

    def next_key(self, thread: str, kind: str) -> str:
        self.calls += 1
        return f"{thread}/{self.node}/{self.task_id}/{self.attempt}/{kind}/{self.calls}"


@dataclass
class RunContext:
    run_id: str
    plan: Plan
    run_dir: Path
    workspace: Path
    provider: ModelProvider
    bus: ToolBus
    events: EventLog
    roles: dict[Role, RoleSpec]
    gate: Gate
    journal: Journal
    thread: str = ""
    snapshots: SnapshotStore | None = None
    replay_thread: str | None = None  # offline replay: reuse model replies journalled under this thread key
    run_budget: RunBudget = field(default_factory=lambda: RunBudget(ceiling=Plan.model_fields["budget"].default))
    router: Router | None = None  # None: call the requested endpoint directly (no spill, no re-route)
    vault: SecretVault = field(default_factory=SecretVault)  # placeholder -> real value, memory only
    review: bool = True  # a Reviewer pass after a task's last failed attempt, before the re-plan
    set_status: Callable[[RunStatus], None] = lambda _status: None  # run.json's status (RunServices saves it)
    # checkpoint id -> its snapshot being taken; shared by the contexts of one run (RunServices passes one dict)
    snapshotting: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    memory: Memory | None = None  # issue 19: agents recall earlier runs' facts through the gate; None when off
    tool_adapters: Mapping[str, ToolAdapter] = field(default_factory=dict)  # issue 21: hints and call timeouts

    def ask_human(self, request: ConsentRequest) -> ConsentAnswer:
        """Suspend the running node with LangGraph's ``interrupt()``; on resume, the human's answer.

        The payload is what ``thread.interrupts`` shows over the SDK and in Studio, and what ``naestro approve``
        lists; ``Command(resume=...)`` from any of them continues the node. Blocking (run.json is saved): call
        it from a worker thread, as ``call_tool`` and ``complete`` do.
        """
        self.set_status("waiting")
        self.events.emit("waiting_for_consent", task=request.task, action=request.action)
        answer = ConsentAnswer.model_validate(interrupt(request.model_dump(mode="json")))
        self.set_status("running")
        return answer

    def endpoint_for(self, role: Role, override: str | None = None) -> str:
        """Endpoint name for a role: the task's override, else the role's preference (default/fast aliases)."""
        wanted = override or self.roles[role].model
        registry = self.provider.registry
        if wanted == "default":
            return registry.default
        if wanted == "fast":
            return registry.fast or registry.default
        return wanted

    async def snapshot_step(self) -> None:
        """Bind the checkpoint this step starts from to a snapshot of the workspace.

        Awaited first thing by every node that may change files. Parallel siblings of a superstep start from
        the same checkpoint: the first one starts the snapshot (in a worker thread: a walk of the workspace
        must not block the event loop) before any await, and every sibling waits for that one snapshot
        before doing anything, so it is the workspace exactly as it was at that checkpoint.
        """
        if self.snapshots is None:
            return
        checkpoint = get_config().get("configurable", {}).get("checkpoint_map", {}).get("")
        if not checkpoint:
            return
        taking = self.snapshotting.get(checkpoint)
        if taking is None:
            snapshots, workspace = self.snapshots, self.workspace

            def take() -> None:
                if not snapshots.bound(checkpoint):
                    snapshots.bind(checkpoint, snapshots.take(workspace))
            taking = self.snapshotting[checkpoint] = asyncio.ensure_future(asyncio.to_thread(take))
        await asyncio.shield(taking)

    def tools_for(self, role: Role) -> list[ToolSpec]:
        """The tools offered to a role: its allowlist entries are names or globs (``server.*``)."""
        patterns = self.roles[role].tools
        return [self._adapted(s) for s in self.bus.specs() if any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]

    def _adapted(self, spec: ToolSpec) -> ToolSpec:
        """The tool as the agents see it: the active release's usage hint after the first line of its description
        (the line the prompt shows), so the hint reaches the prompt and the rest of the description stays."""
        hint = hint_for(self.tool_adapters, spec.name)
        if hint is None:
            return spec
        first, _, rest = spec.description.strip().partition("\n")
        return spec.model_copy(update={"description": f"{first} Hint: {hint}" + (f"\n{rest}" if rest else "")})

    def tool_timeout_s(self, name: str) -> float:
        """A tool call's timeout: the active release's adapter for the tool or its server, else the default."""
        return timeout_for(self.tool_adapters, name)

    def record_model_call(self, task_id: str, reply: ModelReply, *, purpose: str = "agent") -> None:
        """The one event shape for a model call, whoever made it (agent, evaluator, reporter)."""
        self.events.emit("model_call", task=task_id, endpoint=reply.endpoint, prompt_tokens=reply.prompt_tokens,
                         completion_tokens=reply.completion_tokens, latency_s=reply.latency_s,
                         cost_usd=reply.cost_usd, purpose=purpose)

    def record_tool_call(self, task_id: str, result: ToolResult, *, timeout_s: float | None = None) -> None:
        """The tool receipt as an event: what was called, whether it worked, hashes of what went in and out.

        A failed call also carries its error's first line (redacted like every event) and a timed-out one the
        limit it hit: the Introspector turns repeated errors and timeouts into tool adapter proposals (issue 21)."""
        failure: dict[str, JsonValue] = {}
        if not result.ok:
            failure["error"] = (result.text.strip().splitlines() or [""])[0][:ERROR_CHARS]
        if result.timed_out:
            failure.update(timed_out=True, timeout_s=timeout_s)
        self.events.emit("tool_call", task=task_id, tool=result.tool, ok=result.ok, duration_s=result.duration_s,
                         args_sha256=result.args_sha256, result_sha256=result.result_sha256, **failure)

    async def call_tool(self, ex: Execution, name: str, arguments: dict[str, JsonValue], *,
                        timeout_s: float = 120.0) -> ToolResult:
        """Journal → gate → tool, in an ``execute_tool`` span. A denial comes back as a failed receipt."""
        with tool_span(name, task=ex.task_id) as span:
            result = await self._call_tool(ex, name, arguments, timeout_s=timeout_s)
            record_tool_result(span, result)
            return result

    async def _call_tool(self, ex: Execution, name: str, arguments: dict[str, JsonValue], *,
                         timeout_s: float) -> ToolResult:
        key = ex.next_key(self.thread, "tool")
        request = request_hash([name, arguments])
        entry = self.journal.lookup(key, "tool", request)
        if entry is not None and entry.state == "done":
            self.events.emit("tool_replayed", task=ex.task_id, tool=name, key=key)
            return ToolResult.model_validate(entry.value)
        if entry is not None:
            self.events.emit("tool_redone", task=ex.task_id, tool=name, key=key,
                             note="started before a crash; its effect may have happened once already")
        start = time.monotonic()
        try:
            # Scoped secret handles: placeholders the run issued become their values for this call only, and
            # the gate decides on the real values' labels (a secret needs the run's `secret` scope).
            decision, arguments = await asyncio.to_thread(functools.partial(
                self.gate.authorize_tool, task=ex.task_id, role=ex.role.value, tool=name,
                arguments=self.vault.reveal(arguments), meter=ex.meter, ask=self.ask_human))
        except PolicyDenied as exc:
            proposal = guide_proposal(exc)
            text = PROPOSED if proposal else f"POLICY DENIED: {exc.message}"
            denied = ToolResult(tool=name, ok=False, text=self.vault.redact(text),
                                args_sha256=request, result_sha256=request_hash(exc.message),
                                duration_s=round(time.monotonic() - start, 4))
            self.events.emit("tool_denied", task=ex.task_id, tool=name, by=exc.by, reasons=[*exc.reasons])
            if proposal:  # guide mode: what the agent would do, for the proposal report (arguments redacted)
                ex.proposed += 1
                self.events.emit("proposed", task=ex.task_id, tool=name, arguments=proposal_arguments(arguments))
            elif exc.by == "human":
                ex.refused = True
            elif not (exc.rules and set(exc.rules) <= AGENT_MISTAKES and self._read_only(name)):
                ex.denied.append(name)  # the policy forbids what the task tried: a re-plan must not route around it
            return denied
        limit = decision.obligations.get("timeout_s")
        if isinstance(limit, int | float):
            timeout_s = min(timeout_s, float(limit))
        self.journal.started(key, "tool", request)
        result = await self.bus.call(name, arguments, timeout_s=timeout_s)
        self._note_files(name, result)
        # Secrets and PII in what a tool returns never reach the model, the journal or the graph state.
        result = self.vault.redact_fields(result, "text", "structured")
        cap = decision.obligations.get("max_output_chars")
        if isinstance(cap, int) and len(result.text) > cap:
            result = result.model_copy(update={"text": result.text[:cap] + f"\n[... truncated at {cap} chars]"})
        self.journal.done(key, "tool", request, result.model_dump(mode="json"))
        self.record_tool_call(ex.task_id, result, timeout_s=timeout_s)
        return result

    def _spec(self, name: str) -> ToolSpec | None:
        return next((s for s in self.bus.specs() if s.name == name), None)

    def _read_only(self, name: str) -> bool:
        spec = self._spec(name)
        return spec is not None and spec.trusted and spec.read_only

    def _note_files(self, name: str, result: ToolResult) -> None:
        """Tell the snapshot store which files a tool changed, so the next snapshot need not walk the workspace.

        Only trusted (builtin) servers are believed: a read-only tool changed nothing, ``fs.write`` and
        ``fs.patch`` name the files they wrote; anything else (``exec.run``, a failed write) may have changed
        any file. Read before redaction: a path is a path, not a placeholder."""
        if self.snapshots is None:
            return
        spec = self._spec(name)
        trusted = spec is not None and spec.trusted
        data = result.structured if result.ok and isinstance(result.structured, dict) else {}
        written = data.get("files") if name == "fs.patch" else [data.get("path")] if name == "fs.write" else None
        paths = [str(p) for p in written] if isinstance(written, list) and all(
            isinstance(p, str) for p in written) else None
        self.snapshots.note_tool(read_only=trusted and spec is not None and spec.read_only,
                                 paths=paths if trusted else None)

    async def complete(self, ex: Execution, endpoint: str, messages: list[BaseMessage], *,
                       schema: dict[str, JsonValue], name: str, purpose: str = "agent",
                       sampling: dict[str, float | int] | None = None) -> ModelReply:
        """Journal → gate → model in a ``chat`` span (tokens, cost); charges the execution's meter.

        ``sampling`` overrides the endpoint's request options for this call (``temperature``, ``seed``).
        ``PolicyDenied`` propagates (no model)."""
        registry = self.provider.registry
        with chat_span(registry.get(endpoint), task=ex.task_id, purpose=purpose, conversation=self.thread) as span:
            reply = await self._complete(ex, endpoint, messages, schema=schema, name=name, purpose=purpose,
                                         sampling=sampling)
            record_reply(span, reply, registry=registry)
            return reply

    async def _complete(self, ex: Execution, endpoint: str, messages: list[BaseMessage], *,
                        schema: dict[str, JsonValue], name: str, purpose: str,
                        sampling: dict[str, float | int] | None) -> ModelReply:
        key = ex.next_key(self.thread, "model")
        text = "\n".join(str(m.content) for m in messages)
        # The sampling is part of the request only when set, so the journal's earlier entries keep their hashes.
        asked: list[JsonValue] = [endpoint, text, schema]
        if sampling:
            asked.append({k: v for k, v in sampling.items()})
        request = request_hash(asked)
        entry = self.journal.lookup(key, "model", request)
        if entry is None and self.replay_thread is not None:
            # Deterministic offline replay: the same call at the same point of the recorded run (same prompt,
            # same position) gets the recorded reply; anything that diverged calls the model.
            entry = self.journal.lookup(self.replay_thread + key.removeprefix(self.thread), "model", request)
        measured = False  # a replayed reply says nothing about the model's speed now
        if entry is not None and entry.state == "done" and isinstance(entry.value, dict):
            reply = ModelReply(**entry.value)  # type: ignore[arg-type]
        else:
            measured = True
            ep = self.provider.registry.get(endpoint)
            # What the call will certainly spend: its prompt (~4 chars/token); the reply is charged after.
            prompt_estimate = len(text) // 4
            estimate = {"tokens": float(prompt_estimate), "usd": ep.cost_usd(prompt_estimate, 0)}
            await asyncio.to_thread(functools.partial(
                self.gate.authorize_model, task=ex.task_id, role=ex.role.value, endpoint=ep.name,
                locality=ep.locality, estimate=estimate, text=text, meter=ex.meter, ask=self.ask_human))
            if self.router is None:
                reply = await complete_json(self.provider, ep.name, messages, schema=schema, name=name,
                                            sampling=sampling)
            else:  # the router may spill or re-route to another endpoint: the gate sees that one too
                def authorize(other: Endpoint) -> None:
                    if other.name != ep.name:
                        self.gate.authorize_model(task=ex.task_id, role=ex.role.value, endpoint=other.name,
                                                  locality=other.locality, estimate=estimate, text=text,
                                                  meter=ex.meter, ask=self.ask_human)
                req = request_for(messages, kind=ex.role.value, requested=ep.name, meter=ex.meter,
                                  task=f"{self.run_id}/{ex.task_id}")  # the cascade escalates per task
                reply, _ = await complete_json_routed(self.router, self.provider, req, messages, schema=schema,
                                                      name=name, authorize=authorize, sampling=sampling,
                                                      emit=functools.partial(self.events.emit, task=ex.task_id))
            self.journal.done(key, "model", request, dict(reply.__dict__))
            self.record_model_call(ex.task_id, reply, purpose=purpose)
        if ex.meter is not None:
            ex.meter.charge(tokens=reply.prompt_tokens + reply.completion_tokens, usd=reply.cost_usd,
                            model_s=reply.latency_s if measured else 0.0)
        return reply
