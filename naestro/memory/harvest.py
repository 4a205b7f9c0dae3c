"""A finished run's directory → its episodes: the run, each task's outcome, verdicts, policy denials, consents.

Read from what every run already writes (run.json, plan*.json, events.jsonl, all redacted at write time), so the
live hook at the end of a run and ``naestro memory ingest`` (a backfill of older runs) produce the same episodes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from naestro.memory.records import SLICES, Entity, Episode, Outcome, Slice
from naestro.memory.skills import skill_of

__all__ = ["FINISHED", "episodes_of_run"]

FINISHED = frozenset({"passed", "failed"})
_FILE = re.compile(r"\b[\w./-]+\.(?:py|txt|csv|json|md|yaml|yml|toml|html|sh|sql|pdf)\b")
_CUT = 600  # characters of a reason kept in an episode: the cause, not the whole log


def _events(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line of a killed process
        if isinstance(event, dict):
            yield event


def _when(event: dict[str, Any] | None, fallback: str) -> datetime:
    for text in ((event or {}).get("ts"), fallback):
        if isinstance(text, str):
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _slice(role: str | None) -> Slice:
    for s in SLICES:
        if s == role:
            return s
    return "plans"  # the planner's own calls (task "plan") and unknown roles


def _cut(text: str, limit: int = _CUT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _plan_tasks(run_dir: Path, plans: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """Task id → task (the latest phase that has it) and the first phase's plan (the one a skill reuses)."""
    tasks: dict[str, dict[str, Any]] = {}
    first: dict[str, Any] | None = None
    for name in plans or ["plan.json"]:
        try:
            plan = json.loads((run_dir / name).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(plan, dict):
            continue
        first = first or plan
        for task in plan.get("tasks", []):
            if isinstance(task, dict) and isinstance(task.get("id"), str):
                tasks[task["id"]] = task
    return tasks, first


def _files(task: dict[str, Any]) -> list[str]:
    named = _FILE.findall(f"{task.get('description', '')} {task.get('instructions', '')}")
    for check in task.get("accept", []):
        if isinstance(check, dict):
            named += [str(check[k]) for k in ("path", "file") if isinstance(check.get(k), str)]
    return list(dict.fromkeys(named))[:8]


def episodes_of_run(run_dir: Path) -> list[Episode]:
    """Every episode of a finished run, in the order they happened; [] for a run that has not finished."""
    try:
        record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    status = record.get("status")
    if status not in FINISHED:
        return []
    run_id, goal = str(record["run_id"]), str(record.get("goal", ""))
    tasks, first_plan = _plan_tasks(run_dir, list(record.get("plans", [])))
    events = list(_events(run_dir / "events.jsonl"))
    out: list[Episode] = []

    def add(kind: str, *, slice_: Slice, event: dict[str, Any] | None, text: str, outcome: Outcome,
            role: str | None = None, task: str | None = None, entities: tuple[Entity, ...] = (),
            plan: str | None = None) -> None:
        out.append(Episode.model_validate({
            "kind": kind, "run_id": run_id, "seq": len(out), "slice": slice_,
            "valid_at": _when(event, str(record.get("updated", ""))), "goal": goal, "text": text,
            "outcome": outcome, "role": role, "task": task,
            "entities": (Entity(kind="goal", name=_cut(goal, 300) or run_id), *entities), "plan": plan}))

    started: dict[str, dict[str, Any]] = {}
    checked: dict[str, dict[str, Any]] = {}
    tools: dict[str, set[str]] = {}
    reasons: dict[str, list[str]] = {}
    models: set[str] = set()
    for event in events:
        kind, task_id = event.get("event"), str(event.get("task", ""))
        task = tasks.get(task_id, {})
        role = str(task.get("role") or event.get("role") or "")
        if kind == "task_started":
            started.setdefault(task_id, event)
            if event.get("model"):
                models.add(str(event["model"]))
        elif kind == "task_checked":
            checked[task_id] = event
        elif kind == "tool_call" and event.get("ok"):
            tools.setdefault(task_id, set()).add(str(event.get("tool")))
        elif kind == "budget_exceeded":
            reasons.setdefault(task_id, []).append(
                f"budget exceeded: {event.get('resource')} spent {event.get('spent')} of {event.get('limit')}")
        elif kind == "tool_denied" and event.get("by") != "human":
            why = "; ".join(map(str, event.get("reasons") or []))
            reasons.setdefault(task_id, []).append(f"policy denied {event.get('tool')}: {why}")
            add("denial", slice_=_slice(role), event=event, outcome="denied", role=role or None, task=task_id,
                text=_cut(f"Policy denied tool {event.get('tool')} for task {task_id} ({role or 'planner'}) in run "
                          f"{run_id}: {why}. Goal: {goal}"),
                entities=(Entity(kind="tool", name=str(event.get("tool"))),))
        elif kind in ("consent_given", "consent_refused"):
            verb = "approved" if kind == "consent_given" else "refused"
            add("consent", slice_=_slice(role), event=event, outcome="approved" if verb == "approved" else "refused",
                role=role or None, task=task_id,
                text=_cut(f"{event.get('by', 'a human')} {verb} {event.get('action')} for task {task_id} in run "
                          f"{run_id}. Goal: {goal}"),
                entities=(Entity(kind="tool", name=str(event.get("action"))),))
        elif kind == "verdict":
            passed = bool(event.get("passed"))
            evidence = "; ".join(_cut(json.dumps(e, ensure_ascii=False), 200) for e in event.get("evidence") or [])
            add("verdict", slice_=_slice(role), event=event, outcome="passed" if passed else "failed",
                role=role or None, task=task_id,
                text=_cut(f"Evaluator {event.get('evaluator')} {'passed' if passed else 'failed'} task {task_id} "
                          f"(score {event.get('score')}, threshold {event.get('threshold')}) in run {run_id}. "
                          f"Evidence: {evidence}"),
                entities=tuple(Entity(kind="file", name=f) for f in _files(task)))
        elif kind in ("task_finished", "task_skipped"):
            status_ = "skipped" if kind == "task_skipped" else str(event.get("status"))
            outcome: Outcome = "passed" if status_ == "passed" else "failed"
            begun = started.get(task_id, {})
            failed_checks = [str(c.get("detail", "")) for c in (checked.get(task_id, {}).get("checks") or [])
                             if isinstance(c, dict) and not c.get("passed")]
            why = "; ".join([*reasons.get(task_id, []), *failed_checks])
            if kind == "task_skipped":
                why = f"skipped: its dependencies {event.get('blocked_by')} did not pass"
            model = str(begun.get("model") or "")
            entities = (*(Entity(kind="file", name=f) for f in _files(task)),
                        *(Entity(kind="tool", name=t) for t in sorted(tools.get(task_id, set()))),
                        *((Entity(kind="model", name=model),) if model else ()))
            text = (f"Task {task_id} ({role}) {status_} after {event.get('attempts', 0)} attempt(s) in run {run_id}. "
                    f"Task: {_cut(str(task.get('description', '')), 300).rstrip('.')}. "
                    f"Goal: {_cut(goal, 300).rstrip('.')}.")
            if outcome == "failed" and why:
                text += f" Why it failed: {_cut(why)}"
            add("task", slice_=_slice(role), event=event, outcome=outcome, role=role or None, task=task_id,
                text=text, entities=entities)
    finished = next((e for e in reversed(events) if e.get("event") == "run_finished"), None)
    skill = skill_of(first_plan) if first_plan else None
    task_list = ", ".join(f"{t} ({d.get('role')})" for t, d in tasks.items())
    failed = [e.task for e in out if e.kind == "task" and e.outcome == "failed"]
    add("run", slice_="plans", event=finished, outcome="passed" if status == "passed" else "failed",
        text=_cut(f"Run {run_id} {status}. Goal: {goal.rstrip('.')}. "
                  f"Plan ({record.get('plan_source') or 'given'}): {task_list}."
                  + (f" Failed tasks: {', '.join(map(str, failed))}." if failed else ""), 1200),
        entities=(*(Entity(kind="model", name=m) for m in sorted(models)),
                  *((Entity(kind="skill", name=skill.name),) if skill else ())),
        plan=json.dumps(first_plan, ensure_ascii=False) if first_plan else None)
    return out
