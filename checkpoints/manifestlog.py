"""Snapshot manifests and the workspace's latest snapshot, as lines of one append-only ``manifests.jsonl``.

A line is a full manifest ``{"id", "full": {path: entry}}``, a delta ``{"id", "base", "depth", "set", "del"}``
against an earlier snapshot, or a move ``{"id"}`` (the workspace is back at a snapshot stored before: an undo, a
restore). The latest snapshot is the id of the last complete line. One append per step replaces the two files a
step used to create (``manifests/<id>.delta.json`` and a rewritten ``latest``): creating a file costs ~1 ms of
kernel CPU on these machines, an append to an open file ~2 µs (issue 16). Stores written before this log
(``manifests/*.json`` and ``latest``) are still read.

Torn last lines (a crash mid-write) are skipped; other processes' appends (a restore by the CLI, a resumed run in
a new worker) are read when the file's size says there are any.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path
from typing import IO, Any

__all__ = ["ManifestLog"]


class ManifestLog:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "manifests.jsonl"
        self.legacy = root / "manifests"
        self._lock = threading.Lock()
        self._bodies: dict[str, dict[str, Any]] = {}
        self._sizes: dict[str, int] = {}
        self._latest: str | None = None
        self._read = 0  # bytes of the log already parsed
        self._fh: IO[bytes] | None = None

    def _refresh(self) -> None:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size == self._read:
            return
        with self.path.open("rb") as fh:
            fh.seek(self._read)
            tail = fh.read()
        end = tail.rfind(b"\n") + 1
        for line in tail[:end].splitlines():
            self._take(line)
        self._read += end

    def _take(self, line: bytes) -> None:
        try:
            body = json.loads(line)
            snap = str(body["id"])
        except (ValueError, KeyError, TypeError):
            return  # a torn line a crash left behind, followed by later appends
        if "full" in body or "set" in body:
            self._bodies[snap] = body
            self._sizes[snap] = len(line) + 1
        self._latest = snap

    # --- reading -----------------------------------------------------------------------------------------

    def latest(self) -> str | None:
        """The workspace's latest snapshot id (None before the first)."""
        with self._lock:
            self._refresh()
            if self._latest is not None:
                return self._latest
        legacy = self.root / "latest"
        return legacy.read_text().strip() if legacy.exists() else None

    def body(self, snap: str) -> dict[str, Any] | None:
        """``{"full": ...}`` or ``{"base", "depth", "set", "del"}`` for a stored snapshot; None if unknown."""
        with self._lock:
            if snap not in self._bodies:
                self._refresh()
            if snap in self._bodies:
                return self._bodies[snap]
        full, delta = self.legacy / f"{snap}.json", self.legacy / f"{snap}.delta.json"
        if full.exists():
            return {"id": snap, "full": json.loads(full.read_text())}
        if delta.exists():
            return {"id": snap, **json.loads(delta.read_text())}
        return None

    def kind(self, snap: str) -> str | None:
        """``full``, ``delta`` or None (not stored)."""
        body = self.body(snap)
        return None if body is None else ("full" if "full" in body else "delta")

    def depth(self, snap: str | None) -> int:
        body = self.body(snap) if snap else None
        return int(body.get("depth", 0)) if body else 0

    def stored_bytes(self, snap: str | None = None) -> int:
        """Bytes of one snapshot's manifest line, or of the whole log when ``snap`` is None."""
        with self._lock:
            self._refresh()
            if snap is not None:
                return self._sizes.get(snap, 0)
        return self.path.stat().st_size if self.path.exists() else 0

    # --- writing -----------------------------------------------------------------------------------------

    def append_full(self, snap: str, entries: dict[str, Any]) -> None:
        self._append({"id": snap, "full": entries})

    def append_delta(self, snap: str, *, base: str, depth: int, put: dict[str, Any], gone: list[str]) -> None:
        self._append({"id": snap, "base": base, "depth": depth, "set": put, "del": gone})

    def move(self, snap: str) -> None:
        """The workspace is at ``snap`` again (stored before)."""
        self._append({"id": snap})

    def _append(self, body: dict[str, Any]) -> None:
        line = (json.dumps(body, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fh is None:
                self.root.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("ab", buffering=0)
            fcntl.flock(self._fh, fcntl.LOCK_EX)
            try:
                self._refresh()  # another process's lines first, so ours is the latest
                size = os.fstat(self._fh.fileno()).st_size
                out = line if size == self._read else b"\n" + line  # end a torn fragment: ours stays whole
                self._fh.write(out)  # one write to an O_APPEND descriptor: whole or torn, never interleaved
                self._read = size + len(out)
            finally:
                fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._take(line[:-1])

    def copy_into(self, other: ManifestLog) -> None:
        """Every manifest of this log into ``other`` (a fork's store), legacy files included."""
        with self._lock:
            self._refresh()
            bodies = list(self._bodies.values())
        legacy = sorted(self.legacy.glob("*.json")) if self.legacy.is_dir() else []
        for path in legacy:
            snap = path.name.removesuffix(".json").removesuffix(".delta")
            body = self.body(snap)
            if body is not None:
                bodies.append(body)
        for body in bodies:
            if other.body(str(body["id"])) is None:
                other._append(body)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
