"""The effect journal: what each node execution already did, so re-executing it never repeats an effect.

LangGraph re-runs a node from its start when it resumes after ``interrupt()`` (consent) or after a crash.
Every model reply and tool receipt is journalled under a key (thread, task, attempt, call number) with a
hash of what was asked; a re-execution that asks the same thing at the same point gets the recorded
result back instead of calling again. A tool call is journalled before (``started``) and after
(``done``) its effect: ``started`` without ``done`` means the effect may have happened and is redone,
and says so in the events.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import JsonValue

from naestro.appendfile import AppendFile

__all__ = ["Journal", "JournalEntry", "request_hash"]

Kind = Literal["model", "tool", "memory"]  # memory: an agent's recall, so a resumed node sees the same facts


def request_hash(payload: JsonValue) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class JournalEntry:
    key: str
    kind: Kind
    request: str
    state: Literal["started", "done"]
    value: JsonValue = None


@dataclass
class Journal:
    path: Path
    _entries: dict[str, JournalEntry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _file: AppendFile | None = None

    def __post_init__(self) -> None:
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    raw = json.loads(line)
                    entry = JournalEntry(**raw)
                except (json.JSONDecodeError, TypeError):
                    continue  # a torn last line after a crash: that call is simply redone
                self._entries[entry.key] = entry

    def lookup(self, key: str, kind: Kind, request: str) -> JournalEntry | None:
        """The entry for this call if it asked the same thing; None if new or the run diverged here."""
        entry = self._entries.get(key)
        if entry is None or entry.kind != kind or entry.request != request:
            return None
        return entry

    def _append(self, entry: JournalEntry) -> None:
        line = json.dumps(entry.__dict__, default=str)
        with self._lock:
            if self._file is None:  # one handle for the journal's life, not an open (and a stat) per call
                self._file = AppendFile(self.path)
            self._file.append(line)  # in the OS after this: survives SIGKILL (fsync would add ~5 ms per call)
            self._entries[entry.key] = entry

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def started(self, key: str, kind: Kind, request: str) -> None:
        self._append(JournalEntry(key=key, kind=kind, request=request, state="started"))

    def done(self, key: str, kind: Kind, request: str, value: JsonValue) -> None:
        self._append(JournalEntry(key=key, kind=kind, request=request, state="done", value=value))
