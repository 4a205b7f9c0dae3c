"""Earlier phases in the final report: a re-planned run's report says what failed before the re-plan.

Issue 18: a run whose first phase failed (``wall_s`` exceeded) and whose re-plan passed said PASSED in report.md,
and the failure was only in report.phase0.md. The facts come from the run's events (written by code, like the
rest of the report), split into phases at each ``replanning`` event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from naestro.events import Event

__all__ = ["PhaseOutcome", "earlier_phase_lines", "phase_outcomes", "with_earlier_phases"]


@dataclass
class PhaseOutcome:
    phase: int
    passed: bool | None = None  # None: the phase wrote no report (it was interrupted)
    status: dict[str, str] = field(default_factory=dict)  # task -> its last final status
    why: dict[str, str] = field(default_factory=dict)  # task -> the last reason it did not pass


def phase_outcomes(events: list[Event]) -> list[PhaseOutcome]:
    phases = [PhaseOutcome(0)]
    for e in events:
        kind, task = e.get("event"), e.get("task")
        now = phases[-1]
        if kind == "replanning":
            phases.append(PhaseOutcome(len(phases)))
        elif kind == "report_written":
            now.passed = bool(e.get("passed"))
        elif kind == "task_finished" and isinstance(task, str):
            now.status[task] = str(e.get("status"))
        elif kind == "budget_exceeded" and isinstance(task, str):
            now.why[task] = f"{e.get('resource')} budget exceeded (spent {e.get('spent')} of {e.get('limit')})"
        elif kind == "tool_denied" and isinstance(task, str):
            reasons = e.get("reasons")
            text = "; ".join(map(str, reasons)) if isinstance(reasons, list) else str(reasons)
            now.why[task] = f"{e.get('tool')} denied by {e.get('by')}: {text}"[:300]
        elif kind == "task_checked" and isinstance(task, str) and e.get("status") != "passed":
            checks = e.get("checks")
            failed = [c for c in checks if isinstance(c, dict) and not c.get("passed")] \
                if isinstance(checks, list) else []
            if failed:
                now.why[task] = f"{failed[0].get('kind')} check failed: {str(failed[0].get('detail'))[:200]}"
    return phases


def earlier_phase_lines(events: list[Event]) -> list[str]:
    """One line per phase before the last, with the tasks that did not pass and why; none for a one-phase run."""
    lines = []
    for p in phase_outcomes(events)[:-1]:
        verdict = "PASSED" if p.passed else "FAILED" if p.passed is False else "did not finish"
        unfinished = [f"{t} {s}" + (f" ({p.why[t]})" if t in p.why else "")
                      for t, s in p.status.items() if s != "passed"]
        lines.append(f"- phase {p.phase} (report.phase{p.phase}.md): {verdict}"
                     + (f": {'; '.join(unfinished)}" if unfinished else ""))
    return lines


def with_earlier_phases(report: str, events: list[Event]) -> str:
    """``report`` with an "Earlier phases" section under the goal when the run was re-planned."""
    lines = earlier_phase_lines(events)
    if not lines:
        return report
    head, sep, rest = report.partition("\n## Summary")
    block = "\n**Earlier phases** (re-planned after these; the checks of their unfinished tasks were carried " \
            "over):\n\n" + "\n".join(lines) + "\n"
    return head + block + sep + rest if sep else report + block
