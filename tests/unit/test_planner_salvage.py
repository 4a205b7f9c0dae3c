"""When the model's only plan problems are checks that can never pass, its plan is kept without them."""

from __future__ import annotations

from typing import Any

import pytest

from naestro.errors import PlanInvalid
from nodes.planner import make_plan
from tests.fakes import ScriptedProvider

# a missing colon: no mechanical repair applies
BROKEN = {"kind": "command", "command": "python3 -c 'import csv\nwith open(\"a.csv\") as f print(f.read())'"}
FILE = {"kind": "file_exists", "path": "adults.csv"}
GOAL = "zzqx frobnicate"  # matches no template keyword


def planner(*accepts: list[dict[str, Any]]) -> ScriptedProvider:
    tasks = [{"id": f"t{i}", "role": "coder", "description": "write adults.csv", "deps": [], "accept": a}
             for i, a in enumerate(accepts)]
    return ScriptedProvider(lambda messages: {"goal": GOAL, "tasks": tasks})


async def test_unusable_checks_are_dropped_when_every_task_keeps_one() -> None:
    outcome = await make_plan(GOAL, planner([BROKEN, FILE], [FILE]), attempts=2)
    assert outcome.source == "model:unusable-checks-dropped"
    assert [[c.kind for c in t.accept] for t in outcome.plan.tasks] == [["file_exists"], ["file_exists"]]
    assert len(outcome.attempts) == 2 and outcome.attempts[0][0].pointer == "/tasks/0/accept/0/command"


async def test_a_task_left_without_checks_must_produce_the_files_it_names() -> None:
    outcome = await make_plan(GOAL, planner([BROKEN], [FILE]), attempts=1)
    assert [c.model_dump() for c in outcome.plan.tasks[0].accept] == [{"kind": "file_exists", "path": "adults.csv"}]


async def test_a_task_left_without_checks_or_named_files_is_not_salvaged() -> None:
    provider = ScriptedProvider(lambda messages: {"goal": GOAL, "tasks": [
        {"id": "t0", "role": "coder", "description": "do it", "deps": [], "accept": [BROKEN]}]})
    with pytest.raises(PlanInvalid, match="does not compile"):
        await make_plan(GOAL, provider, attempts=1)


async def test_other_problems_are_not_salvaged() -> None:
    bad = [BROKEN, FILE]
    provider = ScriptedProvider(lambda messages: {"goal": GOAL, "tasks": [
        {"id": "t0", "role": "coder", "description": "d", "deps": ["nope"], "accept": bad}]})
    with pytest.raises(PlanInvalid, match="unknown task"):
        await make_plan(GOAL, provider, attempts=1)


async def test_a_goal_naming_its_files_gets_one_task_that_must_produce_them() -> None:
    goal = "Read sales.csv and write report.md with the total"  # "csv" and "report" match templates too
    provider = ScriptedProvider(lambda messages: {"goal": goal, "tasks": [
        {"id": "t0", "role": "coder", "description": "do it", "deps": ["nope"], "accept": [FILE]}]})
    outcome = await make_plan(goal, provider, attempts=1)
    assert outcome.source == "goal:files-named"
    [task] = outcome.plan.tasks
    assert task.description == goal and [c.model_dump() for c in task.accept] == [
        {"kind": "file_exists", "path": "sales.csv"}, {"kind": "file_exists", "path": "report.md"}]


async def test_a_check_broken_only_by_a_semicolon_before_with_is_repaired_not_dropped() -> None:
    seen = {"kind": "command", "command": "python3 -c \"import csv; with open('adults.csv') as f: assert next(f)\""}
    outcome = await make_plan(GOAL, planner([seen]), attempts=1)
    assert outcome.source == "model" and outcome.repairs == ["/tasks/0/accept/0/command"] and not outcome.attempts
    check = outcome.plan.tasks[0].accept[0]
    assert check.kind == "command" and "import csv\nwith open" in check.command


FIB_CHECK = {"kind": "command", "command": "python3 -c \"from fib import fib; assert fib(10) == 55\""}


def fib_plan(goal: str, *extra: dict[str, Any]) -> ScriptedProvider:
    tasks = [{"id": "write_fib", "role": "coder", "description": "Write fib.py with fib(n)", "deps": [],
              "accept": [FIB_CHECK]}, *extra]
    return ScriptedProvider(lambda messages: {"goal": goal, "tasks": tasks})


TEST_TASK = {"id": "test_fib", "role": "runner", "description": "Test fib.py with pytest", "deps": ["write_fib"],
             "accept": [{"kind": "command", "command": "python3 -m pytest -q fib.py"}]}
TESTS_FILE = {"id": "unit", "role": "coder", "description": "Write unit tests in test_fib.py", "deps": [],
              "accept": [{"kind": "file_exists", "path": "test_fib.py"}]}
REPORT = {"id": "report", "role": "reporter", "description": "Write notes.txt saying fib.py is tested",
          "deps": ["test_fib"], "accept": [{"kind": "file_exists", "path": "notes.txt"},
                                           {"kind": "evaluator", "evaluator": "code", "threshold": 1.0,
                                            "params": {"command": "python3 -m pytest -q"}}]}


async def test_test_tasks_the_goal_did_not_ask_for_are_dropped() -> None:
    goal = "Write fib.py with a function fib(n) returning the n-th Fibonacci number."
    outcome = await make_plan(goal, fib_plan(goal, TEST_TASK, TESTS_FILE, REPORT), attempts=1)
    assert outcome.source == "model" and outcome.dropped == ["test_fib", "unit"]
    assert [t.id for t in outcome.plan.tasks] == ["write_fib", "report"]
    report = outcome.plan.tasks[1]
    assert report.deps == () and [c.kind for c in report.accept] == ["file_exists"]  # its pytest check went too


async def test_tests_stay_when_the_goal_asks_for_them_or_the_task_is_the_deliverable() -> None:
    goal = "Write fib.py with fib(n) and a pytest test for it."
    outcome = await make_plan(goal, fib_plan(goal, TEST_TASK, TESTS_FILE), attempts=1)
    assert outcome.dropped == [] and len(outcome.plan.tasks) == 3
    goal = "Write fib.py with fib(n)."
    only = {"id": "fib_and_test", "role": "coder", "description": "Write fib.py and test it", "deps": [],
            "accept": [FIB_CHECK]}
    outcome = await make_plan(goal, ScriptedProvider(lambda m: {"goal": goal, "tasks": [only]}), attempts=1)
    assert outcome.dropped == [] and [t.id for t in outcome.plan.tasks] == ["fib_and_test"]


async def test_the_models_budgets_are_not_the_runs_budgets() -> None:
    """Seen on the 1.5B: a plan with ``budget: {tokens: 100}`` denied its only task's first model call. Budgets
    are not in the schema the model gets, and any it sends anyway are dropped (the roles' defaults apply)."""
    from naestro.limits import Budget
    from nodes.planner import _plan_schema

    schema = _plan_schema()
    assert "budget" not in schema["properties"] and "Budget" not in schema["$defs"]
    assert "budget" not in schema["$defs"]["Task"]["properties"]
    task = {"id": "hello", "role": "coder", "description": "Write hello.py printing hello", "deps": [],
            "budget": {"tokens": 100, "wall_s": 5}, "accept": [{"kind": "file_exists", "path": "hello.py"}]}
    outcome = await make_plan("write hello.py printing hello",
                              ScriptedProvider(lambda m: {"tasks": [task], "budget": {"tokens": 100}}), attempts=1)
    assert outcome.source == "model" and outcome.plan.budget == Budget()
    assert outcome.plan.tasks[0].budget == Budget()
    assert outcome.repairs == ["/budget", "/tasks/0/budget"]


async def test_the_same_plan_twice_ends_the_attempts() -> None:
    """A model that returns the plan it was just told is invalid would return it a third time: the fallbacks
    come one call sooner. A changed plan keeps its attempts."""
    same = planner([BROKEN, FILE], [FILE])
    outcome = await make_plan(GOAL, same, attempts=3)
    assert same.model.calls == 2 and len(outcome.attempts) == 2
    assert outcome.source == "model:unusable-checks-dropped"
    n = iter(range(100))
    changing = ScriptedProvider(lambda m: {"tasks": [{"id": f"t{next(n)}", "role": "coder", "description": "write",
                                                      "deps": [], "accept": [BROKEN]}]})
    with pytest.raises(PlanInvalid):  # no plan validates, no file is named, no template matches
        await make_plan(GOAL, changing, attempts=3)
    assert changing.model.calls == 3
