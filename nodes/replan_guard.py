"""A re-plan plans toward the goal's deliverables only (issue 22).

The re-planner is the same small model that failed the first time. Seen on the 1.5B: a data goal asked for one
JSON file; the re-plan added a task writing ``summary.json``, which the goal never asked for, that task failed,
and a run whose requested file was finally right ended FAILED. So a re-plan's tasks may produce only files the
goal names, files the original plan had, and files already in the workspace (fixing them is fair). A check on any
other file is dropped; a task left with no check, or whose description names only such files, is dropped with
the dependencies and inputs on it. Deterministic: names are compared as the texts spell them.

The guard applies only when the goal names a file: a goal that names none leaves the choice of files to the plan.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, JsonValue

from naestro.plan import AcceptanceCheck, CommandCheck, EvaluatorCheck, FileExistsCheck, Plan, Task
from nodes.goal_requirements import files_named

__all__ = ["Confined", "confined_replan", "plan_files"]


class Confined(BaseModel):
    """The re-plan as it may run; None when nothing of it was toward the goal's deliverables."""

    model_config = ConfigDict(frozen=True)

    plan: Plan | None
    dropped_tasks: tuple[str, ...] = ()
    dropped_checks: tuple[str, ...] = ()  # "task: file"


def _check_files(check: AcceptanceCheck) -> list[str]:
    match check:
        case FileExistsCheck():
            return [check.path]
        case CommandCheck():
            return files_named(check.command)
        case EvaluatorCheck():
            return files_named(json_text(check.params))
        case _:
            return [check.file] if check.file else []


def json_text(value: JsonValue) -> str:
    """The strings of ``value``, one per line (file names hide in evaluator params)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(json_text(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(json_text(v) for v in value)
    return ""


def _task_files(task: Task) -> list[str]:
    return files_named(f"{task.description}\n{task.instructions}") + [f for c in task.accept for f in _check_files(c)]


def plan_files(plan: Plan) -> set[str]:
    """Every file a plan's tasks name or check."""
    return {f for t in plan.tasks for f in _task_files(t)}


def confined_replan(new: Plan, *, goal: str, original: Plan, existing: Iterable[str]) -> Confined:
    """``new`` without the deliverables the goal did not name, the original plan did not have and the workspace
    does not hold."""
    named = files_named(goal)
    if not named:
        return Confined(plan=new)
    allowed = set(named) | plan_files(original) | set(existing)
    dropped_checks: list[str] = []
    dropped_tasks: list[str] = []
    kept: list[Task] = []
    for task in new.tasks:
        accept = []
        for check in task.accept:
            invented = [f for f in _check_files(check) if f not in allowed]
            if invented:
                dropped_checks += [f"{task.id}: {f}" for f in invented]
            else:
                accept.append(check)
        described = files_named(f"{task.description}\n{task.instructions}")
        if not accept or (described and not any(f in allowed for f in described)):
            dropped_tasks.append(task.id)
            continue
        kept.append(task.model_copy(update={"accept": tuple(accept)}))
    if not dropped_checks and not dropped_tasks:
        return Confined(plan=new)
    gone = set(dropped_tasks)
    tasks = tuple(t.model_copy(update={"deps": tuple(d for d in t.deps if d not in gone),
                                       "inputs": {k: v for k, v in t.inputs.items() if v.task not in gone}})
                  for t in kept)
    plan = Plan.model_validate(new.model_copy(update={"tasks": tasks}).model_dump(by_alias=True)) if tasks else None
    return Confined(plan=plan, dropped_tasks=tuple(dropped_tasks), dropped_checks=tuple(dropped_checks))
