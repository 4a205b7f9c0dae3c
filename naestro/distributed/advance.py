""""Advance run R": the one task every worker runs, safe to run twice, on any worker, at any point.

A queue delivers a message at least once, so this task must be a function of the run's checkpointed state, not
of the message: under the run's lock it reads where the thread stands and does the one thing that state calls for
— start it (no checkpoint yet), continue it (nodes pending after a crash), resume the consents the message
answers (waiting), or nothing (finished; waiting with no answer for it). A second delivery of the same message
therefore finds either the lock taken (it waits, then hands the run back to the queue) or the state moved on (it
does nothing more than the first did).

Effects inside a re-executed node do not repeat: the effect journal (``RUN/journal.jsonl``, naestro/journal.py)
sits in the run directory on the shared NAESTRO_HOME, and the worker that picks a run up opens it afresh, so a
tool call the dead worker completed is replayed from its receipt instead of run again; one cut off between its
effect and its receipt is redone and reported (``tool_redone``), as on one machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from naestro.distributed.config import Priority, ScaleSettings
from naestro.distributed.locks import RunLocks, run_keys, tenant_keys
from naestro.errors import NaestroError
from policies.gate import ConsentAnswer

if TYPE_CHECKING:
    from naestro.runner import Runner, RunResult

__all__ = ["RUN_ID", "Action", "AdvanceOutcome", "AdvanceRequest", "advance"]

RUN_ID = r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$"

Action = Literal["started", "continued", "resumed", "noop", "busy", "deferred", "failed"]
"""What a delivery did: drove the run (started / continued after a crash / resumed consents), found nothing to do,
found another executor on the run (busy) or the tenant at its limit (deferred) — both hand the run back to the
queue — or failed with a Naestro error (recorded in run.json by the graph; resumable)."""


class AdvanceRequest(BaseModel):
    """The message body: which run, and what the submitter adds (the given plan, answers to consents)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(pattern=RUN_ID)
    plan: dict[str, JsonValue] | None = None  # only for the start: a plan given instead of planning
    answers: dict[str, ConsentAnswer] | None = None  # interrupt id -> answer (naestro approve, the API)
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    priority: Priority = "interactive"
    attempt: int = Field(default=0, ge=0)  # deliveries that failed unexpectedly before this one (queue.py)


class AdvanceOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    action: Action
    status: str  # the run's status in run.json afterwards
    pending: int = 0  # consents it waits for
    error: str = ""

    @property
    def requeue(self) -> bool:
        """The run still needs a delivery that this one could not give it."""
        return self.action in ("busy", "deferred")

    def requeue_delay(self, scale: ScaleSettings) -> float | None:
        """Seconds before the handed-back run is delivered again, None when it needs no new delivery.

        A run driving past the visibility timeout is delivered again; without a delay the copy would wait
        ``lock_wait_s`` for the lock, come back at once and keep a second worker waiting on the same lock for the
        whole run (issue 20). Kept under the visibility timeout: a worker holds a delayed message unacknowledged
        until it is due, and one held past the timeout is restored as yet another copy."""
        if self.action == "deferred":
            return scale.defer_s
        if self.action == "busy":
            return min(scale.busy_retry_s, scale.visibility_timeout_s / 2)
        return None


async def advance(runner: Runner, locks: RunLocks, request: AdvanceRequest, *, scale: ScaleSettings) -> AdvanceOutcome:
    run_id = request.run_id
    async with locks.hold(run_keys(run_id), wait_s=scale.lock_wait_s) as held:
        if held is None:
            return _outcome(runner, run_id, "busy")
        state = await runner.state(run_id)
        # A worker killed between LangGraph's first checkpoint and its input writes leaves a head with nothing
        # next and a run that never finished: not started, so it is started again (CI pre-run, 2026-12-06:
        # such a run stayed "planning" and every later delivery was a no-op).
        started = state.created_at is not None and bool(
            state.next or state.interrupts or runner.store.load(run_id).status in ("passed", "failed"))
        answers: dict[str, ConsentAnswer] = {}
        if started and state.interrupts:
            waiting = {i.id for i in state.interrupts}
            # Answers to consents that are no longer pending were given already (a delivery before this one).
            answers = {i: a for i, a in (request.answers or {}).items() if i in waiting}
            if not answers:  # waiting for a person: the worker is released; `naestro approve` enqueues the rest
                return _outcome(runner, run_id, "noop", pending=len(state.interrupts))
        elif started and not state.next:
            return _outcome(runner, run_id, "noop")  # finished: a repeated message does nothing
        async with locks.hold(tenant_keys(request.tenant, scale.tenant_limit)) as slot:
            if slot is None:
                return _outcome(runner, run_id, "deferred")
            try:
                if not started:
                    action: Action = "started"
                    result = await _begun(runner, run_id, request.plan)
                elif answers:
                    action, result = "resumed", await runner.resume(run_id, answers)
                else:
                    action, result = "continued", await runner.resume(run_id)
            except NaestroError as exc:
                return _outcome(runner, run_id, "failed", error=f"{type(exc).__name__}: {exc}")
    return _finished(result, action)


async def _begun(runner: Runner, run_id: str, plan: dict[str, JsonValue] | None) -> RunResult:
    """Start the run, beside its live-canary shadow when one is drawn: the runs ``naestro run --remote`` and the
    HTTP API submit are the canary's traffic as ``naestro run``'s are (issue 21). The worker holds the run until
    both end; the user's result is the live run's, whatever the shadow did."""
    from naestro.improve.live_canary import shadow_of_record, shadowed  # the worker's import stays light
    from naestro.plan import Plan

    record = runner.store.load(run_id)
    try:
        given = None if plan is None else Plan.model_validate(plan)
    except ValidationError:
        return await runner.begin(run_id, plan=plan)  # refused there with the validator's message; no shadow
    pending = await shadow_of_record(runner.settings, runner.provider, record, given)
    return await shadowed(runner.begin(run_id, plan=plan), pending)


def _finished(result: RunResult, action: Action) -> AdvanceOutcome:
    status = "waiting" if result.pending else result.record.status
    return AdvanceOutcome(run_id=result.record.run_id, action=action, status=status, pending=len(result.pending))


def _outcome(runner: Runner, run_id: str, action: Action, *, pending: int = 0, error: str = "") -> AdvanceOutcome:
    record = runner.store.load(run_id)
    status = "waiting" if pending else record.status
    return AdvanceOutcome(run_id=run_id, action=action, status=status, pending=pending, error=error or record.error)
