"""Postgres checkpoints (``NAESTRO_CHECKPOINT_URL=postgresql://...``) for many runs and many workers.

``langgraph-checkpoint-postgres``'s async saver on one psycopg connection in autocommit with
``prepare_threshold=0`` (its documented requirements); ``setup()`` creates or migrates its tables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver

from naestro.errors import ConfigError

__all__ = ["open_postgres_saver"]


@asynccontextmanager
async def open_postgres_saver(url: str) -> AsyncIterator[BaseCheckpointSaver[str]]:
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
    except ImportError as exc:
        raise ConfigError("NAESTRO_CHECKPOINT_URL is a Postgres URL but the postgres extra is missing; "
                          "pip install 'naestro[postgres]'") from exc
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=0,
                                                     row_factory=dict_row, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ConfigError(f"cannot connect to the checkpoint database: {first}; check NAESTRO_CHECKPOINT_URL "
                          "(e.g. postgresql://postgres@127.0.0.1:5432/test)") from exc
    try:
        saver = AsyncPostgresSaver(conn)
        await saver.setup()
        yield saver
    finally:
        await conn.close()
