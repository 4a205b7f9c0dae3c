from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from naestro.cli import app
from naestro.validate import plan_problems

CHECK = [{"kind": "file_exists", "path": "x"}]


def task(tid: str, **kw: object) -> dict[str, object]:
    return {"id": tid, "role": "coder", "description": f"do {tid}", "accept": CHECK, **kw}


def lines(raw: object) -> list[str]:
    return [str(p) for p in plan_problems(raw)]  # type: ignore[arg-type]


def test_valid_plan_has_no_problems() -> None:
    assert lines({"goal": "g", "tasks": [task("a"), task("b", deps=["a"])]}) == []


def test_cycle_is_named() -> None:
    out = lines({"goal": "g", "tasks": [task("a", deps=["c"]), task("b", deps=["a"]), task("c", deps=["b"])]})
    assert len(out) == 1
    assert out[0].startswith("/tasks/") and "cycle:" in out[0]
    assert all(n in out[0] for n in ("a", "b", "c"))


def test_unknown_dep_and_self_dep() -> None:
    out = lines({"goal": "g", "tasks": [task("a", deps=["zz", "a"])]})
    assert "/tasks/0/deps/0: unknown task 'zz' (known: a)" in out
    assert "/tasks/0/deps/1: task 'a' depends on itself" in out


def test_duplicate_ids_and_unknown_role() -> None:
    out = lines({"goal": "g", "tasks": [task("a"), {**task("a"), "role": "wizard"}]})
    assert any(o.startswith("/tasks/1/id: duplicate task id 'a'") for o in out)
    assert any(o.startswith("/tasks/1/role:") for o in out)


def test_io_contract_must_connect() -> None:
    up = task("a", outputs={"n": {"schema": {"type": "integer"}}})
    out = lines({"goal": "g", "tasks": [up, task("b", inputs={"x": {"from": "a.n"}})]})
    assert out == ["/tasks/1/inputs/x/from: 'a.n': task 'a' is not a dependency of 'b'; add it to deps"]
    out = lines({"goal": "g", "tasks": [up, task("b", deps=["a"], inputs={"x": {"from": "a.m"}})]})
    assert out == ["/tasks/1/inputs/x/from: 'a.m': task 'a' declares no output 'm' (declared: n)"]
    out = lines({"goal": "g", "tasks": [up, task("b", deps=["a"], inputs={"x": {"from": "a.n",
                                                                             "schema": {"type": "string"}}})]})
    assert out == ["/tasks/1/inputs/x/schema/type: expects type 'string' but the output has type 'integer'"]
    bad_schema = task("a", outputs={"n": {"schema": {"type": 12}}})
    assert lines({"goal": "g", "tasks": [bad_schema]})[0].startswith("/tasks/0/outputs/n/schema: not a valid JSON")


def test_budget_above_ceiling() -> None:
    out = lines({"goal": "g", "budget": {"tokens": 100}, "tasks": [task("a", budget={"tokens": 500})]})
    assert out == ["/tasks/0/budget/tokens: 500 exceeds the plan ceiling budget.tokens = 100"]


def test_check_needs_kind_and_fields() -> None:
    out = lines({"goal": "g", "tasks": [task("a", accept=[{"kind": "regex"}])]})
    assert out == ["/tasks/0/accept/0: missing required field 'pattern'"]  # the pointer resolves


@pytest.mark.parametrize("check", [{"kind": "regex", "pattern": ".* PASS.*"},
                                   {"kind": "json_schema", "schema": {"type": "object"}}])
def test_a_check_that_reads_nothing_is_a_plan_problem(check: dict[str, object]) -> None:
    # issue-22 slice: a Runner task's regex check without file or output failed at run time, on passing tests
    out = lines({"goal": "g", "tasks": [task("a", accept=[{"kind": "file_exists", "path": "x"}, check])]})
    assert out == [f"/tasks/0/accept/1: a {check['kind']} check needs `file` (a workspace file it reads) or "
                   "`output` (one of the task's outputs); to check a command's output, use a command check"]
    assert lines({"goal": "g", "tasks": [task("a", accept=[{**check, "file": "x.txt"}])]}) == []


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"goal": "g", "tasks": [task("a")]}))
    assert runner.invoke(app, ["validate", str(good)]).exit_code == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"goal": "g", "tasks": [task("a", deps=["b"]), task("b", deps=["a", "q"])]}))
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    out = res.stderr.strip().splitlines()
    assert len(out) == 2 and all(line.startswith("/tasks/") for line in out)
    broken = tmp_path / "broken.json"
    broken.write_text('{"goal": "g", "tasks": [')
    res = runner.invoke(app, ["validate", str(broken)])
    assert res.exit_code == 2
    assert res.stderr.startswith(": malformed JSON at line 1")


@pytest.mark.parametrize("raw", [None, 3, "x", [], {"tasks": "nope"}, {"tasks": [1, None, {"deps": 5}]}])
def test_garbage_is_reported_not_raised(raw: object) -> None:
    assert lines(raw)
