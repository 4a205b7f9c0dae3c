"""Many runs at once on one NAESTRO_HOME finish without errors, on SQLite and on Postgres (issue 16).

Runs in one process (asyncio) and runs spread over several processes share the checkpoint database, the run
store, the router and kill-switch databases and the audit anchors. Before one checkpoint connection per process
and a busy timeout, 3 of 12 runs over 3 processes died with ``database is locked``. The assertions are on
outcomes (every run passed, its checkpoints and its signed audit log are intact), never on time: speed is
``python -m bench.concurrency``.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import re
import traceback
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from bench.concurrency import PLAN as BENCH_PLAN
from checkpoints import open_saver
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from policies.audit import anchors_dir, load_public_key, verify_log
from tests.fakes import ScriptedProvider, all_text
from tests.integration.test_checkpointers import PG_URL

IN_PROCESS = 20
PROCESSES, PER_PROCESS = 3, 5

PLAN = {**BENCH_PLAN, "goal": "three files"}  # the concurrency bench's plan: a direct write, an agent, a write


def script(messages: list[BaseMessage]) -> dict[str, Any]:
    text = all_text(messages)
    if "Write 2-4 sentences" in text:
        return {"summary": "Three files were written and every check passed."}
    assert re.search(r"Your task \(b\)", text), text
    if not any(isinstance(m, AIMessage) for m in messages):
        return {"thought": "write it", "tool": "fs.write", "arguments": {"path": "b.txt", "content": "beta\n"}}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote b.txt", "outputs": {}}}


async def _runs(settings: Settings, n: int) -> list[str]:
    """``n`` runs at once on one Runner (one runtime, as the CLI or a server has); each outcome is its run id,
    or the error it died of."""
    runner = Runner(settings, ScriptedProvider(script))
    try:
        results = await asyncio.gather(*(runner.start("three files", plan=Plan.model_validate(PLAN))
                                         for _ in range(n)), return_exceptions=True)
    finally:
        await runner.services.aclose()
    return [f"{type(r).__name__}: {r}" if isinstance(r, BaseException)
            else r.record.run_id if r.passed else f"not passed: {r.record.status}" for r in results]


def _process(settings: Settings, n: int, out: Any) -> None:
    """A worker: its runs' outcomes, or what killed the worker (as an outcome, so the test names it at once
    instead of waiting for a result that never comes)."""
    try:
        outcomes = asyncio.run(_runs(settings, n))
    except BaseException as exc:  # noqa: BLE001  (reported to the parent as the worker's outcome)
        outcomes = [f"worker died: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"]
    out.put(outcomes)


def _settings(settings: Settings, backend: str) -> Settings:
    return settings.model_copy(update={"checkpoint_url": PG_URL if backend == "postgres" else None})


async def _assert_intact(settings: Settings, outcomes: list[str], expected: int) -> None:
    """Every run passed with its own id; its last checkpoint and its signed audit log are intact."""
    failed = [o for o in outcomes if not re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", o)]
    assert not failed, failed
    assert len(set(outcomes)) == len(outcomes) == expected
    pub = load_public_key(settings.keys_dir)
    async with open_saver(settings.checkpoint_url, settings.checkpoint_db) as saver:
        for run_id in outcomes:
            last = await saver.aget_tuple({"configurable": {"thread_id": run_id, "checkpoint_ns": ""}})
            assert last is not None and last.checkpoint["channel_values"].get("status") == "passed", run_id
            log = settings.runs_dir / run_id / "audit.jsonl"
            assert verify_log(log, pub, run_id=run_id, anchors=anchors_dir(settings.home)) == [], run_id


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_many_runs_in_one_process(backend: str, settings: Settings) -> None:
    cfg = _settings(settings, backend)
    outcomes = await _runs(cfg, IN_PROCESS)
    await _assert_intact(cfg, outcomes, IN_PROCESS)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_many_runs_in_many_processes_sharing_one_home(backend: str, settings: Settings,
                                                            tmp_path: Path) -> None:
    cfg = _settings(settings, backend)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_process, args=(cfg, PER_PROCESS, out)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    outcomes: list[str] = []
    for _ in procs:
        outcomes += await asyncio.to_thread(out.get, True, 600)
    for p in procs:
        await asyncio.to_thread(p.join, 60)
        assert p.exitcode == 0
    await _assert_intact(cfg, outcomes, PROCESSES * PER_PROCESS)
