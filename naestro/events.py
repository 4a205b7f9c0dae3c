"""The run's event log (events.jsonl): one JSON object per line, appended as things happen.

Timestamps are wall-clock (``ts``, ISO) plus a monotonic offset (``t``) so overlap of parallel tasks is
visible. Subscribers (the live CLI view) get every event in-process.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import JsonValue

from naestro.redact import redact_value

Event = dict[str, JsonValue]


class EventLog:
    def __init__(self, path: Path, *, run_id: str) -> None:
        self.path, self.run_id = path, run_id
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._dir_ready = False
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, fn: Callable[[Event], None]) -> None:
        self._subscribers.append(fn)

    def emit(self, event: str, **fields: JsonValue) -> Event:
        record: Event = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                         "t": round(time.monotonic() - self._t0, 4), "run": self.run_id, "event": event,
                         **redact_value(fields)}  # the last line of defence: events are logs, never secrets
        line = json.dumps(record, default=str)
        with self._lock:
            if not self._dir_ready:  # once, and only when missing: mkdir per event cost a syscall each (issue 16)
                if not os.path.isdir(self.path.parent):
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._dir_ready = True
            with self.path.open("a") as f:
                f.write(line + "\n")
        for fn in self._subscribers:
            fn(record)
        return record


def read_events(path: Path) -> list[Event]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
