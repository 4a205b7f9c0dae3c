"""Naestro's orchestration overhead against bare LangGraph, measured in the same run.

1. A trivial N-task chain (each task writes one small file and checks it exists) run by Naestro's one graph
   (plan node, then per task: schedule + task node with MCP fs.write through the gate and tool bus, the
   acceptance check, events, snapshots) vs the equivalent
   hand-written LangGraph graph (one node per task writing the file in-process). No checkpointer in either.
2. Parallel efficiency: 8 independent 100 ms tasks. Naestro runs `sleep 0.1` through the sandboxed
   exec.run tool; the anchor is 8 bare async LangGraph nodes doing asyncio.sleep(0.1).

Usage: python -m bench.overhead [--tasks 10] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import START, StateGraph

from graphs.compile import compile_graph
from naestro.endpoints import load_registry
from naestro.llm import EndpointProvider
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from policies.decision import ApprovedScope, RunPolicy


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


def bare_chain(n: int, ws: Path) -> Any:
    g: StateGraph[Any] = StateGraph(Bare)
    for i in range(n):
        def node(state: Bare, i: int = i) -> dict[str, Any]:
            (ws / f"b{i}.txt").write_text("x")
            assert (ws / f"b{i}.txt").exists()
            return {}
        g.add_node(f"t{i}", node)
        g.add_edge(START if i == 0 else f"t{i - 1}", f"t{i}")
    return g.compile()


def bare_parallel(n: int) -> Any:
    g: StateGraph[Any] = StateGraph(Bare)
    for i in range(n):
        async def node(state: Bare) -> dict[str, Any]:
            await asyncio.sleep(0.1)
            return {}
        g.add_node(f"p{i}", node)
        g.add_edge(START, f"p{i}")
    return g.compile()


async def timed(fn: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


async def passed(run: Any) -> None:
    """Await a Naestro graph run and insist every task passed: a denied or failed task is not a measurement."""
    state = await run
    bad = {t: r["status"] for t, r in state["tasks"].items() if r["status"] != "passed"}
    if bad or not state["tasks"]:
        raise SystemExit(f"benchmark run did not pass: {bad or 'no tasks ran'}")


async def main(tasks: int, repeat: int) -> None:
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        provider = EndpointProvider(load_registry(settings.models_file), settings)
        runner = Runner(settings.model_copy(update={"home": Path(tmp) / "home"}), provider)
        services = runner.services
        graph = compile_graph(services)  # the one run graph, no checkpointer (the anchor has none either)
        # Copilot mode with exec.run pre-approved (as `naestro run --approve exec.run` would).
        policy = RunPolicy(approve=[ApprovedScope(tool="exec.run")])

        async def open_run(plan: Plan) -> Any:
            """A run record with its MCP servers started (outside the timing), and a runner of one round."""
            record = runner.store.create("bench", source_workspace=None, in_place=False, policy=policy)
            await services.live(record.run_id)
            inp = {"goal": "bench", "run_id": record.run_id, "plan": plan.model_dump(mode="json", by_alias=True)}

            def round_() -> Any:  # a new thread per round; the report (a model call) is left out
                cfg = {"configurable": {"thread_id": secrets.token_hex(4), "naestro_run": record.run_id},
                       "max_concurrency": 8}
                return passed(graph.ainvoke(inp, cfg, interrupt_before=["report"]))
            return round_

        chain_round = await open_run(chain_plan(tasks))
        anchor_chain = bare_chain(tasks, ws)
        n_ms = await timed(chain_round, repeat)
        a_ms = await timed(lambda: anchor_chain.ainvoke({"done": []}), repeat)
        print(f"chain of {tasks} trivial tasks: naestro {n_ms * 1000:.1f} ms, bare langgraph {a_ms * 1000:.2f} ms, "
              f"ratio {n_ms / a_ms:.1f}x, overhead {(n_ms - a_ms) / tasks * 1000:.2f} ms/task")

        par_round = await open_run(parallel_plan(8))
        anchor_par = bare_parallel(8)
        cfg = {"max_concurrency": 8}
        p_ms = await timed(par_round, max(3, repeat // 4))
        b_ms = await timed(lambda: anchor_par.ainvoke({"done": []}, cfg), max(3, repeat // 4))
        print(f"8 independent 100 ms tasks: naestro {p_ms * 1000:.0f} ms (serial would be 800 ms; "
              f"parallel efficiency {0.1 / p_ms:.0%}), bare langgraph {b_ms * 1000:.0f} ms "
              f"(efficiency {0.1 / b_ms:.0%}), ratio {p_ms / b_ms:.2f}x")
        await services.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    asyncio.run(main(a.tasks, a.repeat))
