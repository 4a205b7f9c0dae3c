"""A re-plan keeps the original plan's bar: workspace checks of unfinished tasks move to a final verify task."""

from __future__ import annotations

from typing import Any

from naestro.carryover import carry_unfinished_checks
from naestro.plan import Plan


def task(tid: str, *checks: dict[str, Any], deps: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"id": tid, "role": "coder", "description": tid, "deps": list(deps), "accept": list(checks)}


CMD = {"kind": "command", "command": "python3 -m pytest -q"}
FILE = {"kind": "file_exists", "path": "fib.py"}
ON_OUTPUT = {"kind": "regex", "output": "summary", "pattern": "ok"}
JUDGE = {"kind": "evaluator", "evaluator": "llm_judge", "threshold": 0.5, "rubric": "is it good"}


def plan(*tasks: dict[str, Any]) -> Plan:
    return Plan.model_validate({"goal": "g", "tasks": list(tasks)})


def test_unfinished_workspace_checks_are_reapplied_after_all_new_work() -> None:
    old = plan(task("done", FILE), task("fib", CMD, FILE, ON_OUTPUT, JUDGE, deps=("done",)))
    new = plan(task("write", FILE), task("test", {"kind": "file_exists", "path": "t.py"}, deps=("write",)),
               task("side", FILE))
    carry = carry_unfinished_checks(old, ["fib"], new)
    verify = carry.plan.task("verify_carried")
    assert verify.action is not None and verify.action.tool == "fs.list" and verify.max_attempts == 1
    assert set(verify.deps) == {"test", "side"}  # the sinks: it runs after every new task
    assert [c.kind for c in verify.accept] == ["command", "file_exists"]
    assert len(carry.carried) == 2 and len(carry.dropped) == 2  # checks on outputs / the judge cannot move
    assert carry.plan.tasks[:3] == new.tasks


def test_identical_checks_of_several_tasks_are_carried_once() -> None:
    old = plan(task("a", CMD), task("b", CMD, FILE))
    carry = carry_unfinished_checks(old, ["a", "b"], plan(task("x", FILE)))
    assert [c.kind for c in carry.plan.task("verify_carried").accept] == ["command", "file_exists"]


def test_nothing_portable_leaves_the_new_plan_alone() -> None:
    old = plan(task("a", ON_OUTPUT))
    new = plan(task("x", FILE))
    carry = carry_unfinished_checks(old, ["a"], new)
    assert carry.plan == new and carry.carried == () and len(carry.dropped) == 1


def test_verify_id_does_not_collide_with_the_new_plan() -> None:
    old = plan(task("a", CMD))
    new = plan(task("verify_carried", FILE))
    carry = carry_unfinished_checks(old, ["a"], new)
    assert [t.id for t in carry.plan.tasks] == ["verify_carried", "verify_carried_2"]
