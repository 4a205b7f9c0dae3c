"""No false PASSED in any mode (issue 18): a check that does not read the deliverable never passes a run.

Seen: copilot mode (the default), goal "Create hello.py that prints hello, and check it by running python3
hello.py", checks ``python3 -c "print('Hello, World!')"``; the vacuity probe was skipped because the gate would
have asked at plan time, and the run PASSED. Real graph, gate, sandbox and checkpointer; the model's text is scripted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from mcp_servers.sandbox import Completed
from naestro.events import read_events
from naestro.plan import Plan
from naestro.runner import Runner, RunResult
from naestro.settings import Settings
from nodes.vacuity import READS_NO_FILE, VACUOUS, reads_no_file, vacuous_checks
from policies.decision import RunPolicy
from policies.gate import ConsentAnswer
from tests.fakes import ScriptedProvider, all_text

GOAL = "Create hello.py that prints hello, and check it by running python3 hello.py"
PRINTS = "python3 -c \"print('Hello, World!')\""
# Names the deliverable, so it passes the static test, but exits 0 whether hello.py exists or not.
LOOKS = "python3 -c \"import os\nprint(os.path.exists('hello.py'))\""


def hello_plan(command: str) -> dict[str, Any]:
    return {"goal": GOAL, "tasks": [{"id": "write_hello", "role": "coder", "description": "Write hello.py",
                                     "accept": [{"kind": "command", "command": command}]}]}


def script_for(command: str, planned: list[str]) -> Any:
    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "Turn the user's goal into a small plan" in text:
            planned.append(text)
            return hello_plan(command)
        if "Write 2-4 sentences" in text:
            return {"summary": "hello.py was written."}
        if not any(isinstance(m, AIMessage) for m in messages):
            return {"thought": "write", "tool": "fs.write", "arguments": {"path": "hello.py",
                                                                       "content": "print('hello')\n"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote hello.py", "outputs": {}}}
    return script


async def run_approving(runner: Runner, goal: str, policy: RunPolicy, plan: Plan | None = None) -> RunResult:
    """A human who approves every consent request (with --remember), as in the issue's transcript."""
    result = await runner.start(goal, policy=policy, plan=plan)
    for _ in range(10):
        if not result.pending:
            return result
        answers = {p.id: ConsentAnswer(approve=True, remember=True, by="test") for p in result.pending}
        result = await runner.resume(result.record.run_id, answers)
    raise AssertionError("still waiting for consent after 10 answers")


def test_a_command_that_reads_no_file_is_found_without_running_it(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for command in (PRINTS, "echo ok", "python3 -c \"import math; assert math.sqrt(4) == 2\"", "true"):
        assert reads_no_file(command, tmp_path), command
    for command in ("python3 hello.py", LOOKS, "python3 -c \"from fib import fib; assert fib(10) == 55\"",
                    "pytest -q", "python3 -m unittest", "test -d data", "bash run.sh", "ls out/", "ls *.py",
                    "cat report_?.md"):  # a glob names the files a task writes
        assert not reads_no_file(command, tmp_path), command


async def test_the_planner_refuses_it_when_the_probe_may_not_run(tmp_path: Path) -> None:
    async def refused(command: str, where: Path) -> Completed | None:
        return None  # the gate would ask (copilot) or deny (auto, guide): nothing is run
    problems = await vacuous_checks(Plan.model_validate(hello_plan(PRINTS)), tmp_path, refused)
    assert [(p.pointer, p.message) for p in problems] == [("/tasks/0/accept/0", f"this command check {READS_NO_FILE}")]


@pytest.mark.parametrize("mode", ["copilot", "auto", "guide"])
async def test_a_check_that_does_not_read_hello_py_never_passes(settings: Settings, mode: str) -> None:
    settings = settings.model_copy(update={"reference_checks": False, "review": False})
    planned: list[str] = []
    runner = Runner(settings, ScriptedProvider(script_for(PRINTS, planned)))
    result = await run_approving(runner, GOAL, RunPolicy(mode=mode))  # type: ignore[arg-type]
    # The model's check was refused (the static test needs no gate); it sent the same plan again, which ends the
    # attempts (a third would be a third copy); the fallback checks the file the goal names.
    assert len(planned) == 2 < settings.planner_attempts and READS_NO_FILE in planned[-1]
    plan = result.plan
    assert PRINTS not in plan.model_dump_json()
    if mode == "guide":
        assert not result.passed  # nothing may be written
    else:
        assert (Path(result.record.workspace) / "hello.py").exists() and result.passed
    assert PRINTS not in result.report_path.read_text()


@pytest.mark.parametrize("mode", ["copilot", "auto", "guide"])
async def test_a_check_that_passes_without_the_work_never_passes(settings: Settings, mode: str) -> None:
    settings = settings.model_copy(update={"reference_checks": False, "review": False})
    planned: list[str] = []
    runner = Runner(settings, ScriptedProvider(script_for(LOOKS, planned)))
    result = await run_approving(runner, GOAL, RunPolicy(mode=mode))  # type: ignore[arg-type]
    assert len(planned) == 1  # the plan was accepted: the probe could not run while planning (ask / deny)
    assert not result.passed and result.record.status == "failed"
    if mode == "guide":  # nothing ran, nothing was checked: the report is the proposal (tests/.../test_guide_proposes)
        assert result.tasks["write_hello"]["checks"] == []
        assert result.report_path.read_text().startswith("# Naestro proposal (guide mode: nothing was run)")
        return
    assert result.report_path.read_text().startswith("# Naestro report: FAILED")
    check = result.tasks["write_hello"]["checks"][0]
    assert not check["passed"]
    events = read_events(result.report_path.parent / "events.jsonl")
    if mode == "copilot":
        # the human approved the check; it passed on hello.py and again on the workspace before the work
        assert VACUOUS in check["detail"]
        assert [e["vacuous"] for e in events if e["event"] == "vacuity_probed"] == [True]
        assert result.tasks["write_hello"]["attempts"] == 1  # no retry can fix the check
    else:
        assert [e["tool"] for e in events if e["event"] == "tool_denied" and e["task"] == "write_hello"]


async def test_a_replan_check_on_earlier_work_is_not_vacuous_while_the_failed_checks_are_carried(
        settings: Settings) -> None:
    """Issue-22 slice: a re-plan's first check (``ls *.py`` of a template) passed on the workspace the re-plan was
    planned from because the first phase had written the file, failed as vacuous, and every re-plan phase did
    nothing. With the failed task's check carried into ``verify_carried``, it stays passed (noted), the fix runs,
    and the carried check on the final workspace decides."""
    settings = settings.model_copy(update={"reference_checks": False, "review": False, "max_replans": 1})
    first = {"goal": "g", "tasks": [{"id": "a", "role": "coder", "description": "write a.txt",
                                     "accept": [{"kind": "regex", "file": "a.txt", "pattern": "^right$"}]}]}
    replan = {"goal": "g", "tasks": [
        {"id": "look", "role": "coder", "description": "see that a.txt is there",
         "accept": [{"kind": "command", "command": "ls a.txt"}]},
        {"id": "fix", "role": "coder", "description": "write a.txt", "deps": ["look"],
         "accept": [{"kind": "regex", "file": "a.txt", "pattern": "^right$"}]}]}
    content = {"a": "wrong", "fix": "right"}

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You are the Planner" in text:
            return replan
        if "Write 2-4 sentences" in text:
            return {"summary": "a.txt says right."}
        task = next((t for t in content if f"Your task ({t})" in text), None)
        if task is not None and not any(isinstance(m, AIMessage) for m in messages):
            return {"thought": "write", "tool": "fs.write", "arguments": {"path": "a.txt", "content": content[task]}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}

    # copilot: exec asks; a human approves the check commands
    result = await run_approving(Runner(settings, ScriptedProvider(script)), "g", RunPolicy(mode="copilot"),
                                 Plan.model_validate(first))
    assert result.passed, {t: (r["status"], r.get("error"), r["checks"]) for t, r in result.tasks.items()}
    assert "done by an earlier phase" in result.tasks["look"]["checks"][0]["detail"]
    assert result.tasks["verify_carried"]["status"] == "passed"
    events = read_events(result.report_path.parent / "events.jsonl")
    assert [(e["vacuous"], e["phase"]) for e in events if e["event"] == "vacuity_probed"] == [(True, 1)]


async def test_a_replan_for_an_unmet_goal_requirement_is_guarded_by_it(settings: Settings) -> None:
    """Issue-22 slice (tests_calc_add at a0f6ea7): every task passed, the goal's own requirement (pytest passes on
    test_calc.py) did not, and the re-plan's first check (``ls *.py`` there, ``ls calc.py`` here) passed on the
    workspace the first phase left, so it failed as vacuous and the phase did nothing. The unmet requirement is
    re-checked on the final workspace, so the earlier work's check stays passed and the fix runs."""
    settings = settings.model_copy(update={"reference_checks": False, "review": False, "max_replans": 1})
    goal = "Write calc.py with a function add(a, b), add pytest tests for it in test_calc.py, and make the tests pass."
    first = {"goal": goal, "tasks": [{"id": "write", "role": "coder", "description": "write calc.py and test_calc.py",
                                      "accept": [{"kind": "file_exists", "path": "calc.py"},
                                                 {"kind": "file_exists", "path": "test_calc.py"}]}]}
    replan = {"goal": goal, "tasks": [
        {"id": "look", "role": "coder", "description": "see that calc.py is there",
         "accept": [{"kind": "command", "command": "ls calc.py"}]},
        {"id": "fix", "role": "coder", "description": "fix test_calc.py", "deps": ["look"],
         "accept": [{"kind": "command", "command": "python3 -m pytest -q test_calc.py"}]}]}
    tests = {"write": "def test_add():\n    assert add(2, 3) == 5\n",  # never imports add: NameError
             "fix": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"}

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You are the Planner" in text:
            return replan
        if "Write 2-4 sentences" in text:
            return {"summary": "calc.py and its tests pass."}
        task = next((t for t in ("write", "fix", "look") if f"Your task ({t})" in text), None)
        turns = sum(isinstance(m, AIMessage) for m in messages)
        if task == "write" and turns == 0:
            return {"thought": "w", "tool": "fs.write",
                    "arguments": {"path": "calc.py", "content": "def add(a, b):\n    return a + b\n"}}
        if task in ("write", "fix") and turns == (1 if task == "write" else 0):
            return {"thought": "t", "tool": "fs.write", "arguments": {"path": "test_calc.py", "content": tests[task]}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}

    result = await run_approving(Runner(settings, ScriptedProvider(script)), goal, RunPolicy(mode="copilot"),
                                 Plan.model_validate(first))
    assert result.passed, {t: (r["status"], r.get("error"), r["checks"]) for t, r in result.tasks.items()}
    events = read_events(result.report_path.parent / "events.jsonl")
    assert [e["goal_unmet"] for e in events if e["event"] == "replanning"] == [
        ["pytest passes on test_calc.py and fails without calc.py"]]
    assert "done by an earlier phase" in result.tasks["look"]["checks"][0]["detail"]
    assert [c["passed"] for e in events if e["event"] == "goal_checked" for c in e["checks"]][-3:] == [True] * 3


HELLO = "Create a file named hello.txt whose only line is exactly: Hello, Naestro!"
# What two reference programs of the 1.5B wrote in the golden run at 1dce5ed: csv.writer quotes a field with a comma.
CSV_QUOTED = "import csv\nwith open('hello.txt', 'w') as f:\n    csv.writer(f).writerow(['Hello, Naestro!'])\n"


@pytest.mark.parametrize("learns", [False, True])
async def test_the_content_a_goal_spells_out_decides_not_agreeing_programs(settings: Settings, learns: bool) -> None:
    """Golden hello_file at 1dce5ed, twice in three attempts: two reference programs agreed on '"Hello, Naestro!"'
    (quoted), the Coder matched them and the run said PASSED. The goal spells the content: no program is asked for
    hello.txt, the task that writes it is checked against the goal's text, and a quoted line never passes."""
    settings = settings.model_copy(update={"review": False, "max_replans": 0})
    asked_for_program: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You write short, correct Python 3 programs" in text:
            asked_for_program.append(text)
            return {"script": CSV_QUOTED}
        if "You are the Planner" in text:
            return {"tasks": [{"id": "write_hello", "role": "coder", "description": "Write hello.txt",
                               "accept": [{"kind": "file_exists", "path": "hello.txt"}]}]}
        if "Write 2-4 sentences" in text:
            return {"summary": "hello.txt was written."}
        if not any(isinstance(m, AIMessage) for m in messages):
            told = "the goal says its whole content is exactly" in text or "regex check failed" in text
            line = "Hello, Naestro!" if learns and told else '"Hello, Naestro!"'
            return {"thought": "write", "tool": "fs.write",
                    "arguments": {"path": "hello.txt", "content": line + "\r\n"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote hello.txt", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script)).start(HELLO, policy=RunPolicy(mode="auto"))
    events = read_events(result.report_path.parent / "events.jsonl")
    planned = next(e for e in events if e["event"] == "planned")
    assert "hello.txt" not in planned["references"] and asked_for_program == []
    assert "hello.txt is exactly 'Hello, Naestro!'" in planned["goal_requirements"]
    task = result.tasks["write_hello"]
    assert result.passed is learns and task["attempts"] == 2
    assert (Path(result.record.workspace) / "hello.txt").read_text().strip() == (
        "Hello, Naestro!" if learns else '"Hello, Naestro!"')
    if not learns:
        report = result.report_path.read_text()
        assert report.startswith("# Naestro report: FAILED") and "❌ hello.txt is exactly 'Hello, Naestro!'" in report
