"""The one static run graph: a plan is data in state, not a new graph per plan.

```
START → plan → schedule ─Send→ task ─→ schedule … → report ─→ finish → END
                   ▲              └─Send→ task (ran alone) │
                   └──────────── replan ◄──────────────────┘  (checks failed, re-plans left)
```

``plan`` puts the phase's plan in state (planned from the goal, or the given one validated). ``schedule``
sends every task whose dependencies are final, and every task whose last attempt asked for a retry or a
Reviewer pass, to ``task`` (one attempt: execute, then the acceptance checks) in one superstep, so independent
tasks run in parallel; a task waits for all its dependencies because it is only sent then. A task that ran alone
in its superstep (a chain) dispatches the next ready tasks from its own outgoing edge, which sees the whole
state with its record in it: one superstep and one checkpoint per task instead of two (issue 16). ``report`` checks
the goal's own requirements (``nodes.goal_checks``: a run passes only when they and the plan's checks pass) and
writes report.md; ``replan`` plans what is unfinished as the next phase; ``finish`` records the outcome.

The same compiled graph runs under ``naestro run`` (with Naestro's checkpointer) and under the LangGraph
server (``graphs/app.py``, with the server's), so the SDK, Studio and the CLI see the same nodes, state and
interrupts. Nodes get the run's parts from ``RunServices``, never from the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Send

from graphs.services import RunServices
from graphs.state import FINAL, RunInput, RunOutput, RunState, TaskInput, status_of
from naestro.context import RunContext
from naestro.errors import RunPaused
from naestro.memory.hooks import remember_run
from naestro.plan import Plan, Task
from nodes.goal_checks import goal_passed
from nodes.planning import plan_node, replan_node
from nodes.proposal import replan_forbidden
from nodes.reporter import report_node, run_passed
from nodes.task import task_node

__all__ = ["RUN_RECURSION_LIMIT", "RunGraph", "build_graph", "compile_graph", "ready_tasks"]

RunGraph = CompiledStateGraph[RunState, None, RunInput, RunOutput]
_T = TypeVar("_T")


def ready_tasks(plan: Plan, state: RunState) -> list[TaskInput]:
    """What to dispatch next: unstarted tasks whose dependencies are final, and tasks asking for another attempt.

    A task whose dependency did not pass is still dispatched: its node records it as ``skipped`` (with the
    blocking dependencies), so every task ends with a record and the report can say why.
    """
    tasks = state.get("tasks", {})
    run_id, phase = state.get("run_id", ""), state.get("phase", 0)
    spent = sum(r["tokens"] for r in tasks.values())
    ready: list[TaskInput] = []
    for task in plan.tasks:
        rec = tasks.get(task.id)
        if rec is not None and rec["status"] not in ("retry", "review"):
            continue
        if rec is None and any(status_of(tasks, d) not in FINAL for d in task.deps):
            continue
        inputs = {name: (tasks[spec.task]["outputs"].get(spec.output) if spec.task in tasks else None)
                  for name, spec in task.inputs.items()}
        ready.append({"run_id": run_id, "phase": phase, "task": task.id, "prev": rec, "inputs": inputs,
                      "blocked": [d for d in task.deps if status_of(tasks, d) != "passed"],
                      "run_tokens": spent})
    for payload in ready:
        payload["batch"] = len(ready)
    return ready


RUN_RECURSION_LIMIT = 10_000
"""Supersteps are bounded by the plan (one or two per attempt: task, and schedule after parallel tasks; attempts
are capped) and re-plans are capped, so the limit only stops a runaway; LangGraph's default (25) would stop a
12-task chain."""


def build_graph(services: RunServices) -> StateGraph[RunState, None, RunInput, RunOutput]:
    """The graph with its nodes bound to ``services`` (the process's runtime and live runs)."""

    async def guarded(run_id: str | None, work: Awaitable[_T]) -> _T:
        """A node's failure is the run's: run.json and the events say so, whoever drives the graph."""
        try:
            return await work
        except GraphBubbleUp:  # an interrupt (consent) or a parent command: not a failure
            raise
        except RunPaused as exc:
            await asyncio.to_thread(_mark, services, run_id, "paused", str(exc), "run_paused", reason=exc.reason)
            raise
        except BaseException as exc:
            error = f"{exc.__class__.__name__}: {exc}"
            await asyncio.to_thread(_mark, services, run_id, "error", error, "run_error", error=error)
            raise

    async def context(state: RunState) -> RunContext:
        phase = state.get("phase", 0)
        tokens = sum(r["tokens"] for r in state.get("tasks", {}).values())
        return await services.context(run_of(state["run_id"]), phase, raw_plan=state.get("plan"), run_tokens=tokens)

    async def plan(state: RunState) -> dict[str, Any]:
        configurable = get_config().get("configurable", {})
        thread, served = str(configurable.get("thread_id", "")), "naestro_run" not in configurable
        return await guarded(state.get("run_id"), plan_node(state, services, thread=thread, served=served))

    async def dispatch(state: RunState) -> list[Send] | Literal["report"]:
        ctx = await context(state)
        ready = ready_tasks(ctx.plan, state)
        return [Send("task", payload) for payload in ready] if ready else "report"

    async def schedule(state: RunState) -> Command[Literal["task", "report"]]:
        return Command(goto=await guarded(run_of(state["run_id"]), dispatch(state)))

    async def after_task(state: RunState) -> list[Send] | Literal["report", "schedule"]:
        """A task that ran alone dispatches what is ready next from its own edge: the state it sees is complete.
        With siblings in the same superstep it sees only its own record, so the ``schedule`` barrier decides."""
        if state.get("batch") != 1:
            return "schedule"
        return await guarded(run_of(state["run_id"]), dispatch(state))

    async def task(inp: TaskInput) -> dict[str, Any]:
        async def attempt() -> dict[str, Any]:
            ctx = await services.context(run_of(inp["run_id"]), inp["phase"], run_tokens=inp["run_tokens"])
            try:
                return {**await task_node(inp, ctx), "batch": inp.get("batch", 0)}
            finally:
                if not _reports_its_writes(ctx.plan.task(inp["task"])):
                    _unknown_changes(ctx)
        return await guarded(run_of(inp["run_id"]), attempt())

    async def report(state: RunState) -> dict[str, Any]:
        async def write() -> dict[str, Any]:
            ctx = await context(state)
            try:
                return await report_node(state, ctx)  # the status too: the plan's tasks and the goal's own checks
            finally:
                _unknown_changes(ctx)
        return await guarded(run_of(state["run_id"]), write())

    def after_report(state: RunState) -> Literal["replan", "finish"]:
        settings = services.runtime.settings
        if state.get("status") == "passed" or state.get("phase", 0) >= settings.max_replans:
            return "finish"
        record = services.current(run_of(state["run_id"]))
        if (why := replan_forbidden(record.policy.mode, state["tasks"])) is not None:  # issue 18
            services.events(record).emit("replan_skipped", reason=why)
            return "finish"
        return "replan"

    async def replan(state: RunState) -> dict[str, Any]:
        async def again() -> dict[str, Any]:
            ctx = await context(state)
            try:
                return await replan_node(state, services, run_id=ctx.run_id, plan=ctx.plan, events=ctx.events)
            finally:
                _unknown_changes(ctx)  # planning probes run commands outside the tool layer
        return await guarded(run_of(state["run_id"]), again())

    async def finish(state: RunState) -> dict[str, Any]:
        async def end() -> dict[str, Any]:
            ctx = await context(state)
            passed = run_passed(ctx.plan, state["tasks"]) and goal_passed(state.get("goal_checks"))
            status: Literal["passed", "failed"] = "passed" if passed else "failed"
            run_id = run_of(state["run_id"])
            await asyncio.to_thread(_finished, services, run_id, status, state.get("phase", 0))
            await remember_run(services.runtime.memory, services.store.dir(run_id), events=ctx.events)  # issue 19
            await services.close(run_id)
            return {"status": status}
        return await guarded(run_of(state["run_id"]), end())

    graph: StateGraph[RunState, None, RunInput, RunOutput] = StateGraph(
        RunState, input_schema=RunInput, output_schema=RunOutput)
    graph.add_node("plan", plan)
    graph.add_node("schedule", schedule, destinations=("task", "report"))
    graph.add_node("task", task)  # type: ignore[arg-type]  # a Send target: its input is TaskInput, not the state
    graph.add_node("report", report)
    graph.add_node("replan", replan)
    graph.add_node("finish", finish)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "schedule")
    graph.add_conditional_edges("task", after_task, ["task", "report", "schedule"])
    graph.add_conditional_edges("report", after_report, ["replan", "finish"])
    graph.add_edge("replan", "schedule")
    graph.add_edge("finish", END)
    return graph


def compile_graph(services: RunServices, *, checkpointer: BaseCheckpointSaver[str] | None = None) -> RunGraph:
    """The run graph. Pass a checkpointer for runs; none for the LangGraph server (it brings its own)."""
    return build_graph(services).compile(checkpointer=checkpointer, name="naestro").with_config(
        recursion_limit=RUN_RECURSION_LIMIT)


_READ_ONLY_CHECKS = frozenset({"file_exists", "json_schema", "regex"})


def _reports_its_writes(task: Task) -> bool:
    """Every file a step of this task changes goes through a tool that reports it (a direct action, checks that
    only read): the next snapshot may look at the reported files alone. Agents and ``evaluator`` checks run
    programs in the workspace, outside the tool layer."""
    return task.is_direct and all(check.kind in _READ_ONLY_CHECKS for check in task.accept)


def _unknown_changes(ctx: RunContext) -> None:
    """The node may have changed files no tool reported: the next snapshot walks the workspace (issue 16)."""
    if ctx.snapshots is not None:
        ctx.snapshots.note_unknown()


def run_of(in_state: str) -> str:
    """The run a node works for: ``configurable.naestro_run`` when the driver set it, else the state's.

    A fork continues on its source's thread (LangGraph keeps both branches), so the checkpointed state (and
    the ``Send`` payloads in it) name the source run; the driver of the fork says which run it is.
    """
    given = get_config().get("configurable", {}).get("naestro_run")
    return str(given) if given else in_state


def _mark(services: RunServices, run_id: str | None, status: Literal["paused", "error"], why: str, event: str,
          **fields: Any) -> None:
    if not run_id:
        return
    record = services.current(run_id)
    record.status, record.error = status, why
    services.store.save(record)
    services.events(record).emit(event, **fields)


def _finished(services: RunServices, run_id: str, status: Literal["passed", "failed"], phase: int) -> None:
    record = services.current(run_id)
    record.status = status
    services.store.save(record)
    services.audit_log(run_id).append("run_finished", status=status)
    services.events(record).emit("run_finished", status=status, phase=phase)

