"""The Reporter: writes report.md from the run's facts, plus a short summary written by the Reporter model.

The facts (task status, acceptance results, artifacts, tokens, cost) are rendered by code, so the report
never depends on the model telling the truth; the model only adds the prose summary.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import JsonValue

from graphs.state import GoalCheck, RunState, TaskRecord, status_of
from naestro.context import Execution, RunContext
from naestro.errors import PolicyDenied, RunError, RunPaused
from naestro.events import Event, read_events
from naestro.homes import home_of, workspace_files
from naestro.plan import Plan, Role
from nodes.goal_checks import check_goal, goal_failures, goal_passed
from nodes.phases import with_earlier_phases
from nodes.proposal import render_proposal

__all__ = ["render_report", "report_node", "run_passed"]

_SUMMARY_SCHEMA: dict[str, JsonValue] = {
    "type": "object", "additionalProperties": False, "required": ["summary"],
    "properties": {"summary": {"type": "string", "maxLength": 900}}}


def run_passed(plan: Plan, tasks: dict[str, TaskRecord]) -> bool:
    return all(status_of(tasks, t.id) == "passed" for t in plan.tasks)


def artifacts(workspace: Path, *, leave_out: Collection[Path | None] = ()) -> list[tuple[str, int]]:
    """The workspace's files and sizes, without ``.git`` and the ``leave_out`` folders (the home in an --in-place
    run)."""
    return [(name, (workspace / name).stat().st_size) for name in workspace_files(workspace, leave_out=leave_out)
            if ".git" not in Path(name).parts][:200]


POLICY_EVENTS = ("tool_denied", "consent_given", "consent_refused")


def _policy_lines(events: list[Event]) -> list[str]:
    lines = []
    for e in events:
        if e.get("event") == "tool_denied":
            reasons = e.get("reasons")
            why = "; ".join(map(str, reasons)) if isinstance(reasons, list) else str(reasons)
            lines.append(f"- ⛔ {e.get('task')}: `{e.get('tool')}` denied by {e.get('by')}: {why}")
        elif e.get("event") in ("consent_given", "consent_refused"):
            verb = "approved" if e["event"] == "consent_given" else "refused"
            lines.append(f"- 🙋 {e.get('task')}: `{e.get('action')}` {verb} by {e.get('by')}"
                         + (" (remembered for the run)" if e.get("remember") else ""))
    return lines


def _verdict_lines(events: list[Event]) -> list[str]:
    """Every evaluator verdict of every attempt (the task table shows only the last): failures first."""
    lines = []
    for e in events:
        evidence = [x for x in e.get("evidence") or [] if isinstance(x, dict)]  # type: ignore[union-attr]
        evidence.sort(key=lambda x: bool(x.get("ok")))
        lines.append(f"- {'✅' if e.get('passed') else '❌'} {e.get('task')} attempt {e.get('attempt')}: "
                     f"{e.get('evaluator')} score {e.get('score')} (threshold {e.get('threshold')})")
        for x in evidence[:8]:
            where = f" [{x.get('where')}]" if x.get("where") else ""
            lines.append(f"  - {'ok' if x.get('ok') else 'FAIL'} {x.get('check')}{where}: {x.get('detail')}")
    return lines


def _goal_lines(checks: list[GoalCheck]) -> list[str]:
    marks = {True: "✅", False: "❌", None: "⏸"}
    return [f"- {marks[c['passed']]} {c['description']}: {c['detail']}" for c in checks]


def render_report(plan: Plan, tasks: dict[str, TaskRecord], workspace: Path, *, summary: str,
                  policy: list[Event] | None = None, verdicts: list[Event] | None = None,
                  goal_checks: list[GoalCheck] | None = None, leave_out: Collection[Path | None] = ()) -> str:
    """The report; PASSED only when every task passed and every requirement the goal states was met."""
    ok = run_passed(plan, tasks) and goal_passed(goal_checks)
    total_tokens = sum(r["tokens"] for r in tasks.values())
    total_cost = sum(r["cost_usd"] for r in tasks.values())
    lines = [f"# Naestro report: {'PASSED' if ok else 'FAILED'}", "", f"**Goal:** {plan.goal}", "",
             "## Summary", "", summary or "_(no summary)_", "", "## Tasks", "",
             "| task | role | status | attempts | model | tokens | wall s |", "|---|---|---|---|---|---|---|"]
    for t in plan.tasks:
        r = tasks.get(t.id)
        if r is None:
            lines.append(f"| {t.id} | {t.role} | not run | 0 | | 0 | 0 |")
            continue
        lines.append(f"| {t.id} | {t.role} | {r['status']} | {r['attempts']} | {r['model'] or 'direct'} | "
                     f"{r['tokens']} | {r['wall_s']:.1f} |")
    lines += ["", "## Goal requirements", "",
              "_What the goal itself asks for, read from its words and checked on the final workspace._", ""]
    lines += _goal_lines(goal_checks or []) or ["_(the goal names no file or condition to check)_"]
    lines += ["", "## Acceptance checks", ""]
    for t in plan.tasks:
        r = tasks.get(t.id)
        lines.append(f"- **{t.id}**: {t.description}")
        for c in (r["checks"] if r else []):
            lines.append(f"  - {'✅' if c['passed'] else '❌'} {c['kind']}: {c['detail']}")
        if r and r.get("applied"):  # provenance: the agent's file differed, Naestro ran the agreed program
            lines.append(f"  - ℹ️ {', '.join(r['applied'])} written by the agreed reference program (independent "
                         "programs agreed on its content; the agent's own attempt differed)")
        if r and r.get("error"):
            lines.append(f"  - ⚠️ {r['error']}")
    if verdicts:
        lines += ["", "## Evaluator evidence", "", *_verdict_lines(verdicts)]
    lines += ["", "## Artifacts", ""]
    lines += [f"- `{name}` ({size} bytes)" for name, size in artifacts(workspace, leave_out=leave_out)] or ["_(none)_"]
    lines += ["", "## Policy decisions", ""]
    lines += _policy_lines(policy or []) or ["_(no action was denied or needed consent)_"]
    lines += ["", "## Cost", "", f"- tokens: {total_tokens}", f"- cost: ${total_cost:.4f}"]
    return "\n".join(lines) + "\n"


async def _summary(plan: Plan, tasks: dict[str, TaskRecord], ctx: RunContext, files: list[str],
                   goal_checks: list[GoalCheck]) -> str:
    facts = {tid: {"status": r["status"], "summary": r["summary"][:300],
                   "checks": [f"{'PASS' if c['passed'] else 'FAIL'} {c['detail'][:150]}" for c in r["checks"]]}
             for tid, r in tasks.items()}
    # The outcome is stated, not left to the model: agents' own summaries claim success even when their checks
    # failed, and a small model repeats them (seen: "completed successfully" under a FAILED header).
    failed = [tid for tid, r in tasks.items() if r["status"] != "passed"]
    unmet = list(goal_failures(goal_checks))
    outcome = (f"FAILED (tasks not passed: {', '.join(failed)})" if failed else
               f"FAILED (goal requirements not met: {'; '.join(unmet)})" if unmet else "PASSED (every check passed)")
    prompt = (f"Goal: {plan.goal}\nOutcome: {outcome}\nFacts per task:\n{json.dumps(facts, indent=1)}\n"
              f"Files: {files[:40]}\n"
              "Write 2-4 sentences: start with the outcome, then what was done and which checks failed, if any.")
    ex = Execution(node="report", task_id="report", role=Role.reporter, attempt=1)
    try:
        reply = await ctx.complete(ex, ctx.endpoint_for(Role.reporter),
                                   [SystemMessage(ctx.roles[Role.reporter].prompt), HumanMessage(prompt)],
                                   schema=_SUMMARY_SCHEMA, name="report", purpose="reporter")
    except RunPaused:
        raise
    except (RunError, PolicyDenied) as exc:
        return f"_(summary unavailable: {exc})_"
    value = reply.value if isinstance(reply.value, dict) else {}
    return str(value.get("summary", ""))


async def report_node(state: RunState, ctx: RunContext) -> dict[str, Any]:
    """Check the goal's own requirements, then write report.md; returns the report, the checks and the status.

    The goal checks come first: a consent interrupt there re-runs this node, and nothing before it has effects."""
    tasks_passed = run_passed(ctx.plan, state["tasks"])
    goal_checks = await check_goal(state.get("goal_checks") or [], ctx, run_commands=tasks_passed)
    passed = tasks_passed and goal_passed(goal_checks)
    home = (home_of(ctx.run_dir),)  # in the workspace in an --in-place run; not an artifact
    files = await asyncio.to_thread(artifacts, ctx.workspace, leave_out=home)  # a walk: off the event loop
    summary = await _summary(ctx.plan, state["tasks"], ctx, [n for n, _ in files], goal_checks)

    def write() -> str:
        events = read_events(ctx.events.path)
        policy = [e for e in events if e.get("event") in POLICY_EVENTS]
        plan_tasks = {t.id for t in ctx.plan.tasks}
        verdicts = [e for e in events if e.get("event") == "verdict" and e.get("task") in plan_tasks]
        text = render_report(ctx.plan, state["tasks"], ctx.workspace, summary=summary, policy=policy,
                             verdicts=verdicts, goal_checks=goal_checks, leave_out=home)
        text = with_earlier_phases(text, events)  # a re-planned run says what failed before (issue 18)
        if ctx.gate.policy.mode == "guide":  # guide mode ran nothing: its report is the proposal (issue 18)
            text = render_proposal(ctx.plan, state["tasks"], events, ctx.workspace)
        (ctx.run_dir / "report.md").write_text(text)
        return text

    text = await asyncio.to_thread(write)
    ctx.events.emit("report_written", path=str(ctx.run_dir / "report.md"), passed=passed)
    return {"report": text, "goal_checks": goal_checks, "status": "passed" if passed else "failed"}
