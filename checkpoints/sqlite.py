"""The default checkpointer: one SQLite file in the data dir, one connection to it per process.

WAL with ``synchronous=NORMAL`` costs ~1.6 ms per step instead of ~5.6 ms with the default fsync on every
commit (FACTS.md); a power loss may drop the last step, which resume simply redoes.

Many runs share the file: every run of a process writes through one connection (``checkpoints/shared.py``;
``AsyncSqliteSaver`` serialises its operations on it), and processes sharing NAESTRO_HOME wait for each other's
write transactions for up to ``BUSY_TIMEOUT_S`` instead of failing with ``database is locked`` (WAL lets readers
go on meanwhile). A connection per run made 32 of 50 concurrent runs fail that way (issue 16).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from checkpoints.blobs import BlobSqliteSaver
from checkpoints.shared import Shared
from naestro.errors import ConfigError

__all__ = ["BUSY_TIMEOUT_S", "open_sqlite_saver"]

BUSY_TIMEOUT_S = 60.0
"""How long a write waits for another process's transaction. Transactions last milliseconds; waiting a minute
means a stuck process (then the error names the file)."""


async def _open(path: Path) -> tuple[AsyncSqliteSaver, Callable[[], Awaitable[None]]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(str(path), timeout=BUSY_TIMEOUT_S)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = BlobSqliteSaver(conn)
        await saver.setup()
    except sqlite3.DatabaseError as exc:
        # Close it: aiosqlite's worker is a non-daemon thread, and an open one keeps the process from exiting.
        await conn.close()
        raise ConfigError(f"checkpoint database is unreadable ({exc}); move it aside to start fresh — runs "
                          f"recorded in it cannot be resumed", file=str(path)) from exc
    return saver, conn.close


_savers: Shared[Path, AsyncSqliteSaver] = Shared(_open)


@asynccontextmanager
async def open_sqlite_saver(path: Path) -> AsyncIterator[AsyncSqliteSaver]:
    """The process's saver for ``path`` (opened on first use, closed when its last user leaves)."""
    async with _savers.use(path.resolve()) as saver:
        yield saver
