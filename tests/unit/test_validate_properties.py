"""Property tests: random DAGs validate; one back edge makes exactly the cycle the validator names."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from naestro.validate import plan_problems

CHECK = [{"kind": "file_exists", "path": "x"}]


@st.composite
def dags(draw: st.DrawFn) -> list[dict[str, object]]:
    n = draw(st.integers(min_value=1, max_value=12))
    tasks = []
    for i in range(n):
        deps = draw(st.lists(st.integers(min_value=0, max_value=i - 1), unique=True, max_size=3)) if i else []
        tasks.append({"id": f"t{i}", "role": "coder", "description": "d", "deps": [f"t{d}" for d in deps],
                      "accept": CHECK})
    return tasks


@given(dags())
def test_any_dag_is_valid(tasks: list[dict[str, object]]) -> None:
    assert plan_problems({"goal": "g", "tasks": tasks}) == []


@given(dags(), st.data())
def test_back_edge_is_a_named_cycle(tasks: list[dict[str, object]], data: st.DataObject) -> None:
    n = len(tasks)
    if n < 2:
        return
    lo = data.draw(st.integers(min_value=0, max_value=n - 2))
    hi = data.draw(st.integers(min_value=lo + 1, max_value=n - 1))
    # make hi depend on lo (forward) and lo depend on hi (back edge) → a cycle through both
    hi_deps = list(tasks[hi]["deps"])  # type: ignore[arg-type]
    tasks[hi] = {**tasks[hi], "deps": sorted(set(hi_deps) | {f"t{lo}"})}
    tasks[lo] = {**tasks[lo], "deps": [*tasks[lo]["deps"], f"t{hi}"]}  # type: ignore[misc]
    problems = [str(p) for p in plan_problems({"goal": "g", "tasks": tasks})]
    cycles = [p for p in problems if "cycle:" in p]
    assert cycles, problems
    assert all("cycle:" in p for p in problems)
    assert any(f"t{lo}" in c and f"t{hi}" in c for c in cycles)


@settings(max_examples=200)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
                        ["goal", "tasks", "id", "deps", "role", "accept", "budget", "inputs", "outputs"]),
                        inner, max_size=5), max_leaves=20))
def test_arbitrary_json_never_crashes(raw: object) -> None:
    for p in plan_problems(raw):  # type: ignore[arg-type]
        assert p.pointer == "" or p.pointer.startswith("/")
