"""A re-plan plans toward the goal's deliverables only (issue 22, the invented summary.json)."""

from __future__ import annotations

from typing import Any

from naestro.plan import Plan
from nodes.replan_guard import confined_replan

GOAL = "Compute the total amount per region from sales.csv into totals.json"


def task(tid: str, description: str, checks: list[dict[str, Any]], deps: list[str] | None = None) -> dict[str, Any]:
    return {"id": tid, "role": "coder", "description": description, "deps": deps or [], "accept": checks}


def exists(path: str) -> dict[str, Any]:
    return {"kind": "file_exists", "path": path}


ORIGINAL = Plan.model_validate({"goal": GOAL, "tasks": [task("totals", "Write totals.json", [exists("totals.json")])]})


def test_an_invented_deliverable_is_dropped_with_the_dependencies_on_it() -> None:
    new = Plan.model_validate({"goal": GOAL, "tasks": [
        task("fix", "Fix totals.json: east is 7.0", [exists("totals.json")]),
        task("summary", "Write summary.json with the totals", [exists("summary.json")], deps=["fix"]),
        task("check", "Check totals.json against summary.json",
             [{"kind": "command", "command": "python3 -c \"import json; json.load(open('totals.json'))\""},
              {"kind": "regex", "file": "summary.json", "pattern": "east"}], deps=["summary"])]})
    out = confined_replan(new, goal=GOAL, original=ORIGINAL, existing=["sales.csv", "totals.json"])
    assert out.plan is not None
    assert [t.id for t in out.plan.tasks] == ["fix", "check"]
    assert out.plan.task("check").deps == () and len(out.plan.task("check").accept) == 1
    assert out.dropped_tasks == ("summary",) and out.dropped_checks == ("summary: summary.json", "check: summary.json")


def test_goal_files_original_files_and_workspace_files_are_allowed() -> None:
    original = Plan.model_validate({"goal": GOAL, "tasks": [
        task("helper", "Write compute.py that writes totals.json", [exists("compute.py")])]})
    new = Plan.model_validate({"goal": GOAL, "tasks": [
        task("rerun", "Fix compute.py and run it", [exists("compute.py"), exists("totals.json")]),
        task("notes", "Edit notes.md", [exists("notes.md")])]})
    out = confined_replan(new, goal=GOAL, original=original, existing=["notes.md"])
    assert out.plan == new and not out.dropped_tasks and not out.dropped_checks


def test_nothing_toward_the_goal_leaves_no_plan_and_a_goal_naming_no_file_is_not_confined() -> None:
    new = Plan.model_validate({"goal": GOAL, "tasks": [task("s", "Write summary.json", [exists("summary.json")])]})
    assert confined_replan(new, goal=GOAL, original=ORIGINAL, existing=[]).plan is None
    assert confined_replan(new, goal="sum the sales", original=ORIGINAL, existing=[]).plan == new
