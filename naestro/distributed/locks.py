"""One executor per run, N per tenant: locks that die with the process holding them.

Celery delivers a task at least once: a task running past the broker's visibility timeout is delivered again
while the first delivery still runs, and a killed worker's task is delivered to another worker. Two executors of
one LangGraph thread would write competing checkpoints and race on its effects. The lock is the database's own
(``pg_try_advisory_lock`` on a 64-bit hash of the key, held by one dedicated connection for the whole drive):
when a worker dies, the kernel closes its socket, Postgres ends the session and the lock is free at once — no
lease to expire, nothing to clean up. Embedded (SQLite checkpoints, workers on one machine): ``flock`` on files
in NAESTRO_HOME, which the kernel releases the same way.

``hold(keys)`` takes the first free key of a list: a single key is a mutex (one executor per thread), ``N`` keys
are a counting semaphore (at most N runs of a tenant execute at once, across every worker and machine).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from naestro.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

__all__ = ["FileLocks", "PostgresLocks", "RunLocks", "lock_key", "open_locks", "run_keys", "tenant_keys"]

POLL_S = 0.2
"""How often a waiting holder tries again (a try-lock loop: ``pg_advisory_lock`` would block the connection and
could not give up at a deadline)."""


def lock_key(key: str) -> int:
    """The signed 64-bit advisory-lock id of ``key`` (namespaced, so other users of the database do not collide)."""
    return int.from_bytes(hashlib.blake2b(f"naestro:{key}".encode(), digest_size=8).digest(), "big", signed=True)


def run_keys(run_id: str) -> list[str]:
    return [f"run:{run_id}"]


def tenant_keys(tenant: str, limit: int) -> list[str]:
    return [f"tenant:{tenant}:{i}" for i in range(limit)]


class RunLocks(Protocol):
    """``hold(keys, wait_s=...)`` yields the key it holds (released on exit or when the process dies), or None
    when every key stayed taken for ``wait_s`` seconds."""

    def hold(self, keys: Sequence[str], *, wait_s: float = 0.0) -> AbstractAsyncContextManager[str | None]: ...

    def held(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` some process holds now: a look for status displays, taking nothing."""
        ...


class PostgresLocks:
    """Advisory locks on the checkpoint database; one connection per ``hold``, kept for as long as it holds."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        import psycopg

        try:  # keepalives: a machine that vanishes (no FIN) frees its locks in ~25 s instead of hours
            return await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=10, keepalives=1,
                                                         keepalives_idle=10, keepalives_interval=5,
                                                         keepalives_count=3)
        except psycopg.OperationalError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"cannot connect to the lock database: {first}; check NAESTRO_CHECKPOINT_URL") from exc

    @asynccontextmanager
    async def hold(self, keys: Sequence[str], *, wait_s: float = 0.0) -> AsyncIterator[str | None]:
        conn = await self._connect()
        try:
            held = await self._acquire(conn, keys, wait_s)
            try:
                yield held
            finally:
                if held is not None and not conn.closed:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(held),))
        finally:
            await conn.close()  # closing alone would release the lock too; unlocking first says so in the log

    def held(self, keys: Sequence[str]) -> set[str]:
        """From ``pg_locks`` (every session's advisory locks in this database): a bigint lock shows as
        ``classid`` (high 32 bits), ``objid`` (low 32 bits), ``objsubid`` 1."""
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                rows = conn.execute("SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' "
                                    "AND objsubid = 1 AND granted AND database = (SELECT oid FROM pg_database "
                                    "WHERE datname = current_database())").fetchall()
        except psycopg.OperationalError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"cannot connect to the lock database: {first}; check NAESTRO_CHECKPOINT_URL") from exc
        taken = {int.from_bytes(((hi << 32) | lo).to_bytes(8, "big"), "big", signed=True) for hi, lo in rows}
        return {k for k in keys if lock_key(k) in taken}

    @staticmethod
    async def _acquire(conn: psycopg.AsyncConnection[Any], keys: Sequence[str], wait_s: float) -> str | None:
        deadline = time.monotonic() + wait_s
        while True:
            for key in keys:
                row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(key),))).fetchone()
                if row is not None and row[0]:
                    return key
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(POLL_S)


class FileLocks:
    """``flock`` on ``DIR/<hash>.lock``: for workers on one machine sharing NAESTRO_HOME with SQLite checkpoints."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _try(self, key: str) -> int | None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def held(self, keys: Sequence[str]) -> set[str]:
        """A key whose file this process can lock at once is free (locked and released again at once: a worker
        trying it in that instant polls again, POLL_S later)."""
        taken: set[str] = set()
        for key in keys:
            if not self._path(key).exists():
                continue  # never locked by anyone
            if (fd := self._try(key)) is None:
                taken.add(key)
            else:
                os.close(fd)
        return taken

    def _path(self, key: str) -> Path:
        return self.directory / f"{lock_key(key) & 0xFFFFFFFFFFFFFFFF:016x}.lock"

    @asynccontextmanager
    async def hold(self, keys: Sequence[str], *, wait_s: float = 0.0) -> AsyncIterator[str | None]:
        deadline = time.monotonic() + wait_s
        held: tuple[str, int] | None = None
        while held is None:
            for key in keys:
                if (fd := self._try(key)) is not None:
                    held = key, fd
                    break
            else:
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(POLL_S)
        if held is None:
            yield None
            return
        try:
            yield held[0]
        finally:
            os.close(held[1])  # closing the descriptor releases the flock


def open_locks(checkpoint_url: str | None, home: Path) -> RunLocks:
    """The locks that match where checkpoints live: Postgres advisory locks when they are in Postgres (workers on
    many machines), else file locks in NAESTRO_HOME (workers on this machine)."""
    if checkpoint_url is not None and checkpoint_url.startswith(("postgresql://", "postgres://")):
        return PostgresLocks(checkpoint_url)
    return FileLocks(home / "locks")
