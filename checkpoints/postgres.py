"""Postgres checkpoints (``NAESTRO_CHECKPOINT_URL=postgresql://...``) for many runs and many workers.

``langgraph-checkpoint-postgres``'s async saver with its documented connection settings (autocommit,
``prepare_threshold=0``, dict rows). The runs of a process share one connection pool per database
(``checkpoints/shared.py``), at most ``POOL_SIZE`` connections: a connection per run would open 200 connections for
200 runs, past the server's default limit of 100. Each ``open_postgres_saver`` gets its own saver object on that
pool (a saver serialises its own operations behind a lock, so one shared saver would serialise every run's).
``setup()`` creates or migrates the tables once per process, under an advisory lock: workers starting together
would otherwise race on the same ``CREATE TABLE`` and migration rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from checkpoints.shared import Shared
from naestro.errors import ConfigError

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

__all__ = ["POOL_SIZE", "open_postgres_saver"]

POOL_SIZE = 8
"""Connections per process: enough to overlap the round trips of many runs, far below the server's limit."""
_SETUP_LOCK = 0x6E61657374726F  # pg_advisory_lock key for the one-time table setup ("naestro")


async def _open(url: str) -> tuple[AsyncConnectionPool[Any], Callable[[], Awaitable[None]]]:
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
    except ImportError as exc:
        raise ConfigError("NAESTRO_CHECKPOINT_URL is a Postgres URL but the postgres extra is missing; "
                          "pip install 'naestro[postgres]'") from exc
    kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ConfigError(f"cannot connect to the checkpoint database: {first}; check NAESTRO_CHECKPOINT_URL "
                          "(e.g. postgresql://postgres@127.0.0.1:5432/test)") from exc
    async with conn:
        # Try-lock and poll, not pg_advisory_lock: the migrations run CREATE INDEX CONCURRENTLY, which waits for
        # every open transaction, including a second process's blocked pg_advisory_lock call, which waits for the
        # first: Postgres killed one of them ("deadlock detected") when two workers started on a fresh database.
        while not (await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_SETUP_LOCK,))).fetchone()
                   or {}).get("ok"):
            await asyncio.sleep(0.1)
        try:
            await AsyncPostgresSaver(conn).setup()
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(url, min_size=1, max_size=POOL_SIZE, kwargs=kwargs,
                                                         open=False, timeout=60)
    await pool.open(wait=True, timeout=30)
    return pool, pool.close


_pools: Shared[str, AsyncConnectionPool[Any]] = Shared(_open)


@asynccontextmanager
async def open_postgres_saver(url: str) -> AsyncIterator[BaseCheckpointSaver[str]]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with _pools.use(url) as pool:
        yield AsyncPostgresSaver(pool)
