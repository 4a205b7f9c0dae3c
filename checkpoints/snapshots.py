"""Workspace snapshots bound to checkpoints: content-addressed copies, only changed files are stored.

``objects/<sha256>`` holds each distinct file content once (a hard link when the filesystem allows, else a
copy); ``manifests/<id>.json`` maps relative paths to (sha256, mode, size, mtime_ns) — or a symlink
target — and the snapshot id is the hash of that mapping. Unchanged files (same size and mtime as in the
previous manifest) are not re-hashed. ``index.jsonl`` binds checkpoint ids to snapshot ids: the snapshot
of a checkpoint is the workspace as it was when that checkpoint was the latest, taken by the first node of
the next step before it can change anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from naestro.errors import UsageError

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


class SnapshotStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects, self.manifests = root / "objects", root / "manifests"
        self._index_path = root / "index.jsonl"
        self._lock = threading.Lock()
        self._index: dict[str, str] = {}
        if self._index_path.exists():
            for line in self._index_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line after a crash
                self._index[str(row["checkpoint"])] = str(row["snapshot"])
        self._last: dict[str, FileEntry] = {}

    # --- taking -----------------------------------------------------------------------------------------

    def scan(self, workspace: Path) -> dict[str, FileEntry]:
        """The workspace as a manifest; files unchanged since the last scan are not re-hashed."""
        entries: dict[str, FileEntry] = {}
        for dirpath, dirnames, filenames in os.walk(workspace):
            base = Path(dirpath)
            for name in [*filenames, *(d for d in dirnames if (base / d).is_symlink())]:
                path = base / name
                rel = str(path.relative_to(workspace))
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    entries[rel] = FileEntry(link=os.readlink(path))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                prev = self._last.get(rel)
                if prev and prev.link is None and prev.size == st.st_size and prev.mtime_ns == st.st_mtime_ns:
                    entries[rel] = prev
                else:
                    entries[rel] = FileEntry(sha256=_sha(path), mode=stat.S_IMODE(st.st_mode), size=st.st_size,
                                             mtime_ns=st.st_mtime_ns)
        return dict(sorted(entries.items()))

    def take(self, workspace: Path) -> str:
        """Snapshot the workspace; returns its id (equal contents → equal id, nothing stored twice)."""
        with self._lock:
            if not self._last:
                self._last = self._latest_manifest()
            entries = self.scan(workspace)
            self.objects.mkdir(parents=True, exist_ok=True)
            self.manifests.mkdir(parents=True, exist_ok=True)
            for rel, e in entries.items():
                obj = self.objects / e.sha256
                if e.link is None and not obj.exists():
                    tmp = obj.with_suffix(".tmp")
                    shutil.copyfile(workspace / rel, tmp)  # a copy, not a link: the workspace file will change
                    tmp.replace(obj)
            body = {rel: {"sha256": e.sha256, "mode": e.mode, "link": e.link} if e.link is None else {"link": e.link}
                    for rel, e in entries.items()}
            snap = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]
            path = self.manifests / f"{snap}.json"
            if not path.exists():
                path.write_text(json.dumps({rel: e.__dict__ for rel, e in entries.items()}))
            self._last = entries
            (self.root / "latest").write_text(snap)
            return snap

    def _latest_manifest(self) -> dict[str, FileEntry]:
        latest = self.root / "latest"
        return self.manifest(latest.read_text().strip()) if latest.exists() else {}

    def latest(self) -> str | None:
        latest = self.root / "latest"
        return latest.read_text().strip() if latest.exists() else None

    # --- binding to checkpoints ---------------------------------------------------------------------

    def bind(self, checkpoint_id: str, snapshot_id: str) -> None:
        with self._lock:
            if self._index.get(checkpoint_id) == snapshot_id:
                return
            self.root.mkdir(parents=True, exist_ok=True)
            with self._index_path.open("a") as fh:
                fh.write(json.dumps({"checkpoint": checkpoint_id, "snapshot": snapshot_id}) + "\n")
            self._index[checkpoint_id] = snapshot_id

    def for_checkpoint(self, checkpoint_id: str) -> str | None:
        return self._index.get(checkpoint_id)

    def bound(self, checkpoint_id: str) -> bool:
        return checkpoint_id in self._index

    # --- reading and restoring ----------------------------------------------------------------------

    def manifest(self, snapshot_id: str) -> dict[str, FileEntry]:
        path = self.manifests / f"{snapshot_id}.json"
        if not path.exists():
            raise UsageError(f"no workspace snapshot {snapshot_id!r} under {self.root}")
        raw: dict[str, dict[str, Any]] = json.loads(path.read_text())
        return {rel: FileEntry(**e) for rel, e in raw.items()}

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
                shutil.copyfile(self.objects / entry.sha256, target)
                target.chmod(entry.mode)
        for dirpath, _dirs, _files in sorted(os.walk(workspace, topdown=False), key=lambda w: -len(w[0])):
            d = Path(dirpath)
            if d != workspace and not any(d.iterdir()) and not any(k.startswith(f"{d.relative_to(workspace)}/")
                                                                    for k in want):
                d.rmdir()
        self._last = {}
        (self.root / "latest").write_text(snapshot_id)
        return touched


def _same(e: FileEntry | None) -> tuple[str, int, str | None] | None:
    return None if e is None else (e.sha256, e.mode if e.link is None else 0, e.link)
