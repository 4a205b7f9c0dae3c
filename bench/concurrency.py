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
  speed at once: ``min(cores * w / cpu, P * w / cpu_main)``. A run alone uses ``cpu`` seconds of CPU over ``w``
  seconds of wall time, counted everywhere work is done for it: the worker's process tree (the driver, the MCP
  servers, sandboxed commands), the Postgres backends serving the workers' connections, and this process (the
  scripted model endpoint), all read from /proc. So ``cores * w / cpu`` runs fit on the cores; and Python code
  runs on one core per process (the GIL), so a worker's own share ``cpu_main`` caps it at ``w / cpu_main`` runs.
  Beyond capacity runs can only queue, so no scheduler can beat the ideal by much; everything above it is lost to
  waiting (lock and busy waits, serialised I/O, a blocked event loop, memory pressure). Goal: ≤ 1.5x ideal.
  Other work on the machine counts against both the alone and the together measurements, which is why rounds
  interleave them; on a shared machine the ratio is only indicative.
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
APP_NAME = "naestro-bench-concurrency"  # marks the workers' Postgres connections, whose backends' CPU is counted

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
            bad = {t: f"{r['status']}: {r.get('error') or r['feedback']}"[:160]
                   for t, r in result.tasks.items() if r["status"] not in ("passed", "skipped")}
            raise RuntimeError(f"run did not pass: {result.record.status} {bad}")

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

        outcomes = await asyncio.gather(*(one() for _ in range(k)), return_exceptions=True)
        out = Batch()
        for o in outcomes:
            if isinstance(o, BaseException):
                first = (str(o).strip().splitlines() or [""])[0]
                out.errors.append(f"{type(o).__name__}: {first[:200]}")
            else:
                out.walls.append(o)
        return out


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


# --- the parent side: CPU and memory from /proc, rounds, the report -------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    ppid: int
    cpu: float  # seconds: its own, plus its reaped children's
    own_cpu: float
    rss: int  # bytes


def _processes() -> dict[int, Proc]:
    """Every process's parent, CPU and RSS (processes may vanish while this reads)."""
    out: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        f = stat[stat.rfind(b")") + 2:].split()
        own = (int(f[11]) + int(f[12])) / _TICK
        out[int(entry.name)] = Proc(ppid=int(f[1]), cpu=own + (int(f[13]) + int(f[14])) / _TICK, own_cpu=own,
                                    rss=int(f[21]) * _PAGE)
    return out


def _tree(procs: dict[int, Proc], roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    found, todo = [], [r for r in roots if r in procs]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


@dataclass
class Usage:
    """CPU seconds of everything that works for the runs, and the workers' trees' RSS."""

    cpu: float  # workers' trees (incl. MCP servers, commands), their Postgres backends, this process (the endpoint)
    main_cpu: float  # the busiest worker process alone (its Python runs on one core at a time)
    rss: int


class Meter:
    """Reads the workers' process trees (plus ``extra()`` pids, e.g. their Postgres backends) from /proc, and
    samples the trees' RSS every 0.2 s in a thread while a round runs."""

    def __init__(self, roots: list[int], extra: Any) -> None:
        self.roots, self.extra = roots, extra
        self.peak, self._stop = 0, threading.Event()

    def usage(self) -> Usage:
        procs = _processes()
        trees = _tree(procs, self.roots)
        others = [p for p in self.extra() if p in procs]
        me = os.times()
        return Usage(cpu=sum(procs[p].cpu for p in trees + others) + me.user + me.system,
                     main_cpu=max(procs[p].own_cpu for p in self.roots if p in procs),
                     rss=sum(procs[p].rss for p in trees))

    @contextmanager
    def watch(self) -> Iterator[Meter]:
        self.peak, self._stop = self.usage().rss, threading.Event()
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            procs = _processes()
            self.peak = max(self.peak, sum(procs[p].rss for p in _tree(procs, self.roots)))


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
    cpu: float
    main_cpu: float


class Pool:
    def __init__(self, spec: Spec, processes: int, extra: Any) -> None:
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
        self.meter = Meter([p.pid for p in self.procs], extra)
        self.idle_rss = self.meter.usage().rss

    def run(self, kind: Kind, n: int, workers: int | None = None) -> Round:
        conns = self.conns[: workers or len(self.conns)]
        shares = [n // len(conns) + (1 if i < n % len(conns) else 0) for i in range(len(conns))]
        before = self.meter.usage()
        with self.meter.watch() as meter:
            start = time.perf_counter()
            for conn, k in zip(conns, shares, strict=True):
                if k:
                    conn.send((kind, k))
            batches: list[Batch] = [conn.recv()[1] for conn, k in zip(conns, shares, strict=True) if k]
            wall = time.perf_counter() - start
        after = self.meter.usage()
        return Round(wall=wall, errors=[e for b in batches for e in b.errors], peak_rss=meter.peak,
                     cpu=after.cpu - before.cpu, main_cpu=after.main_cpu - before.main_cpu)

    def close(self) -> None:
        for conn in self.conns:
            conn.send(("stop",))
        for proc in self.procs:
            proc.join(timeout=60)


def _pg_backends(url: str) -> Any:
    """The pids of the Postgres backends serving the bench (its connections carry application_name)."""
    import psycopg

    def pids() -> list[int]:
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> "
                                "pg_backend_pid()", (APP_NAME,)).fetchall()
        return [int(r[0]) for r in rows]
    return pids


def _pg_url(url: str) -> str:
    """``url`` with the bench's application_name; its database created when missing."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = str(conninfo_to_dict(url).get("dbname", "postgres"))
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')  # the bench's own name, never user text
    return url + ("&" if "?" in url else "?") + f"application_name={APP_NAME}"


def _med(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main(runs: int, processes: int, checkpointer: str, rounds: int, pg_url: str, force: bool) -> None:
    from tests.scripted_openai import models_yaml, scripted_openai

    pg = _pg_url(pg_url) if checkpointer == "postgres" else None
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="naestro-concurrency-") as tmp, scripted_openai(script) as base_url:
        models = Path(tmp) / "models.yaml"
        models.write_text(models_yaml(base_url))
        spec = Spec(home=str(Path(tmp) / "home"), models_file=str(models), base_url=base_url,
                    checkpoint_url=pg)
        print(f"{runs} concurrent runs over {processes} process(es), {checkpointer} checkpointer, {cores} cores, "
              f"load {os.getloadavg()[0]:.1f}; {rounds} round(s), Naestro and the anchor interleaved")
        pool = Pool(spec, processes, _pg_backends(pg) if pg else list)
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
            cpu = statistics.median(r.cpu for r in solo[kind])
            cpu_main = statistics.median(r.main_cpu for r in solo[kind])
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
