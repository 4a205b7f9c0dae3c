"""An append-only line file kept open: one ``write`` per record, no re-open, no folder check per record.

Opened with ``O_APPEND`` and unbuffered, so a record is in the OS (it survives a SIGKILL of the process, not a
power loss) when ``append`` returns, and records from several handles on the same file (a run's live event log
and a short-lived one written by another command) never interleave within a line. The handle is closed by
``close`` or, for an owner dropped without closing, when it is collected.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

__all__ = ["AppendFile"]


class AppendFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)  # once per handle, not per record (issue 16)
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        self._closer = weakref.finalize(self, os.close, self._fd)

    def append(self, line: str) -> None:
        """Write ``line`` and a newline as one record."""
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        data = (line + "\n").encode()
        written = os.write(self._fd, data)
        while written < len(data):  # a regular file takes it whole; a full disk may not
            written += os.write(self._fd, data[written:])

    def close(self) -> None:
        if self._fd is not None:
            self._closer()
            self._fd = None
