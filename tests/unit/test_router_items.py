"""Routing items in other shapes (BFCL question + function, HumanEval task_id, chat messages) and the loaders'
errors; property tests for the loaders and the signals' example extraction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from naestro.cli import app
from naestro.errors import ConfigError, ConfigInvalid
from naestro.router.items import load_items
from naestro.router.replay import load_outcomes
from naestro.router.signals import docstring_examples, examples_program, logprob_stats, parse_results

BFCL = {"id": "simple_0", "question": [[{"role": "user",
                                         "content": "Find the area of a triangle with base 10 and height 5."}]],
        "function": [{"name": "calculate_triangle_area", "description": "Area of a triangle.",
                      "parameters": {"type": "dict", "properties": {"base": {"type": "integer"}},
                                     "required": ["base"]}}]}


def write(tmp_path: Path, rows: list[Any], name: str = "items.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_bfcl_question_and_function_become_the_prompt(tmp_path: Path) -> None:
    items = load_items(write(tmp_path, [BFCL]))
    text = items["simple_0"]
    assert text.startswith("user: Find the area of a triangle")
    assert '"name": "calculate_triangle_area"' in text and text.index("user:") < text.index("function:")


@pytest.mark.parametrize(("row", "key", "expected"), [
    ({"task_id": "HumanEval/0", "prompt": "def f():\n"}, "HumanEval/0", "def f():\n"),
    ({"id": 7, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]},
     "7", "system: be brief\nuser: hi"),
    ({"question_id": "q", "question": "plain text"}, "q", "plain text"),
    ({"id": "p", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                           {"type": "text", "text": "b"}]}]}, "p", "user: a\nb"),
    ({"id": "m", "question": [[{"role": "user", "content": "one"}], [{"role": "user", "content": "two"}]]},
     "m", "user: one\nuser: two"),
    ({"id": "t", "input": "x", "tools": [{"name": "f"}]}, "t", 'x\n\ntools: [{"name": "f"}]'),
])
def test_other_common_shapes(tmp_path: Path, row: dict[str, Any], key: str, expected: str) -> None:
    assert load_items(write(tmp_path, [row])) == {key: expected}


@pytest.mark.parametrize(("row", "field", "says"), [
    ({"id": "a"}, "prompt", "no item text: expected one of prompt, question, messages, input"),
    ({"prompt": "x"}, "id", "no item id"),
    ({"id": True, "prompt": "x"}, "id", "no item id"),
    ({"id": "a", "question": []}, "question", "non-empty list of chat turns"),
    ({"id": "a", "question": [["not a turn"]]}, "question.0.0", "a chat turn must be an object"),
    ({"id": "a", "messages": [{"role": "user"}]}, "messages.0.content", "needs content"),
    ({"id": "a", "prompt": ["x"]}, "prompt", "expected a string"),
    ({"id": "a", "prompt": "x", "function": "f"}, "function", "list of function definitions"),
])
def test_unknown_shapes_name_the_field(tmp_path: Path, row: dict[str, Any], field: str, says: str) -> None:
    p = write(tmp_path, [{"id": "ok", "prompt": "fine"}, row])
    with pytest.raises(ConfigInvalid) as info:
        load_items(p)
    err = info.value
    assert err.field == field and err.line == 2 and err.file == str(p) and says in str(err)
    assert "\n" not in str(err)


@pytest.mark.parametrize(("text", "says"), [("not json\n", "not JSON"), ("[1]\n", "must be a JSON object"),
                                            ("", "no items")])
def test_unparsable_items_files(tmp_path: Path, text: str, says: str) -> None:
    p = tmp_path / "items.jsonl"
    p.write_text(text)
    with pytest.raises(ConfigError, match=says):
        load_items(p)


def test_cli_reads_a_bfcl_items_file_and_names_the_field_of_an_unknown_one(tmp_path: Path) -> None:
    rows = [{**BFCL, "id": f"simple_{n}"} for n in range(8)]
    items = write(tmp_path, rows)
    outcomes = write(tmp_path, [{"id": r["id"], "model": m, "passed": (n + k) % 3 != 0, "prompt_tokens": 50,
                                 "completion_tokens": 10, "latency_s": 1.0 + 2 * k}
                                for n, r in enumerate(rows) for k, m in enumerate(("tiny", "huge"))],
                     "outcomes.jsonl")
    ok = CliRunner().invoke(app, ["bench", "routing", "--items", str(items), "--outcomes", str(outcomes), "--json",
                                  "--seeds", "2"])
    assert ok.exit_code == 0, ok.output
    assert "bandit" in [r["name"] for r in json.loads(ok.output)]
    bad = write(tmp_path, [{"id": "x", "query": "what?"}], "odd.jsonl")
    res = CliRunner().invoke(app, ["bench", "routing", "--items", str(bad), "--outcomes", str(outcomes)])
    assert res.exit_code == 2 and "odd.jsonl:1: prompt: no item text" in res.output and '"query"' in res.output


# -- properties ------------------------------------------------------------------------------------------------

ids = st.text(min_size=1, max_size=20)
texts = st.text(max_size=200)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3), max_leaves=8)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(st.dictionaries(ids, texts, min_size=1, max_size=8))
def test_prompt_items_round_trip(tmp_path: Path, rows: dict[str, str]) -> None:
    p = write(tmp_path, [{"id": k, "prompt": v} for k, v in rows.items()])
    assert load_items(p) == rows


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(ids, st.lists(st.tuples(st.sampled_from(["user", "assistant", "system"]), texts), min_size=1, max_size=4))
def test_every_chat_turn_reaches_the_prompt(tmp_path: Path, ident: str, turns: list[tuple[str, str]]) -> None:
    p = write(tmp_path, [{"id": ident, "question": [[{"role": r, "content": c} for r, c in turns]],
                          "function": [{"name": "f"}]}])
    text = load_items(p)[ident]
    assert all(f"{r}: {c}" in text for r, c in turns) and text.endswith('function: [{"name": "f"}]')


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=100)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_any_json_object_loads_or_fails_with_a_config_error(tmp_path: Path, row: dict[str, Any]) -> None:
    p = write(tmp_path, [row])
    try:
        items = load_items(p)
    except ConfigInvalid as exc:
        assert exc.line == 1 and exc.field and "\n" not in str(exc)
    else:
        assert len(items) == 1


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(st.dictionaries(st.sampled_from(["id", "model", "passed", "prompt_tokens", "completion_tokens",
                                        "latency_s", "signals", "completion"]), json_values, max_size=8))
def test_malformed_outcomes_fail_with_a_config_error(tmp_path: Path, row: dict[str, Any]) -> None:
    p = write(tmp_path, [row], "outcomes.jsonl")
    try:
        load_outcomes(p)
    except ConfigError as exc:
        assert exc.file == str(p) and "line 1" in str(exc)


def test_a_later_outcome_row_replaces_an_earlier_one(tmp_path: Path) -> None:
    base = {"id": "a", "model": "m", "prompt_tokens": 1, "completion_tokens": 1, "latency_s": 1.0}
    p = write(tmp_path, [{**base, "passed": False}, {**base, "passed": True,
                                                     "signals": {"examples_total": 1, "examples_passed": 1}}],
              "outcomes.jsonl")
    (only,) = load_outcomes(p)
    assert only.passed and only.signals is not None and only.signals.examples_ok


# -- signals -----------------------------------------------------------------------------------------------------

PROMPT = '''def add(a, b):
    """Add two numbers.
    >>> add(2, 3)
    5
    >>> add(-1, 1)
    0
    """
'''


def test_doctest_and_inline_examples() -> None:
    assert [(e.call, e.expected) for e in docstring_examples(PROMPT, "add")] == [("add(2, 3)", "5"),
                                                                                  ("add(-1, 1)", "0")]
    inline = 'def f(xs):\n    """\n    Examples:\n    * f([1, 2]) => 3\n    f([]) == 0\n    f([5]) ➞ 5\n' \
             '    For xs = [2] the output should be 2.\n    helper(1) == 2\n    """\n'
    assert [(e.call, e.expected) for e in docstring_examples(inline, "f")] == [
        ("f([1, 2])", "3"), ("f([])", "0"), ("f([5])", "5"), ("f([2])", "2")]
    assert docstring_examples('def g():\n    """No examples here."""\n', "g") == []


@given(st.text(max_size=300), st.sampled_from(["f", "add", "x_y"]))
def test_example_extraction_never_raises_and_only_calls_the_entry_point(doc: str, name: str) -> None:
    for e in docstring_examples(doc, name):
        assert e.call.startswith(name + "(")


def test_examples_program_marks_each_example() -> None:
    import subprocess
    import sys
    examples = docstring_examples(PROMPT, "add")
    right = subprocess.run([sys.executable, "-c", examples_program(PROMPT + "    return a + b\n", examples)],
                           capture_output=True, text=True, timeout=30)
    wrong = subprocess.run([sys.executable, "-c", examples_program(PROMPT + "    return 5\n", examples)],
                           capture_output=True, text=True, timeout=30)
    assert [ok for ok, _ in parse_results(right.stdout, 2)] == [True, True]
    assert parse_results(wrong.stdout, 2) == [(True, "5"), (False, "5")]
    assert parse_results("Traceback ...", 2) == [(False, "no result")] * 2


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=20))
@example([-8.988465674311579e307, -8.98846567431158e307])  # their sum overflowed to -inf (found in CI pre-run)
def test_logprob_stats_are_never_positive(values: list[float]) -> None:
    mean, low = logprob_stats(values)
    assert (mean is None) == (low is None)
    if mean is not None and low is not None:
        assert low <= mean + 1e-9 <= 1e-9
