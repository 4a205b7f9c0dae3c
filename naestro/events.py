"""The run's event log (events.jsonl): one JSON object per line, appended as things happen.

Timestamps are wall-clock (``ts``, ISO) plus an offset in seconds (``t``) so overlap of parallel tasks is
visible. ``t`` counts from ``origin`` (the run's creation) when given: a run's events are written by more than one
log object (planning's, the live run's, a resume in another process), and an offset from each object's own start
made ``t`` restart mid-file, so the improve loop's wall time (the largest ``t``) missed the planning phase.
Within one log object ``t`` advances on the monotonic clock (a wall-clock step does not reorder events).
Subscribers (the live CLI view) get every event in-process.

The file stays open for the log's life (one ``O_APPEND`` handle, unbuffered: each record is one ``write``, in
the OS when ``emit`` returns, so it survives a SIGKILL); re-opening it and checking its folder per event cost
a few syscalls each (issue 16). ``close`` releases it; a log dropped without ``close`` releases it when collected.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import JsonValue

from naestro.appendfile import AppendFile
from naestro.redact import redact_value

Event = dict[str, JsonValue]


class EventLog:
    def __init__(self, path: Path, *, run_id: str, origin: datetime | None = None) -> None:
        self.path, self.run_id = path, run_id
        since = 0.0 if origin is None else max(0.0, (datetime.now(UTC) - origin).total_seconds())
        self._t0 = time.monotonic() - since
        self._lock = threading.Lock()
        self._file: AppendFile | None = None
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, fn: Callable[[Event], None]) -> None:
        self._subscribers.append(fn)

    def emit(self, event: str, **fields: JsonValue) -> Event:
        record: Event = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                         "t": round(time.monotonic() - self._t0, 4), "run": self.run_id, "event": event,
                         **redact_value(fields)}  # the last line of defence: events are logs, never secrets
        line = json.dumps(record, default=str)
        with self._lock:
            if self._file is None:
                self._file = AppendFile(self.path)
            self._file.append(line)
        for fn in self._subscribers:
            fn(record)
        return record

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_events(path: Path) -> list[Event]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
