"""Vacuous checks (passing before any task ran) are plan problems; the planner's fallbacks drop them.

The command checks run in the real bubblewrap sandbox; the planner's text is scripted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage

from mcp_servers.sandbox import Completed
from naestro.errors import PlanProblem
from naestro.events import read_events
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from nodes.planner import make_plan
from nodes.vacuity import vacuous_checks
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text
from tests.sandboxed import people_workspace, sandboxed

PEOPLE = [{"name": "Zoe", "age": 34}, {"name": "Lia", "age": 9}]
RECOMPUTE = ("python3 -c \"import json\nadults = [p for p in json.load(open('people.json')) if p['age'] >= 18]\n"
             "print(adults)\"")
ON_OUTPUT = "python3 -c \"assert open('adults.csv').read().splitlines()[1:] == ['Zoe,34']\""
GOAL = "people.json lists people. Write adults.csv with the adults."


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return people_workspace(tmp_path, PEOPLE)


def plan_of(*accepts: list[dict[str, Any]], deps: dict[int, list[str]] | None = None) -> dict[str, Any]:
    return {"goal": GOAL, "tasks": [{"id": f"t{i}", "role": "coder", "description": f"step {i} for adults.csv",
                                     "deps": (deps or {}).get(i, []), "accept": a} for i, a in enumerate(accepts)]}


async def test_checks_that_pass_on_the_untouched_workspace_are_found(workspace: Path) -> None:
    before = sorted(p.name for p in workspace.rglob("*"))
    plan = Plan.model_validate(plan_of(
        [{"kind": "file_exists", "path": "people.json"}],
        [{"kind": "command", "command": RECOMPUTE}],
        [{"kind": "regex", "file": "people.json", "pattern": "Zoe"},
         {"kind": "json_schema", "file": "people.json", "schema": {"type": "array"}}],
        [{"kind": "file_exists", "path": "adults.csv"}, {"kind": "command", "command": ON_OUTPUT},
         {"kind": "regex", "file": "people.json", "pattern": "Adam"}]))
    problems = await vacuous_checks(plan, workspace, sandboxed)
    assert [p.pointer for p in problems] == ["/tasks/0/accept/0", "/tasks/1/accept/0", "/tasks/2/accept/0",
                                             "/tasks/2/accept/1"]
    assert all("already passes before any task has run" in p.message for p in problems)
    assert sorted(p.name for p in workspace.rglob("*")) == before  # probed on a copy


async def test_a_check_importing_a_module_the_sandbox_lacks_can_never_pass(workspace: Path) -> None:
    missing = "python3 -c \"import pandas_nowhere\nprint(pandas_nowhere.read_csv('a.csv'))\""
    plan = Plan.model_validate(plan_of([{"kind": "command", "command": missing}],
                                       [{"kind": "command", "command": "python3 -c \"from adults import rows\""}]))
    problems = await vacuous_checks(plan, workspace, sandboxed)
    assert [p.pointer for p in problems] == ["/tasks/0/accept/0", "/tasks/1/accept/0"]
    assert "'pandas_nowhere'" in problems[0].message and "can never pass" in problems[0].message
    # a module some task will write is not missing, only not written yet
    named = Plan.model_validate({**plan.model_dump(mode="json", by_alias=True, exclude_defaults=True),
                                 "goal": GOAL + " Put the code in adults.py."})
    assert [p.pointer for p in await vacuous_checks(named, workspace, sandboxed)] == ["/tasks/0/accept/0"]


async def test_a_command_the_policy_does_not_allow_is_not_probed(workspace: Path) -> None:
    async def refused(command: str, where: Path) -> Completed | None:
        return None
    plan = Plan.model_validate(plan_of([{"kind": "command", "command": RECOMPUTE}]))
    assert await vacuous_checks(plan, workspace, refused) == []


async def test_the_planner_hears_about_vacuous_checks_and_replans(workspace: Path) -> None:
    replies = iter([plan_of([{"kind": "command", "command": RECOMPUTE}]),
                    plan_of([{"kind": "command", "command": ON_OUTPUT}])])
    heard: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        heard.append(all_text(messages))
        return next(replies)

    async def probe(plan: Plan) -> list[PlanProblem]:
        return await vacuous_checks(plan, workspace, sandboxed)

    outcome = await make_plan(GOAL, ScriptedProvider(script), attempts=2, probe=probe)
    assert outcome.source == "model" and outcome.plan.tasks[0].accept[0].kind == "command"
    assert "already passes before any task has run" in heard[1]
    assert [p.pointer for p in outcome.attempts[0]] == ["/tasks/0/accept/0"]


async def test_salvage_drops_vacuous_checks_but_not_whole_tasks(workspace: Path) -> None:
    broken = {"kind": "command", "command": "python3 -c 'import x\nwith open(\"a\") as f pass'"}
    ok = plan_of([{"kind": "command", "command": RECOMPUTE}, {"kind": "file_exists", "path": "adults.csv"}],
                 [broken, {"kind": "file_exists", "path": "b.csv"}])

    async def probe(plan: Plan) -> list[PlanProblem]:
        return await vacuous_checks(plan, workspace, sandboxed)

    outcome = await make_plan(GOAL, ScriptedProvider(lambda m: ok), attempts=1, probe=probe)
    assert outcome.source == "model:unusable-checks-dropped"
    assert [[c.model_dump(exclude_defaults=True) for c in t.accept] for t in outcome.plan.tasks] == [
        [{"kind": "file_exists", "path": "adults.csv"}], [{"kind": "file_exists", "path": "b.csv"}]]
    # a task left with no check was a step ("read people.json"): the goal as one task replaces the plan
    steps = plan_of([{"kind": "file_exists", "path": "people.json"}], [{"kind": "command", "command": RECOMPUTE}],
                    [broken, {"kind": "file_exists", "path": "adults.csv"}], deps={1: ["t0"], 2: ["t0", "t1"]})
    outcome = await make_plan(GOAL, ScriptedProvider(lambda m: steps), attempts=1, probe=probe)
    assert outcome.source == "goal:files-named" and outcome.plan.tasks[0].description == GOAL


async def test_the_goal_fallback_keeps_only_the_files_still_to_be_made(workspace: Path) -> None:
    async def probe(plan: Plan) -> list[PlanProblem]:
        return await vacuous_checks(plan, workspace, sandboxed)

    reply = {"goal": GOAL, "tasks": [{"id": "t0", "role": "coder", "description": "filter the people",
                                      "accept": [{"kind": "command", "command": RECOMPUTE}]}]}
    outcome = await make_plan(GOAL, ScriptedProvider(lambda m: reply), attempts=1, probe=probe)
    assert outcome.source == "goal:files-named"
    assert [c.model_dump() for c in outcome.plan.tasks[0].accept] == [{"kind": "file_exists", "path": "adults.csv"}]


@pytest.mark.parametrize("approved", [True, False])
async def test_a_run_probes_its_plan_through_the_gate(settings: Settings, workspace: Path, approved: bool) -> None:
    """The probe's commands are policy decisions (task ``plan``, role evaluator); unapproved, they are not run."""
    replies = iter([plan_of([{"kind": "command", "command": RECOMPUTE}, {"kind": "file_exists", "path": "adults.csv"}]),
                    plan_of([{"kind": "file_exists", "path": "adults.csv"}])])

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "Turn the user's goal into a small plan" in text:
            return next(replies)
        if "Write 2-4 sentences" in text:
            return {"summary": "s"}
        return {"thought": "stop", "tool": "finish", "arguments": {"summary": "nothing", "outputs": {}}}

    policy = RunPolicy(approve=[ApprovedScope(tool="exec.run")] if approved else [])
    result = await Runner(settings, ScriptedProvider(script)).start(GOAL, workspace=workspace, policy=policy)
    run_dir = settings.runs_dir / result.record.run_id
    [planned] = [e for e in read_events(run_dir / "events.jsonl") if e["event"] == "planned"]
    audit = [json.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines()]
    probed = [r for r in audit if r["kind"] == "decision" and r["data"]["task"] == "plan"
              and r["data"]["action"] == "exec.run"]
    assert len(probed) == 1 and probed[0]["data"]["verdict"] == ("allow" if approved else "ask")
    assert len(planned["rejected_attempts"]) == (1 if approved else 0)


async def test_a_report_the_fallback_asks_for_has_its_numbers_fact_checked(workspace: Path) -> None:
    (workspace / "notes.md").write_text("# Notes\n3 regions\n")
    goal = "Read notes.md and people.json and write summary.md with the number of adults."

    async def probe(plan: Plan) -> list[PlanProblem]:
        return await vacuous_checks(plan, workspace, sandboxed)

    reply = {"goal": goal, "tasks": [{"id": "t0", "role": "coder", "description": "count", "accept": [
        {"kind": "command", "command": RECOMPUTE}]}]}
    outcome = await make_plan(goal, ScriptedProvider(lambda m: reply), attempts=1, probe=probe)
    assert outcome.source == "goal:files-named"
    # the existing inputs are not checked at all; the new report must exist and state only supported numbers
    assert [c.model_dump(exclude_defaults=True) for c in outcome.plan.tasks[0].accept] == [
        {"kind": "file_exists", "path": "summary.md"},
        {"kind": "evaluator", "evaluator": "factuality", "threshold": 1.0,
         "params": {"file": "summary.md", "min_claims": 1}}]  # "the number of adults": a quantity is asked for
    prose = "Read notes.md and write summary.md describing the people."
    outcome = await make_plan(prose, ScriptedProvider(lambda m: {**reply, "goal": prose}), attempts=1, probe=probe)
    assert outcome.plan.tasks[0].accept[1].model_dump()["params"] == {"file": "summary.md", "min_claims": 0}
