"""What the Studio shows of a run, read from the run directory: run.json, the plan files and events.jsonl.

Everything here is computed from files, so a run executed by another process (``naestro run``, a LangGraph
server, a worker) looks the same as one the Studio started. Task statuses are not computed here: the browser
folds the same events with its reducer (studio/web/src/reducer.ts), live over SSE and at load alike.

A run executed by ``naestro worker``s (issue 20) is the exception: run.json names the last process that took it,
which says nothing about whether a worker drives it now, so its status comes from the run's lock, exactly as in
``naestro runs show`` and the scale-out API (naestro/distributed/status.py): queued, running on HOST:PID, queued
again (HOST:PID stopped), waiting for consent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue

from naestro.events import Event, read_events
from naestro.remote_status import remote_statuses_of
from naestro.runs import RunRecord, RunStore

if TYPE_CHECKING:
    from naestro.distributed.status import RemoteStatus
    from naestro.settings import Settings

__all__ = ["run_detail", "run_summary", "summaries", "workspace_files"]

# Events that are a model or tool call, a policy decision or an evaluator verdict: the run view's tables.
CALLS = ("model_call", "tool_call", "tool_denied", "tool_replayed", "tool_redone")
POLICY = ("policy_decision", "consent_requested", "consent_given", "consent_refused", "tool_denied", "proposed")


def _ts(event: Event) -> float | None:
    ts = event.get("ts")
    try:
        return datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else None
    except ValueError:
        return None


def _num(value: JsonValue) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def run_summary(record: RunRecord, events: list[Event], remote: RemoteStatus | None = None) -> dict[str, JsonValue]:
    """One row of the runs list: status, cost and tokens of its model calls, wall time from first to last event.

    ``remote``: the run's status as its lock tells it, for a run workers execute. ``status`` is then the API's
    (queued / planning / running / waiting / ...), ``status_text`` the line `naestro runs list` prints
    ("running on HOST:PID", "queued again (HOST:PID stopped)", "waiting for consent"), ``worker`` HOST:PID."""
    calls = [e for e in events if e.get("event") == "model_call"]
    stamps = [t for t in map(_ts, events) if t is not None]
    finished = [e for e in events if e.get("event") == "task_finished"]
    status = remote.status if remote is not None else record.display_status
    return {
        "run_id": record.run_id, "goal": record.goal, "status": status,
        "status_text": remote.text if remote is not None else status,
        "worker": remote.worker if remote is not None else None, "remote": record.remote,
        "created": record.created, "updated": record.updated, "mode": record.policy.mode, "served": record.served,
        "live": status in ("planning", "running"),
        "cost_usd": round(sum(_num(e.get("cost_usd")) for e in calls), 6),
        "tokens": int(sum(_num(e.get("prompt_tokens")) + _num(e.get("completion_tokens")) for e in calls)),
        "duration_s": round(max(stamps) - min(stamps), 3) if stamps else 0.0,
        "tasks": len({str(e.get("task")) for e in finished}),
        "tasks_passed": len({str(e.get("task")) for e in finished if e.get("status") == "passed"}),
    }


def summaries(settings: Settings) -> list[dict[str, JsonValue]]:
    """Every run in ``settings``' home, newest first."""
    store = RunStore(settings.runs_dir)
    records = store.list()
    remote: Mapping[str, RemoteStatus] = remote_statuses_of(settings, records)
    rows = [run_summary(r, read_events(store.dir(r.run_id) / "events.jsonl"), remote.get(r.run_id))
            for r in records]
    return rows[::-1]


def _plan(run_dir: Path, record: RunRecord) -> JsonValue:
    """The run's current plan (its last phase), as written by the planner node; None before planning ends."""
    for name in reversed(record.plans):
        try:
            plan: JsonValue = json.loads((run_dir / name).read_text())
        except (OSError, ValueError):
            continue
        return plan
    return None


def _pick(events: list[Event], kinds: tuple[str, ...] | None) -> list[JsonValue]:
    return [e for e in events if kinds is None or e.get("event") in kinds]


def run_detail(settings: Settings, run_id: str) -> dict[str, JsonValue]:
    """The run view: summary, plan DAG, every event, and the calls and policy decisions picked out of them.

    Raises ``UnknownRun`` for an id with no run.json."""
    store = RunStore(settings.runs_dir)
    record = store.load(run_id)
    run_dir = store.dir(run_id)
    events = read_events(run_dir / "events.jsonl")
    report = run_dir / "report.md"
    return {
        **run_summary(record, events, remote_statuses_of(settings, [record]).get(run_id)),
        "workspace": record.workspace, "error": record.error,
        "plan_source": record.plan_source, "phase": max(len(record.plans) - 1, 0), "head": record.head,
        "plan": _plan(run_dir, record), "events": _pick(events, None),
        "calls": _pick(events, CALLS), "policy": _pick(events, POLICY), "verdicts": _pick(events, ("verdict",)),
        "report": report.read_text() if report.exists() else None,
    }


SKIP_DIRS = frozenset({".git", "__pycache__", ".pytest_cache", "node_modules", ".venv"})


def workspace_files(store: RunStore, run_id: str, *, limit: int = 200, preview_bytes: int = 2048) -> list[JsonValue]:
    """The run's workspace files (path, size, the text of small UTF-8 files), so the history page shows what a
    rollback changed. At most ``limit`` files: an ``--in-place`` workspace can be a whole project."""
    root = Path(store.load(run_id).workspace)
    found: list[JsonValue] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            size = path.stat().st_size
            preview: str | None = None
            if size <= preview_bytes:
                try:
                    preview = path.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    preview = None
            found.append({"path": path.relative_to(root).as_posix(), "size": size, "preview": preview})
            if len(found) >= limit:
                return found
    return found
