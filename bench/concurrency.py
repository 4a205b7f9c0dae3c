"""Many Naestro runs at once, against bare LangGraph doing the same work with the same checkpointer (issue 16).

Each run is a small plan on the real runtime: ``a`` writes a file with a direct ``fs.write`` (MCP, gate, audit),
then ``b`` (a Researcher agent on the scripted OpenAI-compatible model endpoint of ``tests/scripted_openai.py``:
one call that writes ``b.txt`` through the gate and the tool bus, one that finishes) and ``c`` (another direct
``fs.write``) in parallel, then the Reporter (one model call). The anchor is a hand-written LangGraph graph of the
same shape doing the same work: the three files written in-process, the same three HTTP model calls, checkpointed
by the same saver (``checkpoints.open_saver``, so the same SQLite pragmas or the same Postgres database).

N runs start together, spread over P worker processes (``--processes``) that share one NAESTRO_HOME: its
checkpoint database, its run store, its router and kill-switch databases, its audit anchors. That sharing is
what the single-process case cannot show. Every worker warms up with one run of each kind before timing starts.

Reported, per round (rounds interleave Naestro and the anchor, so both see the same machine load):
- errors: runs that raised or did not pass (the goal is 0), grouped by the first line of the error;
- wall time against the ideal, where ``ideal = w * ceil(N / capacity)``: ``w`` is one run's wall time measured
  alone in a worker of the same kind, and ``capacity`` is how many such runs the machine can advance at full
  speed at once: ``min(cores * w / cpu, P * w / cpu_main)``. A run alone uses ``cpu`` seconds of CPU in its
  process tree (the driver plus the MCP servers and sandboxed commands it starts) over ``w`` seconds of wall
  time, so ``cores * w / cpu`` runs fit on the cores; and Python code runs on one core per process (the GIL),
  so a worker's own share ``cpu_main`` caps it at ``w / cpu_main`` runs. Beyond capacity runs can only queue, so
  no scheduler can beat the ideal by much; everything above it is lost to waiting (lock and busy waits,
  serialised I/O, a blocked event loop, memory pressure). Goal: ≤ 1.5x ideal. Ideal < w is not possible: with
  fewer runs than capacity they finish in one run's time.
- peak memory per run: the sum of the workers' process trees' RSS (the workers, their MCP servers and
  commands) at its highest during the round, divided by N, next to the workers' idle RSS (the fixed part).

Usage: python -m bench.concurrency --runs 200 [--checkpointer sqlite|postgres] [--processes P] [--rounds R]
The machine must have room for N runs' MCP servers: the bench refuses to start when N times one run's
measured memory exceeds what is available (``--force`` overrides).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import operator
import os
import resource
import secrets
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

Kind = Literal["naestro", "bare"]
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/naestro_bench"

PLAN: dict[str, Any] = {"goal": "concurrency bench", "tasks": [
    {"id": "a", "role": "dataops", "description": "write a.txt",
     "action": {"tool": "fs.write", "arguments": {"path": "a.txt", "content": "alpha\n"}},
     "accept": [{"kind": "file_exists", "path": "a.txt"}]},
    {"id": "b", "role": "researcher", "description": "write b.txt saying beta", "deps": ["a"],
     "accept": [{"kind": "regex", "file": "b.txt", "pattern": "beta"}]},
    {"id": "c", "role": "dataops", "description": "write c.txt", "deps": ["a"],
     "action": {"tool": "fs.write", "arguments": {"path": "c.txt", "content": "gamma\n"}},
     "accept": [{"kind": "file_exists", "path": "c.txt"}]}]}


def script(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The model's replies: the Reporter's summary; task b writes b.txt, then finishes."""
    text = "\n".join(str(m.get("content", "")) for m in messages)
    if "Write 2-4 sentences" in text:
        return {"summary": "Three files were written and every check passed."}
    if not any(m.get("role") == "assistant" for m in messages):
        return {"thought": "write it", "tool": "fs.write", "arguments": {"path": "b.txt", "content": "beta\n"}}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote b.txt", "outputs": {}}}


# --- the worker side ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    home: str
    models_file: str
    base_url: str
    checkpoint_url: str | None


@dataclass
class Batch:
    """What a worker reports for one batch of concurrent runs."""

    errors: list[str] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    cpu_self: float = 0.0
    cpu_children: float = 0.0


class Bare(TypedDict, total=False):
    run: str
    done: Annotated[list[str], operator.add]


class Worker:
    """One process: a Naestro runtime (one Runner, as the CLI or the server has) and the anchor graph."""

    def __init__(self, spec: Spec) -> None:
        import httpx

        from naestro.runner import Runner
        from naestro.settings import Settings

        self.spec = spec
        settings = Settings(home=Path(spec.home), models_file=Path(spec.models_file), max_replans=0,
                            checkpoint_url=spec.checkpoint_url)
        self.settings = settings
        self.runner = Runner(settings)
        self.http = httpx.AsyncClient(base_url=spec.base_url, timeout=60)
        self.bare_dir = Path(spec.home) / "bare"

    async def naestro(self) -> None:
        from naestro.plan import Plan

        result = await self.runner.start(PLAN["goal"], plan=Plan.model_validate(PLAN))
        if not result.passed:
            bad = {t: r["status"] for t, r in result.tasks.items() if r["status"] != "passed"}
            raise RuntimeError(f"run {result.record.run_id} did not pass: {result.record.status} {bad}")

    async def _chat(self, messages: list[dict[str, str]]) -> str:
        reply = await self.http.post("/chat/completions", json={"model": "scripted", "messages": messages})
        reply.raise_for_status()
        content: str = reply.json()["choices"][0]["message"]["content"]
        return content

    async def bare(self) -> None:
        """The anchor: the same DAG, files and model calls, in a hand-written LangGraph graph."""
        import json

        from langgraph.graph import END, START, StateGraph

        from checkpoints import open_saver

        ws = self.bare_dir / secrets.token_hex(6)
        ws.mkdir(parents=True)

        def write(name: str, text: str) -> Any:
            def node(state: Bare) -> dict[str, Any]:
                (ws / name).write_text(text)
                return {"done": [name]}
            return node

        async def agent(state: Bare) -> dict[str, Any]:
            messages = [{"role": "user", "content": "Your task (b): write b.txt saying beta"}]
            step = json.loads(await self._chat(messages))
            (ws / step["arguments"]["path"]).write_text(step["arguments"]["content"])
            messages.append({"role": "assistant", "content": json.dumps(step)})
            await self._chat(messages)
            return {"done": ["b.txt"]}

        async def report(state: Bare) -> dict[str, Any]:
            await self._chat([{"role": "user", "content": "Write 2-4 sentences about: " + ", ".join(state["done"])}])
            return {}

        g: StateGraph[Bare] = StateGraph(Bare)
        g.add_node("a", write("a.txt", "alpha\n"))
        g.add_node("b", agent)
        g.add_node("c", write("c.txt", "gamma\n"))
        g.add_node("report", report)
        g.add_edge(START, "a")
        g.add_edge("a", "b")
        g.add_edge("a", "c")
        g.add_edge(["b", "c"], "report")
        g.add_edge("report", END)
        async with open_saver(self.settings.checkpoint_url, self.settings.checkpoint_db) as saver:
            graph = g.compile(checkpointer=saver)
            await graph.ainvoke({"run": ws.name}, {"configurable": {"thread_id": f"bare-{ws.name}"}})
        if not all((ws / f).exists() for f in ("a.txt", "b.txt", "c.txt")):
            raise RuntimeError(f"bare run {ws.name} did not write its files")

    async def batch(self, kind: Kind, k: int) -> Batch:
        async def one() -> float:
            t = time.perf_counter()
            await (self.naestro() if kind == "naestro" else self.bare())
            return time.perf_counter() - t

        before_self, before_children = _cpu()
        outcomes = await asyncio.gather(*(one() for _ in range(k)), return_exceptions=True)
        after_self, after_children = _cpu()
        out = Batch(cpu_self=after_self - before_self, cpu_children=after_children - before_children)
        for o in outcomes:
            if isinstance(o, BaseException):
                first = (str(o).strip().splitlines() or [""])[0]
                out.errors.append(f"{type(o).__name__}: {first[:200]}")
            else:
                out.walls.append(o)
        return out


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _worker_main(spec: Spec, conn: Connection) -> None:
    async def serve() -> None:
        worker = Worker(spec)
        warm = [await worker.batch("naestro", 1), await worker.batch("bare", 1)]
        conn.send(("ready", [e for b in warm for e in b.errors]))
        while True:
            try:
                msg = await asyncio.to_thread(conn.recv)
            except EOFError:  # the parent is gone
                break
            if msg[0] == "stop":
                break
            conn.send(("done", await worker.batch(msg[0], msg[1])))
        await worker.http.aclose()
        await worker.runner.services.aclose()

    asyncio.run(serve())


# --- the parent side: memory, rounds, the report ---------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(roots: list[int]) -> int:
    """Bytes of RSS of ``roots`` and every descendant (read from /proc; processes may vanish meanwhile)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
            with open(f"/proc/{entry.name}/statm", "rb") as fh:
                rss[int(entry.name)] = int(fh.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, list(roots)
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


class PeakRss:
    """Samples the workers' process trees every 0.2 s in a thread; ``peak`` is the highest sum seen."""

    def __init__(self, roots: list[int]) -> None:
        self.roots, self.peak, self._stop = roots, 0, threading.Event()

    @contextmanager
    def watch(self) -> Iterator[PeakRss]:
        self.peak, self._stop = _tree_rss(self.roots), threading.Event()
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, _tree_rss(self.roots))


def _mem_available() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Round:
    wall: float
    errors: list[str]
    peak_rss: int
    cpu_self: float
    cpu_children: float


class Pool:
    def __init__(self, spec: Spec, processes: int) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(spec, child), daemon=False)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        warm = [e for conn in self.conns for e in conn.recv()[1]]
        if warm:
            self.close()
            raise SystemExit(f"warm-up run failed, nothing to measure: {warm}")
        self.rss = PeakRss([p.pid for p in self.procs])
        self.idle_rss = _tree_rss(self.rss.roots)

    def run(self, kind: Kind, n: int, workers: int | None = None) -> Round:
        conns = self.conns[: workers or len(self.conns)]
        shares = [n // len(conns) + (1 if i < n % len(conns) else 0) for i in range(len(conns))]
        with self.rss.watch() as peak:
            start = time.perf_counter()
            for conn, k in zip(conns, shares, strict=True):
                if k:
                    conn.send((kind, k))
            batches: list[Batch] = [conn.recv()[1] for conn, k in zip(conns, shares, strict=True) if k]
            wall = time.perf_counter() - start
        return Round(wall=wall, errors=[e for b in batches for e in b.errors], peak_rss=peak.peak,
                     cpu_self=max(b.cpu_self for b in batches), cpu_children=sum(b.cpu_children for b in batches))

    def close(self) -> None:
        for conn in self.conns:
            conn.send(("stop",))
        for proc in self.procs:
            proc.join(timeout=60)


def _ensure_pg_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')  # the bench's own name, never user text


def _med(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main(runs: int, processes: int, checkpointer: str, rounds: int, pg_url: str, force: bool) -> None:
    from tests.scripted_openai import models_yaml, scripted_openai

    if checkpointer == "postgres":
        _ensure_pg_database(pg_url)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="naestro-concurrency-") as tmp, scripted_openai(script) as base_url:
        models = Path(tmp) / "models.yaml"
        models.write_text(models_yaml(base_url))
        spec = Spec(home=str(Path(tmp) / "home"), models_file=str(models), base_url=base_url,
                    checkpoint_url=pg_url if checkpointer == "postgres" else None)
        print(f"{runs} concurrent runs over {processes} process(es), {checkpointer} checkpointer, {cores} cores, "
              f"load {os.getloadavg()[0]:.1f}; {rounds} round(s), Naestro and the anchor interleaved")
        pool = Pool(spec, processes)
        try:
            solo: dict[Kind, list[Round]] = {"naestro": [], "bare": []}
            many: dict[Kind, list[Round]] = {"naestro": [], "bare": []}
            for kind in ("naestro", "bare"):
                solo[kind].append(pool.run(kind, 1, workers=1))
            per_run = max(solo["naestro"][0].peak_rss - pool.idle_rss, 1)
            need, have = per_run * runs, _mem_available()
            if need > 0.8 * have and not force:
                raise SystemExit(f"{runs} runs need ~{need / 2**30:.1f} GiB ({per_run / 2**20:.0f} MiB each, one "
                                 f"run measured alone) but {have / 2**30:.1f} GiB is available: use fewer --runs "
                                 "(or --force)")
            for _ in range(rounds):
                for kind in ("naestro", "bare"):
                    many[kind].append(pool.run(kind, runs))
                    solo[kind].append(pool.run(kind, 1, workers=1))
        finally:
            pool.close()
        print(f"workers' idle RSS: {pool.idle_rss / 2**20:.0f} MiB in {processes} process tree(s)")
        for kind in ("naestro", "bare"):
            label = "naestro" if kind == "naestro" else "anchor (bare langgraph)"
            w = statistics.median(r.wall for r in solo[kind])
            cpu = statistics.median(r.cpu_self + r.cpu_children for r in solo[kind])
            cpu_main = statistics.median(r.cpu_self for r in solo[kind])
            capacity = min(cores * w / max(cpu, 1e-9), processes * w / max(cpu_main, 1e-9))
            ideal = w * math.ceil(runs / capacity)
            walls = [r.wall for r in many[kind]]
            errors = Counter(e for r in many[kind] for e in r.errors)
            print(f"{label}:")
            print(f"  one run alone: {w:.2f} s wall, {cpu:.2f} s CPU ({cpu_main:.2f} s in the worker) -> capacity "
                  f"{capacity:.1f} runs at once, ideal for {runs}: {ideal:.2f} s")
            print(f"  {runs} at once: wall {_med(walls)} s, {statistics.median(walls) / ideal:.2f}x ideal; "
                  f"errors {sum(errors.values())} of {runs * rounds} runs")
            for err, count in errors.most_common(8):
                print(f"    {count}x {err}")
            peaks = [r.peak_rss / runs / 2**20 for r in many[kind]]
            print(f"  peak RSS per run: {_med(peaks)} MiB (workers' trees at their peak / {runs})")
        ratio = statistics.median(r.wall for r in many["naestro"]) / statistics.median(r.wall for r in many["bare"])
        print(f"naestro / anchor, {runs} at once: {ratio:.1f}x wall")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--checkpointer", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg-url", default=PG_DEFAULT, help="Postgres database for --checkpointer postgres")
    ap.add_argument("--force", action="store_true", help="start even if the runs may not fit in memory")
    a = ap.parse_args()
    main(a.runs, a.processes, a.checkpointer, a.rounds, a.pg_url, a.force)
