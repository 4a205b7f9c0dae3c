"""Content-addressed file contents for workspace snapshots, packed into one append-only file.

Creating a file is the expensive filesystem operation on these machines (~1 ms of kernel CPU per new file on
the ext4 test VMs, against ~2 µs to append to an open one): a loose ``objects/<sha256>`` copy per written file
was half of a snapshot's cost and a fifth of Naestro's per-task overhead (issue 16). So small contents are
appended to ``objects.pack`` and located through ``objects.idx`` (one ``<sha256> <offset> <length>`` line
each); contents above ``PACK_MAX`` bytes stay loose files under ``objects/`` (their copy dominates anyway),
as do all objects of stores written before packs existed (still read).

Crash safety without fsync (as the rest of the run directory: a record survives a SIGKILL, not a power loss):
the bytes go to the pack first, then the index line, each one ``write`` to an ``O_APPEND`` descriptor under an
exclusive ``flock``. A reader ignores an index line that is torn or points past the pack's end, so a crash
between the two writes leaves unreferenced bytes, never a wrong object. Another process's appends (a resumed
run in a new worker) are picked up when a lookup misses.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import IO

__all__ = ["PACK_MAX", "ObjectPack"]

PACK_MAX = 1 << 20
"""Contents up to this size are packed; larger ones are stored as loose files."""


class ObjectPack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.loose = root / "objects"
        self.pack_path, self.idx_path = root / "objects.pack", root / "objects.idx"
        self._lock = threading.Lock()
        self._where: dict[str, tuple[int, int]] = {}
        self._idx_read = 0  # bytes of the index already parsed
        self._loose_names: set[str] | None = None
        self._pack: IO[bytes] | None = None
        self._idx: IO[bytes] | None = None

    # --- reading -----------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Parse index lines appended since the last look (by this or another process)."""
        try:
            with self.idx_path.open("rb") as fh:
                fh.seek(self._idx_read)
                tail = fh.read()
            pack_size = self.pack_path.stat().st_size
        except FileNotFoundError:
            return
        end = tail.rfind(b"\n") + 1  # a torn last line is left for a later look
        for line in tail[:end].splitlines():
            parts = line.split()
            if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
                continue
            offset, length = int(parts[1]), int(parts[2])
            if offset + length <= pack_size:
                self._where[parts[0].decode()] = (offset, length)
        self._idx_read += end

    def _loose(self) -> set[str]:
        if self._loose_names is None:
            self._loose_names = ({p.name for p in self.loose.iterdir() if not p.name.startswith(".")}
                                 if self.loose.is_dir() else set())
        return self._loose_names

    def has(self, sha: str) -> bool:
        with self._lock:
            if sha in self._where or sha in self._loose():
                return True
            self._refresh()
            return sha in self._where or (self.loose / sha).exists()

    def read(self, sha: str) -> bytes:
        """The content stored under ``sha``; ``KeyError`` when the store never held it."""
        with self._lock:
            if sha not in self._where:
                self._refresh()
            where = self._where.get(sha)
        if where is None:
            try:
                return (self.loose / sha).read_bytes()
            except FileNotFoundError:
                raise KeyError(sha) from None
        offset, length = where
        with self.pack_path.open("rb") as fh:
            return os.pread(fh.fileno(), length, offset)

    def copy_to(self, sha: str, target: Path) -> None:
        """Write the content stored under ``sha`` to ``target`` (a new or truncated file)."""
        loose = self.loose / sha
        if sha not in self._where and loose.exists():
            shutil.copyfile(loose, target)
        else:
            target.write_bytes(self.read(sha))

    def names(self) -> set[str]:
        with self._lock:
            self._refresh()
            return set(self._where) | self._loose()

    def stored_bytes(self) -> int:
        """Bytes on disk for contents (pack, index and loose files)."""
        total = sum(p.stat().st_size for p in (self.pack_path, self.idx_path) if p.exists())
        return total + (sum(p.stat().st_size for p in self.loose.iterdir()) if self.loose.is_dir() else 0)

    # --- writing -----------------------------------------------------------------------------------------

    def put_file(self, path: Path) -> str:
        """Store ``path``'s current content; returns its sha256 (hashed from the bytes stored, so the id always
        names what is kept even if the file changed since the caller hashed it)."""
        if path.stat().st_size > PACK_MAX:
            return self._put_loose(path)
        return self.put_bytes(path.read_bytes())

    def put_bytes(self, data: bytes) -> str:
        actual = hashlib.sha256(data).hexdigest()
        if self.has(actual):
            return actual
        if len(data) > PACK_MAX:
            self.loose.mkdir(parents=True, exist_ok=True)
            tmp = self.loose / f".{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_bytes(data)
            tmp.replace(self.loose / actual)
            with self._lock:
                self._loose().add(actual)
            return actual
        with self._lock:
            if self._pack is None or self._idx is None:
                self.root.mkdir(parents=True, exist_ok=True)
                self._pack = self.pack_path.open("ab", buffering=0)
                self._idx = self.idx_path.open("a+b", buffering=0)
            fcntl.flock(self._pack, fcntl.LOCK_EX)
            try:
                offset = os.fstat(self._pack.fileno()).st_size
                self._pack.write(data)
                line = f"{actual} {offset} {len(data)}\n".encode()
                idx_size = os.fstat(self._idx.fileno()).st_size
                if idx_size and os.pread(self._idx.fileno(), 1, idx_size - 1) != b"\n":
                    line = b"\n" + line  # a crash tore the last line: end it, so ours stays whole
                self._idx.write(line)
            finally:
                fcntl.flock(self._pack, fcntl.LOCK_UN)
            self._where[actual] = (offset, len(data))
        return actual

    def _put_loose(self, path: Path) -> str:
        self.loose.mkdir(parents=True, exist_ok=True)
        tmp = self.loose / f".{os.getpid()}.{threading.get_ident()}.tmp"
        shutil.copyfile(path, tmp)  # a copy, not a link: the workspace file will change
        h = hashlib.sha256()
        with tmp.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        actual = h.hexdigest()
        tmp.replace(self.loose / actual)
        with self._lock:
            self._loose().add(actual)
        return actual

    def copy_into(self, other: ObjectPack) -> None:
        """Every content of this store into ``other`` (a fork's store)."""
        for sha in sorted(self.names() - other.names()):
            other.put_bytes(self.read(sha))

    def close(self) -> None:
        with self._lock:
            for fh in (self._pack, self._idx):
                if fh is not None:
                    fh.close()
            self._pack = self._idx = None
