"""Issue 22 end to end: the goal's own requirements decide PASSED, a re-plan plans toward the goal's files only,
and an agreed reference program is offered to the next attempt. Real graph, checkpoints, MCP tools, sandbox and
gate; only the model's text is scripted."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from naestro.events import read_events
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from nodes import vacuity
from policies.decision import ApprovedScope, RunPolicy
from policies.gate import ConsentAnswer
from tests.fakes import ScriptedProvider, all_text, stepped_agent

POLICY = RunPolicy(approve=[ApprovedScope(tool="exec.run")])

CODE_GOAL = "write function add in a.py, add pytest tests in test_a.py, and make the tests pass"
ADD = "def add(a, b):\n    return a + b\n"
BROKEN_TESTS = "def test_add():\n    assert add(2, 3) == 5\n"  # never imports add: NameError
GOOD_TESTS = "from a import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
ONLY_IMPORTS_ADD = {"tasks": [{"id": "add", "role": "coder", "description": "Write a.py with add and test_a.py",
                               "deps": [], "accept": [{"kind": "command",
                                                       "command": "python3 -c \"from a import add; "
                                                                  "assert add(1, 2) == 3\""}]}]}


def code_script(tests: str, *, fixed_tests: str | None = None, replan: dict[str, Any] | None = None,
                planner_prompts: list[str] | None = None) -> Any:
    """The planner plans one task whose only check imports add; the Coder writes a.py and ``tests`` (or
    ``fixed_tests`` once told the goal's tests failed), runs a.py, finishes."""
    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You are the Planner" in text:
            if "Unfinished, with the reason it failed" in text and replan is not None:
                if planner_prompts is not None:
                    planner_prompts.append(text)
                return replan
            return ONLY_IMPORTS_ADD
        if "Write 2-4 sentences" in text:
            return {"summary": "a.py and test_a.py were written."}
        body = fixed_tests if fixed_tests is not None and "NameError" in text else tests
        steps = [("fs.write", {"path": "a.py", "content": ADD}), ("fs.write", {"path": "test_a.py", "content": body}),
                 ("exec.run", {"command": "python3 -c \"import a\""})]
        n = sum(isinstance(m, AIMessage) for m in messages)
        if n < len(steps):
            return {"thought": "step", "tool": steps[n][0], "arguments": steps[n][1]}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote a.py and test_a.py",
                                                                    "outputs": {}}}
    return script


async def test_tests_the_goal_asks_for_that_fail_never_pass(settings: Settings) -> None:
    result = await Runner(settings, ScriptedProvider(code_script(BROKEN_TESTS))).start(CODE_GOAL, policy=POLICY)
    # the plan's only check passed; the goal's own requirement (pytest on test_a.py) did not
    assert result.tasks["add"]["status"] == "passed"
    assert not result.passed and result.record.status == "failed"
    report = result.report_path.read_text()
    assert report.startswith("# Naestro report: FAILED")
    assert "## Goal requirements" in report and "❌ pytest passes on test_a.py" in report and "NameError" in report
    events = read_events(result.report_path.parent / "events.jsonl")
    planned = next(e for e in events if e["event"] == "planned")
    assert planned["goal_requirements"] == ["a.py exists and is not empty", "test_a.py exists and is not empty",
                                            "pytest passes on test_a.py and fails without a.py"]
    checked = next(e for e in events if e["event"] == "goal_checked")
    assert checked["passed"] is False
    # pytest ran through the gate and the sandbox, as the Evaluator role
    assert [e["tool"] for e in events if e["event"] == "tool_call" and e.get("task") == "goal"] == ["exec.run"]


async def test_tests_the_goal_asks_for_that_pass_let_the_run_pass(settings: Settings) -> None:
    result = await Runner(settings, ScriptedProvider(code_script(GOOD_TESTS))).start(CODE_GOAL, policy=POLICY)
    assert result.passed
    report = result.report_path.read_text()
    assert report.startswith("# Naestro report: PASSED") and "✅ pytest passes on test_a.py" in report
    # one clock for the whole file: planning's events and the run's were written by two log objects, and the
    # run's ``t`` restarted at 0 after planning's (the improve loop's wall time is the largest ``t``)
    offsets = [e["t"] for e in read_events(result.report_path.parent / "events.jsonl")]
    assert offsets == sorted(offsets), offsets


async def test_tests_that_pass_without_the_goals_code_do_not_let_the_run_pass(settings: Settings) -> None:
    """Golden run 2026-12-06 (tests_calc_add): test_calc.py defined its own add() and passed; the run claimed."""
    own_add = ADD + "\n\ndef test_add():\n    assert add(2, 3) == 5\n"  # passes, never touches a.py
    result = await Runner(settings, ScriptedProvider(code_script(own_add))).start(CODE_GOAL, policy=POLICY)
    assert result.tasks["add"]["status"] == "passed"
    assert not result.passed and result.record.status == "failed"
    checked = next(e for e in read_events(result.report_path.parent / "events.jsonl") if e["event"] == "goal_checked")
    [tests] = [c for c in checked["checks"] if c["requirement"].startswith("pytest")]
    assert tests["passed"] is False and "passes even with a.py removed" in tests["detail"]
    assert (Path(result.record.workspace) / "a.py").is_file()  # the probe ran on a copy


async def test_tests_nobody_could_probe_do_not_let_the_run_pass(settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A workspace too large to copy for the probe: the goal's tests passing is not enough to say PASSED."""
    monkeypatch.setattr(vacuity, "_MAX_COPY_BYTES", 10)  # as if the workspace were over 50 MB
    result = await Runner(settings, ScriptedProvider(code_script(GOOD_TESTS))).start(CODE_GOAL, policy=POLICY)
    assert not result.passed
    checked = next(e for e in read_events(result.report_path.parent / "events.jsonl") if e["event"] == "goal_checked")
    [tests] = [c for c in checked["checks"] if c["requirement"].startswith("pytest")]
    assert tests["passed"] is False and "could not be checked" in tests["detail"]


async def test_a_failed_goal_requirement_is_replanned_toward(settings: Settings) -> None:
    """All tasks passed, the goal's tests did not: the re-plan is told which requirement failed and why."""
    settings = settings.model_copy(update={"max_replans": 1, "review": False})
    fix = {"tasks": [{"id": "fix_tests", "role": "coder", "description": "Fix test_a.py so that pytest passes",
                      "deps": [], "accept": [{"kind": "command", "command": "python3 -m pytest -q test_a.py"}]}]}
    prompts: list[str] = []
    script = code_script(BROKEN_TESTS, fixed_tests=GOOD_TESTS, replan=fix, planner_prompts=prompts)
    result = await Runner(settings, ScriptedProvider(script)).start(CODE_GOAL, policy=POLICY)
    assert result.passed and result.record.plans == ["plan.json", "plan.replan1.json"]
    assert "The goal's own requirements not met yet" in prompts[0] and "NameError" in prompts[0]
    run_dir = result.report_path.parent
    assert (run_dir / "report.phase0.md").read_text().startswith("# Naestro report: FAILED")
    assert (Path(result.record.workspace) / "test_a.py").read_text() == GOOD_TESTS


DATA_GOAL = "sales.csv has columns region,amount. Write totals.json mapping each region to the sum of its amounts."
SALES = "region,amount\nnorth,120.50\nsouth,80.00\nnorth,30.25\neast,4.00\nsouth,19.75\neast,3.00\n"
RIGHT = {"north": 150.75, "south": 99.75, "east": 7.0}
WRONG = {"north": 150.75, "south": 99.75, "east": 8.5}


def seed(tmp_path: Path) -> Path:
    src = tmp_path / "seed"
    src.mkdir()
    (src / "sales.csv").write_text(SALES)
    return src


async def test_a_replan_adds_no_deliverable_the_goal_did_not_name(settings: Settings, tmp_path: Path) -> None:
    """The re-plan invents summary.json (seen on the 1.5B); it is dropped, and the run whose requested file is right
    passes instead of failing on the invented one."""
    settings = settings.model_copy(update={"max_replans": 1, "review": False, "reference_checks": False})
    first = {"tasks": [{"id": "totals", "role": "coder", "description": "Write totals.json from sales.csv",
                        "deps": [], "accept": [{"kind": "regex", "file": "totals.json", "pattern": '"east": 7\\.0'}]}]}
    replan = {"tasks": [
        {"id": "fix_totals", "role": "coder", "description": "Fix totals.json: east is 7.0", "deps": [],
         "accept": [{"kind": "regex", "file": "totals.json", "pattern": '"east": 7\\.0'}]},
        {"id": "summary", "role": "coder", "description": "Write summary.json with the grand total",
         "deps": ["fix_totals"], "accept": [{"kind": "file_exists", "path": "summary.json"}]}]}
    written: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You are the Planner" in text:
            return replan if "Unfinished, with the reason it failed" in text else first
        if "Write 2-4 sentences" in text:
            return {"summary": "totals.json written."}
        n = sum(isinstance(m, AIMessage) for m in messages)
        if "Your task (summary)" in text:  # would never produce it: the run could only fail on it
            return {"thought": "no", "tool": "finish", "arguments": {"summary": "skipped", "outputs": {}}}
        if n == 0:
            body = json.dumps(RIGHT if "Your task (fix_totals)" in text else WRONG)
            written.append(body)
            return {"thought": "write", "tool": "fs.write", "arguments": {"path": "totals.json", "content": body}}
        if n == 1:
            return {"thought": "look", "tool": "exec.run", "arguments": {"command": "cat totals.json"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "totals.json", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script)).start(DATA_GOAL, workspace=seed(tmp_path),
                                                                    policy=POLICY)
    replanned = Plan.model_validate_json((result.report_path.parent / "plan.replan1.json").read_text())
    assert "summary" not in {t.id for t in replanned.tasks} and "summary" not in result.tasks
    assert "summary.json" not in replanned.model_dump_json()
    events = read_events(result.report_path.parent / "events.jsonl")
    confined = next(e for e in events if e["event"] == "replan_confined")
    assert confined["dropped_tasks"] == ["summary"] and confined["dropped_checks"] == ["summary: summary.json"]
    assert result.passed and json.loads((Path(result.record.workspace) / "totals.json").read_text()) == RIGHT
    assert not (Path(result.record.workspace) / "summary.json").exists()


async def test_a_replan_that_falls_back_to_a_keyword_template_becomes_a_task_toward_the_goal(
        settings: Settings, tmp_path: Path) -> None:
    """Seen in the issue-22 slice: the re-planner's plans were invalid, the planner fell back to the csv-data-summary
    template, and all that was left of it (prepare_data: write an invented data.csv) did none of the goal's work.
    A template is never a re-plan: the phase gets one Coder task toward what the goal still lacks."""
    settings = settings.model_copy(update={"max_replans": 1, "review": False, "reference_checks": False,
                                           "planner_attempts": 2})
    first = {"tasks": [{"id": "totals", "role": "coder", "description": "Write totals.json from sales.csv",
                        "deps": [], "accept": [{"kind": "regex", "file": "totals.json", "pattern": '"east": 7\\.0'}]}]}
    tasks_seen: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You are the Planner" in text:  # the re-planner only writes invalid plans
            return {"tasks": [{"id": "x"}]} if "Unfinished, with the reason it failed" in text else first
        if "Write 2-4 sentences" in text:
            return {"summary": "totals.json written."}
        task = re.search(r"Your task \((\w+)\)", text)
        tasks_seen.append(task[1] if task else "?")
        n = sum(isinstance(m, AIMessage) for m in messages)
        if n == 0:  # the task toward the goal types the same wrong value until a failed check tells it
            told = task is not None and task[1] == "finish_goal" and "previous attempt FAILED" in text
            body = json.dumps(RIGHT if told else WRONG)
            return {"thought": "write", "tool": "fs.write", "arguments": {"path": "totals.json", "content": body}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "totals.json", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script)).start(DATA_GOAL + " Give a summary of the data.",
                                                                    workspace=seed(tmp_path), policy=POLICY)
    # The failed task's check is the task toward the goal's own (slice at fda50b7: with file_exists alone it
    # passed at once on an emptied big_orders.csv), so its first attempt's failure is its second's feedback.
    assert result.tasks["finish_goal"]["attempts"] == 2, result.tasks
    events = read_events(result.report_path.parent / "events.jsonl")
    replanned = next(e for e in events if e["event"] == "replanned")
    assert replanned["source"].startswith("template:"), replanned  # the planner's own fallback, as seen
    confined = next(e for e in events if e["event"] == "replan_confined")
    assert "prepare_data" in confined["dropped_tasks"]
    assert "finish_goal" in result.tasks and "prepare_data" not in result.tasks
    # sales.csv is the goal's input, kept as it is by its own requirement: not a file the task must deliver
    replan = json.loads((result.report_path.parent / "plan.replan1.json").read_text())
    assert [c for c in replan["tasks"][0]["accept"] if c["kind"] == "file_exists"] == [
        {"kind": "file_exists", "path": "totals.json"}], replan
    assert result.passed and json.loads((Path(result.record.workspace) / "totals.json").read_text()) == RIGHT
    assert not (Path(result.record.workspace) / "data.csv").exists()


EAST_IS_7 = "python3 -c \"import json; assert json.load(open('totals.json'))['east'] == 7.0\""
REFERENCE = ("import csv, json\nt = {}\nfor r in csv.DictReader(open('sales.csv')):\n"
             "    t[r['region']] = round(t.get(r['region'], 0) + float(r['amount']), 2)\n"
             "json.dump(t, open('totals.json', 'w'))\n")


async def test_an_agreed_reference_program_fixes_a_hand_typed_value(settings: Settings, tmp_path: Path) -> None:
    """Attempt 1 types east = 8.5 by hand; Naestro runs the agreed program itself (exec.run through the gate and
    the sandbox, as the task's role) and the file it writes passes the checks: no second attempt. Seen on the 1.5B
    (adults_csv in every golden measurement): offered the program after a failure, it typed the rows again."""
    settings = settings.model_copy(update={"review": False})
    prompts: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You write short, correct Python 3 programs" in text:
            return {"script": REFERENCE}
        if "You are the Planner" in text:
            # a command check that reads the file too: after the program ran it must run again, not be replayed
            return {"tasks": [{"id": "totals", "role": "coder", "description": "Write totals.json from sales.csv",
                               "deps": [], "accept": [{"kind": "file_exists", "path": "totals.json"}, {
                                   "kind": "command", "command": EAST_IS_7}]}]}
        if "Write 2-4 sentences" in text:
            return {"summary": "totals.json written."}
        n = sum(isinstance(m, AIMessage) for m in messages)
        if n == 0:
            prompts.append(str(messages[1].content))
            return {"thought": "type it", "tool": "fs.write",
                    "arguments": {"path": "totals.json", "content": json.dumps(WRONG)}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "totals.json", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script)).start(DATA_GOAL, workspace=seed(tmp_path),
                                                                    policy=POLICY)
    events = read_events(result.report_path.parent / "events.jsonl")
    assert next(e for e in events if e["event"] == "planned")["references"] == {"totals.json": "checked"}
    verdicts = [(e["attempt"], e["passed"]) for e in events
                if e["event"] == "verdict" and e["evaluator"] == "reference"]
    assert verdicts == [(1, False), (1, True)]  # the hand-typed file, then the program's
    applied = [e for e in events if e["event"] == "reference_applied"]
    assert [(e["task"], e["file"], e["ok"]) for e in applied] == [("totals", "totals.json", True)]
    # the program went through the gate as the Coder (the decision is in the signed audit log)
    audit = [json.loads(line) for line in (result.report_path.parent / "audit.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "decision" and r["data"]["action"] == "exec.run" and r["data"]["role"] == "coder"
               and "json.dump" in json.dumps(r["data"]["arguments"]) for r in audit)
    assert len(prompts) == 1 and "Two independent reference programs agreed" not in prompts[0]
    task = result.tasks["totals"]
    assert task["attempts"] == 1 and task.get("applied") == ["totals.json"]
    assert "totals.json written by the agreed reference program" in result.report_path.read_text()
    assert result.passed and json.loads((Path(result.record.workspace) / "totals.json").read_text()) == RIGHT


async def test_the_plan_and_the_reference_programs_are_asked_for_at_once(settings: Settings,
                                                                          tmp_path: Path) -> None:
    """Both depend on the goal and the starting files only: the reference's first program is asked for while the
    planner's call is still out (one after the other, planning a data goal took 10-16 minutes on the 1.5B)."""
    settings = settings.model_copy(update={"review": False})
    seen: list[tuple[str, str]] = []

    def kind(messages: list[BaseMessage]) -> str:
        text = all_text(messages)
        return ("reference" if "You write short, correct Python 3 programs" in text else
                "planner" if "You are the Planner" in text else "other")

    def started(messages: list[BaseMessage]) -> float:
        seen.append(("start", kind(messages)))
        return 0.5 if kind(messages) == "planner" else 0.0

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        seen.append(("end", kind(messages)))
        if kind(messages) == "reference":
            return {"script": REFERENCE}
        if kind(messages) == "planner":
            return {"tasks": [{"id": "totals", "role": "coder", "description": "Write totals.json from sales.csv",
                               "deps": [], "accept": [{"kind": "file_exists", "path": "totals.json"}]}]}
        if "Write 2-4 sentences" in all_text(messages):
            return {"summary": "totals.json written."}
        if not any(isinstance(m, AIMessage) for m in messages):
            return {"thought": "write", "tool": "fs.write",
                    "arguments": {"path": "totals.json", "content": json.dumps(RIGHT)}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "totals.json", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script, delay_for=started)).start(
        DATA_GOAL, workspace=seed(tmp_path), policy=POLICY)
    planner_done = seen.index(("end", "planner"))
    assert ("start", "reference") in seen[:planner_done]  # asked while the planner's call was out
    events = read_events(result.report_path.parent / "events.jsonl")
    assert next(e for e in events if e["event"] == "planned")["references"] == {"totals.json": "checked"}
    assert result.passed


async def test_in_copilot_mode_the_goals_tests_ask_and_a_refusal_fails_the_run(settings: Settings) -> None:
    """The goal's pytest is an exec.run like any other: in copilot mode (the default) the report node asks; an
    approval runs it and the run passes, a refusal leaves the goal unverified and the run FAILED."""
    regex_plan = {"tasks": [{"id": "add", "role": "coder", "description": "Write a.py with add and test_a.py",
                             "deps": [], "accept": [{"kind": "regex", "file": "a.py", "pattern": "def add"}]}]}

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You are the Planner" in text:
            return regex_plan
        if "Write 2-4 sentences" in text:
            return {"summary": "a.py and test_a.py were written."}
        steps = [("fs.write", {"path": "a.py", "content": ADD}),
                 ("fs.write", {"path": "test_a.py", "content": GOOD_TESTS})]
        n = sum(isinstance(m, AIMessage) for m in messages)
        if n < len(steps):
            return {"thought": "step", "tool": steps[n][0], "arguments": steps[n][1]}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "written", "outputs": {}}}

    for approve in (True, False):
        runner = Runner(settings, ScriptedProvider(script))
        waiting = await runner.start(CODE_GOAL)  # copilot mode, nothing pre-approved
        assert [p.request["task"] for p in waiting.pending] == ["goal"]
        assert "exec.run" in str(waiting.pending[0].request["action"])
        assert "pytest" in str(waiting.pending[0].request["arguments"])
        answer = {waiting.pending[0].id: ConsentAnswer(approve=approve, by="test")}
        result = await runner.resume(waiting.record.run_id, answer)
        assert not result.pending and result.passed is approve
        report = result.report_path.read_text()
        assert ("✅ pytest passes on test_a.py" in report) is approve
        assert ("❌ pytest passes on test_a.py and fails without a.py: `python3 -m pytest" in report) is not approve


async def test_the_model_helper_is_asked_when_enabled_and_its_inventions_are_refused(settings: Settings) -> None:
    settings = settings.model_copy(update={"goal_helper": True})
    coder = code_script(GOOD_TESTS)
    asked: list[str] = []

    def script(messages: list[BaseMessage]) -> Any:
        if "You list what a user's goal explicitly asks for" in all_text(messages):
            asked.append(all_text(messages))
            return {"requirements": [{"kind": "tests", "file": "", "items": ["test_a.py"]},
                                     {"kind": "file", "file": "summary.json", "items": []}]}
        return coder(messages)

    result = await Runner(settings, ScriptedProvider(script)).start(CODE_GOAL, policy=POLICY)
    assert result.passed and len(asked) == 1
    planned = next(e for e in read_events(result.report_path.parent / "events.jsonl") if e["event"] == "planned")
    assert planned["goal_requirements"] == ["a.py exists and is not empty", "test_a.py exists and is not empty",
                                            "pytest passes on test_a.py and fails without a.py"]
    assert planned["goal_helper_refused"] == [
        "summary.json exists and is not empty: summary.json is not a file the goal asks for (not named, or an input)"]


FIX_GOAL = "Fix a.py so that the tests in test_a.py pass; do not change test_a.py."
FIX_PLAN = {"tasks": [{"id": "fix", "role": "coder", "description": "Fix add in a.py", "deps": [],
                       "accept": [{"kind": "command", "command": "python3 -c \"from a import add; "
                                                                 "assert add(1, 2) == 3\""}]}]}


def fix_script(rewrite_tests: bool) -> Any:
    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You are the Planner" in text:
            return FIX_PLAN
        if "Write 2-4 sentences" in text:
            return {"summary": "a.py was fixed."}
        steps = [("fs.write", {"path": "a.py", "content": ADD})]
        if rewrite_tests:  # the tests made to pass instead of the code (golden run 2026-12-07, tests_fix_median);
            # fs.write is refused for a protected file (tests/integration/test_policy_gate.py), a shell is not
            steps.append(("exec.run", {"command": "printf 'def test_add():\\n    assert True\\n' > test_a.py"}))
        n = sum(isinstance(m, AIMessage) for m in messages)
        if n < len(steps):
            return {"thought": "step", "tool": steps[n][0], "arguments": steps[n][1]}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "fixed", "outputs": {}}}
    return script


@pytest.mark.parametrize("rewrite_tests", [False, True])
async def test_a_file_the_goal_says_not_to_change_must_end_as_it_started(settings: Settings, tmp_path: Path,
                                                                          rewrite_tests: bool) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.py").write_text("def add(a, b):\n    return a - b\n")
    (source / "test_a.py").write_text(GOOD_TESTS)
    runner = Runner(settings.model_copy(update={"max_replans": 0}), ScriptedProvider(fix_script(rewrite_tests)))
    result = await runner.start(FIX_GOAL, workspace=source, policy=POLICY)
    checked = next(e for e in read_events(result.report_path.parent / "events.jsonl") if e["event"] == "goal_checked")
    [kept] = [c for c in checked["checks"] if c["requirement"] == "test_a.py is unchanged"]
    assert result.passed is not rewrite_tests and kept["passed"] is not rewrite_tests, kept
    if rewrite_tests:
        assert "was changed" in kept["detail"] and result.record.status == "failed"


async def test_the_task_toward_unmet_tests_is_checked_by_them_and_retried_with_their_output(
        settings: Settings) -> None:
    """Issue-22 slice at fda50b7, tests_calc_add #1: the goal check found tests that define their own add; the
    re-planned finish_goal task (a template fallback) rewrote test_calc.py without importing add, passed on
    file_exists alone, and the run ended FAILED with no attempt told why. Its checks are now the unmet
    requirements': pytest on the tests and an import of the goal's code, so attempt 1's NameError is attempt 2's
    feedback."""
    settings = settings.model_copy(update={"max_replans": 1, "review": False, "planner_attempts": 1})
    own_add = ADD + "\n\ndef test_add():\n    assert add(2, 3) == 5\n"  # phase 0: passes, never touches a.py
    finish_bodies: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "Your task (finish_goal)" in text and not any(isinstance(m, AIMessage) for m in messages):
            body = GOOD_TESTS if "NameError" in text else BROKEN_TESTS
            finish_bodies.append(body)
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": "test_a.py", "content": body}}
        if "Your task (finish_goal)" in text:
            return {"thought": "done", "tool": "finish", "arguments": {"summary": "s", "outputs": {}}}
        return code_script(own_add, replan={"tasks": [{"id": "x"}]})(messages)  # the re-plan is invalid

    result = await Runner(settings, ScriptedProvider(script)).start(CODE_GOAL, policy=POLICY)
    events = read_events(result.report_path.parent / "events.jsonl")
    assert next(e for e in events if e["event"] == "replanned")["source"].startswith("template:")
    finish = Plan.model_validate_json((result.report_path.parent / "plan.replan1.json").read_text()).task("finish_goal")
    kinds = [(c.kind, getattr(c, "command", None) or getattr(c, "pattern", None) or getattr(c, "path", None))
             for c in finish.accept]
    assert ("command", "python3 -m pytest -q -p no:cacheprovider test_a.py") in kinds
    assert any(kind == "regex" and "from\\s+a\\s+import" in str(what) for kind, what in kinds)
    assert finish_bodies == [BROKEN_TESTS, GOOD_TESTS] and result.tasks["finish_goal"]["attempts"] == 2
    assert result.passed, result.report_path.read_text()


async def test_a_report_restating_the_goals_numbers_is_not_unsupported(settings: Settings, tmp_path: Path) -> None:
    """Issue-22 slice at fda50b7, report_big_orders #3: "Number of orders with amount over 100: 3" failed
    factuality for its "100" (only the goal says it), with big_orders.csv and the count right; the phase failed.
    The goal's own words are a source: the run computed 3 with exec.run, and 100 is the user's."""
    src = tmp_path / "seed"
    src.mkdir()
    (src / "orders.csv").write_text("id,amount\n1,50\n2,150.5\n3,220\n4,101\n")
    goal = "orders.csv has columns id,amount. Write report.md stating how many orders have an amount over 100."
    plan = Plan.model_validate({"goal": goal, "tasks": [{
        "id": "report", "role": "coder", "description": "count the orders over 100 and write report.md",
        "max_attempts": 1, "accept": [{"kind": "evaluator", "evaluator": "factuality", "threshold": 1,
                                       "params": {"file": "report.md"}}]}]})
    count = "import csv; print(sum(float(r['amount']) > 100 for r in csv.DictReader(open('orders.csv'))))"
    seen: list[str] = []
    line = "Number of orders with amount over 100: 3\n"
    agent = stepped_agent([("exec.run", {"command": ["python3", "-c", count]}),
                           ("fs.write", {"path": "report.md", "content": line})], seen)
    result = await Runner(settings, ScriptedProvider(agent)).start(goal, plan=plan, workspace=src, policy=POLICY)
    assert seen[1].startswith("[exec.run OK]") and '"stdout": "3\\n"' in seen[1], seen[1]
    assert result.tasks["report"]["status"] == "passed", result.tasks["report"]
