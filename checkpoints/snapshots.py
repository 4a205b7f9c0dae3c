"""Workspace snapshots bound to checkpoints: content-addressed copies, manifests written as deltas.

Each distinct file content is stored once (a copy: the workspace file will change), packed into an append-only
file (``checkpoints.objectpack``). A snapshot's manifest maps relative paths to (sha256, mode, size, mtime_ns) —
or a symlink target — and the snapshot id is the hash of that mapping (equal contents → equal id). Manifests are
lines of an append-only log (``checkpoints.manifestlog``), stored as deltas — the paths set and deleted against
the previous snapshot — so a step that changes one file writes one entry, not the whole tree (issue 16: full
manifests per step grew with files × steps); a full one is written for the first snapshot and for every
``CHAIN_LIMIT``-th link so that reading a snapshot in a new process reads a bounded chain. A step appends to
open files and creates none (a new file costs ~1 ms of kernel CPU on these machines).

Taking a snapshot walks the workspace and re-hashes only files whose size or mtime changed — unless the store
knows what changed since its last snapshot: the tool layer reports the files ``fs.write`` / ``fs.patch``
wrote (``note_written``), and ``take`` then looks at those paths only. Anything that can touch files unseen
(``exec.run``, a tool that is not read-only, a failed write, planning probes, a restore by another store,
a new process) calls ``note_unknown`` or simply leaves the store unknowing, and the next ``take`` walks; so
does every ``WALK_EVERY``-th take, which bounds how long an edit made outside Naestro goes unseen.

``index.jsonl`` binds checkpoint ids to snapshot ids: the snapshot of a checkpoint is the workspace as it
was when that checkpoint was the latest, taken by the first node of the next step before it can change
anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from checkpoints.manifestlog import ManifestLog
from checkpoints.objectpack import ObjectPack
from naestro.errors import UsageError
from naestro.homes import home_of, walk

__all__ = ["FileEntry", "SnapshotStore", "WorkspaceChanged"]


@dataclass(frozen=True)
class FileEntry:
    sha256: str = ""
    mode: int = 0o644
    size: int = 0
    mtime_ns: int = 0
    link: str | None = None


class WorkspaceChanged(UsageError):
    """The workspace differs from its last snapshot: something outside Naestro changed it."""

    def __init__(self, workspace: Path, changed: list[str]) -> None:
        self.workspace, self.changed = workspace, changed
        shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        super().__init__(f"{workspace} changed outside Naestro since its last snapshot ({shown}); "
                         "nothing was overwritten — rerun with --force to discard those changes")


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


CHAIN_LIMIT = 256
"""A delta manifest's chain is at most this long: the next one is written in full."""

WALK_EVERY = 32
"""Known-changes takes in a row before a full walk (bounds how long an outside edit goes unseen)."""


def _entry_json(e: FileEntry) -> dict[str, Any]:
    return dict(e.__dict__)


class SnapshotStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects, self.manifests = ObjectPack(root), ManifestLog(root)
        self._index_path = root / "index.jsonl"
        self._lock = threading.Lock()
        # RUN/snapshots → the home: inside the workspace in an --in-place run, and never part of a snapshot (a
        # rollback would rewrite the open checkpoint database and delete other runs).
        self._leave_out = (home_of(root.parent),)
        self._index: dict[str, str] = {}
        if self._index_path.exists():
            for line in self._index_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line after a crash
                self._index[str(row["checkpoint"])] = str(row["snapshot"])
        self._last: dict[str, FileEntry] = {}
        self._last_id: str | None = None
        self._depth = 0  # links of delta manifests behind ``_last_id``
        self._dirs_ready = False
        self._cache: dict[str, dict[str, FileEntry]] = {}  # resolved manifests, a few recent ones
        self._changes_lock = threading.Lock()
        self._changed: set[str] | None = None  # paths written since the last take; None: unknown, walk
        self._known_takes = 0

    # --- what changed since the last snapshot -------------------------------------------------------------

    def note_written(self, paths: list[str]) -> None:
        """``paths`` (workspace-relative) were written or deleted by a tool that says exactly which."""
        with self._changes_lock:
            if self._changed is not None:
                self._changed.update(paths)

    def note_unknown(self) -> None:
        """Something may have changed any file: the next ``take`` walks the workspace."""
        with self._changes_lock:
            self._changed = None

    def note_tool(self, *, read_only: bool, paths: list[str] | None) -> None:
        """A tool ran: a read-only one changed nothing; one that named the files it wrote changed those."""
        if read_only:
            return
        if paths is None or any(not _plain_relative(p) for p in paths):
            self.note_unknown()
        else:
            self.note_written(paths)

    # --- taking -----------------------------------------------------------------------------------------

    def scan(self, workspace: Path) -> dict[str, FileEntry]:
        """The workspace as a manifest; files unchanged since the last scan are not re-hashed."""
        entries: dict[str, FileEntry] = {}
        for dirpath, dirnames, filenames in walk(workspace, self._leave_out):
            base = Path(dirpath)
            for name in [*filenames, *(d for d in dirnames if (base / d).is_symlink())]:
                path = base / name
                rel = str(path.relative_to(workspace))
                entry = self._entry(path, rel)
                if entry is not None:
                    entries[rel] = entry
        return dict(sorted(entries.items()))

    def _entry(self, path: Path, rel: str) -> FileEntry | None:
        """The manifest entry of one path (None: not a regular file or symlink, or gone)."""
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return FileEntry(link=os.readlink(path))
        if not stat.S_ISREG(st.st_mode):
            return None
        prev = self._last.get(rel)
        if prev and prev.link is None and prev.size == st.st_size and prev.mtime_ns == st.st_mtime_ns:
            return prev
        return FileEntry(sha256=_sha(path), mode=stat.S_IMODE(st.st_mode), size=st.st_size, mtime_ns=st.st_mtime_ns)

    def _rescan(self, workspace: Path, changed: set[str]) -> dict[str, FileEntry] | None:
        """The last manifest with only ``changed`` looked at again; None when a walk is needed after all."""
        entries = dict(self._last)
        for rel in changed:
            path = workspace / rel
            if path.is_dir() and not path.is_symlink():
                return None  # a folder where a file was: its contents are unknown
            entry = self._entry(path, rel)
            if entry is None:
                entries.pop(rel, None)
            else:
                entries[rel] = entry
        return dict(sorted(entries.items()))

    def take(self, workspace: Path) -> str:
        """Snapshot the workspace; returns its id (equal contents → equal id, nothing stored twice)."""
        with self._lock:
            with self._changes_lock:
                changed, self._changed = self._changed, set()
            if not self._last:
                self._last_id = self.latest()
                self._last = self.manifest(self._last_id) if self._last_id else {}
                self._depth = self.manifests.depth(self._last_id)
                changed = None
            elif self._last_id != self.latest():
                changed = None  # another store (a rollback) moved the workspace since: look at everything
            entries = None
            if changed is not None and self._known_takes < WALK_EVERY:
                entries = self._rescan(workspace, changed)
            if entries is None:
                entries, self._known_takes = self.scan(workspace), 0
            else:
                self._known_takes += 1
            for rel, e in list(entries.items()):
                if e.link is None and not self.objects.has(e.sha256):
                    stored = self.objects.put_file(workspace / rel)
                    if stored != e.sha256:  # changed since it was hashed: the next take looks at it again
                        entries[rel] = replace(e, sha256=stored, mtime_ns=-1)
            snap = _snapshot_id(entries)
            if snap != self._last_id:
                self._write_manifest(snap, entries)
            self._last, self._last_id = entries, snap
            return snap

    def _write_manifest(self, snap: str, entries: dict[str, FileEntry]) -> None:
        """A delta against the last snapshot when it is smaller and the chain is short enough, else in full."""
        if self.manifests.body(snap) is not None:  # this content was snapshotted before (an undo, say)
            self._depth = self.manifests.depth(snap)
            self.manifests.move(snap)
            self._remember(snap, entries)
            return
        base, depth = self._last_id, self._depth + 1
        if base is not None and depth < CHAIN_LIMIT:
            put = {rel: _entry_json(e) for rel, e in entries.items() if self._last.get(rel) != e}
            gone = [rel for rel in self._last if rel not in entries]
            if len(put) + len(gone) < max(1, len(entries)):
                self.manifests.append_delta(snap, base=base, depth=depth, put=put, gone=gone)
                self._depth = depth
                self._remember(snap, entries)
                return
        self.manifests.append_full(snap, {rel: _entry_json(e) for rel, e in entries.items()})
        self._depth = 0
        self._remember(snap, entries)

    def _remember(self, snap: str, entries: dict[str, FileEntry]) -> None:
        self._cache[snap] = entries
        while len(self._cache) > 8:
            self._cache.pop(next(iter(self._cache)))

    def latest(self) -> str | None:
        return self.manifests.latest()

    # --- binding to checkpoints ---------------------------------------------------------------------

    def bind(self, checkpoint_id: str, snapshot_id: str) -> None:
        with self._lock:
            if self._index.get(checkpoint_id) == snapshot_id:
                return
            if not self._dirs_ready:
                self.root.mkdir(parents=True, exist_ok=True)
                self._dirs_ready = True
            with self._index_path.open("a") as fh:
                fh.write(json.dumps({"checkpoint": checkpoint_id, "snapshot": snapshot_id}) + "\n")
            self._index[checkpoint_id] = snapshot_id

    def for_checkpoint(self, checkpoint_id: str) -> str | None:
        return self._index.get(checkpoint_id)

    def bound(self, checkpoint_id: str) -> bool:
        return checkpoint_id in self._index

    # --- reading and restoring ----------------------------------------------------------------------

    def manifest(self, snapshot_id: str) -> dict[str, FileEntry]:
        """The full manifest of a snapshot, following its delta chain back to a full one."""
        if snapshot_id in self._cache:
            return self._cache[snapshot_id]
        chain: list[dict[str, Any]] = []
        current: str | None = snapshot_id
        base: dict[str, FileEntry] = {}
        while current is not None:
            if current in self._cache:
                base = self._cache[current]
                break
            body = self.manifests.body(current)
            if body is not None and "full" in body:
                base = {rel: FileEntry(**e) for rel, e in body["full"].items()}
                break
            if body is None or len(chain) > 100_000:  # ids are content hashes: no cycles, but never loop
                raise UsageError(f"no workspace snapshot {current!r} under {self.root}"
                                 + (f" (needed by {snapshot_id!r})" if current != snapshot_id else ""))
            chain.append(body)
            current = str(body["base"])
        entries = dict(base)
        for body in reversed(chain):
            for rel in body["del"]:
                entries.pop(rel, None)
            entries.update({rel: FileEntry(**e) for rel, e in body["set"].items()})
        entries = dict(sorted(entries.items()))
        self._remember(snapshot_id, entries)
        return entries

    def copy_into(self, other: SnapshotStore) -> None:
        """Every stored content and manifest into ``other`` (a forked run's store)."""
        self.objects.copy_into(other.objects)
        self.manifests.copy_into(other.manifests)

    def close(self) -> None:
        """Close the pack and log files (also closed when the store is collected)."""
        self.objects.close()
        self.manifests.close()

    def changed(self, snapshot_id: str, workspace: Path) -> list[str]:
        """Paths whose content, mode or presence differs between the snapshot and the workspace."""
        want, have = self.manifest(snapshot_id), self.scan(workspace)
        keys = sorted(set(want) | set(have))
        return [k for k in keys if _same(want.get(k)) != _same(have.get(k))]

    def restore(self, snapshot_id: str, workspace: Path) -> list[str]:
        """Make the workspace byte-identical to the snapshot; returns the paths written or removed."""
        want = self.manifest(snapshot_id)
        touched = self.changed(snapshot_id, workspace)
        for rel in touched:
            target = workspace / rel
            entry = want.get(rel)
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir() and entry is not None:
                shutil.rmtree(target)
            if entry is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.link is not None:
                target.symlink_to(entry.link)
            else:
                self.objects.copy_to(entry.sha256, target)
                target.chmod(entry.mode)
        for dirpath, _dirs, _files in sorted(walk(workspace, self._leave_out), key=lambda w: -len(w[0])):
            d = Path(dirpath)
            if d != workspace and not any(d.iterdir()) and not any(k.startswith(f"{d.relative_to(workspace)}/")
                                                                    for k in want):
                d.rmdir()
        if self.manifests.latest() != snapshot_id:
            self.manifests.move(snapshot_id)
        self._last, self._last_id, self._depth = {}, None, 0  # the next take walks and reads the chain anew
        self.note_unknown()
        return touched


def _snapshot_id(entries: dict[str, FileEntry]) -> str:
    body = {rel: {"sha256": e.sha256, "mode": e.mode, "link": e.link} if e.link is None else {"link": e.link}
            for rel, e in entries.items()}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def _plain_relative(path: str) -> bool:
    """A path a tool reported that the store can look at directly (inside the workspace, no ``..``)."""
    return bool(path) and not os.path.isabs(path) and ".." not in Path(path).parts


def _same(e: FileEntry | None) -> tuple[str, int, str | None] | None:
    return None if e is None else (e.sha256, e.mode if e.link is None else 0, e.link)
