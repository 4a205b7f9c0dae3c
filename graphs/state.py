"""Graph state. Parallel task nodes write disjoint keys of ``tasks``; the reducer merges them."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

from pydantic import JsonValue

TaskStatus = Literal["ran", "passed", "retry", "review", "failed", "skipped"]
"""``review``: the role's attempts are used up; one Reviewer pass with the evidence comes before giving up."""


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


def merge_tasks(left: dict[str, TaskRecord], right: dict[str, TaskRecord]) -> dict[str, TaskRecord]:
    """Per-task last-writer-wins; different tasks never clash, so parallel supersteps merge cleanly."""
    return {**left, **right}


def status_of(tasks: dict[str, TaskRecord], task_id: str) -> TaskStatus | None:
    record = tasks.get(task_id)
    return record["status"] if record else None


class RunState(TypedDict):
    goal: str
    tasks: Annotated[dict[str, TaskRecord], merge_tasks]
    report: NotRequired[str]
