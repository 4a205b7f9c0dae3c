"""Missing producer dependencies (nodes/producer_deps.py): the issue-22 slice's plan whose ``run_tests`` ran
beside the tasks writing the files it tests, the cases that must stay unchanged, and a property: the repair only
adds deps and never makes a plan invalid (no cycle, no unknown id)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from naestro.validate import plan_problems
from nodes.producer_deps import with_producer_deps


def task(tid: str, description: str, command: str, deps: list[str] | None = None) -> dict[str, Any]:
    return {"id": tid, "role": "coder", "description": description, "deps": deps or [],
            "accept": [{"kind": "command", "command": command}]}


SLICE_PLAN = {"goal": "calc", "tasks": [
    task("write_calc", "Write calc.py with the add function",
         "python3 -c \"from calc import add; assert add(2, 3) == 5\""),
    task("write_test_calc", "Write test_calc.py with the add function tests", "python3 -m pytest test_calc.py"),
    {**task("run_tests", "Run pytest to make the tests pass", "python3 -m pytest test_calc.py"), "role": "runner"}]}


def test_the_slice_plan_gets_its_missing_deps() -> None:
    repaired, changed = with_producer_deps(SLICE_PLAN)
    deps = {t["id"]: t["deps"] for t in repaired["tasks"]}
    # test_calc.py tests calc.py: both the test writer and the runner wait for the module, the runner for the tests
    assert deps == {"write_calc": [], "write_test_calc": ["write_calc"], "run_tests": ["write_test_calc"]}
    assert changed == ["/tasks/1/deps", "/tasks/2/deps"] and plan_problems(repaired) == []
    assert with_producer_deps(repaired) == (repaired, [])  # idempotent: run_tests follows write_calc already


def test_plans_that_need_nothing_stay_as_they_are() -> None:
    independent = {"goal": "g", "tasks": [task("a", "Write a.py", "python3 a.py"),
                                          task("b", "Write b.py", "python3 b.py")]}
    assert with_producer_deps(independent) == (independent, [])
    reader = {"goal": "g", "tasks": [task("sum", "Read orders.csv and write total.txt", "grep -q 1 total.txt")]}
    assert with_producer_deps(reader) == (reader, [])  # nobody writes orders.csv: an input
    # the reverse dependency exists already: adding one would close a cycle
    cycle = {"goal": "g", "tasks": [task("a", "Write a.txt", "grep -q x b.txt", deps=["b"]),
                                    task("b", "Write b.txt", "grep -q x b.txt")]}
    repaired, changed = with_producer_deps(cycle)
    assert changed == [] and plan_problems(repaired) == []


FILES = st.sampled_from(["a.py", "test_a.py", "b.csv", "report.md", "c.py"])


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(min_value=1, max_value=5))
    tasks = []
    for i in range(n):
        deps = draw(st.lists(st.sampled_from([f"t{j}" for j in range(i)]), unique=True)) if i else []
        verb = draw(st.sampled_from(["Write", "Check", "Create", "Run"]))
        tasks.append(task(f"t{i}", f"{verb} {draw(FILES)}", f"python3 -m pytest {draw(FILES)}", deps))
    return {"goal": "g", "tasks": tasks}


@given(plans())
def test_the_repair_only_adds_deps_and_keeps_the_plan_valid(plan: dict[str, Any]) -> None:
    assert plan_problems(plan) == []
    repaired, changed = with_producer_deps(plan)
    assert plan_problems(repaired) == []
    for before, after in zip(plan["tasks"], repaired["tasks"], strict=True):
        assert after["deps"][:len(before["deps"])] == before["deps"]
        assert {k: v for k, v in after.items() if k != "deps"} == {k: v for k, v in before.items() if k != "deps"}
    assert len(changed) == sum(a["deps"] != b["deps"] for a, b in zip(plan["tasks"], repaired["tasks"], strict=True))
