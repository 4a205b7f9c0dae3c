"""Scale-out (issue 20): runs/s and latency with 1, 2, 4 ``naestro worker`` processes against the same runs driven
in-process, in the same invocation, on the same Postgres checkpointer and the same fast scripted model endpoint.

Each run is the plan of ``bench.concurrency`` (a direct ``fs.write``; a Researcher agent with two model calls that
writes through the gate and the tool bus; another direct ``fs.write``; the Reporter's model call), on the real
runtime: MCP servers, Rego gate, signed audit log, effect journal, Postgres checkpoints. The model is
``tests/scripted_openai.py`` (a real OpenAI-compatible HTTP endpoint answering at once), so what is measured is
Naestro, the queue and the database, not a model.

Per K (1, 2, 4): in-process, one runtime drives N runs with at most K at once (asyncio); queued, K worker
processes (solo pool) take N runs submitted at once from Redis. Both are warmed up first (runtime built, MCP
servers started). Reported: runs/s over the burst, latency from submission to the run's ``run_finished`` event
(p50/p95; a burst, so it includes waiting in the queue), the run's own time from its first to its last event, and
the ratios queued / in-process. Optionally (``--langgraph``) the same burst through the stock LangGraph API server
(``langgraph dev``, in-memory runtime, its own checkpointer) with langgraph-sdk.

Usage: python -m bench.scaleout [--runs 40] [--workers 1,2,4] [--langgraph]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import redis

from bench.concurrency import PLAN, script
from naestro.distributed import ScaleSettings, Submitter, make_app
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.runs import RunStore
from naestro.settings import Settings
from policies.decision import RunPolicy
from tests.scripted_openai import models_yaml, scripted_openai

PG = "postgresql://postgres@127.0.0.1:5432"
DB = "naestro_scaleout_bench"
REDIS_URL = "redis://127.0.0.1:6379/6"
QUEUE = "naestro-bench"
VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Burst:
    label: str
    runs: int
    wall_s: float
    latencies: list[float]  # submission -> run_finished
    run_times: list[float]  # first event -> run_finished
    failed: int

    @property
    def rate(self) -> float:
        return self.runs / self.wall_s

    def row(self) -> str:
        lat, own = sorted(self.latencies), sorted(self.run_times)
        return (f"{self.label:<28} {self.rate:6.2f} runs/s  latency p50 {_pct(lat, 50):6.2f} s p95 {_pct(lat, 95):6.2f}"
                f" s  run p50 {_pct(own, 50):5.2f} s p95 {_pct(own, 95):5.2f} s  failed {self.failed}")


def _pct(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _times(home: Path, run_id: str) -> tuple[float, float] | None:
    """(first event, run_finished) of a run, from its events.jsonl; None before it finished."""
    path = home / "runs" / run_id / "events.jsonl"
    if not path.exists():
        return None
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    ends = [e for e in events if e.get("event") == "run_finished"]
    return (_ts(events[0]["ts"]), _ts(ends[-1]["ts"])) if ends else None


@contextmanager
def fresh_backends() -> Iterator[None]:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    try:
        yield
    finally:
        broker.flushdb()
        broker.close()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (Celery's warm shutdown) to each process group, SIGKILL what is still there after 30 s."""
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def in_process(settings: Settings, runs: int, k: int) -> Burst:
    """N runs on one runtime in this process, at most ``k`` at once."""
    from naestro.endpoints import load_registry
    from naestro.llm import EndpointProvider

    async def go() -> Burst:
        runner = Runner(settings, EndpointProvider(load_registry(settings.models_file), settings))
        gate = asyncio.Semaphore(k)
        plan = Plan.model_validate(PLAN)

        async def one() -> tuple[str, bool]:
            async with gate:
                result = await runner.start("", plan=plan, policy=RunPolicy(mode="auto"))
                return result.record.run_id, result.passed

        try:
            await asyncio.gather(*(one() for _ in range(2)))  # warm-up: runtime, MCP servers, connections
            t0 = time.time()
            done = await asyncio.gather(*(one() for _ in range(runs)), return_exceptions=True)
            wall = time.time() - t0
        finally:
            await runner.services.aclose()
        ok = [d for d in done if isinstance(d, tuple)]
        spans = [t for run_id, _ in ok if (t := _times(settings.home, run_id))]
        return Burst(f"in-process, {k} at once", runs, wall, [end - t0 for _, end in spans],
                     [end - start for start, end in spans], runs - sum(1 for _, passed in ok if passed))

    return asyncio.run(go())


def queued(settings: Settings, scale: ScaleSettings, runs: int, k: int, env: dict[str, str], logs: Path) -> Burst:
    """N runs submitted at once to ``k`` worker processes."""
    procs = [subprocess.Popen([str(VENV_BIN / "naestro"), "worker"], env=env, start_new_session=True,
                              stdout=(logs / f"worker-{k}-{i}.log").open("wb"), stderr=subprocess.STDOUT)
             for i in range(k)]
    submitter = Submitter(settings, scale, make_app(scale))
    store = RunStore(settings.runs_dir)
    plan = Plan.model_validate(PLAN)

    def burst(n: int) -> tuple[list[str], float, float]:
        t0 = time.time()
        ids = [submitter.submit("", plan=plan, policy=RunPolicy(mode="auto")).run_id for _ in range(n)]
        waiting = set(ids)
        while waiting:
            waiting = {r for r in waiting if store.load(r).status not in ("passed", "failed", "error")}
            time.sleep(0.05)
        return ids, t0, time.time()

    try:
        burst(2 * k)  # warm-up: every worker builds its runtime and starts its MCP servers
        ids, t0, _ = burst(runs)
    finally:
        _stop(procs)
    spans = [t for r in ids if (t := _times(settings.home, r))]
    wall = max(end for _, end in spans) - t0
    failed = sum(1 for r in ids if store.load(r).status != "passed")
    return Burst(f"queued, {k} worker process(es)", runs, wall, [end - t0 for _, end in spans],
                 [end - start for start, end in spans], failed)


def langgraph_server(settings: Settings, runs: int, env: dict[str, str], logs: Path) -> Burst:
    """The same burst through ``langgraph dev`` (stock LangGraph API server, in-memory runtime) and langgraph-sdk."""
    import httpx
    from langgraph_sdk import get_client

    from tests.mcp_http import free_port

    port = free_port()
    proc = subprocess.Popen([str(VENV_BIN / "langgraph"), "dev", "--no-browser", "--no-reload", "--port", str(port),
                             "--config", str(REPO / "langgraph.json")], cwd=REPO, env=env, start_new_session=True,
                            stdout=(logs / "langgraph-dev.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)

        async def go() -> Burst:
            client = get_client(url=url)

            async def one() -> tuple[float, bool]:
                thread = await client.threads.create()
                run = await client.runs.create(thread["thread_id"], "naestro", input={
                    "goal": "", "plan": PLAN, "mode": "auto"})
                await client.runs.join(thread["thread_id"], run["run_id"])
                state = await client.threads.get_state(thread["thread_id"])
                values = state["values"] if isinstance(state["values"], dict) else {}
                return time.time(), values.get("status") == "passed"

            await asyncio.gather(*(one() for _ in range(2)))
            t0 = time.time()
            done = await asyncio.gather(*(one() for _ in range(runs)))
            return Burst("langgraph dev (inmem)", runs, max(t for t, _ in done) - t0, [t - t0 for t, _ in done], [],
                         sum(1 for _, ok in done if not ok))

        return asyncio.run(go())
    finally:
        _stop([proc])


def main(runs: int, workers: list[int], with_langgraph: bool) -> None:
    print(f"bench.scaleout: {runs} runs per burst, workers {workers}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="naestro-scaleout-") as tmp, fresh_backends(), \
            scripted_openai(script) as base_url:
        root = Path(tmp)
        (root / "logs").mkdir()
        models = root / "models.yaml"
        models.write_text(models_yaml(base_url))
        settings = Settings(home=root / "home", models_file=models, max_replans=0, checkpoint_url=f"{PG}/{DB}")
        scale = ScaleSettings(broker_url=REDIS_URL, queue=QUEUE)
        env = {**os.environ, "NAESTRO_HOME": str(settings.home), "NAESTRO_MODELS_FILE": str(models),
               "NAESTRO_MAX_REPLANS": "0", "NAESTRO_CHECKPOINT_URL": str(settings.checkpoint_url),
               "NAESTRO_BROKER_URL": REDIS_URL, "NAESTRO_QUEUE": QUEUE, "LANGSMITH_TRACING": "false",
               "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
        results: list[tuple[Burst, Burst]] = []
        for k in workers:
            local = in_process(settings, runs, k)
            print(local.row(), flush=True)
            remote = queued(settings, scale, runs, k, env, root / "logs")
            print(remote.row(), flush=True)
            results.append((local, remote))
        print("queued / in-process:")
        for k, (local, remote) in zip(workers, results, strict=True):
            print(f"  K={k}: runs/s {remote.rate / local.rate:.2f}x, p95 latency "
                  f"{_pct(sorted(remote.latencies), 95) / _pct(sorted(local.latencies), 95):.2f}x, run p50 "
                  f"{statistics.median(remote.run_times) / statistics.median(local.run_times):.2f}x")
        if with_langgraph:
            env_lg = {**env, "NAESTRO_CHECKPOINT_URL": ""}
            env_lg.pop("NAESTRO_CHECKPOINT_URL")
            print(langgraph_server(settings, runs, env_lg, root / "logs").row(), flush=True)
    print(f"load after: {os.getloadavg()[0]:.1f}")


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    ap.add_argument("--langgraph", action="store_true", help="also the stock LangGraph API server (langgraph dev)")
    return ap.parse_args()


if __name__ == "__main__":
    a = _args()
    main(a.runs, [int(w) for w in a.workers.split(",") if w], a.langgraph)

