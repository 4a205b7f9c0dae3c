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
import math
import multiprocessing as mp
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import procstat
from bench.concurrency_worker import PLAN, Batch, Kind, Spec, script, worker_main

__all__ = ["PLAN", "main", "script"]

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/naestro_bench"
APP_NAME = "naestro-bench-concurrency"  # marks the workers' Postgres connections, whose backends' CPU is counted


@dataclass
class Usage:
    """CPU seconds of everything that works for the runs, and the workers' trees' RSS."""

    cpu: float  # workers' trees (incl. MCP servers, commands), their Postgres backends, this process (the endpoint)
    main_cpu: float  # the busiest worker process alone (its Python runs on one core at a time)
    rss: int


class Meter:
    """Reads the workers' process trees (plus ``extra()`` pids, e.g. their Postgres backends) from /proc, and
    samples the trees' RSS every 0.2 s in a thread while a round runs."""

    def __init__(self, roots: list[int], extra: Callable[[], list[int]]) -> None:
        self.roots, self.extra = roots, extra
        self.peak, self._stop = 0, threading.Event()

    def usage(self) -> Usage:
        procs = procstat.processes()
        trees = procstat.tree(procs, self.roots)
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
            procs = procstat.processes()
            self.peak = max(self.peak, sum(procs[p].rss for p in procstat.tree(procs, self.roots)))


@dataclass
class Round:
    wall: float
    errors: list[str]
    peak_rss: int
    cpu: float
    main_cpu: float


class Pool:
    def __init__(self, spec: Spec, processes: int, extra: Callable[[], list[int]]) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(spec, child), daemon=False)
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


def _pg_backends(url: str) -> Callable[[], list[int]]:
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
            need, have = per_run * runs, procstat.mem_available()
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
