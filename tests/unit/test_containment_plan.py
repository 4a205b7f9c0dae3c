"""Issue 14: hostile plan files are contained: exit 2, one ``pointer: message`` line per problem, no traceback.

Each test here failed before the fix: UnicodeDecodeError, RecursionError, ValueError and OverflowError tracebacks,
minutes of CPU on a 10 MB file, or a malformed plan accepted (tool arguments never checked, ``1e999`` read as
infinity, NUL bytes in the goal).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from naestro import plan_checks, validate
from naestro.cli import app
from naestro.errors import PlanInvalid, PlanProblem
from naestro.plan import Plan
from naestro.validate import parse_plan_text, plan_problems
from tests.conftest import REPO

CHECK = [{"kind": "file_exists", "path": "x"}]
LINE = re.compile(r"^(/[^\n]*)?: [^\n]+$")  # `pointer: message`; "" points at the whole document


def task(tid: str, **kw: object) -> dict[str, object]:
    return {"id": tid, "role": "coder", "description": f"do {tid}", "accept": CHECK, **kw}


def plan(*tasks: dict[str, object], **top: object) -> dict[str, object]:
    return {"goal": "g", "tasks": list(tasks), **top}


def problems(raw: object, **kw: object) -> list[str]:
    return [str(p) for p in plan_problems(raw, **kw)]  # type: ignore[arg-type]


def write(tmp_path: Path, text: str | bytes, name: str = "plan.json") -> Path:
    f = tmp_path / name
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    return f


def cli(path: Path) -> list[str]:
    """`naestro validate PATH` must exit 2 with one `pointer: message` line per problem and no traceback."""
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.stderr
    out = res.stderr.splitlines()
    assert out and all(LINE.match(line) for line in out), out
    return out


def resolve(doc: object, ptr: str) -> object:
    """RFC 6901; raises LookupError when the pointer does not resolve in ``doc``."""
    if ptr == "":
        return doc
    assert ptr.startswith("/"), ptr
    for raw in ptr[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict):
            doc = doc[part]
        elif isinstance(doc, list):
            if not re.fullmatch(r"0|[1-9][0-9]*", part):
                raise LookupError(f"{part!r} is not an array index in {ptr}")
            doc = doc[int(part)]
        else:
            raise LookupError(f"{ptr}: {part!r} goes into a scalar")
    return doc


# 1. Non-UTF-8 files ------------------------------------------------------------------------------------------------

def test_non_utf8_file_is_a_typed_error_naming_the_file_and_byte_offset(tmp_path: Path) -> None:
    data = b'{"goal": "caf\xe9", "tasks": []}'
    f = write(tmp_path, data, "latin1.json")
    with pytest.raises(PlanInvalid) as info:
        validate.load_plan_file(f)
    [problem] = info.value.problems
    assert problem.pointer == ""
    offset = data.index(b"\xe9")
    assert str(f) in problem.message and f"byte offset {offset}" in problem.message


def test_plan_file_that_cannot_be_read_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(PlanInvalid) as info:
        validate.load_plan_file(tmp_path / "missing.json")
    assert info.value.problems[0].pointer == "" and "cannot read" in info.value.problems[0].message


def test_cli_non_utf8_exits_2(tmp_path: Path) -> None:
    [line] = cli(write(tmp_path, b'{"goal": "caf\xe9", "tasks": []}'))
    assert line.startswith(": ") and "UTF-8" in line


# 2. Nesting and long dependency chains -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"goal": "g", "tasks": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001])
def test_deep_nesting_is_refused_before_parsing(tmp_path: Path, text: str) -> None:
    [line] = cli(write(tmp_path, text))
    assert line.startswith(": ") and f"at most {validate.MAX_DEPTH}" in line


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps(plan(task("a", instructions="[{" * 5_000 + '\\"]')))
    assert parse_plan_text(text).tasks[0].instructions.startswith("[{[{")


def test_five_thousand_task_cycle_is_one_problem_not_a_recursion_error(tmp_path: Path) -> None:
    n = 5_000
    tasks = [task(f"t{i}", deps=[f"t{(i - 1) % n}"]) for i in range(n)]
    [line] = cli(write(tmp_path, json.dumps(plan(*tasks))))
    assert line.startswith(f"/tasks: {n} tasks") and "at most 500" in line


@contextmanager
def shallow_stack(headroom: int) -> Iterator[None]:
    """Only ``headroom`` frames above the caller: a recursive graph walk over a long chain raises RecursionError."""
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + headroom)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def test_cycle_search_and_ancestors_do_not_recurse() -> None:
    n = 500
    chain = [task(f"t{i}", deps=[f"t{i - 1}"] if i else [f"t{n - 1}"],
                  outputs={"v": {"schema": {"type": "string"}}},
                  inputs={"up": {"from": f"t{i - 1}.v"}} if i else {}) for i in range(n)]
    with shallow_stack(200):
        out = plan_problems(plan(*chain))  # type: ignore[arg-type]
    assert len(out) == 1 and out[0].message.startswith("cycle: t1 → t2 → ") and out[0].message.endswith("(500 tasks)")


def test_inputs_from_far_ancestors_are_found_without_recursion() -> None:
    n = 400
    chain = [task(f"t{i}", deps=[f"t{i - 1}"] if i else [], outputs={"v": {}}) for i in range(n)]
    far = task("last", deps=[f"t{n - 1}"], inputs={"a": {"from": "t0.v"}, "b": {"from": "side.v"}})
    with shallow_stack(200):
        out = problems(plan(*chain, task("side", outputs={"v": {}}), far))
    assert out == ["/tasks/401/inputs/b/from: 'side.v': task 'side' is not a dependency of 'last'; add it to deps"]


def test_json_schema_checking_has_a_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 2020-12 metaschema check costs milliseconds per object: 500 schemas nested 55 deep took 70 s."""
    monkeypatch.setattr(plan_checks, "MAX_SCHEMA_OBJECTS", 5)
    same = {"type": "object", "properties": {"a": {"type": "string"}}}
    outputs = {f"o{k}": {"schema": same} for k in range(50)}  # one distinct schema: checked once
    assert problems(plan(task("a", outputs=outputs))) == []
    outputs = {f"o{k}": {"schema": {**same, "title": str(k)}} for k in range(50)}
    [out] = plan_problems(plan(task("a", outputs=outputs)))  # type: ignore[arg-type]
    assert out.pointer == "/tasks/0/outputs/o1/schema" and "more than 5 objects" in out.message  # 3 objects each


# 3. Integers past Python's int-str limit, and merely huge integers ------------------------------------------------

def test_integer_past_the_int_str_limit_is_a_problem_at_its_pointer(tmp_path: Path) -> None:
    text = json.dumps(plan(task("a"), budget={"tokens": 7})).replace('"tokens": 7', '"tokens": ' + "9" * 5_000)
    [line] = cli(write(tmp_path, text))
    assert line.startswith("/budget/tokens: ") and "5000 digits" in line


def test_huge_integers_in_budgets_are_problems_not_overflow_errors() -> None:
    out = plan_problems(plan(task("a", budget={"tokens": 10**400, "usd": 10**400}),  # type: ignore[arg-type]
                             budget={"tokens": 100}))
    assert {p.pointer for p in out} == {"/tasks/0/budget/tokens", "/tasks/0/budget/usd"}
    assert all("\n" not in str(p) and len(str(p)) < 200 for p in out)


# 4. Size and task count --------------------------------------------------------------------------------------------

def test_ten_megabytes_of_nulls_is_refused_before_parsing(tmp_path: Path) -> None:
    f = write(tmp_path, '{"goal": "g", "tasks": [' + ",".join(["null"] * 2_100_000) + "]}")
    assert f.stat().st_size > 10_000_000
    # Before the fix this ran for minutes at gigabytes of RSS; the timeout only keeps a regression from hanging CI.
    done = subprocess.run([sys.executable, "-m", "naestro", "validate", str(f)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(": ") and f"{validate.MAX_PLAN_BYTES:,}" in line


def test_file_size_cap_reads_no_more_than_the_limit(tmp_path: Path) -> None:
    f = write(tmp_path, json.dumps(plan(task("a"))))
    assert validate.load_plan_file(f).tasks[0].id == "a"
    with pytest.raises(PlanInvalid) as info:
        validate.load_plan_file(f, max_bytes=f.stat().st_size - 1)
    [problem] = info.value.problems
    assert problem.pointer == "" and str(f) in problem.message and "split" in problem.message


def test_task_count_is_capped_with_a_pointer(tmp_path: Path) -> None:
    tasks = [task(f"t{i}") for i in range(501)]
    assert cli(write(tmp_path, json.dumps(plan(*tasks)))) == [
        "/tasks: 501 tasks; a plan has at most 500 (split the goal into several plans)"]
    assert plan_problems(plan(*tasks[:500])) == []  # type: ignore[arg-type]


def test_problem_list_is_capped() -> None:
    out = plan_problems(plan(task("a", deps=[f"nope{i}" for i in range(1_000)])))  # type: ignore[arg-type]
    assert len(out) == validate.MAX_PROBLEMS + 1
    assert out[-1].pointer == "" and "more problem" in out[-1].message


# 5. Direct-action arguments against the tool's input schema --------------------------------------------------------

def direct(tool: str, **arguments: object) -> dict[str, object]:
    return plan(task("w", action={"tool": tool, "arguments": arguments}))


def test_direct_action_with_good_arguments_is_valid() -> None:
    assert problems(direct("fs.write", path="a.txt", content="hi")) == []
    assert problems(direct("exec.run", command=["python3", "t.py"], timeout_s=5)) == []
    assert problems(direct("db.query", sql="select 1", params=[1, "a"])) == []


def test_direct_action_arguments_are_checked_at_their_pointers(tmp_path: Path) -> None:
    out = problems(direct("fs.write", path="a.txt", content=True))
    assert len(out) == 1 and out[0].startswith("/tasks/0/action/arguments/content: ")
    assert problems(direct("fs.write", content="x")) == [
        "/tasks/0/action/arguments: missing required argument 'path'"]
    [unknown] = problems(direct("fs.write", path="a", content="x", mode="w"))
    assert unknown.startswith("/tasks/0/action/arguments/mode: unknown argument 'mode'") and "content, path" in unknown
    [line] = cli(write(tmp_path, json.dumps(direct("fs.write", path="a.txt", content=True))))
    assert line.startswith("/tasks/0/action/arguments/content: ")


def test_unknown_builtin_tool_names_the_known_tools() -> None:
    [out] = plan_problems(direct("fs.wrte", path="a"))  # type: ignore[arg-type]
    assert out.pointer == "/tasks/0/action/tool" and "fs.write" in out.message and "fs.read" in out.message


def test_external_server_tools_are_checked_at_run_time_unless_the_servers_are_known() -> None:
    # A tools.yaml server's schemas are only known once it runs; resumed runs re-read such plans without it.
    assert problems(direct("calc.add", a=2, b=3)) == []
    assert problems(direct("calc.add", a=2, b=3), external_servers=["calc"]) == []
    [out] = plan_problems(direct("calc.add", a=2), external_servers=[])  # type: ignore[arg-type]
    assert out.pointer == "/tasks/0/action/tool" and "tools.yaml" in out.message and "fs.write" in out.message


def test_tool_catalogue_is_the_servers_live_schemas() -> None:
    """The catalogue is read from the FastMCP tool signatures, so it cannot drift from the servers."""
    from naestro.tools import builtin_input_schemas

    schemas = builtin_input_schemas()
    assert {"fs.write", "exec.run", "db.query", "web.fetch", "web.search", "git.commit", "pdf.text"} <= set(schemas)
    assert schemas["fs.write"]["required"] == ["path", "content"]


# 6. Non-finite numbers and control characters ----------------------------------------------------------------------

@pytest.mark.parametrize(("field", "literal"), [("usd", "1e999"), ("usd", "-1e999"), ("wall_s", "Infinity"),
                                                 ("wall_s", "NaN"), ("tokens", "-Infinity")])
def test_non_finite_numbers_are_refused(tmp_path: Path, field: str, literal: str) -> None:
    text = json.dumps(plan(task("a"), budget={field: 7})).replace(f'"{field}": 7', f'"{field}": {literal}')
    assert cli(write(tmp_path, text)) == [f"/budget/{field}: not a finite number ({literal}); give a finite value "
                                          "or leave the field out"]


def test_non_finite_numbers_are_refused_from_python_too() -> None:
    with pytest.raises(ValueError, match="finite"):
        Plan.model_validate(plan(task("a"), budget={"usd": math.inf}))
    out = plan_problems(direct("exec.run", command="true", timeout_s=math.nan))  # type: ignore[arg-type]
    assert [p.pointer for p in out] == ["/tasks/0/action/arguments/timeout_s"]


@pytest.mark.parametrize(("where", "bad"), [("/goal", "\x00"), ("/tasks/0/description", "\x1b[2J"),
                                            ("/tasks/0/instructions", "\r"), ("/goal", "\x7f"), ("/goal", "\x9b")])
def test_control_characters_in_goal_and_task_text(tmp_path: Path, where: str, bad: str) -> None:
    doc = plan(task("a", instructions="ok"))
    parent, field = where.rsplit("/", 1)
    holder = resolve(doc, parent)
    assert isinstance(holder, dict)
    holder[field] = f"x{bad}y"
    [line] = cli(write(tmp_path, json.dumps(doc)))
    assert line.startswith(f"{where}: ") and f"U+{ord(bad[0]):04X}" in line


def test_newline_and_tab_are_fine_in_text() -> None:
    assert problems(plan(task("a", instructions="one\n\ttwo"), goal="a\tb\nc")) == []
    # The same rule, for entry points that take a goal before any plan exists (`naestro run GOAL`).
    from naestro.plan import text_problem

    assert text_problem("a\tb\nc") is None
    assert text_problem("ok\x00") == "control character U+0000 at offset 2; only newline and tab are allowed"


def test_lone_surrogates_and_control_characters_in_keys_are_problems(tmp_path: Path) -> None:
    [line] = cli(write(tmp_path, '{"goal": "\\ud800", "tasks": [{"id": "a"}]}'))
    assert line.startswith("/goal: ") and "surrogate" in line
    out = plan_problems(plan(task("a", outputs={"x\ny": {}})))  # type: ignore[arg-type]
    assert [p.pointer for p in out] == ["/tasks/0/outputs"]
    assert "\n" not in str(out[0])


def test_command_check_too_deep_to_compile_is_a_problem() -> None:
    code = "-" * 100_000 + "1"
    out = plan_problems(plan(task("a", accept=[{"kind": "command", "command": f"python3 -c '{code}'"}])))  # type: ignore[arg-type]
    assert [p.pointer for p in out] == ["/tasks/0/accept/0/command"]


# 7. Messages: one line each, at pointers that resolve --------------------------------------------------------------

def test_missing_field_is_reported_at_its_parent() -> None:
    assert problems(plan(task("a", accept=[{"kind": "regex"}]))) == [
        "/tasks/0/accept/0: missing required field 'pattern'"]
    assert problems({"tasks": [task("a")]}) == [": missing required field 'goal'"]


JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**301)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6)
    | st.sampled_from(["\x00", "\ud800", "\x1b[2J", "a\nb", "fs.write", "t0", "t0.v", "[[[", "~/x"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=4) | st.sampled_from(["id", "deps", "tool", "arguments", "path", "from", "schema", "a/b",
                                              "m~n", "kind", "x\ny"]), inner, max_size=4),
    max_leaves=12)


def base_plan() -> dict[str, object]:
    return json.loads(json.dumps({"goal": "g", "budget": {"tokens": 1000, "usd": 1.5, "wall_s": 60},
            "tasks": [task("t0", outputs={"v": {"schema": {"type": "string"}}},
                           action={"tool": "fs.write", "arguments": {"path": "a.txt", "content": "hi"}}),
                      task("t1", deps=["t0"], inputs={"up": {"from": "t0.v"}}, budget={"tokens": 10},
                           accept=[{"kind": "regex", "output": "up", "pattern": "h"},
                                   {"kind": "command", "command": "python3 -c 'print(1)'"},
                                   {"kind": "evaluator", "evaluator": "slo", "threshold": 1,
                                    "params": {"tokens": 9}}])]}))  # a fresh copy: mutated_plans changes it


def paths(doc: object, at: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [at]
    if isinstance(doc, dict):
        found += [p for k, v in doc.items() for p in paths(v, (*at, k))]
    elif isinstance(doc, list):
        found += [p for i, v in enumerate(doc) for p in paths(v, (*at, i))]
    return found


@st.composite
def mutated_plans(draw: st.DrawFn) -> object:
    """A valid plan with junk put in, keys dropped or added anywhere: what a careless or hostile author writes."""
    doc: object = base_plan()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        where = draw(st.sampled_from(paths(doc)))
        junk = draw(JUNK)
        if not where:
            doc = junk
            continue
        holder = doc
        for part in where[:-1]:
            holder = holder[part]  # type: ignore[index]
        how = draw(st.sampled_from(["replace", "drop", "add"]))
        if how == "drop" and isinstance(holder, dict):
            holder.pop(where[-1])
        elif how == "add" and isinstance(holder, dict):
            holder[draw(st.text(max_size=3) | st.sampled_from(["x\x00", "\udfff", "a/b"]))] = junk
        else:
            holder[where[-1]] = junk  # type: ignore[index]
    return doc


def assert_well_formed(found: list[PlanProblem], doc: object) -> None:
    for p in found:
        resolve(doc, p.pointer)  # raises when the pointer does not resolve in the document
        assert LINE.match(str(p)), repr(str(p))
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]", str(p)), repr(str(p))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_plans())
def test_every_problem_is_one_line_at_a_pointer_that_resolves(doc: object) -> None:
    assert_well_formed(plan_problems(doc), doc)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_plans())
def test_any_text_of_a_mutated_plan_parses_or_is_plan_invalid(doc: object) -> None:
    text = json.dumps(doc, allow_nan=True)
    try:
        parse_plan_text(text)
    except PlanInvalid as exc:
        assert_well_formed(exc.problems, doc)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet='[]{}",:0123456789eE.-+ntrufalsN\\Iy\x00', max_size=300).map(
    lambda s: s.encode("utf-8", "surrogatepass")))
def test_random_bytes_only_raise_plan_invalid(data: bytes) -> None:
    try:
        validate.parse_plan_bytes(data, source="fuzz")
    except PlanInvalid as exc:
        assert exc.problems and all(LINE.match(str(p)) for p in exc.problems)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=20_000), st.sampled_from([("[", "]"), ('{"a": ', "}"), ('[{"k": ', "}]")]),
       st.text(alphabet='[]{}"\\1,:', max_size=40))
def test_random_nesting_only_raises_plan_invalid(depth: int, brackets: tuple[str, str], junk: str) -> None:
    opener, closer = brackets
    with pytest.raises(PlanInvalid):
        parse_plan_text(opener * depth + junk + closer * depth)


def test_a_goal_with_a_control_character_is_refused_before_any_run_exists(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = CliRunner().invoke(app, ["run", "x\x1b[2Jy", "--json"], env={"NAESTRO_HOME": str(home)})
    assert res.exit_code == 2, (res.output, res.exception)
    assert "control character U+001B" in res.output and "Traceback" not in res.output
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
