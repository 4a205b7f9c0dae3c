"""The Introspector: a finished run's events (traces of what happened, verdicts, denials, retries) turned into
typed findings, each with the evidence and a proposed minimal change.

Rules are deliberately plain and explainable (no model): a finding must point at events anyone can read in
``events.jsonl``. Kinds:

* ``wrong_tool``    the gate denied a tool the role may not use or that does not exist
* ``weak_prompt``   retries repeated the same failure (feedback did not help), or the agent went outside the
                    workspace; an attempt whose checks only timed out gave no verdict and is left out, so a busy
                    machine does not hide a repeated failure
* ``flaky_check``   a check changed verdict between attempts although nothing was written in between
* ``router_mistake`` an endpoint needed retries or re-routes, or was routed in degraded mode
* ``budget``        a task ran out of tokens or time
* ``tool_timeout``  a tool call hit its time limit (and was cancelled)
* ``tool_error``    one task called the same tool with the same error twice or more (the error did not teach the
                    agent how to call it)
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from naestro.evaluators import TIMED_OUT
from naestro.events import Event, read_events
from naestro.tooladapter import adapter_path

__all__ = ["Finding", "FindingKind", "introspect_events", "introspect_run"]

FindingKind = Literal["wrong_tool", "weak_prompt", "flaky_check", "router_mistake", "budget", "tool_timeout",
                      "tool_error"]
WRITES = ("fs.write", "fs.patch", "exec.run", "git.commit")


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FindingKind
    run: str
    task: str
    evidence: str
    proposal: str
    tool: str | None = None  # tool_timeout, tool_error: which tool
    limit_s: float | None = None  # tool_timeout: the limit the call hit


def _num(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _failed(checks: object) -> list[str]:
    if not isinstance(checks, list):
        return []
    # headline plus the first evidence line (evaluator details put their failing evidence first)
    return [f"{c.get('kind')}: " + " / ".join(ln.strip() for ln in str(c.get("detail", "")).splitlines()[:3])[:300]
            for c in checks if isinstance(c, dict) and not c.get("passed")]


def _no_verdict(failed: list[str]) -> bool:
    """Every failed check of the attempt timed out: it says nothing about the work (a busy machine, a hang)."""
    return bool(failed) and all(TIMED_OUT in f for f in failed)


def introspect_events(run: str, events: list[Event]) -> list[Finding]:
    out: list[Finding] = []
    checked: dict[str, list[tuple[int, list[str]]]] = defaultdict(list)
    writes_since: dict[str, int] = defaultdict(int)
    last_failed: dict[str, list[str]] = {}
    errors: dict[tuple[str, str, str], int] = defaultdict(int)  # (task, tool, error) -> failed calls
    for e in events:
        kind, task = e.get("event"), str(e.get("task", ""))
        if kind == "tool_call":
            out += _tool_trouble(run, task, e, errors)
        if kind == "tool_call" and e.get("tool") in WRITES:
            writes_since[task] += 1
        elif kind == "tool_denied":
            raw = e.get("reasons")
            reasons = "; ".join(map(str, raw)) if isinstance(raw, list) else str(raw or "")
            if "may not use tool" in reasons or "unknown" in reasons.lower() or "not registered" in reasons:
                out.append(Finding(kind="wrong_tool", run=run, task=task, evidence=f"{e.get('tool')}: {reasons}",
                                   proposal=f"give the task a role that has {e.get('tool')} (nodes/roles.yaml), or "
                                   "name the allowed tools in the task's instructions"))
            elif "outside" in reasons or "path" in reasons.lower():
                out.append(Finding(kind="weak_prompt", run=run, task=task, evidence=f"{e.get('tool')}: {reasons}",
                                   proposal="say in the task instructions that paths are relative to the workspace"))
        elif kind == "task_checked":
            failed = _failed(e.get("checks"))
            number = e.get("attempt")
            attempt = number if isinstance(number, int) else 0
            previous = last_failed.get(task)
            if previous is not None and bool(previous) != bool(failed) and writes_since[task] == 0:
                out.append(Finding(kind="flaky_check", run=run, task=task,
                                   evidence=f"attempt {attempt} {'failed' if failed else 'passed'} after the previous "
                                   "check gave the opposite verdict, with no write in between: "
                                   + "; ".join(failed or previous),
                                   proposal="make the check deterministic (fixed seed/inputs, no network or clock) "
                                   "or check a file the task writes"))
            checked[task].append((attempt, failed))
            last_failed[task] = failed
            writes_since[task] = 0
        elif kind in ("route_retry", "reroute"):
            out.append(Finding(kind="router_mistake", run=run, task=task,
                               evidence=f"{kind} on {e.get('endpoint')}: {e.get('reason', e.get('error', ''))}",
                               proposal=f"raise timeout_s or lower concurrency for {e.get('endpoint')} in "
                               "models.yaml, or prefer another endpoint for this role"))
        elif kind == "route" and e.get("rule") == "degraded":
            out.append(Finding(kind="router_mistake", run=run, task=task,
                               evidence=f"routed to {e.get('endpoint')} in degraded mode: {e.get('reason', '')}",
                               proposal="add an endpoint within the SLO or relax slo_p95_s for this role"))
        elif kind == "budget_exceeded":
            out.append(Finding(kind="budget", run=run, task=task,
                               evidence=f"{e.get('resource')}: spent {_num(e.get('spent'))} of {_num(e.get('limit'))}",
                               proposal=f"raise the task's {e.get('resource')} budget or split the task in two"))
    for task, attempts in checked.items():
        attempts = [(a, f) for a, f in attempts if not _no_verdict(f)]
        repeats = [a for a, f in attempts if f]
        failures = [tuple(f) for _, f in attempts if f]
        if len(repeats) >= 2 and len(set(failures)) == 1:
            out.append(Finding(kind="weak_prompt", run=run, task=task,
                               evidence=f"attempts {repeats} failed the same way: {'; '.join(failures[0])}",
                               proposal="the feedback did not change the result: put the failing check's "
                               "requirement into the task instructions, or make it a direct action"))
    return out


def _tool_trouble(run: str, task: str, e: Event, errors: dict[tuple[str, str, str], int]) -> list[Finding]:
    """A timeout at once; an error on its second occurrence in the task (once is how an agent learns a tool)."""
    tool, error = str(e.get("tool", "")), str(e.get("error") or "")
    limit = e.get("timeout_s")
    if e.get("timed_out"):
        return [Finding(kind="tool_timeout", run=run, task=task, tool=tool,
                        limit_s=float(limit) if isinstance(limit, int | float) else None,
                        evidence=f"{tool} timed out after {_num(limit)} s: {error}",
                        proposal=f"raise {tool}'s timeout_s in {adapter_path(tool)} (a tool adapter), or "
                        "give the task a smaller input")]
    if e.get("ok") is not False or not error:
        return []
    errors[(task, tool, error)] += 1
    if errors[(task, tool, error)] != 2:
        return []
    return [Finding(kind="tool_error", run=run, task=task, tool=tool,
                    evidence=f"{tool} failed twice with: {error}",
                    proposal=f"add a usage hint for {tool} in {adapter_path(tool)} (a tool adapter)")]


def introspect_run(run_dir: Path) -> list[Finding]:
    return introspect_events(run_dir.name, read_events(run_dir / "events.jsonl"))
