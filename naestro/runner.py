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
from pydantic import JsonValue

from naestro.budget import RunBudget
from naestro.checkpoints.sqlite import open_sqlite_saver
from naestro.context import RunContext
from naestro.events import Event, EventLog
from naestro.graphs.compile import compile_plan
from naestro.graphs.state import RunState, TaskRecord
from naestro.llm import ModelProvider
from naestro.nodes.planner import make_plan
from naestro.nodes.reporter import run_passed
from naestro.nodes.roles import load_roles
from naestro.plan import Plan
from naestro.runs import RunRecord, RunStore
from naestro.settings import Settings
from naestro.toolbus import McpToolBus, builtin_servers
from naestro.validate import parse_plan_text

__all__ = ["RunResult", "Runner"]


@dataclass
class RunResult:
    record: RunRecord
    plan: Plan
    tasks: dict[str, TaskRecord]
    passed: bool
    report_path: Path


class Runner:
    def __init__(self, settings: Settings, provider: ModelProvider, *,
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.settings, self.provider, self.on_event = settings, provider, on_event
        self.store = RunStore(settings.runs_dir)
        self.roles = load_roles()

    def _events(self, record: RunRecord) -> EventLog:
        log = EventLog(self.store.dir(record.run_id) / "events.jsonl", run_id=record.run_id)
        if self.on_event:
            log.subscribe(self.on_event)
        return log

    def _write_plan(self, record: RunRecord, plan: Plan, name: str) -> None:
        (self.store.dir(record.run_id) / name).write_text(plan.model_dump_json(indent=2, by_alias=True,
                                                                                exclude_defaults=True))

    async def start(self, goal: str, *, plan: Plan | None = None, workspace: Path | None = None,
                    in_place: bool = False) -> RunResult:
        record = self.store.create(plan.goal if plan and not goal else goal, source_workspace=workspace,
                                   in_place=in_place)
        events = self._events(record)
        events.emit("run_started", goal=record.goal, workspace=record.workspace)
        rejected: list[JsonValue] = []
        tokens = 0
        if plan is None:
            events.emit("planning", endpoint=self.provider.registry.default)
            outcome = await make_plan(record.goal, self.provider, attempts=self.settings.planner_attempts)
            plan, record.plan_source, tokens = outcome.plan, outcome.source, outcome.tokens
            rejected = [[str(p) for p in a] for a in outcome.attempts]
        else:
            record.plan_source = "file"
        self._write_plan(record, plan, "plan.json")
        record.plans, record.threads, record.status = ["plan.json"], [record.run_id], "running"
        self.store.save(record)
        # Emitted only once plan.json and run.json are on disk: subscribers may read them.
        events.emit("planned", source=record.plan_source, tasks=[t.id for t in plan.tasks],
                    rejected_attempts=rejected, tokens=tokens)
        return await self._drive(record, events)

    async def resume(self, run_id: str) -> RunResult:
        record = self.store.load(run_id)
        if not record.threads:
            # Killed while planning: nothing ran yet, plan again.
            record.status = "planning"
            self.store.save(record)
            return await self.start(record.goal, workspace=Path(record.workspace), in_place=True)
        record.pid, record.status, record.error = os.getpid(), "running", ""
        self.store.save(record)
        events = self._events(record)
        events.emit("run_resumed", thread=record.threads[-1])
        return await self._drive(record, events)

    def plan_of(self, record: RunRecord, phase: int) -> Plan:
        path = self.store.dir(record.run_id) / record.plans[phase]
        return parse_plan_text(path.read_text(), source=str(path))

    async def _drive(self, record: RunRecord, events: EventLog) -> RunResult:
        run_dir = self.store.dir(record.run_id)
        try:
            async with open_sqlite_saver(self.settings.checkpoint_db) as saver, \
                    McpToolBus(builtin_servers(Path(record.workspace))) as bus:
                while True:
                    phase = len(record.threads) - 1
                    plan = self.plan_of(record, phase)
                    graph = compile_plan(plan, checkpointer=saver)
                    config: RunnableConfig = {
                        "configurable": {"thread_id": record.threads[-1]},
                        "max_concurrency": self.settings.max_concurrency,
                        "recursion_limit": 20 + 4 * sum(t.max_attempts for t in plan.tasks)}
                    snapshot = await graph.aget_state(config)
                    done_tokens = sum(r["tokens"] for r in snapshot.values.get("tasks", {}).values())
                    ctx = RunContext(run_id=record.run_id, plan=plan, run_dir=run_dir,
                                     workspace=Path(record.workspace), provider=self.provider, bus=bus,
                                     events=events, roles=self.roles,
                                     run_budget=RunBudget(ceiling=plan.budget, tokens=done_tokens))
                    if snapshot.created_at is None:
                        initial: RunState | None = {"goal": plan.goal, "tasks": {}}
                    else:
                        initial = None  # continue from the last checkpoint
                    if initial is not None or snapshot.next:
                        async for _ in graph.astream(initial, config, context=ctx, stream_mode="updates"):
                            pass
                    final = await graph.aget_state(config)
                    tasks: dict[str, TaskRecord] = final.values.get("tasks", {})
                    passed = run_passed(plan, tasks)
                    if passed or phase >= self.settings.max_replans:
                        break
                    await self._replan(record, plan, tasks, events)
        except BaseException as exc:
            record.status, record.error = "error", f"{exc.__class__.__name__}: {exc}"
            self.store.save(record)
            events.emit("run_error", error=record.error)
            raise
        record.status = "passed" if passed else "failed"
        self.store.save(record)
        events.emit("run_finished", status=record.status, phase=phase)
        return RunResult(record=record, plan=plan, tasks=tasks, passed=passed, report_path=run_dir / "report.md")

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
        outcome = await make_plan(plan.goal, self.provider, attempts=self.settings.planner_attempts, context=context)
        name = f"plan.replan{phase}.json"
        self._write_plan(record, outcome.plan, name)
        if (run_dir / "report.md").exists():
            (run_dir / "report.md").replace(run_dir / f"report.phase{phase - 1}.md")
        record.plans.append(name)
        record.threads.append(f"{record.run_id}.replan{phase}")
        self.store.save(record)
        events.emit("replanned", phase=phase, source=outcome.source, tasks=[t.id for t in outcome.plan.tasks])
