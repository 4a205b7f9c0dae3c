"""Checkpoint bytes per step follow what the step changed, not how many tasks have finished (issue 16).

The real run graph on a chain of direct tasks (MCP fs.write through the gate, a file_exists check) on both
checkpoint backends: bytes stored per checkpoint (row + pending writes + blobs of new channel versions,
``checkpoints/footprint.py``) late in the run are no larger than early on, while bare LangGraph keeping the same
records in a plain dict channel grows with every task (so the measurement can tell). The state read back
(``DeltaChannel`` replays the writes) still holds every task, at every checkpoint of the history.
"""

from __future__ import annotations

import statistics
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import START, StateGraph

from checkpoints import open_saver
from checkpoints.blobs import BlobSqliteSaver
from checkpoints.footprint import postgres_bytes, sqlite_bytes
from graphs.compile import compile_graph
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from tests.fakes import ScriptedProvider
from tests.integration.test_checkpointers import PG_URL

TASKS = 30
WRITERS = ("researcher", "coder", "reviewer", "dataops", "reporter")  # spread over roles: the gate's rate limit


def _plan(n: int) -> Plan:
    return Plan.model_validate({"goal": "bytes", "tasks": [
        {"id": f"t{i}", "role": WRITERS[i % len(WRITERS)], "description": "write", "deps": [f"t{i - 1}"] if i else [],
         "action": {"tool": "fs.write", "arguments": {"path": f"f{i}.txt", "content": "x"}},
         "accept": [{"kind": "file_exists", "path": f"f{i}.txt"}]} for i in range(n)]})


class Bare(TypedDict):
    tasks: Annotated[dict[str, Any], lambda a, b: {**a, **b}]


def _no_model(messages: list[Any]) -> Any:
    raise AssertionError("a direct plan up to its report calls no model")


def _sizes(url: str | None, db: Path, thread: str) -> list[int]:
    return sqlite_bytes(db, thread) if url is None else postgres_bytes(url, thread)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_bytes_per_step_do_not_grow_with_finished_tasks(backend: str, settings: Settings,
                                                              tmp_path: Path) -> None:
    url = None if backend == "sqlite" else PG_URL
    db = tmp_path / "cp.sqlite"
    runner = Runner(settings, ScriptedProvider(_no_model))
    record = runner.store.create("bytes", source_workspace=None, in_place=False)
    thread, bare_thread = f"naestro-{uuid.uuid4().hex[:8]}", f"bare-{uuid.uuid4().hex[:8]}"
    records: dict[str, Any] = {}
    async with open_saver(url, db) as saver:
        graph = compile_graph(runner.services, checkpointer=saver)
        cfg: Any = {"configurable": {"thread_id": thread, "naestro_run": record.run_id}}
        inp: Any = {"goal": "bytes", "run_id": record.run_id,
                    "plan": _plan(TASKS).model_dump(mode="json", by_alias=True)}
        state = await graph.ainvoke(inp, cfg, interrupt_before=["report"])
        assert [r["status"] for r in state["tasks"].values()] == ["passed"] * TASKS
        records = state["tasks"]
        # Read back from the checkpointer (a new process would): every record, at every checkpoint.
        again = await graph.aget_state(cfg)
        assert again.values["tasks"] == records
        history = [s async for s in graph.aget_state_history(cfg)]
        counts = [len(s.values.get("tasks", {})) for s in history]
        assert counts[0] == TASKS and counts == sorted(counts, reverse=True) and counts[-1] == 0
        if isinstance(saver, BlobSqliteSaver):  # its in-memory walk answers exactly as LangGraph's own
            for s in history:
                ours = await saver.aget_delta_channel_history(config=s.config, channels=["tasks"])
                theirs = await AsyncSqliteSaver.aget_delta_channel_history(saver, config=s.config, channels=["tasks"])
                assert ours == theirs

        async def step(s: Bare) -> dict[str, Any]:  # the anchor: the same records, one per step, in a dict
            i = len(s["tasks"])
            return {"tasks": {f"t{i}": records[f"t{i}"]}}
        g: StateGraph[Any] = StateGraph(Bare)
        g.add_node("task", step)
        g.add_edge(START, "task")
        g.add_conditional_edges("task", lambda s: "__end__" if len(s["tasks"]) >= TASKS else "task")
        await g.compile(checkpointer=saver).ainvoke(
            {"tasks": {}}, {"configurable": {"thread_id": bare_thread}, "recursion_limit": TASKS + 10})
    await runner.services.aclose()

    sizes = _sizes(url, db, thread)
    assert len(sizes) == TASKS + 4  # input, plan, the first schedule, one per task (a chain schedules itself), the wait
    early, late = sizes[4:14], sizes[-10:]  # after the input and plan steps (the plan is stored once, there)
    assert statistics.mean(late) <= statistics.mean(early) * 1.05 + 16, (early, late)
    assert max(sizes[4:]) < 4096  # one task record and its Send, not the task map
    bare = _sizes(url, db, bare_thread)
    assert statistics.mean(bare[-10:]) > 2 * statistics.mean(bare[2:12])  # the usual pattern grows: it can tell
