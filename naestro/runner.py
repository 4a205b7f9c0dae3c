"""Drives runs of the one graph (graphs/compile.py) on Naestro's checkpointer: start, resume, pending consents.

A run is one LangGraph thread (its run id) in the SQLite (or Postgres) checkpointer. Planning, the tasks, the
report, re-planning and the outcome are nodes of the graph, so everything here is what any LangGraph client
does: send an input, stream, read the state, resume interrupts with ``Command(resume=...)``. The LangGraph
server runs the same graph without this driver (``graphs/app.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StateSnapshot
from pydantic import JsonValue

from checkpoints import open_saver
from graphs.compile import RUN_RECURSION_LIMIT, RunGraph, compile_graph
from graphs.services import RunServices
from graphs.state import RunInput, TaskRecord
from naestro.errors import UsageError
from naestro.events import Event, EventLog
from naestro.llm import ModelProvider
from naestro.plan import Plan, text_problem
from naestro.redact import SecretVault, redact_plan
from naestro.router import Router
from naestro.runs import RunRecord
from naestro.runtime import Runtime, build_runtime
from naestro.settings import Settings
from naestro.telemetry import Telemetry, span
from naestro.toolbus import ToolBus
from policies.audit import AuditLog
from policies.decision import RunPolicy
from policies.gate import ConsentAnswer, Gate

__all__ = ["PendingConsent", "RunResult", "Runner"]


@dataclass(frozen=True)
class PendingConsent:
    """An ``interrupt()`` waiting for a human: its LangGraph id and the gate's consent request."""

    id: str
    request: dict[str, JsonValue]


@dataclass
class RunResult:
    record: RunRecord
    plan: Plan
    tasks: dict[str, TaskRecord]
    passed: bool
    report_path: Path
    pending: list[PendingConsent]


class Runner:
    """``Runner(settings, provider)`` builds its own runtime around the given provider (tests, benches);
    ``Runner.of(runtime)`` shares one (the CLI, the MCP front door)."""

    def __init__(self, settings: Settings, provider: ModelProvider | None = None, *,
                 on_event: Callable[[Event], None] | None = None, router: Router | None = None,
                 telemetry: Telemetry | None = None, runtime: Runtime | None = None) -> None:
        rt = runtime or build_runtime(settings, provider=provider, router=router, telemetry=telemetry)
        self.runtime, self.settings, self.provider = rt, rt.settings, rt.provider
        self.telemetry, self.router, self.store = rt.telemetry, rt.router, rt.store
        self.services = RunServices(rt, on_event=on_event)
        self.vaults: dict[str, SecretVault] = self.services.vaults  # per run: scoped secret handles (memory only)

    @classmethod
    def of(cls, runtime: Runtime, *, on_event: Callable[[Event], None] | None = None) -> Runner:
        return cls(runtime.settings, runtime=runtime, on_event=on_event)

    def audit_log(self, run_id: str) -> AuditLog:
        return self.services.audit_log(run_id)

    def make_gate(self, *, run_id: str, workspace: Path, policy: RunPolicy, bus: ToolBus, events: EventLog | None,
                  audit: AuditLog | None = None, record: RunRecord | None = None) -> Gate:
        """A gate with this runtime's engine, kill switches and signing key (benches, `policy check`).

        With ``record``, consents remembered for the run are loaded from and saved to its run.json."""
        rec = record or RunRecord(run_id=run_id, goal="", status="running", created="", updated="", pid=0,
                                  workspace=str(workspace), policy=policy)
        return self.services.gate(record=rec, bus=bus, events=events, audit=audit, remember=record is not None)

    def plan_of(self, record: RunRecord, phase: int) -> Plan:
        return self.services.plan_of(record, phase)

    def _config(self, record: RunRecord) -> RunnableConfig:
        configurable: dict[str, object] = {"thread_id": self._thread(record), "naestro_run": record.run_id}
        if record.head:  # a rolled-back or forked run continues from its own head, not the thread's latest
            configurable["checkpoint_id"] = record.head
        return {"configurable": configurable, "max_concurrency": self.settings.max_concurrency,
                "recursion_limit": RUN_RECURSION_LIMIT}

    async def start(self, goal: str, *, plan: Plan | None = None, workspace: Path | None = None,
                    in_place: bool = False, policy: RunPolicy | None = None) -> RunResult:
        if goal and (problem := text_problem(goal)) is not None:  # refused before any run directory exists
            raise UsageError(f"the goal has a {problem}")
        # Where the goal enters: secrets and PII become stable placeholders before anything stores, logs,
        # traces or sends it to a model.
        vault = SecretVault()  # the values stay in this process, as handles tools may use when policy allows
        goal = vault.redact(goal, depth="prose")
        plan = redact_plan(plan) if plan is not None else None
        record = self.store.create(plan.goal if plan and not goal else goal, source_workspace=workspace,
                                   in_place=in_place, policy=policy)
        self.vaults[record.run_id] = vault
        inp: RunInput = {"goal": record.goal, "run_id": record.run_id}
        if plan is not None:  # the input is checkpointed: secrets go in as this process's handles (plan_node)
            inp["plan"] = vault.redact_value(plan.model_dump(mode="json", by_alias=True))
        with self.telemetry.run(run_id=record.run_id, run_dir=self.store.dir(record.run_id)):
            return await self._drive(record, inp)

    async def begin(self, run_id: str, *, plan: dict[str, JsonValue] | None = None) -> RunResult:
        """Drive a run whose record exists already from its first step: a worker (naestro/distributed/) starts
        what ``naestro run --remote`` or the HTTP API submitted. ``plan`` is the given plan, secrets as handles."""
        record = self.store.load(run_id)
        record.claim()
        record.status = "planning"  # was "queued"
        self.store.save(record)
        inp: RunInput = {"goal": record.goal, "run_id": run_id}
        if plan is not None:
            inp["plan"] = plan
        with self.telemetry.run(run_id=run_id, run_dir=self.store.dir(run_id)):
            return await self._drive(record, inp)

    async def state(self, run_id: str) -> StateSnapshot:
        """The run's graph state at its head: ``created_at`` None before the first checkpoint, ``next`` the nodes
        still to run, ``interrupts`` the consents it waits for (a worker decides from this what a message does)."""
        record = self.store.load(run_id)
        async with open_saver(self.settings.checkpoint_url, self.settings.checkpoint_db) as saver:
            return await compile_graph(self.services, checkpointer=saver).aget_state(self._config(record))

    async def resume(self, run_id: str, answers: dict[str, ConsentAnswer] | None = None) -> RunResult:
        """Continue from the last checkpoint; ``answers`` (interrupt id → consent) resume waiting nodes."""
        record = self.store.load(run_id)
        if self.runtime.switches.lift("pause", run_id):
            self.audit_log(run_id).append("unpaused", by="resume")
        record.claim()
        record.status, record.error = "running", ""
        self.store.save(record)
        self.services.event_log(record).emit("run_resumed", thread=self._thread(record), answers=len(answers or {}))
        inp: RunInput | Command[None] | None = None  # None: continue from the checkpoint
        if answers:
            inp = Command(resume={i: a.model_dump(mode="json") for i, a in answers.items()})
        with self.telemetry.run(run_id=run_id, run_dir=self.store.dir(run_id), resumed=True):
            return await self._drive(record, inp)

    @staticmethod
    def _thread(record: RunRecord) -> str:
        return record.threads[-1] if record.threads else record.run_id

    async def pending(self, run_id: str) -> list[PendingConsent]:
        """Consent requests a waiting run is blocked on (read from its checkpoint)."""
        record = self.store.load(run_id)
        async with open_saver(self.settings.checkpoint_url, self.settings.checkpoint_db) as saver:
            snapshot = await compile_graph(self.services, checkpointer=saver).aget_state(self._config(record))
        return [PendingConsent(id=i.id, request=i.value) for i in snapshot.interrupts]

    async def _drive(self, record: RunRecord, inp: RunInput | Command[None] | None) -> RunResult:
        run_id = record.run_id
        config = self._config(record)
        try:
            async with open_saver(self.settings.checkpoint_url, self.settings.checkpoint_db) as saver:
                graph = compile_graph(self.services, checkpointer=saver)
                if inp is None and (await graph.aget_state(config)).created_at is None:
                    inp = {"goal": record.goal, "run_id": run_id}  # killed before the first checkpoint: start over
                head = await self._stream(graph, inp, config, pinned=record.head is not None)
                final = await graph.aget_state(config)
        finally:
            await self.services.close(run_id)
        record = self.store.load(run_id)  # the nodes wrote its status, plans and consents
        values = final.values if isinstance(final.values, dict) else {}
        ended = values.get("status") if not final.next and not final.interrupts else None
        if head is not None or (ended in ("passed", "failed") and record.status != ended):
            # resuming a run whose head is already its end runs nothing: the outcome is the state's
            record.head = head if head is not None else record.head
            record.status = ended if ended in ("passed", "failed") else record.status
            self.store.save(record)
        snapshots = self.services.snapshots(run_id)
        last = final.config["configurable"].get("checkpoint_id")
        if last and not snapshots.bound(str(last)):  # the workspace at the last checkpoint (a rollback target too)
            snapshots.bind(str(last), snapshots.take(Path(record.workspace)))
        tasks: dict[str, TaskRecord] = values.get("tasks", {})
        plan = self.plan_of(record, len(record.plans) - 1) if record.plans else Plan.model_validate(values["plan"])
        pending = [PendingConsent(id=i.id, request=i.value) for i in final.interrupts]
        return RunResult(record=record, plan=plan, tasks=tasks, passed=record.status == "passed",
                         report_path=self.store.dir(run_id) / "report.md", pending=pending)

    async def _stream(self, graph: RunGraph, inp: RunInput | Command[None] | None, config: RunnableConfig, *,
                      pinned: bool) -> str | None:
        """Run the graph to its end or an interrupt; the last checkpoint when the run's head is pinned."""
        head: str | None = None
        configurable = config["configurable"]
        with span("naestro.graph", attributes={"gen_ai.conversation.id": str(configurable["thread_id"])}):
            async for mode, chunk in graph.astream(inp, config, stream_mode=["updates", "checkpoints"]):
                if mode == "checkpoints" and pinned and isinstance(chunk, dict):
                    head = str(chunk["config"]["configurable"]["checkpoint_id"])
                    configurable["checkpoint_id"] = head
        return head
