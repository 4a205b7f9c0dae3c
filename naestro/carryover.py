"""Carry the acceptance checks of unfinished tasks into a re-plan, so a re-plan can never weaken the bar.

A re-plan is written by the same small model that failed the first time. Left alone it may drop the check that
failed (seen on the 1.5B: fib's ``pytest`` check vanished and the run "passed" on ``file_exists`` alone). The
original plan's checks are the user's contract for the goal, so every workspace-level check of a task that did
not pass is re-applied after the new plan's work, by one direct (model-free) task that depends on all of it.
Checks on a task's *outputs* cannot move (the old task and its outputs are gone); they are reported as dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from naestro.plan import AcceptanceCheck, DirectAction, EvaluatorCheck, JsonSchemaCheck, Plan, RegexCheck, Role, Task

__all__ = ["CarryOver", "carry_unfinished_checks", "portable_checks"]

VERIFY_PREFIX = "verify_carried"


class CarryOver(BaseModel):
    """The re-plan as it will run, and what happened to the old checks."""

    model_config = ConfigDict(frozen=True)

    plan: Plan
    carried: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


def _portable(check: AcceptanceCheck) -> bool:
    """True when the check reads only the workspace (no task output), so it means the same after a re-plan."""
    if isinstance(check, JsonSchemaCheck | RegexCheck):
        return check.output is None
    if isinstance(check, EvaluatorCheck):
        return check.evaluator != "llm_judge"  # the judge grades a task's own summary and outputs
    return True


def _describe(task_id: str, check: AcceptanceCheck) -> str:
    return f"{task_id}: {check.model_dump_json(by_alias=True, exclude_defaults=True)}"


def _sinks(tasks: Iterable[Task]) -> list[str]:
    tasks = list(tasks)
    used = {d for t in tasks for d in t.deps}
    return [t.id for t in tasks if t.id not in used]


def _sorted_out(old: Plan, unfinished: Iterable[str]) -> tuple[list[AcceptanceCheck], list[str], list[str]]:
    """The unfinished tasks' portable checks (deduplicated), their descriptions, and the dropped ones'."""
    carried: list[AcceptanceCheck] = []
    carried_names: list[str] = []
    dropped: list[str] = []
    for task_id in unfinished:
        for check in old.task(task_id).accept:
            if not _portable(check):
                dropped.append(_describe(task_id, check))
            elif check not in carried:
                carried.append(check)
                carried_names.append(_describe(task_id, check))
    return carried, carried_names, dropped


def portable_checks(old: Plan, unfinished: Iterable[str]) -> list[AcceptanceCheck]:
    """The unfinished tasks' checks that mean the same after a re-plan (deduplicated): what a task toward the
    goal must pass (``nodes.planning``) besides the final re-check."""
    return _sorted_out(old, unfinished)[0]


def carry_unfinished_checks(old: Plan, unfinished: Iterable[str], new: Plan) -> CarryOver:
    """The new plan plus a final verify task holding the unfinished tasks' portable checks (deduplicated)."""
    carried, carried_names, dropped = _sorted_out(old, unfinished)
    if not carried:
        return CarryOver(plan=new, dropped=tuple(dropped))
    ids = {t.id for t in new.tasks}
    verify_id, n = VERIFY_PREFIX, 1
    while verify_id in ids:
        n += 1
        verify_id = f"{VERIFY_PREFIX}_{n}"
    verify = Task(id=verify_id, role=Role.evaluator,
                  description="Re-check the original plan's acceptance checks of the work that was re-planned",
                  action=DirectAction(tool="fs.list", arguments={"path": "."}),
                  deps=tuple(_sinks(new.tasks)), accept=tuple(carried), max_attempts=1)
    plan = new.model_copy(update={"tasks": (*new.tasks, verify)})
    return CarryOver(plan=Plan.model_validate(plan.model_dump(by_alias=True)), carried=tuple(carried_names),
                     dropped=tuple(dropped))
