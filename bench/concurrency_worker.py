"""The worker side of ``bench.concurrency``: one process with a Naestro runtime and the anchor graph.

Kept apart from the driver because ``multiprocessing``'s spawn start method imports this module in every worker:
the worker needs the runtime, the anchor graph and the scripted model's replies, not the driver's /proc meter or
report. The plan and the model script are also what ``tests/integration/test_concurrent_runs.py`` runs.
"""

from __future__ import annotations

import asyncio
import operator
import secrets
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

Kind = Literal["naestro", "bare"]

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


def worker_main(spec: Spec, conn: Connection) -> None:
    """Serve batches of runs for the driver until it says stop (or goes away)."""

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
