"""Guide mode proposes; a policy deny is never a reason to re-plan (issue 18).

Seen: guide mode on a plan whose write was denied; the model re-planned new tasks that guide mode also denied,
retried each three times (39k tokens, 5.5 min), and the --json output no longer listed the user's tasks.

In guide mode an action the policy denies *only* because guide mode has no side effects is recorded as a
proposal (a ``proposed`` event with its arguments) and the agent is told to carry on as if it had been done, so
one attempt per task collects everything it would do. The task then ends (no checks: nothing was run, no retry,
no Reviewer pass), dependent tasks propose too, and the report is the proposal: the plan, the files it would
write (as diffs against the workspace), the commands it would run. In every mode, a run whose unfinished tasks
met a deny (policy or human) is not re-planned: a new plan would only try to route around the policy.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue

from naestro.errors import PolicyDenied
from naestro.events import Event
from naestro.plan import CommandCheck, Plan

if TYPE_CHECKING:  # naestro.context imports this module; graphs/__init__ imports the compiled graph
    from graphs.state import TaskRecord

__all__ = ["DENIED", "GUIDE_ONLY", "PROPOSED", "guide_proposal", "proposal_arguments", "render_proposal",
           "replan_forbidden"]

GUIDE_ONLY = "guide mode proposes only"
"""The start of the gate's ``mode_guide`` deny message (policies/rego/gate.rego)."""

PROPOSED = ("PROPOSED (guide mode: recorded for the proposal report, not run). Continue as if it had been done; "
            "finish when every change the task needs is proposed.")

DENIED = "denied by the policy gate"
"""The start of a task record's ``error`` when an attempt met a deny (the re-plan rule reads it)."""

_MAX_CHARS = 20_000  # per proposed argument string: a proposal of a huge file is cut, and says so


def guide_proposal(exc: PolicyDenied) -> bool:
    """Whether a deny is guide mode's alone (any other rule, or a human, makes it a real deny)."""
    return exc.by == "policy" and bool(exc.reasons) and all(str(r).startswith(GUIDE_ONLY) for r in exc.reasons)


def proposal_arguments(arguments: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    def cut(value: JsonValue) -> JsonValue:
        if isinstance(value, str) and len(value) > _MAX_CHARS:
            return value[:_MAX_CHARS] + f"\n[... {len(value) - _MAX_CHARS} more chars not shown]"
        return value
    return {k: cut(v) for k, v in arguments.items()}


def replan_forbidden(mode: str, tasks: Mapping[str, TaskRecord]) -> str | None:
    """Why the run must not be re-planned, or None."""
    if mode == "guide":
        return "guide mode proposes; it does not re-plan"
    for tid, rec in tasks.items():
        if rec["status"] == "passed":
            continue
        if rec.get("refused"):
            return f"a human refused consent in task {tid!r}; a re-plan would ask around the refusal"
        if rec.get("error", "").startswith(DENIED):
            return f"task {tid!r}: {rec.get('error')}; a re-plan would only route around the policy"
    return None


def _diff(workspace: Path, path: str, content: str) -> list[str]:
    target = (workspace / path)
    try:
        inside = target.resolve().is_relative_to(workspace.resolve())
        old = target.read_text(encoding="utf-8", errors="replace") if inside and target.is_file() else None
    except OSError:
        old = None
    if old is None:
        return [f"new file `{path}`:", "", "```", *content.splitlines(), "```"]
    diff = list(difflib.unified_diff(old.splitlines(), content.splitlines(), f"a/{path}", f"b/{path}", lineterm=""))
    return [f"changes to `{path}`:", "", "```diff", *(diff or ["(no change)"]), "```"]


def render_proposal(plan: Plan, tasks: Mapping[str, TaskRecord], events: list[Event], workspace: Path) -> str:
    """The guide-mode report: what the run would do, for a human to review and run (e.g. in copilot mode)."""
    proposed = [e for e in events if e.get("event") == "proposed"]
    lines = ["# Naestro proposal (guide mode: nothing was run)", "", f"**Goal:** {plan.goal}", "",
             "Re-run in copilot mode (`--mode copilot`) to carry it out with your consent for each sensitive action.",
             "", "## Plan", ""]
    for t in plan.tasks:
        deps = f" (after {', '.join(t.deps)})" if t.deps else ""
        rec = tasks.get(t.id)
        lines.append(f"- **{t.id}** [{t.role.value}]{deps}: {t.description}"
                     + (f" — {rec['summary'][:300]}" if rec and rec["summary"] else ""))
        for c in t.accept:
            lines.append(f"  - accept: {c.model_dump_json(by_alias=True, exclude_defaults=True)}")
    writes: list[str] = []
    commands: list[str] = []
    other: list[str] = []
    for e in proposed:
        args = e.get("arguments")
        args = args if isinstance(args, dict) else {}
        tool, task = str(e.get("tool")), str(e.get("task"))
        if tool == "fs.write" and isinstance(args.get("path"), str) and isinstance(args.get("content"), str):
            writes += [f"### {task}", "", *_diff(workspace, str(args["path"]), str(args["content"])), ""]
        elif tool == "exec.run" and isinstance(args.get("command"), str):
            commands.append(f"- {task}: `{args['command']}`")
        else:
            other.append(f"- {task}: `{tool}` {args}")
    checks = [f"- {t.id} (acceptance check): `{c.command}`" for t in plan.tasks for c in t.accept
              if isinstance(c, CommandCheck)]
    lines += ["", "## Files it would write", "", *(writes or ["_(none proposed)_", ""])]
    lines += ["## Commands it would run", "", *(commands + checks or ["_(none)_"])]
    if other:
        lines += ["", "## Other actions it would take", "", *other]
    denied = [e for e in events if e.get("event") == "tool_denied" and not _guide_only(e.get("reasons"))]
    if denied:
        lines += ["", "## Denied by policy beyond guide mode (would be denied in any mode)", ""]
        lines += [f"- {e.get('task')}: `{e.get('tool')}`: {'; '.join(_texts(e.get('reasons')))}" for e in denied]
    return "\n".join(lines) + "\n"


def _texts(value: JsonValue) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _guide_only(reasons: JsonValue) -> bool:
    return isinstance(reasons, list) and bool(reasons) and all(str(r).startswith(GUIDE_ONLY) for r in reasons)
