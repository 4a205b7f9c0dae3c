"""Collect: the findings queue. The Introspector's typed findings over recent runs (failed or slow traces,
policy denials, evaluator misses, flaky checks), each queued once with the role that did the task, and a state
the loop moves: open → proposed / no_rule (left for a human) → merged / refused / rejected / rolled_back.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from naestro.events import read_events
from naestro.improve.proposal import role_of_task
from naestro.introspect import Finding, introspect_events
from naestro.runs import RunStore

__all__ = ["FindingState", "FindingsQueue", "QueuedFinding"]

FindingState = Literal["open", "proposed", "no_rule", "canary", "refused", "merged", "rejected", "rolled_back"]
_FINISHED = ("passed", "failed", "error")


class QueuedFinding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    finding: Finding
    role: str | None
    state: FindingState = "open"
    proposal: str | None = None
    note: str = ""


def _key(f: Finding) -> str:
    return hashlib.sha256(f"{f.run}\0{f.task}\0{f.kind}\0{f.evidence}".encode()).hexdigest()[:12]


class FindingsQueue:
    """A small JSON file (HOME/improve/findings.json), rewritten whole and atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def items(self) -> list[QueuedFinding]:
        if not self.path.exists():
            return []
        return [QueuedFinding.model_validate(x) for x in json.loads(self.path.read_text())]

    def _save(self, items: list[QueuedFinding]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps([i.model_dump(mode="json") for i in items], indent=1))
        tmp.replace(self.path)

    def collect(self, store: RunStore, *, last: int) -> list[QueuedFinding]:
        """Introspect the newest ``last`` finished runs; returns the findings not queued before (now queued)."""
        items = self.items()
        known = {i.key for i in items}
        runs = [r for r in store.list() if r.status in _FINISHED][-last:]
        new: list[QueuedFinding] = []
        for record in runs:
            events = read_events(store.dir(record.run_id) / "events.jsonl")
            for f in introspect_events(record.run_id, events):
                key = _key(f)
                if key not in known:
                    known.add(key)
                    new.append(QueuedFinding(key=key, finding=f, role=role_of_task(events, f.task)))
        if new:
            self._save([*items, *new])
        return new

    def mark(self, key: str, state: FindingState, *, proposal: str | None = None, note: str = "") -> None:
        items = self.items()
        for i in items:
            if i.key == key:
                i.state, i.note = state, note or i.note
                i.proposal = proposal or i.proposal
        self._save(items)

    def mark_proposal(self, proposal: str, state: FindingState, *, note: str = "") -> None:
        """Every finding a proposal answered follows its outcome (merged, rejected, rolled back)."""
        items = self.items()
        for i in items:
            if i.proposal == proposal:
                i.state, i.note = state, note or i.note
        self._save(items)
