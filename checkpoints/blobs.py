"""SQLite checkpoints that store a large channel value once per version, not once per checkpoint (issue 16).

``AsyncSqliteSaver`` serialises every channel's value into every checkpoint row, so a 200-task plan was
written again at each of a run's ~400 steps. Postgres' saver keeps values in ``checkpoint_blobs`` keyed by
(channel, version) and writes only the channels a step changed; this saver does the same on SQLite: a value
whose serialised form is larger than ``INLINE_MAX`` bytes goes to ``checkpoint_blobs`` when its version is
new, and the checkpoint row keeps only the small values. Reading puts the values back, so callers (LangGraph,
``naestro runs history``, the conformance suite) see ordinary checkpoints.

``DeltaChannel`` snapshots (``graphs/state.py``'s task map) stay in the row, where LangGraph's ancestor walk
looks for seeds. That walk (``aget_delta_channel_history``) runs once per state read, from the state back to the
last snapshot, so reading a thread's whole history walked O(checkpoints²) rows (22 s for a 200-task run here).
This saver answers it from an in-memory index of the thread (parents, seeds, the channel's writes) read once
and reused while the thread does not change in this process; another process's new checkpoints are not in it,
so asking for one rebuilds it. A crash between the blob insert and the checkpoint insert leaves an unreferenced
blob (harmless; the next put of that version ignores it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    get_checkpoint_id,
)
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.checkpoint.sqlite._delta import build_delta_channels_writes_history
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

__all__ = ["INLINE_MAX", "BlobSqliteSaver"]

INLINE_MAX = 256
"""Serialised values up to this size stay in the checkpoint row (a blob row's key costs ~100 bytes)."""

_CACHE_SIZE = 64

_BlobKey = tuple[str, str, str, str]  # thread, namespace, channel, version
_WriteRow = tuple[str, str, str, int, str, bytes, str]  # checkpoint, channel, task, idx, type, value, task path


@dataclass
class _ThreadIndex:
    """One thread's checkpoint tree with the values stored in rows and the writes of some channels."""

    channels: frozenset[str]
    parent: dict[str, str | None] = field(default_factory=dict)
    inline: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # checkpoint -> its row's channel values
    writes: dict[tuple[str, str], list[_WriteRow]] = field(default_factory=dict)  # (channel, checkpoint) -> rows


class BlobSqliteSaver(AsyncSqliteSaver):
    """``AsyncSqliteSaver`` with large channel values in a ``checkpoint_blobs`` table, one row per version."""

    _blobs_ready = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache: OrderedDict[_BlobKey, tuple[str, bytes]] = OrderedDict()
        self._threads: OrderedDict[tuple[str, str], _ThreadIndex] = OrderedDict()

    async def setup(self) -> None:
        await super().setup()
        if self._blobs_ready:
            return
        async with self.lock:
            async with self.conn.execute(
                "CREATE TABLE IF NOT EXISTS checkpoint_blobs (thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT NULL "
                "DEFAULT '', channel TEXT NOT NULL, version TEXT NOT NULL, type TEXT NOT NULL, blob BLOB, "
                "PRIMARY KEY (thread_id, checkpoint_ns, channel, version))"):
                pass
            await self.conn.commit()
            self._blobs_ready = True

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        if not (self.is_setup and self._blobs_ready):  # a lock round per put otherwise: two per step
            await self.setup()
        thread, ns = str(config["configurable"]["thread_id"]), str(config["configurable"].get("checkpoint_ns", ""))
        inline: dict[str, Any] = {}
        rows: list[tuple[str, str, str, str, str, bytes]] = []
        versions = checkpoint["channel_versions"]
        for channel, value in checkpoint["channel_values"].items():
            version = versions.get(channel)
            if version is None or isinstance(value, _DeltaSnapshot):
                inline[channel] = value
                continue
            key = (thread, ns, channel, str(version))
            if key in self._cache:  # stored by an earlier put of this version
                continue
            type_, blob = self.serde.dumps_typed(value)
            if len(blob) <= INLINE_MAX:
                inline[channel] = value
                continue
            rows.append((*key, type_, blob))
            self._remember(key, (type_, blob))
        self._threads.pop((thread, ns), None)
        if rows:
            async with self.lock:
                # OR IGNORE: a version is immutable, and this process may not know it was stored already.
                await self.conn.executemany(
                    "INSERT OR IGNORE INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) "
                    "VALUES (?, ?, ?, ?, ?, ?)", rows)
                await self.conn.commit()
        return await super().aput(config, {**checkpoint, "channel_values": inline}, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        self._threads.pop((str(config["configurable"]["thread_id"]),
                           str(config["configurable"].get("checkpoint_ns", ""))), None)
        await super().aput_writes(config, writes, task_id, task_path)

    async def aget_delta_channel_history(self, *, config: RunnableConfig,
                                         channels: Sequence[str]) -> Mapping[str, DeltaChannelHistory]:
        """LangGraph's contract (the target's ancestors' writes of each channel, oldest first, back to the nearest
        ancestor whose row holds the channel: its ``seed``), walked in memory over the thread's index."""
        if not channels:
            return {}
        thread, ns = str(config["configurable"]["thread_id"]), str(config["configurable"].get("checkpoint_ns", ""))
        target = get_checkpoint_id(config)
        if not target:
            found = await self.aget_tuple(config)
            if found is None:
                return {ch: {"writes": []} for ch in channels}
            target = str(found.config["configurable"]["checkpoint_id"])
        index = await self._index(thread, ns, target, frozenset(channels))
        if target not in index.parent:
            return {ch: {"writes": []} for ch in channels}
        chain_by_ch: dict[str, list[str]] = {ch: [] for ch in channels}
        seed_val_by_ch: dict[str, Any] = {}
        seeded: set[str] = set()
        active, walked = set(channels), {target}
        cursor = index.parent[target]
        while cursor is not None and active and cursor not in walked:
            walked.add(cursor)
            for ch in active:
                chain_by_ch[ch].append(cursor)
            stored = index.inline.get(cursor, {})
            for ch in [ch for ch in active if ch in stored]:
                seed_val_by_ch[ch] = stored[ch]
                seeded.add(ch)
                active.discard(ch)
            cursor = index.parent.get(cursor)
        rows = [row for ch in channels for cid in chain_by_ch[ch] for row in index.writes.get((ch, cid), [])]
        return build_delta_channels_writes_history(channels=list(channels), chain_by_ch=chain_by_ch,
                                                   seed_val_by_ch=seed_val_by_ch, seeded=seeded, stage2_rows=rows,
                                                   serde=self.serde)

    async def _index(self, thread: str, ns: str, target: str, channels: frozenset[str]) -> _ThreadIndex:
        """The thread's index with ``target`` in it: the cached one, else read anew (two queries)."""
        index = self._threads.get((thread, ns))
        if index is not None and target in index.parent and channels <= index.channels:
            self._threads.move_to_end((thread, ns))
            return index
        await self.setup()
        index = _ThreadIndex(channels=channels)
        task_path = "task_path" if self._has_task_path else "''"
        marks = ",".join("?" * len(channels))
        async with self.lock:
            async with self.conn.execute(
                    "SELECT checkpoint_id, parent_checkpoint_id, type, checkpoint FROM checkpoints "
                    "WHERE thread_id = ? AND checkpoint_ns = ?", (thread, ns)) as cur:
                async for cid, parent, type_, blob in cur:
                    index.parent[str(cid)] = str(parent) if parent else None
                    values = self.serde.loads_typed((str(type_), bytes(blob))).get("channel_values") or {}
                    index.inline[str(cid)] = {ch: v for ch, v in values.items() if ch in channels}
            async with self.conn.execute(
                    f"SELECT checkpoint_id, channel, task_id, idx, type, value, {task_path} FROM writes "
                    f"WHERE thread_id = ? AND checkpoint_ns = ? AND channel IN ({marks})",
                    (thread, ns, *sorted(channels))) as cur:
                for cid, ch, task_id, idx, type_, value, path in await cur.fetchall():
                    index.writes.setdefault((str(ch), str(cid)), []).append(
                        (str(cid), str(ch), str(task_id), int(idx), str(type_), bytes(value), str(path)))
        self._threads[(thread, ns)] = index
        while len(self._threads) > 4:
            self._threads.popitem(last=False)
        return index

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        found = await super().aget_tuple(config)
        return await self._filled(found) if found is not None else None

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        # Collected first: filling a tuple queries the same connection the listing cursor is reading.
        found = [t async for t in super().alist(config, filter=filter, before=before, limit=limit)]
        for tup in found:
            yield await self._filled(tup)

    async def adelete_thread(self, thread_id: str) -> None:
        for thread_key in [k for k in self._threads if k[0] == str(thread_id)]:
            del self._threads[thread_key]
        await super().adelete_thread(thread_id)
        await self.setup()
        async with self.lock:
            async with self.conn.execute("DELETE FROM checkpoint_blobs WHERE thread_id = ?", (str(thread_id),)):
                pass
            await self.conn.commit()
        for key in [k for k in self._cache if k[0] == str(thread_id)]:
            del self._cache[key]

    async def _filled(self, tup: CheckpointTuple) -> CheckpointTuple:
        """The tuple with the values kept in ``checkpoint_blobs`` put back into its checkpoint."""
        checkpoint = tup.checkpoint
        thread = str(tup.config["configurable"]["thread_id"])
        ns = str(tup.config["configurable"].get("checkpoint_ns", ""))
        values = checkpoint["channel_values"]
        wanted = [(thread, ns, ch, str(v)) for ch, v in checkpoint["channel_versions"].items() if ch not in values]
        if not wanted:
            return tup
        missing = [k for k in wanted if k not in self._cache]
        if missing:
            await self.setup()
            async with self.lock:
                where = " OR ".join(["(channel = ? AND version = ?)"] * len(missing))
                args = [a for _t, _n, ch, v in missing for a in (ch, v)]
                async with self.conn.execute(
                        f"SELECT channel, version, type, blob FROM checkpoint_blobs WHERE thread_id = ? AND "
                        f"checkpoint_ns = ? AND ({where})", (thread, ns, *args)) as cur:
                    for channel, version, type_, blob in await cur.fetchall():
                        self._remember((thread, ns, str(channel), str(version)), (str(type_), bytes(blob)))
        filled = dict(values)
        for key in wanted:
            stored = self._cache.get(key)
            if stored is not None:  # absent: a DeltaChannel between snapshots, or a channel with no value
                self._cache.move_to_end(key)
                filled[key[2]] = self.serde.loads_typed(stored)
        return tup._replace(checkpoint={**checkpoint, "channel_values": filled})

    def _remember(self, key: _BlobKey, value: tuple[str, bytes]) -> None:
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
