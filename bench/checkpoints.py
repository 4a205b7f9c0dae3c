"""Checkpoint and snapshot costs: ``python -m bench.checkpoints [--steps 200] [--tasks 200] [--postgres URL]``.

1. Per-step checkpoint cost of Naestro's savers (SQLite WAL + synchronous=NORMAL; Postgres) against
   LangGraph's InMemorySaver on the same 20-node chain (ratio).
2. Workspace snapshot cost vs workspace size (first snapshot, then after one file changed) against a full
   ``shutil.copytree`` of the same folder (ratio).
3. Checkpoint bytes per step over N steps that each add a 1 KB message: messages kept in graph state (the
   usual LangGraph pattern) vs Naestro's pattern (the payload in the journal, a reference in state).
4. Checkpoint bytes per step of Naestro's real run graph on a chain of N direct tasks (each an MCP fs.write
   and a file_exists check), on SQLite and Postgres, against bare LangGraph with the same checkpointer whose
   one node writes a record of the same shape per step into a dict in state (the usual pattern). Bytes per
   checkpoint = its row + its pending writes + the blobs of channel versions it introduced
   (``checkpoints/footprint.py``); first 10 steps vs last 10 (issue 16: O(change), not O(state)).
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import shutil
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
from checkpoints.footprint import postgres_bytes, sqlite_bytes
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
    print("workspace snapshot vs full copy (shutil.copytree), files of 4 KB; a step that changed one file, "
          "reported by fs.write (no walk) or unknown (exec.run: walk):")
    for files in (10, 100, 1000):
        ws = tmp / f"ws{files}"
        (ws / "src").mkdir(parents=True)
        for i in range(files):
            (ws / "src" / f"f{i}.py").write_bytes(os.urandom(4096))
        store = SnapshotStore(tmp / f"snap{files}")
        first = timed(lambda s=store, w=ws: s.take(w))
        (ws / "src" / "f0.py").write_bytes(os.urandom(4096))
        store.note_written(["src/f0.py"])
        before = _manifest_bytes(store)
        known = timed(lambda s=store, w=ws: s.take(w))
        step_bytes = _manifest_bytes(store) - before
        (ws / "src" / "f1.py").write_bytes(os.urandom(4096))
        store.note_unknown()
        walked = timed(lambda s=store, w=ws: s.take(w))
        copy = timed(lambda w=ws, f=files: shutil.copytree(w, tmp / f"copy{f}"))
        stored = store.objects.stored_bytes()
        print(f"  {files:5d} files: first {first:7.1f} ms; after 1 change: reported {known:5.2f} ms "
              f"({known / copy:5.3f}x a full copy of {copy:6.1f} ms), walked {walked:6.1f} ms ({walked / copy:4.2f}x); "
              f"manifest written {step_bytes} B (first {_first_manifest(store)} B); objects {stored // 1024} KB")


def _manifest_bytes(store: SnapshotStore) -> int:
    return store.manifests.stored_bytes()


def _first_manifest(store: SnapshotStore) -> int:
    first = store.manifests.latest()
    while first is not None and (body := store.manifests.body(first)) is not None and "base" in body:
        first = str(body["base"])
    return store.manifests.stored_bytes(first) if first else 0


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
    """Stored bytes per checkpoint (row + pending writes + blobs of new channel versions), in write order."""
    return sqlite_bytes(db, "t")


def _count(s: Any) -> int:
    return len(s["messages"]) if "messages" in s else int(s["count"])


class Bare(TypedDict):
    tasks: Annotated[dict[str, Any], lambda a, b: {**a, **b}]


def _record(i: int) -> dict[str, Any]:
    """A task record shaped like a passed direct task's (graphs/state.py TaskRecord)."""
    return {"status": "passed", "attempts": 1, "outputs": {}, "summary": f"wrote f{i}.txt (1 bytes)",
            "checks": [{"kind": "file_exists", "passed": True, "detail": f"f{i}.txt exists"}], "feedback": "",
            "tokens": 0, "cost_usd": 0.0, "wall_s": 0.012, "model": ""}


async def history_ms(graph: Any, cfg: Any) -> float:
    """Reading a thread's whole history (what `naestro runs history` does), state by state."""
    t = time.perf_counter()
    states = [s async for s in graph.aget_state_history(cfg)]
    assert states
    return (time.perf_counter() - t) * 1000


async def bare_bytes(saver: Any, thread: str, tasks: int) -> float:
    async def step(s: Bare) -> dict[str, Any]:
        i = len(s["tasks"])
        return {"tasks": {f"t{i}": _record(i)}}

    g: StateGraph[Any] = StateGraph(Bare)
    g.add_node("task", step)
    g.add_edge(START, "task")
    g.add_conditional_edges("task", lambda s, n=tasks: "__end__" if len(s["tasks"]) >= n else "task")
    cfg = {"configurable": {"thread_id": thread}, "recursion_limit": tasks + 10}
    compiled = g.compile(checkpointer=saver)
    await compiled.ainvoke({"tasks": {}}, cfg)
    return await history_ms(compiled, cfg)


WRITERS = ("researcher", "coder", "reviewer", "dataops", "reporter")
"""Roles allowed fs.write: the chain cycles through them so that no role passes the gate's rate limit (120 calls
a minute per role) on a fast machine."""


def chain_plan(n: int) -> Any:
    from naestro.plan import Plan

    return Plan.model_validate({"goal": "bench", "tasks": [
        {"id": f"t{i}", "role": WRITERS[i % len(WRITERS)], "description": "write", "deps": [f"t{i - 1}"] if i else [],
         "action": {"tool": "fs.write", "arguments": {"path": f"f{i}.txt", "content": "x"}},
         "accept": [{"kind": "file_exists", "path": f"f{i}.txt"}]} for i in range(n)]})


async def naestro_bytes(saver: Any, thread: str, tasks: int, home: Path) -> float:
    from graphs.compile import compile_graph
    from naestro.endpoints import load_registry
    from naestro.llm import EndpointProvider
    from naestro.runner import Runner
    from naestro.settings import Settings

    settings = Settings().model_copy(update={"home": home, "max_replans": 0})
    runner = Runner(settings, EndpointProvider(load_registry(settings.models_file), settings))
    record = runner.store.create("bench", source_workspace=None, in_place=False)
    graph = compile_graph(runner.services, checkpointer=saver)
    inp = {"goal": "bench", "run_id": record.run_id,
           "plan": chain_plan(tasks).model_dump(mode="json", by_alias=True)}
    cfg = {"configurable": {"thread_id": thread, "naestro_run": record.run_id}}
    state = await graph.ainvoke(inp, cfg, interrupt_before=["report"])  # the report needs a model
    bad = {t: r.get("error", r["status"]) for t, r in state["tasks"].items() if r["status"] != "passed"}
    if bad or len(state["tasks"]) != tasks:
        raise SystemExit(f"benchmark run did not pass: {bad or len(state['tasks'])}")
    await runner.services.aclose()
    return await history_ms(graph, cfg)


async def graph_bytes(tmp: Path, tasks: int, pg: str | None) -> None:
    print(f"checkpoint bytes per step, a chain of {tasks} direct tasks (steps 5-14, after the input and plan "
          f"steps / last 10 / max after step 4 / the plan step):")
    backends: list[tuple[str, str | None]] = [("SQLite", None)] + ([("Postgres", pg)] if pg else [])
    for name, url in backends:
        db = tmp / f"graph-{name}.sqlite"
        measured: dict[str, list[int]] = {}
        read_ms: dict[str, float] = {}
        for kind in ("bare langgraph", "naestro"):
            thread = f"{kind.split()[0]}-{uuid.uuid4().hex[:8]}"
            async with open_saver(url, db) as saver:
                if kind == "naestro":
                    read_ms[kind] = await naestro_bytes(saver, thread, tasks, tmp / "home")
                else:
                    read_ms[kind] = await bare_bytes(saver, thread, tasks)
            measured[kind] = sqlite_bytes(db, thread) if url is None else postgres_bytes(url, thread)
        for kind, sizes in measured.items():
            first, last = statistics.mean(sizes[4:14]), statistics.mean(sizes[-10:])
            print(f"  {name:8s} {kind:15s} {len(sizes):4d} checkpoints, total {sum(sizes) / 1024:8.1f} KB; per step "
                  f"{first / 1024:6.2f} KB / {last / 1024:6.2f} KB / {max(sizes[4:]) / 1024:6.2f} KB / "
                  f"{max(sizes[:4]) / 1024:6.2f} KB (last/first {last / first:5.2f}x)")
        n, b = measured["naestro"], measured["bare langgraph"]
        early = statistics.mean(n[4:14]) / statistics.mean(b[4:14])
        late = statistics.mean(n[-10:]) / statistics.mean(b[-10:])
        print(f"  {name:8s} naestro/bare per step: first 10 {early:.2f}x, last 10 {late:.2f}x")
        ours, bare = (read_ms[k] / len(measured[k]) for k in ("naestro", "bare langgraph"))
        print(f"  {name:8s} reading the whole history: naestro {read_ms['naestro']:.0f} ms ({ours:.2f} ms/state, "
              f"replaying task writes), bare {read_ms['bare langgraph']:.0f} ms ({bare:.2f} ms/state); "
              f"per state {ours / bare:.1f}x")


async def main(steps: int, tasks: int, pg: str | None, only_graph: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not only_graph:
            await savers(tmp, 20, 15, pg)
            snapshots(tmp)
            await growth(tmp, steps)
        await graph_bytes(tmp, tasks, pg)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--tasks", type=int, default=200, help="tasks of the real-graph run (part 4)")
    ap.add_argument("--graph-only", action="store_true", help="only part 4")
    ap.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    runner: Callable[[], Awaitable[None]] = lambda: main(a.steps, a.tasks, a.postgres or None,  # noqa: E731
                                                         a.graph_only)
    asyncio.run(runner())
