"""What the Studio does to runs: plan a goal, start a run, answer consent, resume, history and rollback.

Runs start in the Studio's own process, in the background (as the MCP front door does, naestro/frontdoor.py):
the request returns as soon as the run exists, and the browser follows it over SSE. Consent goes through the
same rules and the same resume as ``naestro approve`` (naestro/approval.py, then ``Runner.resume``, or
``ServedRun.resume`` for a run a LangGraph server executes; for a run ``naestro worker``s execute, the answers are
queued for any worker, as ``naestro approve`` and the scale-out API do, issue 20). Rollback and history are
``TimeTravel``, as in ``naestro runs rollback``. A Studio that stops loses nothing: ``naestro resume RUN``
continues its runs.

The runtime (models, policy engine, MCP pool) is built on first use, not at import, so ``langgraph dev`` can
import studio/api.py without starting anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from naestro.errors import RunError, UsageError

if TYPE_CHECKING:
    from naestro.distributed import ScaleSettings, Submitter
    from naestro.runner import PendingConsent, Runner, RunResult
    from naestro.runtime import Runtime
    from naestro.settings import Settings
    from naestro.timetravel import TimeTravel

__all__ = ["ConsentBody", "ForkBody", "RollbackBody", "StartBody", "StudioRuns"]

DEFAULT_SERVER = "http://127.0.0.1:2024"


class StartBody(BaseModel):
    """POST /naestro/runs: a goal, and the (possibly edited) plan the preview showed; planned anew if absent."""

    model_config = ConfigDict(extra="forbid")
    goal: str = Field(default="", max_length=20_000)
    plan: str | None = Field(default=None, description="plan JSON text, validated before the run exists")
    mode: Literal["guide", "copilot", "auto"] = "copilot"
    approve: list[str] = Field(default_factory=list, description="pre-approved scopes, e.g. exec.run")


class ConsentBody(BaseModel):
    """POST /naestro/runs/{id}/consent: the banner's answer, the same fields as ``naestro approve``."""

    model_config = ConfigDict(extra="forbid")
    consent_id: str | None = None
    approve: bool
    arguments: dict[str, JsonValue] | None = None
    remember: bool = False
    purpose: str = Field(default="", max_length=2_000)
    by: str = Field(default="studio", max_length=200)


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, description="checkpoint id (or unique prefix/suffix) or step number")
    force: bool = False


class ForkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str = Field(min_length=1, description="checkpoint id (or unique prefix/suffix) or step number")


class StudioRuns:
    """Runs started or resumed by this Studio process, and the runtime they share."""

    def __init__(self, settings: Settings, *, runtime: Runtime | None = None,
                 server_url: str = DEFAULT_SERVER, scale: ScaleSettings | None = None) -> None:
        """``scale``: the queue of worker-executed runs (NAESTRO_BROKER_URL ...), read from the environment when
        the Studio first answers such a run (Celery is imported only then)."""
        self.settings, self.server_url, self.scale = settings, server_url, scale
        self._runtime = runtime
        self._lock = asyncio.Lock()
        self._queue: Submitter | None = None
        self.active: dict[str, asyncio.Task[RunResult]] = {}

    async def runtime(self) -> Runtime:
        async with self._lock:
            if self._runtime is None:
                from naestro.runtime import build_runtime

                self._runtime = await asyncio.to_thread(build_runtime, self.settings)
            return self._runtime

    async def aclose(self) -> None:
        """Stop following runs (they stay resumable) and end the pooled MCP servers the runtime started."""
        for task in self.active.values():
            task.cancel()
        await asyncio.gather(*self.active.values(), return_exceptions=True)
        if self._runtime is not None:
            await self._runtime.aclose()

    def running(self, run_id: str) -> bool:
        task = self.active.get(run_id)
        return task is not None and not task.done()

    def _submitter(self) -> Submitter:
        """The client of the run queue, for runs workers execute: the Studio never drives those itself (it would
        do so without the run's lock, beside a worker)."""
        if self._queue is None:
            from naestro.distributed import ScaleSettings, Submitter, make_app

            scale = self.scale or ScaleSettings()
            self._queue = Submitter(self.settings, scale, make_app(scale))
        return self._queue

    async def _runner(self) -> Runner:
        from naestro.runner import Runner

        return Runner.of(await self.runtime())

    async def _travel(self) -> TimeTravel:
        from naestro.timetravel import TimeTravel

        return TimeTravel(await self._runner())

    async def _launch(self, start: Callable[[Runner], Coroutine[None, None, RunResult]]) -> str:
        """Start a run in the background; its id once the first event names it (the run directory exists)."""
        from naestro.events import Event
        from naestro.runner import Runner

        named: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_event(ev: Event) -> None:
            if not named.done() and isinstance(ev.get("run"), str):
                named.set_result(str(ev["run"]))

        task = asyncio.create_task(start(Runner.of(await self.runtime(), on_event=on_event)))

        def ended(t: asyncio.Task[RunResult]) -> None:
            # Retrieved here either way: a run that failed later keeps its error in run.json and its events.
            exc = t.exception() if not t.cancelled() else None
            if not named.done():
                named.set_exception(exc if isinstance(exc, UsageError | RunError) else
                                    RunError(f"the run could not start: {exc or 'cancelled'}"))
        task.add_done_callback(ended)
        run_id = await named
        self.active[run_id] = task
        return run_id

    async def plan(self, goal: str) -> dict[str, JsonValue]:
        """The planner's plan for ``goal``, validated (rejected attempts listed), without running anything."""
        from nodes.planner import make_plan

        if not goal.strip():
            raise UsageError("give a goal to plan")
        runtime = await self.runtime()
        outcome = await make_plan(goal, runtime.provider, attempts=self.settings.planner_attempts)
        return {"plan": outcome.plan.model_dump(mode="json", by_alias=True, exclude_defaults=True),
                "source": outcome.source, "tokens": outcome.tokens,
                "rejected": [[str(p) for p in problems] for problems in outcome.attempts]}

    async def start(self, body: StartBody) -> str:
        """Validate the plan text (``PlanInvalid`` lists every problem), then start the run in the background."""
        from naestro.validate import parse_plan_text
        from policies.decision import ApprovedScope, RunPolicy

        if not body.goal.strip() and body.plan is None:
            raise UsageError("give a goal, or a plan")
        given = parse_plan_text(body.plan) if body.plan is not None else None
        try:
            policy = RunPolicy(mode=body.mode, approve=[ApprovedScope.parse(s) for s in body.approve])
        except ValueError as exc:
            raise UsageError(f"bad pre-approved scope: {exc}") from exc

        async def go(runner: Runner) -> RunResult:
            return await runner.start(body.goal, plan=given, policy=policy)

        return await self._launch(go)

    async def pending(self, run_id: str) -> list[PendingConsent]:
        """Consent requests the run waits on (none while it is still running here)."""
        from naestro.runner import PendingConsent
        from naestro.runs import RunStore
        from naestro.served import ServedRun

        record = RunStore(self.settings.runs_dir).load(run_id)
        if self.running(run_id) or record.status != "waiting":
            return []
        if record.served:
            served = ServedRun(record, self.server_url)
            return [PendingConsent(id=i, request=r) for i, r in  # type: ignore[arg-type]
                    await asyncio.to_thread(served.pending)]
        return await (await self._runner()).pending(run_id)

    async def answer(self, run_id: str, body: ConsentBody) -> str:
        """Answer consent as ``naestro approve`` does and resume the run; its status ("running" when resumed
        here in the background, "queued" when a worker will)."""
        from naestro.approval import choose_answers
        from naestro.runs import RunStore
        from naestro.served import ServedRun

        if self.running(run_id):
            raise UsageError(f"run {run_id} is still running; answer once it is waiting")
        pending = await self.pending(run_id)
        answers = choose_answers(run_id, pending, consent_id=body.consent_id, approve=body.approve,
                                 arguments=body.arguments, remember=body.remember, by=f"{body.by} (studio)",
                                 purpose=body.purpose)
        record = RunStore(self.settings.runs_dir).load(run_id)
        if record.served:
            return await asyncio.to_thread(ServedRun(record, self.server_url).resume, answers)
        if record.remote:
            await asyncio.to_thread(self._submitter().answer, run_id, answers)
            return "queued"

        async def go(runner: Runner) -> RunResult:
            return await runner.resume(run_id, answers)

        await self._launch(go)
        return "running"

    async def resume(self, run_id: str) -> str:
        """Continue a rolled-back, paused or interrupted run from its head, as ``naestro resume``; a run workers
        execute is queued for them (``naestro queue kick``)."""
        from naestro.runs import RunStore

        if self.running(run_id):
            raise UsageError(f"run {run_id} is already running")
        if RunStore(self.settings.runs_dir).load(run_id).remote:
            await asyncio.to_thread(self._submitter().kick, run_id)
            return "queued"

        async def go(runner: Runner) -> RunResult:
            return await runner.resume(run_id)

        await self._launch(go)
        return "running"

    async def history(self, run_id: str) -> list[JsonValue]:
        entries = await (await self._travel()).history(run_id)
        return [e.as_json() for e in entries]

    async def rollback(self, run_id: str, body: RollbackBody) -> dict[str, JsonValue]:
        if self.running(run_id):
            raise UsageError(f"run {run_id} is running; wait for it to stop before rolling back")
        target = await (await self._travel()).rollback(run_id, body.to, force=body.force)
        return target.as_json()

    async def fork(self, run_id: str, body: ForkBody) -> str:
        """A new run from a checkpoint of this one, with its own copy of the files (``naestro runs fork``); it
        waits at its head until resumed."""
        fork = await (await self._travel()).fork(run_id, body.at)
        return fork.run_id
