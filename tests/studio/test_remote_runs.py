"""Issue 20 in the Studio: a run that ``naestro worker``s execute reads the same in the Studio (runs list and run
view) as in the scale-out API (``GET /runs/RUN``) and ``naestro runs show --json``: queued; running on HOST:PID
while a worker holds its lock; queued again once nobody does (its worker died); waiting for consent. And a consent
answered in the Studio is queued on the real Redis for any worker, never resumed in the Studio's own process; the
queued answer, taken as a worker takes it, finishes the run.

Real Postgres (locks, checkpoints), real files (flock), real Redis (the queue), real runtime; the model is scripted
text. The Studio and the API run in-process under Starlette's TestClient (no ports)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from langchain_core.messages import AIMessage, BaseMessage
from starlette.testclient import TestClient
from typer.testing import CliRunner

from naestro.cli import app as cli
from naestro.distributed import AdvanceRequest, ScaleSettings, Submitter, advance, make_app, open_locks
from naestro.distributed.api import make_api
from naestro.distributed.locks import run_keys
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.runs import RunRecord, RunStore
from naestro.runtime import build_runtime
from naestro.settings import Settings
from policies.decision import RunPolicy
from studio.api import build_app
from studio.control import StudioRuns
from tests.fakes import ScriptedProvider, all_text
from tests.integration.test_checkpointers import PG_URL
from tests.redis_queue import REDIS_URL, own_queue
from tests.studio.scripted import PLAN, reply

ASKS = {"goal": "leave a note", "tasks": [{**PLAN["tasks"][1], "deps": []}]}
"""One direct shell command (``exec.run``), which the Copilot policy asks a person about before it runs."""


def script(messages: list[BaseMessage]) -> dict[str, Any]:
    return reply(all_text(messages), answered=sum(isinstance(m, AIMessage) for m in messages))


@pytest.fixture
def scale() -> Iterator[ScaleSettings]:
    """A queue of this test's own on the shared Redis index (its keys are deleted, nothing else is)."""
    with own_queue("hb-studio") as settings:
        yield settings


def _views(cfg: Settings, scale: ScaleSettings, api_runner: Runner, run_ids: list[str]) -> dict[str, list[Any]]:
    """Per run: (status, text or worker) as the Studio's list, the Studio's run view, the API and the CLI say."""
    with TestClient(build_app(cfg, runs=StudioRuns(cfg, scale=scale))) as studio, \
            TestClient(make_api(cfg, scale, token=None, runner=api_runner)) as api:
        rows = {r["run_id"]: r for r in studio.get("/naestro/runs").json()}
        views: dict[str, list[Any]] = {}
        for run_id in run_ids:
            detail = studio.get(f"/naestro/runs/{run_id}").json()
            remote = api.get(f"/runs/{run_id}").json()
            env = {"NAESTRO_HOME": str(cfg.home), "NAESTRO_CHECKPOINT_URL": cfg.checkpoint_url or ""}
            shown = CliRunner().invoke(cli, ["runs", "show", run_id, "--json"],
                                       env={k: v for k, v in env.items() if v})
            assert shown.exit_code == 0, shown.output
            show = json.loads(shown.stdout)
            views[run_id] = [
                (rows[run_id]["status"], rows[run_id]["status_text"], rows[run_id]["worker"]),
                (detail["status"], detail["status_text"], detail["worker"]),
                (remote["status"], remote["worker"]), (show["status"], show["worker"])]
    return views


@pytest.mark.parametrize("kind", ["postgres", "file"])
async def test_the_studio_tells_a_remote_run_as_the_api_and_the_cli_do(kind: str, settings: Settings,
                                                                        scale: ScaleSettings) -> None:
    cfg = settings.model_copy(update={"checkpoint_url": PG_URL if kind == "postgres" else None})
    store = RunStore(cfg.runs_dir)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    records: dict[str, RunRecord] = {}
    for status in ("queued", "running", "waiting", "passed"):
        record = store.create(status, source_workspace=None, in_place=False)
        record.status, record.remote, record.pid = status, True, int(dead.stdout)  # the submitter has exited
        store.save(record)
        records[status] = record
    local = store.create("local", source_workspace=None, in_place=False)
    local.status, local.pid = "running", int(dead.stdout)  # a local run whose process died: interrupted
    store.save(local)
    running = records["running"]
    ids = [r.run_id for r in records.values()] + [local.run_id]
    api_runner = Runner(cfg, ScriptedProvider(script))
    try:
        async with open_locks(cfg.checkpoint_url, cfg.home).hold(run_keys(running.run_id)) as held:
            assert held is not None  # a worker (this process) drives the run
            running.claim()
            store.save(running)
            during = _views(cfg, scale, api_runner, ids)
        after = _views(cfg, scale, api_runner, [running.run_id])  # the worker is gone: nobody holds the lock
    finally:
        await api_runner.services.aclose()

    worker = f"{socket.gethostname()}:{os.getpid()}"
    expected = {"queued": ("queued", "queued", None), "running": ("running", f"running on {worker}", worker),
                "waiting": ("waiting", "waiting for consent", None), "passed": ("passed", "passed", None)}
    for status, record in records.items():
        state, text, who = expected[status]
        assert during[record.run_id] == [(state, text, who), (state, text, who), (state, who), (state, who)], status
    assert during[local.run_id][:2] == [("interrupted", "interrupted", None)] * 2  # local runs: as before
    again = ("queued", f"queued again ({worker} stopped)", None)
    assert after[running.run_id] == [again, again, ("queued", None), ("queued", None)]


def _queued(broker: redis.Redis, scale: ScaleSettings) -> list[dict[str, Any]]:
    """The "advance run R" messages waiting in the interactive list, as a worker would decode them."""
    raw = broker.lrange(scale.queue, 0, -1)
    return [json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in raw]


async def test_a_consent_answered_in_the_studio_is_queued_for_the_workers(settings: Settings,
                                                                           scale: ScaleSettings) -> None:
    cfg = settings.model_copy(update={"checkpoint_url": PG_URL})
    broker = redis.Redis.from_url(REDIS_URL)
    submitter = Submitter(cfg, scale, make_app(scale))
    marker = submitter.submit("", plan=Plan.model_validate(ASKS), policy=RunPolicy(mode="copilot"))
    run_id = marker.run_id
    worker = Runner(cfg, ScriptedProvider(script))  # this process takes the messages as a worker would
    locks = open_locks(cfg.checkpoint_url, cfg.home)
    studio_runs = StudioRuns(cfg, runtime=build_runtime(cfg, provider=ScriptedProvider(script)), scale=scale)
    try:
        [start] = _queued(broker, scale)
        broker.delete(scale.queue)
        asked = await advance(worker, locks, AdvanceRequest.model_validate(start), scale=scale)
        assert (asked.action, asked.status, asked.pending) == ("started", "waiting", 1)

        with TestClient(build_app(cfg, runs=studio_runs)) as studio:
            detail = studio.get(f"/naestro/runs/{run_id}").json()
            assert (detail["status"], detail["status_text"], detail["remote"]) == ("waiting", "waiting for consent",
                                                                                   True)
            [consent] = studio.get(f"/naestro/runs/{run_id}/pending").json()
            assert consent["action"] == "exec.run"
            answered = studio.post(f"/naestro/runs/{run_id}/consent", json={"approve": True})
            assert answered.status_code == 200, answered.text
            assert answered.json() == {"status": "queued"}
            assert not studio_runs.active  # nothing was resumed in the Studio's process
        record = RunStore(cfg.runs_dir).load(run_id)
        assert record.status == "waiting" and not (Path(record.workspace) / "b.txt").exists()

        [continuation] = _queued(broker, scale)  # at interactive priority: a person waits
        assert continuation["run_id"] == run_id and continuation["priority"] == "interactive"
        assert continuation["answers"][consent["id"]]["approve"] is True
        broker.delete(scale.queue)
        done = await advance(worker, locks, AdvanceRequest.model_validate(continuation), scale=scale)
    finally:
        await worker.services.aclose()
        broker.close()
    assert (done.action, done.status) == ("resumed", "passed")
    assert (Path(record.workspace) / "b.txt").read_text() == "B\n"
