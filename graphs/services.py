"""What the graph's nodes need of a live run: its tool bus, gate, journal, event log, snapshots and plan.

One ``RunServices`` per process wraps the ``Runtime`` (naestro/runtime.py) and opens a run's parts the
first time a node of that run executes, whoever started it: the CLI (``naestro run``), the LangGraph server
(``langgraph dev`` / ``langgraph up``), or a resume in a new process after a crash. Nodes get a
``RunContext`` from here, never from the caller, so the served graph and the CLI run the same nodes with
the same parts. The blocking parts of opening a run (files, SQLite) run in a worker thread: the LangGraph
server's event loop must never block.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from langgraph.config import get_config
from pydantic import JsonValue

from checkpoints.snapshots import SnapshotStore
from naestro.budget import RunBudget
from naestro.context import RunContext
from naestro.events import Event, EventLog
from naestro.homes import left_out
from naestro.journal import Journal
from naestro.plan import Plan
from naestro.redact import SecretVault
from naestro.router import OutcomeFeed
from naestro.runs import RunRecord, RunStatus
from naestro.runtime import Runtime
from naestro.toolbus import McpToolBus, ToolBus
from naestro.tools import pooled_run_servers
from naestro.validate import parse_plan_text
from nodes.goal_requirements import kept_unchanged
from policies.audit import AuditLog, anchors_dir
from policies.decision import ApprovedScope
from policies.gate import Gate

__all__ = ["OPENING_BUSES", "LiveRun", "RunServices"]

OPENING_BUSES = 8
"""Runs opening their MCP sessions at the same time, per event loop (see ``RunServices._bus_opening``)."""


@dataclass
class LiveRun:
    """One run's open parts in this process (the tool bus holds MCP sessions until ``close``)."""

    record: RunRecord
    events: EventLog
    audit: AuditLog
    journal: Journal
    snapshots: SnapshotStore
    vault: SecretVault
    bus: ToolBus | None = None
    gate: Gate | None = None
    plans: dict[int, Plan] = field(default_factory=dict)
    budgets: dict[int, RunBudget] = field(default_factory=dict)
    snapshotting: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @property
    def dir(self) -> Path:
        return self.events.path.parent


class RunServices:
    def __init__(self, runtime: Runtime, *, on_event: Callable[[Event], None] | None = None,
                 on_created: Callable[[RunRecord, Plan | None], Awaitable[None]] | None = None) -> None:
        """``on_created``: called when the graph itself creates a run (LangGraph server, SDK) before it plans:
        the server's live canary (``naestro.improve.live_canary.shadow_served_runs``)."""
        self.runtime = runtime
        self.on_event = on_event
        self.on_created = on_created
        self.store = runtime.store
        self.vaults: dict[str, SecretVault] = {}  # per run: scoped secret handles (memory only)
        self._live: dict[str, LiveRun] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._bus_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())

    # --- the parts of a run ---------------------------------------------------------------------------

    def vault(self, run_id: str) -> SecretVault:
        """The run's secret handles (empty in a process that did not start the run: a resume)."""
        return self.vaults.setdefault(run_id, SecretVault())

    def audit_log(self, run_id: str) -> AuditLog:
        return AuditLog(self.store.dir(run_id) / "audit.jsonl", run_id=run_id, key=self.runtime.signing_key,
                        anchors=anchors_dir(self.runtime.settings.home))

    def event_log(self, record: RunRecord) -> EventLog:
        log = EventLog(self.store.dir(record.run_id) / "events.jsonl", run_id=record.run_id,
                       origin=record.created_at)
        if self.on_event:
            log.subscribe(self.on_event)
        return log

    def events(self, record: RunRecord) -> EventLog:
        """The run's event log: the open one while the run is live here (its subscribers, its clock)."""
        live = self._live.get(record.run_id)
        return live.events if live is not None else self.event_log(record)

    def gate(self, *, record: RunRecord, bus: ToolBus | None, events: EventLog | None,
             audit: AuditLog | None = None, registered: set[str] | None = None,
             remember: bool = True) -> Gate:
        """The gate a run uses: this runtime's engine, kill switches and signing key.

        With ``remember``, consents a human remembered for the run are loaded from and saved to run.json.
        ``registered`` fixes the tools that exist (planning knows only the check probe's ``exec.run``).
        """
        rt = self.runtime

        def save(scopes: list[ApprovedScope]) -> None:
            record.remembered = scopes
            self.store.save(record)

        def tools() -> set[str]:
            if registered is not None:
                return registered
            return {s.name for s in bus.specs()} if bus is not None else set()

        return Gate(rt.engine, run_id=record.run_id, workspace=Path(record.workspace), policy=record.policy,
                    audit=audit or self.audit_log(record.run_id), switches=rt.switches, events=events,
                    registered=tools, rate_limits=rt.policy_bundle.data.get("naestro", {}).get("rate_limits", {}),
                    remembered=record.remembered if remember else None, on_remember=save if remember else None,
                    vault=self.vault(record.run_id), protected=kept_unchanged(record.goal))

    def snapshots(self, run_id: str) -> SnapshotStore:
        live = self._live.get(run_id)
        return live.snapshots if live is not None else SnapshotStore(self.store.dir(run_id) / "snapshots")

    def plan_of(self, record: RunRecord, phase: int) -> Plan:
        """The plan a phase runs, as written when it was planned (``RUN/plan*.json``: secrets and PII as handles)."""
        path = self.store.dir(record.run_id) / record.plans[phase]
        return parse_plan_text(path.read_text(), source=str(path))

    def given_plan_path(self, run_id: str, name: str) -> Path:
        """Where ``write_plan`` keeps a plan as given when its copy in the run directory had to be redacted."""
        return self.runtime.settings.home / "plans" / run_id / name

    def plan_to_run(self, record: RunRecord, phase: int) -> Plan:
        """The plan a phase executes when the state's is not at hand: as given, not as shown in the run directory."""
        given = self.given_plan_path(record.run_id, record.plans[phase])
        if not given.exists():
            return self.plan_of(record, phase)
        return parse_plan_text(given.read_text(encoding="utf-8"), source=str(given))

    def _phase_plan(self, record: RunRecord, phase: int, raw_plan: dict[str, JsonValue] | None) -> Plan:
        """The state holds the plan as shown (secrets as the run's handles, like plan.json and the checkpoints
        should); the values are executed from the owner-only copy when there is one, else the state's plan."""
        if raw_plan is None or (record.plans and self.given_plan_path(record.run_id, record.plans[phase]).exists()):
            return self.plan_to_run(record, phase)
        return Plan.model_validate(raw_plan)

    async def live(self, run_id: str) -> LiveRun:
        """The run's open parts, opened on first use in this process (MCP servers start here)."""
        if (live := self._live.get(run_id)) is not None and live.bus is not None:
            return live
        async with self._opening.setdefault(run_id, asyncio.Lock()):
            if (live := self._live.get(run_id)) is not None and live.bus is not None:
                return live
            live = await asyncio.to_thread(self._open_files, run_id)
            record = live.record
            servers, untrusted = await pooled_run_servers(  # the runtime's shared servers, this run's sessions
                self.runtime.mcp_pool, Path(record.workspace), self.runtime.tools_config,
                allow_domains=record.policy.allow_domains, roots=record.policy.roots,
                # the home, when it lies inside the workspace (an --in-place run; otherwise the workspace is in it)
                hidden=tuple(left_out(Path(record.workspace), (self.store.runs_dir.parent,))))
            async with self._bus_opening():
                live.bus = await live.stack.enter_async_context(
                    McpToolBus(servers, untrusted=untrusted, catalog=self.runtime.mcp_pool.catalog))
            live.gate = self.gate(record=record, bus=live.bus, events=live.events, audit=live.audit)
            self._live[run_id] = live
            return live

    def _bus_opening(self) -> asyncio.Semaphore:
        """At most ``OPENING_BUSES`` runs of this event loop open their MCP sessions at once.

        200 runs started together opened 1,200 sessions at once on the six pooled servers; the ``fs`` server's
        queue of session set-ups then held other runs' tool calls past the policy's 30 s timeout (bench
        concurrency, Postgres round: 23 of 200 runs failed). Queued runs wait here instead, before any tool call.
        One semaphore per loop: the CLI runs a loop per command, tests one per test.
        """
        loop = asyncio.get_running_loop()
        gate = self._bus_gates.get(loop)
        if gate is None:
            gate = self._bus_gates[loop] = asyncio.Semaphore(OPENING_BUSES)
        return gate

    def _open_files(self, run_id: str) -> LiveRun:
        record = self.store.load(run_id)
        run_dir = self.store.dir(run_id)
        events = self.event_log(record)
        if self.runtime.router is not None:  # acceptance verdicts teach the router's bandit (router/feedback.py)
            events.subscribe(OutcomeFeed(self.runtime.router))
        return LiveRun(record=record, events=events, audit=self.audit_log(run_id),
                       journal=Journal(run_dir / "journal.jsonl"), snapshots=SnapshotStore(run_dir / "snapshots"),
                       vault=self.vault(run_id))

    async def context(self, run_id: str, phase: int, *, raw_plan: dict[str, JsonValue] | None = None,
                      run_tokens: int = 0) -> RunContext:
        """A ``RunContext`` for a node of ``run_id`` in ``phase``: the plan from the state (parsed once per
        phase), or, for a task node resumed in a new process (a ``Send`` carries no plan), its plan file."""
        live = await self.live(run_id)
        record = live.record
        if phase not in live.plans:
            live.plans[phase] = await asyncio.to_thread(self._phase_plan, record, phase, raw_plan)
        phase_plan = live.plans[phase]
        budget = live.budgets.setdefault(phase, RunBudget(ceiling=phase_plan.budget, tokens=run_tokens))
        assert live.bus is not None and live.gate is not None
        # The effect journal's keys start with the LangGraph thread (the run id under the CLI): a run record
        # driven on several threads (a bench's rounds) never replays one thread's effects into another.
        thread_id = str(get_config().get("configurable", {}).get("thread_id") or record.run_id)
        base = thread_id + (f".replan{phase}" if phase else "")
        thread = base + (f"@{record.epoch}" if record.epoch else "")
        return RunContext(run_id=record.run_id, plan=phase_plan, run_dir=live.dir, workspace=Path(record.workspace),
                          provider=self.runtime.provider, bus=live.bus, events=live.events, roles=self.runtime.roles,
                          gate=live.gate, journal=live.journal, thread=thread,
                          snapshots=live.snapshots,
                          replay_thread=None if record.replay_epoch is None else base
                          + (f"@{record.replay_epoch}" if record.replay_epoch else ""),
                          run_budget=budget, router=self.runtime.router, vault=live.vault,
                          review=self.runtime.settings.review, set_status=self._saver(live),
                          snapshotting=live.snapshotting, memory=self.runtime.memory,
                          tool_adapters=self.runtime.tool_adapters)

    def _saver(self, live: LiveRun) -> Callable[[RunStatus], None]:
        def set_status(status: RunStatus) -> None:
            if live.record.status != status:
                live.record.status = status
                self.store.save(live.record)
        return set_status

    def record(self, run_id: str) -> RunRecord | None:
        """The record of a run open in this process: nodes update it, so a driver reads it from here."""
        live = self._live.get(run_id)
        return live.record if live is not None else None

    def current(self, run_id: str) -> RunRecord:
        """The record to update: the open run's (nodes share it), else run.json. Blocking: call off the loop."""
        return self.record(run_id) or self.store.load(run_id)

    async def close(self, run_id: str) -> None:
        """End the run's MCP sessions (a finished run; a waiting one is reopened on resume); the pooled servers
        and other runs' sessions stay up."""
        live = self._live.pop(run_id, None)
        if live is not None:
            await live.stack.aclose()

    async def aclose(self) -> None:
        """Close every open run, then the runtime's MCP server pool (shared with any other holder of the runtime)."""
        for run_id in list(self._live):
            await self.close(run_id)
        await self.runtime.aclose()

