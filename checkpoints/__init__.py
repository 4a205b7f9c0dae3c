"""Checkpointer setup (SQLite default, WAL + synchronous=NORMAL)."""

from naestro.checkpoints.sqlite import open_sqlite_saver

__all__ = ["open_sqlite_saver"]
