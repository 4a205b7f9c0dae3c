"""Naestro's orchestration overhead against bare LangGraph doing the same tool work, measured in one run.

1. Chain: N tasks, each writes one small file with MCP ``fs.write`` and checks it exists. Naestro runs its one
   graph (plan node, then per task: schedule + task node through the policy gate, the effect journal, events,
   the acceptance check and workspace snapshots). Anchors, on the same event loop in the same rounds:
   ``bare``  a hand-written LangGraph chain, one node per task, calling the SAME pooled MCP ``fs.write`` over
             the same session and checking the file (the tool work without Naestro's governance);
   ``inproc`` the same chain writing the file in-process (no MCP: LangGraph's own floor).
   Each is measured without a checkpointer and with the same ``AsyncSqliteSaver`` settings (WAL,
   ``synchronous=NORMAL``: what Naestro's runs use), one fresh thread per round.
2. Fan-out: 8 independent tasks each running ``sleep 0.1`` through the sandboxed ``exec.run`` (a bubblewrap
   process per call). Anchor: 8 parallel bare LangGraph nodes calling the same ``exec.run``. Efficiency is
   reported two ways: against the anchor (``anchor wall / naestro wall``: what Naestro's orchestration costs
   on top of the sandbox) and absolute (``0.1 s / wall``: how close to perfectly parallel, which also pays for
   8 sandbox starts on 2 cores).

Rounds are interleaved (every variant once per round, the order rotating), so a load change hits all variants
alike; the ratio is computed per round and its median reported with the spread (min–max). The MCP servers
start before any timing.

Usage: python -m bench.overhead [--tasks 10] [--repeat 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph

from checkpoints.sqlite import open_sqlite_saver
from graphs.compile import compile_graph
from graphs.state import RunInput
from naestro.endpoints import load_registry
from naestro.llm import EndpointProvider
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from naestro.toolbus import ToolBus
from policies.decision import ApprovedScope, RunPolicy

Round = Callable[[], Awaitable[object]]


def chain_plan(n: int) -> Plan:
    return Plan.model_validate({"goal": "bench", "tasks": [
        {"id": f"t{i}", "role": "dataops", "description": "write", "deps": [f"t{i - 1}"] if i else [],
         "action": {"tool": "fs.write", "arguments": {"path": f"f{i}.txt", "content": "x"}},
         "accept": [{"kind": "file_exists", "path": f"f{i}.txt"}]} for i in range(n)]})


def parallel_plan(n: int) -> Plan:
    return Plan.model_validate({"goal": "bench", "tasks": [
        {"id": f"p{i}", "role": "runner", "description": "sleep",
         "action": {"tool": "exec.run", "arguments": {"command": "sleep 0.1"}},
         "accept": [{"kind": "file_exists", "path": "."}]} for i in range(n)]})


class Bare(TypedDict):
    done: list[str]


def bare_chain(n: int, ws: Path, bus: ToolBus | None, saver: BaseCheckpointSaver[str] | None) -> Any:
    """One node per task: the same fs.write over MCP (``bus``), or in-process without one."""
    g: StateGraph[Any] = StateGraph(Bare)
    for i in range(n):
        async def node(state: Bare, i: int = i) -> dict[str, Any]:
            if bus is None:
                (ws / f"b{i}.txt").write_text("x")
            else:
                res = await bus.call("fs.write", {"path": f"b{i}.txt", "content": "x"})
                assert res.ok, res.text
            assert (ws / f"b{i}.txt").exists()
            return {"done": [f"t{i}"]}
        g.add_node(f"t{i}", node)
        g.add_edge(START if i == 0 else f"t{i - 1}", f"t{i}")
    return g.compile(checkpointer=saver)


def bare_fanout(n: int, bus: ToolBus, saver: BaseCheckpointSaver[str] | None) -> Any:
    g: StateGraph[Any] = StateGraph(Bare)
    for i in range(n):
        async def node(state: Bare) -> dict[str, Any]:
            res = await bus.call("exec.run", {"command": "sleep 0.1"})
            assert res.ok, res.text
            return {}
        g.add_node(f"p{i}", node)
        g.add_edge(START, f"p{i}")
    return g.compile(checkpointer=saver)


def thread_cfg(**extra: Any) -> RunnableConfig:
    return {"configurable": {"thread_id": secrets.token_hex(6), **extra}, "max_concurrency": 8}


async def passed(run: Awaitable[Any]) -> None:
    """Await a Naestro graph run and insist every task passed: a denied or failed task is not a measurement."""
    state = await run
    bad = {t: f"{r['status']}: {r.get('error') or r['feedback'] or r['summary']}"[:300]
           for t, r in state["tasks"].items() if r["status"] != "passed"}
    if bad or not state["tasks"]:
        raise SystemExit(f"benchmark run did not pass: {bad or 'no tasks ran'}")


async def interleaved(variants: dict[str, Round], repeat: int,
                      cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """``repeat`` rounds; each round runs every variant once, starting one later than the previous round.

    Returns wall seconds per round; ``cpu`` (if given) receives this process's CPU seconds per round (all its
    threads: the loop, aiosqlite's, the worker threads; not the MCP servers, which both sides share). On a
    loaded machine wall time measures the neighbours as much as the code; CPU time much less so."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            await variants[name]()
            samples[name].append(time.perf_counter() - t)
            if cpu is not None:
                cpu.setdefault(name, []).append(time.process_time() - c)
    return samples


def ratio_line(label: str, num: list[float], den: list[float]) -> str:
    per_round = [a / b for a, b in zip(num, den, strict=True)]
    return (f"{label} median {statistics.median(per_round):.2f}x "
            f"(min {min(per_round):.2f}x, max {max(per_round):.2f}x)")


def ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:8.1f} ms  ({min(xs) * 1000:.1f}–{max(xs) * 1000:.1f})"


async def main(tasks: int, repeat: int) -> None:
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(settings.model_copy(update={"home": Path(tmp) / "home"}),
                        EndpointProvider(load_registry(settings.models_file), settings))
        services = runner.services
        # Copilot mode with exec.run pre-approved (as `naestro run --approve exec.run` would).
        policy = RunPolicy(approve=[ApprovedScope(tool="exec.run")])
        async with AsyncExitStack() as stack:
            saver = await stack.enter_async_context(open_sqlite_saver(Path(tmp) / "checkpoints.sqlite"))
            graphs = {"": compile_graph(services), "+sqlite": compile_graph(services, checkpointer=saver)}

            async def open_run(plan: Plan) -> tuple[str, ToolBus, Path]:
                """A run record with its MCP sessions open (outside the timing), as the anchor's session is: a run
                opens a server's session on its first call to it (one initialize round trip, ~30 ms here,
                measured by bench.toolbus), a per-run cost that is not per-task overhead."""
                record = runner.store.create("bench", source_workspace=None, in_place=False, policy=policy)
                live = await services.live(record.run_id)
                assert live.bus is not None
                servers = {t.action.tool.split(".")[0] for t in plan.tasks if t.action is not None}
                for server in sorted(servers):  # a read-only call opens the session and changes nothing
                    warm = {"fs": ("fs.list", {"path": "."}), "exec": ("exec.run", {"command": "true"})}[server]
                    await live.bus.call(*warm)
                return record.run_id, live.bus, Path(record.workspace)

            def naestro(run_id: str, plan: Plan, suffix: str) -> Round:
                inp: RunInput = {"goal": "bench", "run_id": run_id,
                                 "plan": plan.model_dump(mode="json", by_alias=True)}
                # a new thread per round; the report (a model call) is left out
                return lambda: passed(graphs[suffix].ainvoke(inp, thread_cfg(naestro_run=run_id),
                                                             interrupt_before=["report"]))

            def naestro_fresh(runs: list[tuple[str, ToolBus, Path]], plan: Plan, suffix: str) -> Round:
                """A round on the next unused run (a run is used by one round only)."""
                def round_() -> Awaitable[object]:
                    return naestro(runs.pop()[0], plan, suffix)()
                return round_

            def bare(graph: Any) -> Round:
                return lambda: graph.ainvoke({"done": []}, thread_cfg())

            # The policy's rate limits (120 fs.write, 30 exec.run per role and run per minute) are real limits,
            # so every Naestro round gets a run of its own, opened before the timing.
            fresh = [await open_run(chain_plan(tasks)) for _ in range(2 * (repeat + 1))]
            _, bus, ws = fresh[0]
            chain: dict[str, Round] = {}
            for suffix, sv in (("", None), ("+sqlite", saver)):
                chain[f"naestro{suffix}"] = naestro_fresh(fresh, chain_plan(tasks), suffix)
                chain[f"bare-mcp{suffix}"] = bare(bare_chain(tasks, ws, bus, sv))
                chain[f"inproc{suffix}"] = bare(bare_chain(tasks, ws, None, sv))
            for round_ in chain.values():  # warm-up: imports, first connections, the first snapshot
                await round_()
            cpu: dict[str, list[float]] = {}
            got = await interleaved(chain, repeat, cpu)
            print(f"chain of {tasks} tasks (fs.write + file check), {repeat} interleaved rounds, "
                  f"median (min–max) per run, wall and this process's CPU:")
            for name, xs in got.items():
                print(f"  {name:<16} {ms(xs)}   cpu {ms(cpu[name])}")
            for suffix in ("", "+sqlite"):
                n, b, i = got[f"naestro{suffix}"], got[f"bare-mcp{suffix}"], got[f"inproc{suffix}"]
                extra = (statistics.median(n) - statistics.median(b)) / tasks * 1000
                print(f"  {'checkpointer' if suffix else 'no checkpointer':<16} "
                      f"{ratio_line('naestro / bare LangGraph, same MCP work:', n, b)}; +{extra:.1f} ms per task")
                print(f"  {'':<16} {ratio_line('naestro / bare LangGraph, in-process write:', n, i)}")
                cpu_line = ratio_line("CPU time, naestro / bare LangGraph, same MCP work:",
                                      cpu[f"naestro{suffix}"], cpu[f"bare-mcp{suffix}"])
                print(f"  {'':<16} {cpu_line}")

            fan_rounds = max(5, repeat // 2)
            fresh = [await open_run(parallel_plan(8)) for _ in range(2 * (fan_rounds + 1))]
            bus = fresh[0][1]
            fan: dict[str, Round] = {}
            for suffix, sv in (("", None), ("+sqlite", saver)):
                fan[f"naestro{suffix}"] = naestro_fresh(fresh, parallel_plan(8), suffix)
                fan[f"bare-mcp{suffix}"] = bare(bare_fanout(8, bus, sv))
            for round_ in fan.values():
                await round_()
            got = await interleaved(fan, fan_rounds)
            print("fan-out: 8 independent `sleep 0.1` tasks through the sandboxed exec.run, median (min–max):")
            for name, xs in got.items():
                print(f"  {name:<16} {ms(xs)}  absolute efficiency {0.1 / statistics.median(xs):.0%}")
            for suffix in ("", "+sqlite"):
                n, b = got[f"naestro{suffix}"], got[f"bare-mcp{suffix}"]
                eff = [y / x for x, y in zip(n, b, strict=True)]
                print(f"  {'checkpointer' if suffix else 'no checkpointer':<16} efficiency vs the anchor "
                      f"(anchor wall / naestro wall) median {statistics.median(eff):.2f} "
                      f"(min {min(eff):.2f}, max {max(eff):.2f})")
        await services.aclose()
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    asyncio.run(main(a.tasks, a.repeat))
