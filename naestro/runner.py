"""Drives a run: plan → compile → execute with checkpoints → (re-plan the unfinished part) → report.

A run is one LangGraph thread per phase in the SQLite checkpointer (phase 0 = the plan; phase n = the
n-th re-plan of what was left unfinished). ``resume`` re-opens the last phase and continues from its last
checkpoint, so finished tasks are never redone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from pydantic import JsonValue

from naestro.budget import RunBudget
from naestro.carryover import carry_unfinished_checks
from naestro.checkpoints import open_saver
from naestro.checkpoints.snapshots import SnapshotStore
from naestro.context import RunContext
from naestro.errors import PlanProblem, PolicyDenied, RunPaused
from naestro.events import Event, EventLog
from naestro.graphs.compile import compile_plan
from naestro.graphs.state import RunState, TaskRecord
from naestro.journal import Journal
from naestro.llm import ModelProvider
from naestro.mcp_servers.sandbox import Completed, Limits, SandboxUnavailable, run_sandboxed
from naestro.nodes.planner import make_plan
from naestro.nodes.reference import reference_checks, with_reference_checks
from naestro.nodes.reporter import run_passed
from naestro.nodes.roles import load_roles
from naestro.nodes.vacuity import CommandRunner, Probe, vacuous_checks
from naestro.plan import Plan, Role
from naestro.policies.audit import AuditLog, anchors_dir, load_signing_key
from naestro.policies.decision import ApprovedScope, RunPolicy
from naestro.policies.engines import REGO_DIR, PolicyEngine, configured_engine, load_bundle
from naestro.policies.gate import ConsentAnswer, Gate
from naestro.policies.switches import KillSwitches
from naestro.redact import SecretVault, redact_plan
from naestro.router import Router
from naestro.runs import RunRecord, RunStore
from naestro.settings import Settings
from naestro.telemetry import Telemetry, TelemetrySettings, span
from naestro.toolbus import McpToolBus, ToolBus
from naestro.tools import load_tools_config, run_servers, with_external_roles
from naestro.validate import parse_plan_text

_PROBE_S = 20.0  # a check the probe cannot finish in this long is not vacuous as far as planning knows

__all__ = ["RunResult", "Runner"]


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
    def __init__(self, settings: Settings, provider: ModelProvider, *,
                 on_event: Callable[[Event], None] | None = None, router: Router | None = None,
                 telemetry: Telemetry | None = None) -> None:
        self.settings, self.provider, self.on_event = settings, provider, on_event
        # spans.jsonl per run; OTLP when OTEL_EXPORTER_OTLP_* is set or `naestro observe up` runs for this home
        self.telemetry = telemetry or Telemetry(TelemetrySettings(naestro_home=settings.home))
        self.vaults: dict[str, SecretVault] = {}  # per run: scoped secret handles (memory only)
        self.router = router  # shared by every run of this runner: endpoint health outlives a run
        self.store = RunStore(settings.runs_dir)
        # External MCP servers from NAESTRO_HOME/tools.yaml; roles it grants them to get `server.*` in their allowlist.
        self.tools_config = load_tools_config(settings.home / "tools.yaml")
        self.roles = with_external_roles(load_roles(), self.tools_config)
        # Loaded before any run starts: a broken policy file refuses the run with file:line (PolicyError).
        self.policy_bundle = load_bundle(settings.policy_dir or REGO_DIR,
                                         roles={r.value: list(spec.tools) for r, spec in self.roles.items()})
        self.engine: PolicyEngine = configured_engine(self.policy_bundle, settings.policy_url)
        self.switches = KillSwitches(settings.control_db)
        self._key = load_signing_key(settings.keys_dir)

    def audit_log(self, run_id: str) -> AuditLog:
        return AuditLog(self.store.dir(run_id) / "audit.jsonl", run_id=run_id, key=self._key,
                        anchors=anchors_dir(self.settings.home))

    def make_gate(self, *, run_id: str, workspace: Path, policy: RunPolicy, bus: ToolBus, events: EventLog | None,
                  audit: AuditLog | None = None, record: RunRecord | None = None) -> Gate:
        """The gate a run's nodes use: this runner's engine, kill switches and signing key.

        With ``record``, consents remembered for the run are loaded from and saved to its run.json.
        """
        def remember(scopes: list[ApprovedScope]) -> None:
            if record is not None:
                record.remembered = scopes
                self.store.save(record)

        return Gate(self.engine, run_id=run_id, workspace=workspace, policy=policy,
                    audit=audit or self.audit_log(run_id), switches=self.switches, events=events,
                    registered=lambda: {s.name for s in bus.specs()},
                    rate_limits=self.policy_bundle.data.get("naestro", {}).get("rate_limits", {}),
                    remembered=record.remembered if record is not None else None, on_remember=remember,
                    vault=self._vault(run_id))

    def _vault(self, run_id: str) -> SecretVault:
        """The run's secret handles (empty in a process that did not start the run: a resume)."""
        return self.vaults.setdefault(run_id, SecretVault())

    def _events(self, record: RunRecord) -> EventLog:
        log = EventLog(self.store.dir(record.run_id) / "events.jsonl", run_id=record.run_id)
        if self.on_event:
            log.subscribe(self.on_event)
        return log

    def _write_plan(self, record: RunRecord, plan: Plan, name: str) -> None:
        (self.store.dir(record.run_id) / name).write_text(plan.model_dump_json(indent=2, by_alias=True,
                                                                                exclude_defaults=True))

    def _planning_gate(self, record: RunRecord, events: EventLog) -> Gate:
        """The gate while planning: no task yet, the run's budget only; the one tool is the check probe's."""
        return Gate(self.engine, run_id=record.run_id, workspace=Path(record.workspace), policy=record.policy,
                    audit=self.audit_log(record.run_id), switches=self.switches, events=events,
                    registered=lambda: {"exec.run"},
                    rate_limits=self.policy_bundle.data.get("naestro", {}).get("rate_limits", {}),
                    vault=self._vault(record.run_id))

    def _planning_guard(self, gate: Gate) -> Callable[[str, str], None]:
        """The gate for the planner's model calls (role ``planner``)."""
        def guard(endpoint: str, prompt: str) -> None:
            ep = self.provider.registry.get(endpoint)
            tokens = len(prompt) // 4
            gate.authorize_model(task="plan", role="planner", endpoint=ep.name, locality=ep.locality,
                                 estimate={"tokens": float(tokens), "usd": ep.cost_usd(tokens, 0)}, text=prompt,
                                 can_ask=False)
        return guard

    @staticmethod
    def _planning_sandbox(gate: Gate) -> CommandRunner:
        """Commands run while planning (check probes, reference programs): through the gate as the Evaluator's
        would, then in the sandbox; None when the gate does not allow one (planning cannot wait for a human).
        Like a tool call: the run's handles become real values for the command, and its output comes back with
        secrets and PII as handles (a reference program's output becomes a check, and evidence, in a prompt)."""
        async def run(command: str, where: Path) -> Completed | None:
            real = gate.vault.reveal(command)
            try:
                gate.authorize_tool(task="plan", role=Role.evaluator.value, tool="exec.run",
                                    arguments={"command": real, "timeout_s": _PROBE_S}, can_ask=False)
                done = await run_sandboxed(where, real, Limits(wall_s=_PROBE_S, cpu_s=int(_PROBE_S)))
            except (PolicyDenied, SandboxUnavailable):
                return None  # not probed: the check stays, the run's own gate decides about it later
            return gate.vault.redact_fields(done, "stdout", "stderr")
        return run

    def _check_probe(self, gate: Gate, workspace: Path) -> Probe:
        """Finds a candidate plan's vacuous checks (``naestro.nodes.vacuity``)."""
        run = self._planning_sandbox(gate)

        async def probe(plan: Plan) -> list[PlanProblem]:
            return await vacuous_checks(plan, workspace, run)
        return probe

    async def start(self, goal: str, *, plan: Plan | None = None, workspace: Path | None = None,
                    in_place: bool = False, policy: RunPolicy | None = None) -> RunResult:
        # Where the goal enters: secrets and PII become stable placeholders before anything stores, logs,
        # traces or sends it to a model.
        vault = SecretVault()  # the values stay in this process, as handles tools may use when policy allows
        goal = vault.redact(goal, depth="prose")
        plan = redact_plan(plan) if plan is not None else None
        record = self.store.create(plan.goal if plan and not goal else goal, source_workspace=workspace,
                                   in_place=in_place, policy=policy)
        self.vaults[record.run_id] = vault
        with self.telemetry.run(run_id=record.run_id, run_dir=self.store.dir(record.run_id)):
            return await self._start(record, plan)

    async def _start(self, record: RunRecord, plan: Plan | None) -> RunResult:
        self.audit_log(record.run_id).append("run_started", goal=record.goal, policy=record.policy.model_dump())
        events = self._events(record)
        events.emit("run_started", goal=record.goal, workspace=record.workspace)
        rejected: list[JsonValue] = []
        repaired: list[JsonValue] = []
        references: dict[str, JsonValue] = {}
        dropped: list[JsonValue] = []
        tokens = 0
        if plan is None:
            events.emit("planning", endpoint=self.provider.registry.default)
            with span("naestro.plan", attributes={"naestro.planner.attempts": self.settings.planner_attempts}) as sp:
                gate = self._planning_gate(record, events)
                outcome = await make_plan(record.goal, self.provider, attempts=self.settings.planner_attempts,
                                          guard=self._planning_guard(gate),
                                          probe=self._check_probe(gate, Path(record.workspace)))
                sp.set_attributes({"naestro.plan.source": outcome.source, "naestro.plan.tasks": len(outcome.plan.tasks),
                                   "naestro.tokens": outcome.tokens})
            plan, record.plan_source, tokens = outcome.plan, outcome.source, outcome.tokens
            rejected = [[str(p) for p in a] for a in outcome.attempts]
            repaired = [*outcome.repairs]
            dropped = [*outcome.dropped]
            if self.settings.reference_checks:
                with span("naestro.plan.reference"):
                    ref = await reference_checks(record.goal, self.provider, Path(record.workspace),
                                                 self._planning_sandbox(gate), guard=self._planning_guard(gate),
                                                 redact=gate.vault.redact)
                plan, tokens = with_reference_checks(plan, ref.checks), tokens + ref.tokens
                references = {**{f: "checked" for f in ref.checks}, **ref.notes}
        else:
            record.plan_source = "file"
        self._write_plan(record, plan, "plan.json")
        record.plans, record.threads, record.status = ["plan.json"], [record.run_id], "running"
        self.store.save(record)
        # Emitted only once plan.json and run.json are on disk: subscribers may read them.
        events.emit("planned", source=record.plan_source, tasks=[t.id for t in plan.tasks],
                    rejected_attempts=rejected, repaired_checks=repaired, dropped_test_tasks=dropped,
                    references=references, tokens=tokens)
        return await self._drive(record, events)

    async def resume(self, run_id: str, answers: dict[str, ConsentAnswer] | None = None) -> RunResult:
        """Continue from the last checkpoint; ``answers`` (interrupt id → consent) resume waiting gates."""
        record = self.store.load(run_id)
        if not record.threads:
            # Killed while planning: nothing ran yet, plan again.
            record.status = "planning"
            self.store.save(record)
            return await self.start(record.goal, workspace=Path(record.workspace), in_place=True,
                                    policy=record.policy)
        if self.switches.lift("pause", run_id):
            self.audit_log(run_id).append("unpaused", by="resume")
        record.pid, record.status, record.error = os.getpid(), "running", ""
        self.store.save(record)
        events = self._events(record)
        events.emit("run_resumed", thread=record.threads[-1], answers=len(answers or {}))
        with self.telemetry.run(run_id=run_id, run_dir=self.store.dir(run_id), resumed=True):
            return await self._drive(record, events, answers=answers)

    async def pending(self, run_id: str) -> list[PendingConsent]:
        """Consent requests a waiting run is blocked on (read from its checkpoint)."""
        record = self.store.load(run_id)
        if not record.threads:
            return []
        async with open_saver(self.settings.checkpoint_url, self.settings.checkpoint_db) as saver:
            graph = compile_plan(self.plan_of(record, len(record.threads) - 1), checkpointer=saver)
            snapshot = await graph.aget_state({"configurable": {"thread_id": record.threads[-1]}})
        return [PendingConsent(id=i.id, request=i.value) for i in snapshot.interrupts]

    def plan_of(self, record: RunRecord, phase: int) -> Plan:
        path = self.store.dir(record.run_id) / record.plans[phase]
        return parse_plan_text(path.read_text(), source=str(path))

    async def _drive(self, record: RunRecord, events: EventLog,
                     answers: dict[str, ConsentAnswer] | None = None) -> RunResult:
        run_dir = self.store.dir(record.run_id)
        audit = self.audit_log(record.run_id)
        journal = Journal(run_dir / "journal.jsonl")
        snapshots = SnapshotStore(run_dir / "snapshots")
        pending: list[PendingConsent] = []
        servers, untrusted = run_servers(Path(record.workspace), self.tools_config,
                                         allow_domains=record.policy.allow_domains, roots=record.policy.roots)
        try:
            async with open_saver(self.settings.checkpoint_url, self.settings.checkpoint_db) as saver, \
                    McpToolBus(servers, untrusted=untrusted) as bus:
                while True:
                    phase = len(record.threads) - 1
                    plan = self.plan_of(record, phase)
                    graph = compile_plan(plan, checkpointer=saver)
                    # A rolled-back or forked run continues from its own head checkpoint, not the thread's latest.
                    configurable: dict[str, object] = {"thread_id": record.threads[-1]}
                    if record.head:
                        configurable["checkpoint_id"] = record.head
                    config: RunnableConfig = {
                        "configurable": configurable,
                        "max_concurrency": self.settings.max_concurrency,
                        "recursion_limit": 20 + 4 * sum(t.max_attempts for t in plan.tasks)}
                    snapshot = await graph.aget_state(config)
                    done_tokens = sum(r["tokens"] for r in snapshot.values.get("tasks", {}).values())
                    gate = self.make_gate(run_id=record.run_id, workspace=Path(record.workspace), policy=record.policy,
                                          bus=bus, events=events, audit=audit, record=record)
                    ctx = RunContext(run_id=record.run_id, plan=plan, run_dir=run_dir,
                                     workspace=Path(record.workspace), provider=self.provider, bus=bus,
                                     events=events, roles=self.roles, gate=gate, journal=journal,
                                     thread=record.threads[-1] + (f"@{record.epoch}" if record.epoch else ""),
                                     snapshots=snapshots,
                                     replay_thread=None if record.replay_epoch is None else record.threads[-1]
                                     + (f"@{record.replay_epoch}" if record.replay_epoch else ""),
                                     run_budget=RunBudget(ceiling=plan.budget, tokens=done_tokens),
                                     router=self.router, vault=self._vault(record.run_id),
                                     review=self.settings.review)
                    stream_input: RunState | Command[None] | None = None  # None: continue from the checkpoint
                    if snapshot.created_at is None:
                        stream_input = {"goal": plan.goal, "tasks": {}}
                    elif snapshot.interrupts and answers:
                        stream_input = Command(resume={i: a.model_dump(mode="json") for i, a in answers.items()})
                        answers = None
                    if snapshot.created_at is None or snapshot.next:
                        with span(f"naestro.phase {phase}", attributes={
                                "naestro.phase": phase, "gen_ai.conversation.id": record.threads[-1],
                                "naestro.plan.tasks": len(plan.tasks)}):
                            async for mode, chunk in graph.astream(stream_input, config, context=ctx,
                                                                   stream_mode=["updates", "checkpoints"]):
                                if mode == "checkpoints" and record.head is not None and isinstance(chunk, dict):
                                    record.head = str(chunk["config"]["configurable"]["checkpoint_id"])
                                    configurable["checkpoint_id"] = record.head
                    final = await graph.aget_state(config)
                    # The workspace as it is at the last checkpoint of this phase (a rollback target too).
                    last = final.config["configurable"].get("checkpoint_id")
                    if last and not snapshots.bound(str(last)):
                        snapshots.bind(str(last), snapshots.take(Path(record.workspace)))
                    self.store.save(record)
                    tasks: dict[str, TaskRecord] = final.values.get("tasks", {})
                    pending = [PendingConsent(id=i.id, request=i.value) for i in final.interrupts]
                    if pending:
                        break
                    passed = run_passed(plan, tasks)
                    if passed or phase >= self.settings.max_replans:
                        break
                    await self._replan(record, plan, tasks, events)
        except RunPaused as exc:
            record.status, record.error = "paused", str(exc)
            self.store.save(record)
            events.emit("run_paused", reason=exc.reason)
            raise
        except BaseException as exc:
            record.status, record.error = "error", f"{exc.__class__.__name__}: {exc}"
            self.store.save(record)
            events.emit("run_error", error=record.error)
            raise
        if pending:
            record.status = "waiting"
            self.store.save(record)
            events.emit("waiting_for_consent", pending=[p.id for p in pending])
            return RunResult(record=record, plan=plan, tasks=tasks, passed=False, report_path=run_dir / "report.md",
                             pending=pending)
        record.status = "passed" if passed else "failed"
        self.store.save(record)
        audit.append("run_finished", status=record.status)
        events.emit("run_finished", status=record.status, phase=phase)
        return RunResult(record=record, plan=plan, tasks=tasks, passed=passed, report_path=run_dir / "report.md",
                         pending=[])

    async def _replan(self, record: RunRecord, plan: Plan, tasks: dict[str, TaskRecord], events: EventLog) -> None:
        """Plan only what is unfinished, telling the planner what is already done and why the rest failed."""
        run_dir = self.store.dir(record.run_id)
        phase = len(record.threads)
        done = {t: r["summary"][:200] for t, r in tasks.items() if r["status"] == "passed"}
        failed: dict[str, str] = {}
        for t in plan.tasks:
            rec = tasks.get(t.id)
            if rec is None:
                failed[t.id] = "not run"
            elif rec["status"] != "passed":
                failed[t.id] = rec["feedback"] or rec.get("error", "")
        files = sorted(str(p.relative_to(record.workspace)) for p in Path(record.workspace).rglob("*") if p.is_file())
        context = (f"Already done (do NOT plan again): {json.dumps(done)}\nFiles in the workspace: {files[:50]}\n"
                   f"Unfinished, with the reason it failed: {json.dumps(failed)[:2000]}\n"
                   "Plan only the remaining work, with a different approach where it failed.")
        events.emit("replanning", phase=phase, unfinished=list(failed))
        gate = self._planning_gate(record, events)
        with span("naestro.replan", attributes={"naestro.phase": phase}):
            outcome = await make_plan(plan.goal, self.provider, attempts=self.settings.planner_attempts,
                                      guard=self._planning_guard(gate),
                                      probe=self._check_probe(gate, Path(record.workspace)), context=context)
        carry = carry_unfinished_checks(plan, failed, outcome.plan)
        if carry.carried or carry.dropped:
            events.emit("checks_carried", phase=phase, carried=list(carry.carried), dropped=list(carry.dropped))
        name = f"plan.replan{phase}.json"
        self._write_plan(record, carry.plan, name)
        if (run_dir / "report.md").exists():
            (run_dir / "report.md").replace(run_dir / f"report.phase{phase - 1}.md")
        record.plans.append(name)
        record.threads.append(f"{record.run_id}.replan{phase}")
        self.store.save(record)
        events.emit("replanned", phase=phase, source=outcome.source, tasks=[t.id for t in carry.plan.tasks],
                    tokens=outcome.tokens)
