"""The goal's own requirements, read from its words (issue 22): examples from real runs, and properties."""

from __future__ import annotations

import re
import string
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from naestro.plan import RegexCheck
from nodes.goal_checks import _exact, _unchanged, planned_goal_checks
from nodes.goal_helper import helper_requirements
from nodes.goal_requirements import (
    GoalRequirement,
    derive_requirements,
    described_inputs,
    files_named,
    kept_unchanged,
    stated_contents,
    validated,
)
from nodes.goal_task_checks import task_checks
from tests.fakes import ScriptedProvider

INPUTS = {"sales.csv", "people.json", "calc.py", "test_calc.py"}


def exists(name: str) -> bool:
    return name in INPUTS


def kinds(goal: str) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r.kind, r.file, r.items) for r in derive_requirements(goal, exists=exists)]


def test_code_and_tests_goal_asks_for_both_files_and_passing_tests() -> None:
    goal = "write function add in a.py, add pytest tests in test_a.py, and make the tests pass"
    assert kinds(goal) == [("file", "a.py", ()), ("file", "test_a.py", ()), ("tests", "", ("test_a.py",))]
    [tests] = [r for r in derive_requirements(goal, exists=exists) if r.kind == "tests"]
    assert tests.exercises == ("a.py",)  # the tests must fail without the code they are for


def test_tests_of_a_file_to_fix_must_exercise_it_and_conftest_is_not_code() -> None:
    goal = "fix median.py so that test_median.py passes; keep conftest.py"
    [tests] = [r for r in derive_requirements(goal, exists=lambda n: True) if r.kind == "tests"]
    assert tests.items == ("test_median.py",) and tests.exercises == ("median.py",)


def test_inputs_are_not_deliverables_and_their_columns_ask_nothing() -> None:
    goal = ("sales.csv has columns region,amount. Write totals.csv with the header region,total and one row per "
            "region giving the sum of amount for that region.")
    assert kinds(goal) == [("file", "totals.csv", ()), ("columns", "totals.csv", ("region", "total"))]


def test_report_stating_a_quantity_must_state_a_number() -> None:
    goal = ("Read sales.csv (columns region,amount) and write report.md: a short Markdown report stating the total "
            "amount of all sales and the number of sales.")
    reqs = derive_requirements(goal, exists=exists)
    assert [(r.kind, r.file, r.quantity) for r in reqs] == [("file", "report.md", False), ("states", "report.md", True)]


def test_json_keys_and_quoted_text_and_lists_with_and() -> None:
    assert kinds("From sales.csv write totals.json with keys north, south and east.") == [
        ("file", "totals.json", ()), ("keys", "totals.json", ("north", "south", "east"))]
    assert kinds('Write notes.txt containing "hello world".') == [
        ("file", "notes.txt", ()), ("states", "notes.txt", ("hello world",))]
    assert kinds("Create out.csv with columns name, age and city.")[1] == (
        "columns", "out.csv", ("name", "age", "city"))


def test_a_verb_belongs_to_the_file_named_before_it() -> None:
    goal = ("Write big.csv containing only the orders over 100, and write report.md stating how many orders that is. "
            "Write stats.json with the keys mean, max and count (the mean, the highest and the number).")
    reqs = derive_requirements(goal, exists=exists)
    assert [(r.kind, r.file, r.items, r.words) for r in reqs if r.kind in ("states", "keys")] == [
        ("states", "report.md", (), "stating how many orders that is."),
        ("keys", "stats.json", ("mean", "max", "count"), "keys mean, max, count")]


def test_tests_of_an_existing_test_file_and_nothing_from_vague_words() -> None:
    assert kinds("Fix calc.py so that test_calc.py passes") == [("tests", "", ("test_calc.py",))]
    assert kinds("Fix calc.py so that the tests pass") == [("tests", "", ())]
    assert kinds("Write fib.py. Don't write tests.") == [("file", "fib.py", ())]
    # a deleted file is not a deliverable; a column "per region" is not a column list
    assert kinds("Delete old.txt and write new.txt with a column per region") == [("file", "new.txt", ())]
    assert kinds("Write a JSON file with keys a, b") == []  # no file named: nothing to attach the keys to


def test_names_with_paths_and_sentence_ends() -> None:
    assert files_named("Write out/a.py. Then ./b.json, not /etc/passwd.txt or ../x.md or a.py.bak") == [
        "out/a.py", "b.json"]


def test_a_proposal_is_kept_only_where_the_goal_backs_it() -> None:
    goal = "Write totals.csv with the totals per region"
    kept, refused = validated(goal, [
        GoalRequirement(kind="file", file="totals.csv"),
        GoalRequirement(kind="file", file="summary.json"),
        GoalRequirement(kind="columns", file="totals.csv", items=("region", "total")),
        GoalRequirement(kind="columns", file="totals.csv", items=("region", "sum")),
        GoalRequirement(kind="tests"),
    ], exists=exists)
    assert [(r.kind, r.items) for r in kept] == [("file", ()), ("columns", ("region", "total"))]
    assert len(refused) == 3 and "summary.json is not a file the goal asks for" in refused[0]


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}\.(py|csv|json|md|txt|yaml)", fullmatch=True)
TEMPLATES = ["Write {f}.", "Create {f} with the result", "read the input and save it to {f}, then stop",
             "make {f}: a short file", "Put the answer in ({f}) please", "Update `{f}` so it works",
             "First {f}\nthen more"]


@given(NAMES, st.sampled_from(TEMPLATES))
def test_every_file_name_in_a_goal_is_found(name: str, template: str) -> None:
    goal = template.format(f=name)
    reqs = derive_requirements(goal, exists=lambda n: False)
    assert GoalRequirement(kind="file", file=name, words=name) in reqs


@given(st.text(alphabet=string.ascii_letters + " ,;:'\"\n", max_size=200))
def test_no_requirement_from_text_without_a_file_or_tests(goal: str) -> None:
    lowered = goal.lower()
    if "test" not in lowered:
        assert derive_requirements(goal, exists=lambda n: False) == []


@given(st.text(alphabet=string.ascii_letters + string.digits + " ,.;:_-/'\"`\n", max_size=300))
def test_every_requirement_is_backed_by_the_goals_words(goal: str) -> None:
    for req in derive_requirements(goal, exists=lambda n: False):
        assert req.file in goal
        assert all(item in goal for item in req.items)
        kept, refused = validated(goal, [req], exists=lambda n: False)
        assert kept == [req], refused


async def test_the_model_helper_adds_only_what_the_goal_says() -> None:
    """The helper catches a phrasing the patterns miss; its invented file and column are refused."""
    goal = "Write out.csv from sales.csv; the first row must be id then total."
    proposals = {"requirements": [{"kind": "columns", "file": "out.csv", "items": ["id", "total"]},
                                  {"kind": "file", "file": "summary.json", "items": []},
                                  {"kind": "columns", "file": "out.csv", "items": ["id", "amount"]},
                                  {"kind": "keys", "file": "sales.csv", "items": ["id"]}]}
    assert [r.kind for r in derive_requirements(goal, exists=exists)] == ["file"]  # the patterns miss the columns
    outcome = await helper_requirements(goal, ScriptedProvider(lambda messages: proposals), exists=exists)
    assert [(r.kind, r.file, r.items) for r in outcome.kept] == [("columns", "out.csv", ("id", "total"))]
    assert len(outcome.refused) == 3 and outcome.tokens == 15  # one scripted call: 10 prompt + 5 completion


def test_files_the_goal_says_not_to_change_are_read_from_its_words() -> None:
    """Golden run 2026-12-07 (tests_fix_median): the Coder rewrote test_stats.py, which the goal said not to
    change, until the tests passed, and the run said PASSED."""
    cases = {
        "stats.py has a bug in median(xs). Fix stats.py so that the tests in test_stats.py pass; do not change "
        "test_stats.py.": ["test_stats.py"],
        "Fix a.py without modifying test_a.py or conftest.py.": ["test_a.py", "conftest.py"],
        "Leave data.csv unchanged and write out.json.": ["data.csv"],
        "data.csv must stay unchanged.": ["data.csv"],
        "Don't touch config.yaml; write report.md": ["config.yaml"],
        "Fix a.py without modifying test_a.py and write b.py.": ["test_a.py"],  # b.py is another clause
        "Change a.py so the tests pass.": [],
        "Do not change anything else. Write a.py.": [],
        "Fix the bug in a.py but do not change the signature of add in a.py.": [],  # a part of a file it fixes
    }
    for goal, files in cases.items():
        assert kept_unchanged(goal) == files, goal


def test_the_input_data_a_goal_describes_is_kept_as_it_is() -> None:
    """Issue-22 slice at 6dd829b (report_score_stats): a re-planned Coder task wrote invented rows over scores.csv,
    the goal's input, and computed its statistics from them."""
    cases = {
        "scores.csv has columns student,score. Write stats.json with the keys mean, max and count.": ["scores.csv"],
        "people.json is a list of people with name and age. Write adults.csv with the adults.": ["people.json"],
        "Read sales.csv (columns region,amount) and write report.md stating the total.": ["sales.csv"],
        "Write totals.csv from ./data/sales.csv.": ["data/sales.csv"],
        # named again, so maybe to change: not kept
        "stats.py has a bug in median(xs). Fix stats.py so that the tests pass.": [],
        "data.csv has columns a,b. Add a column c to data.csv.": [],
        "Write report.md stating the total.": [],
    }
    for goal, files in cases.items():
        assert described_inputs(goal) == files, goal
        assert set(files) <= set(kept_unchanged(goal)), goal


def test_an_unchanged_requirement_holds_the_content_the_run_started_with(tmp_path: Path) -> None:
    (tmp_path / "stats.py").write_text("def median(xs):\n    return 0\n")
    (tmp_path / "test_stats.py").write_text("from stats import median\n\ndef test_m():\n    assert median([1]) == 1\n")
    goal = "Fix stats.py so that the tests in test_stats.py pass; do not change test_stats.py."
    checks = planned_goal_checks(goal, tmp_path)
    [kept] = [GoalRequirement.model_validate(c["requirement"]) for c in checks
              if c["requirement"]["kind"] == "unchanged"]
    assert kept.file == "test_stats.py" and kept.describe() == "test_stats.py is unchanged"
    assert _unchanged(kept, tmp_path)[0]
    (tmp_path / "test_stats.py").write_text("def test_m():\n    assert True\n")  # tests rewritten to pass
    ok, detail = _unchanged(kept, tmp_path)
    assert not ok and "was changed" in detail
    (tmp_path / "test_stats.py").unlink()
    assert not _unchanged(kept, tmp_path)[0]
    # a model helper cannot add one: its digest is not in the goal's words
    assert validated(goal, [kept], exists=lambda n: True)[0] == []


def test_content_the_goal_spells_out_is_the_whole_file(tmp_path: Path) -> None:
    assert stated_contents("Create a file named hello.txt whose only line is exactly: Hello, Naestro!") == {
        "hello.txt": ("Hello, Naestro!",)}
    assert stated_contents('Write ok.txt containing exactly "done" and stop.') == {"ok.txt": ("done",)}
    # an unquoted text ending in "." may or may not own its period
    assert stated_contents("Write a.txt whose content must be exactly: Done. Then stop.") == {
        "a.txt": ("Done.", "Done")}
    # counts, a first line, and files the goal keeps as they are say nothing of the whole content
    for goal in ("Write big.csv with exactly 3 rows", "Write x.csv containing exactly two names",
                 "Write a.txt whose first line is exactly: x", "Write n.txt whose content is exactly 5 lines",
                 "Do not change notes.txt whose only line is exactly: hi"):
        assert stated_contents(goal) == {}, goal
    (tmp_path / "hello.txt").write_text('"Hello, Naestro!"\r\n')
    req = next(r for r in derive_requirements("Create hello.txt whose only line is exactly: Hello, Naestro!",
                                              exists=lambda n: False) if r.kind == "exact")
    ok, detail = _exact(req, tmp_path)
    assert not ok and "the goal says its whole content is exactly 'Hello, Naestro!'" in detail
    (tmp_path / "hello.txt").write_text("Hello, Naestro!\n")
    assert _exact(req, tmp_path)[0]
    [check] = task_checks(req)
    assert isinstance(check, RegexCheck) and re.search(check.pattern, "\nHello, Naestro!\r\n")
    assert not re.search(check.pattern, '"Hello, Naestro!"')
