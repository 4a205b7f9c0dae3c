"""Kill switches: a small durable store (SQLite in NAESTRO_HOME) that every gate of every live run reads.

``naestro pause RUN`` stops a run at its next gate; ``naestro quarantine tool|model NAME`` denies that tool
or endpoint everywhere; ``naestro revoke ...`` lifts a quarantine or withdraws a run's remembered
consents. Readers poll ``PRAGMA data_version`` (a counter SQLite bumps when another connection commits),
so the gate re-reads the table only after a change: the switch costs one pragma per decision.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["KillSwitches", "Switch", "SwitchKind"]

SwitchKind = Literal["pause", "quarantine_tool", "quarantine_model", "revoke_consents"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS switches (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  target TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  by TEXT NOT NULL DEFAULT '',
  created REAL NOT NULL,
  lifted REAL
);
CREATE INDEX IF NOT EXISTS switches_active ON switches (kind, target) WHERE lifted IS NULL;
"""


@dataclass(frozen=True)
class Switch:
    id: int
    kind: SwitchKind
    target: str
    reason: str
    by: str
    created: float


class KillSwitches:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._version = -1
        self._active: list[Switch] = []

    def close(self) -> None:
        self._db.close()

    def set(self, kind: SwitchKind, target: str, *, reason: str = "", by: str = "") -> Switch:
        cur = self._db.execute("INSERT INTO switches (kind, target, reason, by, created) VALUES (?, ?, ?, ?, ?)",
                               (kind, target, reason, by, time.time()))
        self._version = -1  # data_version only counts other connections' commits
        assert cur.lastrowid is not None
        return next(s for s in self._read() if s.id == cur.lastrowid)

    def lift(self, kind: SwitchKind, target: str) -> int:
        """Lift every active switch of this kind on this target; returns how many were lifted."""
        cur = self._db.execute("UPDATE switches SET lifted = ? WHERE kind = ? AND target = ? AND lifted IS NULL",
                               (time.time(), kind, target))
        self._version = -1
        return cur.rowcount

    def _read(self) -> list[Switch]:
        rows = self._db.execute("SELECT id, kind, target, reason, by, created FROM switches "
                                "WHERE lifted IS NULL ORDER BY id").fetchall()
        return [Switch(*row) for row in rows]

    def active(self) -> list[Switch]:
        """Active switches, re-read only when another connection changed the table."""
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            self._active, self._version = self._read(), version
        return self._active

    def targets(self, kind: SwitchKind) -> list[str]:
        return sorted({s.target for s in self.active() if s.kind == kind})

    def paused(self, run_id: str) -> Switch | None:
        return next((s for s in self.active() if s.kind == "pause" and s.target == run_id), None)
