"""The feedback loop end to end: real graph, checkpoints, MCP tools, sandbox and gate; only the Coder's text is
scripted. A wrong script gets the code evaluator's evidence, the next attempt fixes it; a Coder that never
fixes it ends in a clear failure report, never a false success."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from naestro.events import read_events
from naestro.introspect import introspect_run
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text

WRONG = "def mean(xs):\n    return sum(xs) / (len(xs) + 1)\n"
RIGHT = "def mean(xs):\n    return sum(xs) / len(xs)\n"
TEST = "from stats import mean\n\n\ndef test_mean():\n    assert mean([2, 4]) == 3\n"
EVIDENCE = "FAILED test_stats.py::test_mean"


def coder(*, learns: bool, prompts: list[str]) -> Any:
    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "Write 2-4 sentences" in text:
            return {"summary": "stats.py was written and checked."}
        if not any(isinstance(m, AIMessage) for m in messages):
            prompts.append(str(messages[1].content))
            body = RIGHT if learns and EVIDENCE in text else WRONG
            return {"thought": "write", "tool": "fs.write", "arguments": {"path": "stats.py", "content": body}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "stats.py works", "outputs": {}}}
    return script


def plan() -> Plan:
    return Plan.model_validate({"goal": "write stats.py with mean(xs)", "tasks": [{
        "id": "stats", "role": "coder", "description": "write stats.py with mean(xs)", "max_attempts": 2,
        "accept": [{"kind": "evaluator", "evaluator": "code", "threshold": 1.0,
                    "params": {"command": "python3 -m pytest -q -p no:cacheprovider test_stats.py"}}]}]})


def seed(tmp_path: Path) -> Path:
    src = tmp_path / "seed"
    src.mkdir()
    (src / "test_stats.py").write_text(TEST)
    return src


POLICY = RunPolicy(approve=[ApprovedScope(tool="exec.run")])


async def test_wrong_script_gets_evidence_then_passes(settings: Settings, tmp_path: Path) -> None:
    prompts: list[str] = []
    runner = Runner(settings, ScriptedProvider(coder(learns=True, prompts=prompts)))
    result = await runner.start("write stats.py", plan=plan(), workspace=seed(tmp_path), policy=POLICY)
    assert result.passed and result.tasks["stats"]["attempts"] == 2
    # the second attempt was told what failed, the evidence and the check itself
    assert EVIDENCE not in prompts[0]
    assert "A previous attempt FAILED" in prompts[1] and EVIDENCE in prompts[1] and '"evaluator":"code"' in prompts[1]
    assert (Path(result.record.workspace) / "stats.py").read_text() == RIGHT
    events = read_events(result.report_path.parent / "events.jsonl")
    verdicts = [(e["attempt"], e["passed"]) for e in events if e["event"] == "verdict"]
    assert verdicts == [(1, False), (2, True)]
    report = result.report_path.read_text()
    assert report.startswith("# Naestro report: PASSED")
    assert "## Evaluator evidence" in report and "stats attempt 1: code" in report and EVIDENCE in report


async def test_coder_that_never_fixes_it_fails_with_the_evidence(settings: Settings, tmp_path: Path) -> None:
    prompts: list[str] = []
    runner = Runner(settings, ScriptedProvider(coder(learns=False, prompts=prompts)))
    result = await runner.start("write stats.py", plan=plan(), workspace=seed(tmp_path), policy=POLICY)
    assert not result.passed and result.record.status == "failed"
    # two Coder attempts and the Reviewer pass, all with the same wrong result: a clear failure, no "success"
    assert result.tasks["stats"]["status"] == "failed" and result.tasks["stats"]["attempts"] == 3
    report = result.report_path.read_text()
    assert report.startswith("# Naestro report: FAILED")
    assert "❌ evaluator: code failed" in report and EVIDENCE in report and "stats attempt 3" in report
    # the Introspector sees that the feedback did not change the result
    findings = introspect_run(result.report_path.parent)
    assert [(f.kind, f.task) for f in findings] == [("weak_prompt", "stats")]
    assert "exited 1" in findings[0].evidence and "assert 2.0 == 3" in findings[0].evidence


async def test_llm_judge_scores_are_verdicts_too(settings: Settings, tmp_path: Path) -> None:
    scores = iter([0.2, 0.9])

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "Score from 0" in text:
            return {"reason": "the poem rhymes", "score": next(scores)}
        if "Write 2-4 sentences" in text:
            return {"summary": "poem written"}
        if not any(isinstance(m, AIMessage) for m in messages):
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": "poem.txt", "content": "roses"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote poem.txt", "outputs": {}}}

    judged = Plan.model_validate({"goal": "a poem", "tasks": [{
        "id": "poem", "role": "coder", "description": "write poem.txt",
        "accept": [{"kind": "evaluator", "evaluator": "llm_judge", "threshold": 0.5, "rubric": "it rhymes"}]}]})
    result = await Runner(settings, ScriptedProvider(script)).start("a poem", plan=judged)
    assert result.passed and result.tasks["poem"]["attempts"] == 2
    events = read_events(result.report_path.parent / "events.jsonl")
    assert [(e["evaluator"], e["attempt"], e["passed"], e["score"]) for e in events if e["event"] == "verdict"] == [
        ("llm_judge", 1, False, 0.2), ("llm_judge", 2, True, 0.9)]
    assert "poem attempt 1: llm_judge score 0.2" in result.report_path.read_text()


async def test_factuality_uses_what_the_run_read_and_slo_what_it_spent(settings: Settings, tmp_path: Path) -> None:
    """Attempt 1 reads the data, reads its own report back and claims a number it never saw; attempt 2 reports
    the number the sandboxed command printed."""
    src = tmp_path / "seed"
    src.mkdir()
    (src / "sales.csv").write_text("region,amount\nnorth,10\nsouth,32\n")

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "Write 2-4 sentences" in text:
            return {"summary": "report written"}
        fixed = "previous attempt FAILED" in text
        steps = [
            ("fs.read", {"path": "sales.csv"}),
            ("exec.run", {"command": "python3 -c \"print(10 + 32)\""}),
            ("fs.write", {"path": "report.md",
                          "content": f"# Sales\n\nNorth sold 10 and south 32, {'42' if fixed else '45'} in total.\n"}),
            ("fs.read", {"path": "report.md"}),
        ]
        n = sum(isinstance(m, AIMessage) for m in messages)
        if n < len(steps):
            return {"thought": "step", "tool": steps[n][0], "arguments": steps[n][1]}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "report.md", "outputs": {}}}

    plan = Plan.model_validate({"goal": "report the sales total", "tasks": [{
        "id": "report", "role": "coder", "description": "write report.md with the sales total",
        "budget": {"tokens": 5000},
        "accept": [{"kind": "evaluator", "evaluator": "factuality", "threshold": 1, "params": {"file": "report.md"}},
                   {"kind": "evaluator", "evaluator": "slo", "threshold": 1}]}]})
    result = await Runner(settings, ScriptedProvider(script)).start("report", plan=plan, workspace=src, policy=POLICY)
    assert result.passed and result.tasks["report"]["attempts"] == 2
    events = read_events(result.report_path.parent / "events.jsonl")
    first = next(e for e in events if e["event"] == "verdict" and e["evaluator"] == "factuality")
    failures = [x for x in first["evidence"] if not x["ok"]]  # type: ignore[union-attr]
    assert len(failures) == 1 and "45 not found" in failures[0]["detail"]  # type: ignore[index]
    slo = [e for e in events if e["event"] == "verdict" and e["evaluator"] == "slo"]
    assert [e["passed"] for e in slo] == [True, True]
    # 5 scripted calls x 15 tokens per attempt, read from the run's own task_ran events
    assert "spent 150 of 5000 over 2 attempt(s)" in str(slo[-1]["evidence"])


PEOPLE = '[{"name": "Zoe", "age": 34}, {"name": "Adam", "age": 17}, {"name": "Mia", "age": 18}]'
ADULTS_GOAL = "people.json lists people. Write adults.csv with header name,age: the people aged 18 or older."
ADULTS = "name,age\nZoe,34\nMia,18\n"
REFERENCE = ("import json\nprint('name,age')\nfor p in json.load(open('people.json')):\n"
             "    if p['age'] >= 18:\n        print(f\"{p['name']},{p['age']}\")")


# A third sample that differs from the two agreeing ones (Mia, 18, left out): the result is contested.
STRICTLY_OLDER = ("import json\nprint('name,age')\nfor p in json.load(open('people.json')):\n"
                  "    if p['age'] > 18:\n        print(f\"{p['name']},{p['age']}\")")


@pytest.mark.parametrize("contested", [False, True])
async def test_a_hand_typed_data_file_is_checked_against_the_reference_result(settings: Settings, tmp_path: Path,
                                                                              contested: bool) -> None:
    """The planner's reference programs compute adults.csv from people.json before any task runs (they print it);
    the Coder's first file (typed by hand, with a 17-year-old in it) fails with the differing rows as evidence.
    Agreed: Naestro runs the agreed program with its output into adults.csv and the checks pass (no second
    attempt). Contested by a third sample: no program is run for the agent, the next attempt, told the evidence,
    passes."""
    prompts: list[str] = []
    samples: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You write short, correct Python 3 programs" in text:
            samples.append(text)
            return {"script": STRICTLY_OLDER if contested and len(samples) == 3 else REFERENCE}
        if "You are the Planner" in text:
            return {"tasks": [{"id": "adults", "role": "coder", "description": "Write adults.csv from people.json",
                               "deps": [], "accept": [{"kind": "file_exists", "path": "adults.csv"}]}]}
        if "Write 2-4 sentences" in text:
            return {"summary": "adults.csv was written."}
        if not any(isinstance(m, AIMessage) for m in messages):
            prompts.append(str(messages[1].content))
            body = ADULTS if "unexpected row Adam,17" in text else "name,age\nZoe,34\nAdam,17\nMia,18\n"
            return {"thought": "write", "tool": "fs.write", "arguments": {"path": "adults.csv", "content": body}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "adults.csv written", "outputs": {}}}

    src = tmp_path / "seed"
    src.mkdir()
    (src / "people.json").write_text(PEOPLE)
    runner = Runner(settings, ScriptedProvider(script))
    result = await runner.start(ADULTS_GOAL, workspace=src, policy=POLICY)
    events = read_events(result.report_path.parent / "events.jsonl")
    planned = next(e for e in events if e["event"] == "planned")
    check = result.plan.tasks[0].accept[-1]
    assert check.kind == "evaluator" and check.evaluator == "reference" and check.params["expect"] == ADULTS
    assert check.params["prints"] is True  # the program printed its result: running it must fill the file
    verdicts = [(e["attempt"], e["passed"]) for e in events
                if e["event"] == "verdict" and e["evaluator"] == "reference"]
    # the answer key is the evaluator's: the first prompt names the check, not the expected rows
    assert '"evaluator":"reference"' in prompts[0] and "Mia,18" not in prompts[0] and "json.load" not in prompts[0]
    applied = [(e["file"], e["ok"]) for e in events if e["event"] == "reference_applied"]
    if contested:
        assert planned["references"]["adults.csv"].startswith("two samples agreed and the next one did not")
        assert verdicts == [(1, False), (2, True)] and applied == []
        assert "unexpected row Adam,17" in prompts[1]
    else:
        assert planned["references"] == {"adults.csv": "checked"}
        assert verdicts == [(1, False), (1, True)] and applied == [("adults.csv", True)] and len(prompts) == 1
    assert result.passed and (Path(result.record.workspace) / "adults.csv").read_text() == ADULTS
