"""Checkpointers: SQLite by default (WAL + synchronous=NORMAL), Postgres when NAESTRO_CHECKPOINT_URL says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver

from checkpoints.postgres import open_postgres_saver
from checkpoints.sqlite import open_sqlite_saver
from naestro.errors import ConfigError

__all__ = ["open_postgres_saver", "open_saver", "open_sqlite_saver"]


@asynccontextmanager
async def open_saver(url: str | None, default_sqlite: Path) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """``None`` → the SQLite file in NAESTRO_HOME; ``postgresql://...`` → Postgres; ``sqlite:///path`` → that file."""
    if url is None:
        async with open_sqlite_saver(default_sqlite) as saver:
            yield saver
    elif url.startswith(("postgresql://", "postgres://")):
        async with open_postgres_saver(url) as pg:
            yield pg
    elif url.startswith("sqlite:///"):
        async with open_sqlite_saver(Path(url.removeprefix("sqlite:///"))) as saver:
            yield saver
    else:
        raise ConfigError(f"NAESTRO_CHECKPOINT_URL={url!r}: use postgresql://user@host:port/db or sqlite:///path")
