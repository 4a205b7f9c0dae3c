"""An append-only line file kept open: one write per record, no re-open and no folder check per record.

Opened in append mode and flushed after every record, so a record is in the OS (it survives a SIGKILL of the
process, not a power loss) when ``append`` returns, and records from several handles on the same file (a run's
live event log and a short-lived one written by another command) never interleave within a line: each is one
``write`` to an ``O_APPEND`` descriptor. The handle is closed by ``close`` or, for an owner dropped without
closing, when it is collected. Appends happen on the event loop (as they did before): a buffered file write
is what the LangGraph server's blocking-call detector allows, where ``os.write`` and ``mkdir`` are refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["AppendFile"]


class AppendFile:
    def __init__(self, path: Path) -> None:
        if not os.path.isdir(path.parent):  # a stat once per handle; mkdir only when missing (issue 16)
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: BinaryIO | None = path.open("ab")

    def append(self, line: str) -> None:
        """Write ``line`` and a newline as one record."""
        if self._fh is None:
            raise ValueError(f"{self.path} is closed")
        self._fh.write((line + "\n").encode())
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
