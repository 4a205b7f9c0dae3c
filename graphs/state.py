"""Graph state: what a client sends (``RunInput``), what the graph keeps (``RunState``), what it returns.

Parallel task nodes write disjoint keys of ``tasks``; the reducer merges them. A re-plan starts a new phase
with an empty task map (``Overwrite`` bypasses the reducer). The plan is data in state, so one static graph
runs any plan and a client (SDK, Studio) sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import (
    Annotated,
    Literal,
    NotRequired,  # pydantic needs these on 3.11 (the input JSON schema)
)

from langgraph.channels import DeltaChannel
from pydantic import JsonValue
from typing_extensions import TypedDict

TaskStatus = Literal["ran", "passed", "retry", "review", "failed", "skipped"]
"""``review``: the role's attempts are used up; one Reviewer pass with the evidence comes before giving up."""

FINAL: frozenset[str] = frozenset({"passed", "failed", "skipped"})
"""Statuses after which a task is never dispatched again (its dependents may start)."""


class CheckResult(TypedDict):
    kind: str
    passed: bool
    detail: str


class TaskRecord(TypedDict):
    status: TaskStatus
    attempts: int
    outputs: dict[str, JsonValue]
    summary: str
    checks: list[CheckResult]
    feedback: str
    tokens: int
    cost_usd: float
    wall_s: float
    model: str
    error: NotRequired[str]
    refused: NotRequired[bool]  # a human refused consent during this attempt: no automatic Reviewer pass
    applied: NotRequired[list[str]]  # files the agreed reference program wrote (``nodes.reference_apply``)


class GoalCheck(TypedDict):
    """One requirement the goal itself states (``nodes.goal_requirements``) and its verdict; None until checked."""

    requirement: dict[str, JsonValue]
    description: str
    passed: bool | None
    detail: str


def merge_tasks(left: dict[str, TaskRecord], right: dict[str, TaskRecord]) -> dict[str, TaskRecord]:
    """Per-task last-writer-wins; different tasks never clash, so parallel supersteps merge cleanly."""
    return {**left, **right}


def merge_task_batches(left: dict[str, TaskRecord], writes: Sequence[dict[str, TaskRecord]]) -> dict[str, TaskRecord]:
    """``merge_tasks`` over a batch of writes, as ``DeltaChannel`` replays them (batching-invariant)."""
    merged = dict(left)
    for right in writes:
        merged.update(right)
    return merged


TASKS_SNAPSHOT_EVERY = 1000
"""Updates of the task map between two full copies of it in a checkpoint (LangGraph's ``DeltaChannel``).

Between copies a checkpoint stores only the step's task records (its writes) and reading a state replays the
writes since the last copy: per-step bytes stay O(change) (issue 16) at the price of reading up to this many
updates back. A 200-task run stays below it; LangGraph also copies after 5000 supersteps whatever this says."""


def keep_last(_: int, new: int) -> int:
    """Siblings of one superstep all write the same ``batch``; a reducer (not a plain value) lets them."""
    return new


def status_of(tasks: dict[str, TaskRecord], task_id: str) -> TaskStatus | None:
    record = tasks.get(task_id)
    return record["status"] if record else None


Mode = Literal["guide", "copilot", "auto"]


class RunInput(TypedDict):
    """What a client gives the graph: a goal, optionally a plan to run instead of planning one.

    ``run_id`` names a run record that already exists (the CLI creates it first, to report errors before
    anything runs); without it the graph creates the run from ``workspace``, ``mode`` and ``approve``.
    """

    goal: str
    plan: NotRequired[dict[str, JsonValue]]
    workspace: NotRequired[str]  # a folder copied as the run's workspace
    mode: NotRequired[Mode]  # default copilot: sensitive actions ask
    approve: NotRequired[list[str]]  # pre-approved scopes, e.g. "exec.run" or "fs.write:src"
    run_id: NotRequired[str]


class RunState(TypedDict):
    goal: str
    run_id: NotRequired[str]
    phase: NotRequired[int]  # 0 = the plan; n = the n-th re-plan of what was left unfinished
    plan: NotRequired[dict[str, JsonValue]]  # the phase's validated plan (JSON)
    # Only each step's records are checkpointed, not the whole map (issue 16): see TASKS_SNAPSHOT_EVERY.
    tasks: Annotated[dict[str, TaskRecord], DeltaChannel(merge_task_batches, snapshot_frequency=TASKS_SNAPSHOT_EVERY)]
    # The size of the dispatch the last task attempt belonged to. 1: it ran alone in its superstep, so its own
    # record completes the picture and its outgoing edge dispatches the next tasks itself (one superstep per
    # task in a chain, not two: issue 16); more: siblings finished beside it, the ``schedule`` barrier decides.
    batch: Annotated[int, keep_last]
    report: NotRequired[str]
    status: NotRequired[Literal["passed", "failed"]]
    goal_checks: NotRequired[list[GoalCheck]]  # the goal's own requirements, checked before a run may pass
    workspace: NotRequired[str]
    mode: NotRequired[Mode]
    approve: NotRequired[list[str]]


class RunOutput(TypedDict):
    run_id: str
    status: Literal["passed", "failed"]
    report: str
    tasks: dict[str, TaskRecord]
    goal_checks: NotRequired[list[GoalCheck]]


class TaskInput(TypedDict):
    """The ``Send`` payload of one task attempt: what the task node needs of the state, computed by the scheduler."""

    run_id: str
    phase: int
    task: str
    prev: TaskRecord | None  # the previous attempt's record (feedback, attempts, tokens so far)
    inputs: dict[str, JsonValue]  # upstream outputs named by the task's IO contract
    blocked: list[str]  # dependencies that did not pass: the task is recorded as skipped
    run_tokens: int  # tokens the phase spent so far (the run budget's starting point in a new process)
    batch: NotRequired[int]  # tasks dispatched together with this one (itself included): see RunState.batch
