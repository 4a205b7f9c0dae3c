"""Checkpoint and snapshot costs: ``.venv/bin/python bench/checkpoints.py [--steps 200] [--postgres URL]``.

1. Per-step checkpoint cost of Naestro's savers (SQLite WAL + synchronous=NORMAL; Postgres) against
   LangGraph's InMemorySaver on the same 20-node chain (ratio).
2. Workspace snapshot cost vs workspace size (first snapshot, then after one file changed) against a full
   ``shutil.copytree`` of the same folder (ratio).
3. Checkpoint bytes per step over N steps that each add a 1 KB message: messages kept in graph state (the
   usual LangGraph pattern) vs Naestro's pattern (the payload in the journal, a reference in state).
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from checkpoints import open_saver
from checkpoints.snapshots import SnapshotStore
from naestro.journal import Journal, request_hash


class Chain(TypedDict):
    n: int


def chain(nodes: int) -> StateGraph[Any]:
    g: StateGraph[Any] = StateGraph(Chain)
    for i in range(nodes):
        async def node(s: Chain) -> dict[str, int]:
            return {"n": s["n"] + 1}
        g.add_node(f"n{i}", node)
        g.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    return g


async def per_step_ms(saver: Any, nodes: int, repeat: int) -> float:
    graph = chain(nodes).compile(checkpointer=saver)
    samples = []
    for _ in range(repeat):
        cfg = {"configurable": {"thread_id": uuid.uuid4().hex}}
        t = time.perf_counter()
        await graph.ainvoke({"n": 0}, cfg)
        samples.append((time.perf_counter() - t) / nodes)
    return statistics.median(samples) * 1000


async def savers(tmp: Path, nodes: int, repeat: int, pg: str | None) -> None:
    base = await per_step_ms(InMemorySaver(), nodes, repeat)
    print(f"per-step checkpoint cost, {nodes}-node chain, median of {repeat}:")
    print(f"  InMemorySaver           {base:6.2f} ms/step   1.0x")
    async with open_saver(None, tmp / "bench.sqlite") as saver:
        ms = await per_step_ms(saver, nodes, repeat)
        print(f"  SQLite (WAL, NORMAL)    {ms:6.2f} ms/step  {ms / base:4.1f}x")
    if pg:
        async with open_saver(pg, tmp / "unused") as saver:
            ms = await per_step_ms(saver, nodes, repeat)
            print(f"  Postgres (127.0.0.1)    {ms:6.2f} ms/step  {ms / base:4.1f}x")


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def snapshots(tmp: Path) -> None:
    print("workspace snapshot vs full copy (shutil.copytree), files of 4 KB:")
    for files in (10, 100, 1000):
        ws = tmp / f"ws{files}"
        (ws / "src").mkdir(parents=True)
        for i in range(files):
            (ws / "src" / f"f{i}.py").write_bytes(os.urandom(4096))
        store = SnapshotStore(tmp / f"snap{files}")
        first = timed(lambda s=store, w=ws: s.take(w))
        (ws / "src" / "f0.py").write_bytes(os.urandom(4096))
        again = timed(lambda s=store, w=ws: s.take(w))
        copy = timed(lambda w=ws, f=files: shutil.copytree(w, tmp / f"copy{f}"))
        stored = sum(p.stat().st_size for p in store.objects.iterdir())
        print(f"  {files:5d} files: first {first:7.1f} ms, after 1 change {again:6.1f} ms "
              f"({again / copy:4.2f}x a full copy of {copy:6.1f} ms); objects {stored // 1024} KB "
              f"for 2 snapshots of {files * 4} KB")


class Naive(TypedDict):
    messages: Annotated[list[str], operator.add]


class ByRef(TypedDict):
    last: str
    count: int


async def growth(tmp: Path, steps: int) -> None:
    payload = "x" * 1024
    journal = Journal(tmp / "journal.jsonl")

    async def naive_step(s: Naive) -> dict[str, Any]:
        return {"messages": [payload]}

    async def byref_step(s: ByRef) -> dict[str, Any]:
        key = f"msg/{s['count']}"
        journal.done(key, "model", request_hash(key), payload)  # the payload lives in the journal
        return {"last": key, "count": s["count"] + 1}

    print(f"checkpoint bytes per step over {steps} steps, each adding a 1 KB message (SQLite):")
    for name, schema, fn, init in (("messages in state", Naive, naive_step, {"messages": []}),
                                   ("journal + reference", ByRef, byref_step, {"last": "", "count": 0})):
        db = tmp / f"growth-{name.split()[0]}.sqlite"
        g: StateGraph[Any] = StateGraph(schema)
        g.add_node("step", fn)
        g.add_edge(START, "step")
        g.add_conditional_edges("step", lambda s, n=steps: "__end__" if _count(s) >= n else "step")
        async with open_saver(None, db) as saver:
            graph = g.compile(checkpointer=saver)
            cfg = {"configurable": {"thread_id": "t"}, "recursion_limit": steps + 10}
            await graph.ainvoke(init, cfg)
        sizes = _per_checkpoint_bytes(db)
        first, last = statistics.mean(sizes[1:11]), statistics.mean(sizes[-10:])
        extra = (journal.path.stat().st_size if name.startswith("journal") else 0) / steps
        print(f"  {name:20s} total {sum(sizes) // 1024:6d} KB over {len(sizes)} checkpoints; bytes per "
              f"checkpoint: steps 1-10 {first / 1024:6.1f} KB, last 10 {last / 1024:6.1f} KB"
              f" (+{extra / 1024:.1f} KB/step in the journal)")


def _per_checkpoint_bytes(db: Path) -> list[int]:
    """Stored bytes per checkpoint (blob + metadata + its pending writes), in write order."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT length(c.checkpoint) + length(c.metadata) + COALESCE((SELECT SUM(length(w.value)) FROM writes w "
            "WHERE w.thread_id = c.thread_id AND w.checkpoint_id = c.checkpoint_id), 0) "
            "FROM checkpoints c ORDER BY c.rowid").fetchall()
    return [int(r[0]) for r in rows]


def _count(s: Any) -> int:
    return len(s["messages"]) if "messages" in s else int(s["count"])


async def main(steps: int, pg: str | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        await savers(tmp, 20, 15, pg)
        snapshots(tmp)
        await growth(tmp, steps)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    runner: Callable[[], Awaitable[None]] = lambda: main(a.steps, a.postgres or None)  # noqa: E731
    asyncio.run(runner())
