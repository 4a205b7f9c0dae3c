"""The client side of the queue: submit a run, answer its consents, read where it stands.

Used by ``naestro run --remote``, ``naestro approve`` (for a run a worker executes) and the HTTP API. The run
directory is created here, before anything is queued, so the run id exists at once and every worker finds the
run's record, workspace, journal and audit log in the shared NAESTRO_HOME; ``RUN/remote.json`` marks the run as
executed by workers, so a later ``naestro approve`` queues the continuation instead of running it in-process.

Secrets in a submitted goal or plan become placeholders here, as in ``naestro run``; their values stay in the
submitting process (a worker's tools see the placeholders).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from naestro.distributed.advance import RUN_ID, AdvanceRequest
from naestro.distributed.config import Priority, ScaleSettings
from naestro.distributed.queue import enqueue, queue_depth
from naestro.errors import RunError, UsageError
from naestro.plan import Plan, text_problem
from naestro.redact import SecretVault, redact_plan
from naestro.runs import RunStore
from policies.decision import RunPolicy
from policies.gate import ConsentAnswer

if TYPE_CHECKING:
    from celery import Celery

    from naestro.settings import Settings

__all__ = ["QueueFull", "RemoteRun", "Submitter", "remote_run"]

MARKER = "remote.json"


class QueueFull(RunError):
    """Back-pressure: the queue holds ``depth`` messages, at or past ``limit``; submit again later."""

    def __init__(self, *, depth: int, limit: int) -> None:
        self.depth, self.limit = depth, limit
        super().__init__(f"the run queue holds {depth} runs (limit {limit}, NAESTRO_MAX_QUEUE_DEPTH); "
                         "try again later or add workers (`naestro worker`)")


class RemoteRun(BaseModel):
    """``RUN/remote.json``: who submitted the run, for whom, and how urgently (answers reuse the tenant)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(pattern=RUN_ID)
    tenant: str
    priority: Priority


def remote_run(settings: Settings, run_id: str) -> RemoteRun | None:
    """The run's marker if workers execute it, else None (a local run)."""
    path = settings.runs_dir / run_id / MARKER
    return RemoteRun.model_validate_json(path.read_text(encoding="utf-8")) if path.exists() else None


class Submitter:
    def __init__(self, settings: Settings, scale: ScaleSettings, app: Celery) -> None:
        self.settings, self.scale, self.app = settings, scale, app
        self.store = RunStore(settings.runs_dir)

    def submit(self, goal: str, *, plan: Plan | None = None, workspace: Path | None = None, in_place: bool = False,
               policy: RunPolicy | None = None, tenant: str | None = None,
               priority: Priority | None = None) -> RemoteRun:
        """Create the run and queue its start; refused (nothing written) when the input is bad or the queue full."""
        if not goal and plan is None:
            raise UsageError("give a goal or a plan")
        if goal and (problem := text_problem(goal)) is not None:
            raise UsageError(f"the goal has a {problem}")
        depth = queue_depth(self.app, self.scale).total
        if depth >= self.scale.max_queue_depth:
            raise QueueFull(depth=depth, limit=self.scale.max_queue_depth)
        vault = SecretVault()
        goal = vault.redact(goal, depth="prose")
        given: dict[str, JsonValue] | None = None
        if plan is not None:
            given = vault.redact_value(redact_plan(plan).model_dump(mode="json", by_alias=True))
        record = self.store.create(plan.goal if plan and not goal else goal, source_workspace=workspace,
                                   in_place=in_place, policy=policy)
        record.status, record.remote = "queued", True  # no process drives it until a worker takes it
        self.store.save(record)
        marker = RemoteRun(run_id=record.run_id, tenant=tenant or "default", priority=priority or "interactive")
        (self.store.dir(record.run_id) / MARKER).write_text(marker.model_dump_json(), encoding="utf-8")
        enqueue(self.app, self.scale, AdvanceRequest(run_id=record.run_id, plan=given, tenant=marker.tenant,
                                                     priority=marker.priority))
        return marker

    def answer(self, run_id: str, answers: dict[str, ConsentAnswer]) -> RemoteRun:
        """Queue the continuation of a waiting run with these answers, at interactive priority (a person waits)."""
        marker = remote_run(self.settings, run_id)
        if marker is None:
            raise UsageError(f"run {run_id} is not executed by workers (no {MARKER}); answer it with "
                             "`naestro approve` on the machine that runs it")
        enqueue(self.app, self.scale, AdvanceRequest(run_id=run_id, answers=answers, tenant=marker.tenant,
                                                     priority="interactive"))
        return marker

    def kick(self, run_id: str) -> RemoteRun:
        """Queue a plain "advance" (no answers): continues a run whose worker died with no message left for it
        (e.g. the broker lost its data); a run that is fine ignores it."""
        marker = remote_run(self.settings, run_id)
        if marker is None:
            raise UsageError(f"run {run_id} is not executed by workers (no {MARKER})")
        enqueue(self.app, self.scale, AdvanceRequest(run_id=run_id, tenant=marker.tenant, priority=marker.priority))
        return marker
