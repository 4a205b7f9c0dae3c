"""The MCP front door ``naestro``: Naestro itself as tools, so an IDE client (Claude Desktop, Cursor, VS Code) can plan,
start, watch and approve runs: ``plan``, ``run``, ``status``, ``approve``.

Runs execute inside this server's process, in the background: ``run`` returns the run id as soon as the run
exists and ``status`` reports progress. A run that asks for consent waits until ``approve`` answers it. If the
server stops, runs are not lost: ``naestro resume RUN`` continues them from their last checkpoint.
This server is for people driving Naestro; it is not given to agents (no ``naestro`` tools in roles.yaml).
It lives with the CLI, not in ``mcp_servers/`` (standalone tool servers that import no runtime), and gets its
parts from the composition root (``naestro.runtime.build_runtime``) like the CLI and the served graph.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Literal

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, JsonValue, ValidationError

from mcp_servers.workspace import ServerOptions, new_server, serve
from naestro.errors import NaestroError
from naestro.events import Event, read_events
from naestro.plan import Plan
from naestro.remote_status import remote_statuses_of
from naestro.runner import PendingConsent, Runner, RunResult
from naestro.runs import RunStore
from naestro.runtime import Runtime, build_runtime
from naestro.settings import Settings
from nodes.planner import make_plan
from policies.decision import ApprovedScope, RunPolicy
from policies.gate import ConsentAnswer

__all__ = ["build", "main", "naestro_server"]


class Planned(BaseModel):
    plan: dict[str, JsonValue]
    source: str = Field(description="'model', or 'template:<name>' when the model's plans kept failing validation")
    tasks: int


class Started(BaseModel):
    run_id: str
    status: str
    hint: str


class TaskState(BaseModel):
    id: str
    status: str
    attempts: int | None = None


class Consent(BaseModel):
    id: str
    action: str
    reasons: list[str]
    arguments: dict[str, JsonValue]


class RunState(BaseModel):
    run_id: str
    goal: str
    status: str
    workspace: str
    tasks: list[TaskState]
    pending: list[Consent] = Field(description="consent requests waiting for `approve`")
    report: str | None = Field(description="report.md once the run finished")
    error: str = ""
    worker: str | None = Field(default=None, description="HOST:PID of the worker driving a run executed by "
                               "workers (naestro run --remote, the HTTP API), while it drives it")


def naestro_server(runtime: Runtime) -> FastMCP:
    """The server over a runtime (tests build one around a scripted provider)."""
    settings, provider = runtime.settings, runtime.provider
    mcp = new_server("naestro", instructions="Drive Naestro: plan a goal, start a run, watch its status, answer "
                                             "its consent requests.")
    store = RunStore(settings.runs_dir)
    active: dict[str, asyncio.Task[RunResult]] = {}

    async def launch(start: Callable[[Runner], Coroutine[None, None, RunResult]]) -> str:
        """Start a run in the background and return its id once it exists (the first event names it)."""
        named: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_event(ev: Event) -> None:
            if not named.done() and isinstance(ev.get("run"), str):
                named.set_result(str(ev["run"]))

        runner = Runner.of(runtime, on_event=on_event)
        task = asyncio.create_task(start(runner))

        def ended_unnamed(t: asyncio.Task[RunResult]) -> None:
            if not named.done():
                exc = t.exception() if not t.cancelled() else None
                named.set_exception(ToolError(f"the run could not start: {exc or 'cancelled'}"))
        task.add_done_callback(ended_unnamed)
        run_id = await named
        active[run_id] = task
        return run_id

    @mcp.tool(annotations=ToolAnnotations(title="Plan a goal", readOnlyHint=True, openWorldHint=False))
    async def plan(goal: str) -> Planned:
        """Turn a goal into a validated Plan (a DAG of tasks with acceptance checks) without running it."""
        try:
            outcome = await make_plan(goal, provider, attempts=settings.planner_attempts)
        except NaestroError as exc:
            raise ToolError(str(exc)) from exc
        return Planned(plan=outcome.plan.model_dump(mode="json", by_alias=True), source=outcome.source,
                       tasks=len(outcome.plan.tasks))

    @mcp.tool(annotations=ToolAnnotations(title="Start a run", readOnlyHint=False, destructiveHint=False,
                                          idempotentHint=False, openWorldHint=False))
    async def run(goal: str = "",
                  plan: Annotated[dict[str, JsonValue] | None, Field(description="a Plan from `plan` (edited or "
                                                                     "not); planned from the goal if omitted")] = None,
                  workspace: Annotated[str | None, Field(description="folder copied as the run's workspace")] = None,
                  mode: Literal["copilot", "auto", "guide"] = "copilot",
                  approve: Annotated[list[str] | None, Field(description="pre-approved scopes: 'exec.run'")] = None,
                  ) -> Started:
        """Start a run in the background; returns its id at once. Watch it with `status`."""
        if not goal.strip() and plan is None:
            raise ToolError("give a goal, or a plan from the `plan` tool")
        try:
            given = Plan.model_validate(plan) if plan is not None else None
            policy = RunPolicy(mode=mode, approve=[ApprovedScope.parse(s) for s in approve or []])
        except (ValidationError, ValueError) as exc:
            raise ToolError(f"invalid plan or policy: {exc}; check the plan with `naestro validate`") from exc
        source = Path(workspace).expanduser() if workspace else None
        if source is not None and not source.is_dir():
            raise ToolError(f"workspace {workspace!r} is not a folder")

        async def start(runner: Runner) -> RunResult:
            from naestro.improve.live_canary import beside_live  # a candidate on live canary shadows new runs

            return await beside_live(runner.start(goal, plan=given, workspace=source, policy=policy),
                                     settings=settings, provider=provider, goal=goal, plan=given, workspace=source,
                                     mode=mode)

        run_id = await launch(start)
        return Started(run_id=run_id, status="running", hint=f"call status with run_id={run_id!r}")

    @mcp.tool(annotations=ToolAnnotations(title="Run status", readOnlyHint=True, openWorldHint=False))
    async def status(run_id: str) -> RunState:
        """A run's status, its tasks, any consent requests waiting for `approve`, and its report when done."""
        try:
            record = store.load(run_id)
        except NaestroError as exc:
            raise ToolError(str(exc)) from exc
        task = active.get(run_id)
        pending: list[Consent] = []
        if task is not None and task.done() and not task.cancelled():
            if task.exception() is None:
                pending = [_consent(p) for p in task.result().pending]
        elif task is None and record.status == "waiting":
            pending = [_consent(p) for p in await Runner.of(runtime).pending(run_id)]
        events = read_events(store.dir(run_id) / "events.jsonl")
        tasks: dict[str, TaskState] = {}
        for e in events:
            if e.get("event") == "task_started":
                tasks[str(e["task"])] = TaskState(id=str(e["task"]), status="running")
            elif e.get("event") == "task_finished":
                attempts = e.get("attempts")
                tasks[str(e["task"])] = TaskState(id=str(e["task"]), status=str(e.get("status")),
                                                  attempts=attempts if isinstance(attempts, int) else None)
        report = store.dir(run_id) / "report.md"
        # A node marks the run waiting when it asks; until the driver has stopped (siblings may still be running,
        # the interrupt not yet checkpointed) the run is reported as running.
        status = record.display_status if task is None or task.done() else "running"
        # A run workers execute: its pid names a process on a worker, so only its lock tells whether one drives it.
        remote = None
        if task is None and record.remote:  # the lock lookup is a database round trip: off the event loop
            remote = (await asyncio.to_thread(remote_statuses_of, settings, [record])).get(run_id)
        return RunState(run_id=run_id, goal=record.goal, status=remote.status if remote else status,
                        workspace=record.workspace, tasks=list(tasks.values()), pending=pending,
                        report=report.read_text() if report.exists() else None, error=record.error,
                        worker=remote.worker if remote else None)

    @mcp.tool(annotations=ToolAnnotations(title="Answer consent", readOnlyHint=False, destructiveHint=False,
                                          openWorldHint=False))
    async def approve(run_id: str,
                      consent_id: Annotated[str | None, Field(description="which request; default: all")] = None,
                      deny: bool = False, remember: bool = False) -> Started:
        """Approve (or deny) a waiting run's consent requests; the run continues in the background."""
        if (task := active.get(run_id)) is not None and not task.done():
            raise ToolError(f"run {run_id} is still running; call status and approve once it is waiting")
        pending = await Runner.of(runtime).pending(run_id)
        chosen = [p for p in pending if consent_id is None or p.id == consent_id]
        if not chosen:
            known = ", ".join(p.id for p in pending) or "none"
            raise ToolError(f"run {run_id} has no pending consent {consent_id or ''} (pending: {known})")
        answers = {p.id: ConsentAnswer(approve=not deny, remember=remember and not deny, by="mcp")
                   for p in chosen}

        async def resume(runner: Runner) -> RunResult:
            return await runner.resume(run_id, answers)

        await launch(resume)
        return Started(run_id=run_id, status="running", hint=f"{'denied' if deny else 'approved'} "
                       f"{len(chosen)} request(s); call status with run_id={run_id!r}")

    return mcp


def _consent(p: PendingConsent) -> Consent:
    reasons, arguments = p.request.get("reasons"), p.request.get("arguments")
    return Consent(id=p.id, action=str(p.request.get("action", "")),
                   reasons=[str(r) for r in reasons] if isinstance(reasons, list) else [],
                   arguments=arguments if isinstance(arguments, dict) else {})


def build(options: ServerOptions) -> FastMCP:
    """Entry point: settings from NAESTRO_* and the models in models.yaml. ``--workspace`` is not used."""
    return naestro_server(build_runtime(Settings()))


def main(argv: list[str] | None = None) -> None:
    serve(build, prog="naestro-mcp-naestro", description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
