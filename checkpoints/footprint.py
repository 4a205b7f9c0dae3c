"""What each checkpoint of a thread costs in storage: its row, its pending writes and the blobs it added.

Used by ``bench/checkpoints.py`` and the checkpoint-size test (issue 16: bytes per step must follow what the
step changed, not the size of the whole state). A blob (a channel value stored once per version) is counted at
the first checkpoint that refers to its version; rows are in write order.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

__all__ = ["postgres_bytes", "sqlite_bytes"]


def sqlite_bytes(db: Path, thread: str) -> list[int]:
    """Bytes per checkpoint of ``thread`` in a SQLite checkpoint file (with or without ``checkpoint_blobs``)."""
    serde = JsonPlusSerializer()
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT c.checkpoint_id, c.type, c.checkpoint, length(c.checkpoint) + length(c.metadata) + "
            "COALESCE((SELECT SUM(length(w.value) + length(w.channel) + length(w.task_id)) FROM writes w "
            "WHERE w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns "
            "AND w.checkpoint_id = c.checkpoint_id), 0) FROM checkpoints c WHERE c.thread_id = ? ORDER BY c.rowid",
            (thread,)).fetchall()
        has_blobs = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoint_blobs'").fetchone() is not None
        blobs: dict[tuple[str, str], int] = {}
        if has_blobs:
            blobs = {(str(ch), str(v)): int(n) for ch, v, n in conn.execute(
                "SELECT channel, version, length(blob) FROM checkpoint_blobs WHERE thread_id = ?", (thread,))}
    out: list[int] = []
    seen: set[tuple[str, str]] = set()
    for _cid, type_, blob, size in rows:
        versions: dict[str, Any] = serde.loads_typed((str(type_), bytes(blob)))["channel_versions"]
        fresh = {(ch, str(v)) for ch, v in versions.items()} - seen
        seen |= fresh
        out.append(int(size) + sum(blobs.get(k, 0) for k in fresh))
    return out


def postgres_bytes(url: str, thread: str) -> list[int]:
    """Bytes per checkpoint of ``thread`` in Postgres (row as stored text, writes, blobs of new versions)."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.checkpoint_id, c.checkpoint -> 'channel_versions', octet_length(c.checkpoint::text) + "
            "octet_length(c.metadata::text) + COALESCE((SELECT SUM(octet_length(w.blob) + octet_length(w.channel) "
            "+ octet_length(w.task_id)) FROM checkpoint_writes w WHERE w.thread_id = c.thread_id AND "
            "w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id), 0) FROM checkpoints c "
            "WHERE c.thread_id = %s ORDER BY c.checkpoint_id", (thread,)).fetchall()
        blobs = {(str(ch), str(v)): int(n or 0) for ch, v, n in conn.execute(
            "SELECT channel, version, octet_length(blob) FROM checkpoint_blobs WHERE thread_id = %s", (thread,))}
    out: list[int] = []
    seen: set[tuple[str, str]] = set()
    for _cid, versions, size in rows:
        fresh = {(str(ch), str(v)) for ch, v in dict(versions or {}).items()} - seen
        seen |= fresh
        out.append(int(size) + sum(blobs.get(k, 0) for k in fresh))
    return out
