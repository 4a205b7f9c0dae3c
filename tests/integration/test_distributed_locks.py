"""The run and tenant locks of the scale-out (issue 20), on the real Postgres and on real files, and the
rerun-safe "advance run R" on a real run: a second delivery during the first waits and hands the run back, a
repeated delivery after the end does nothing, a holder killed with SIGKILL frees its lock at once.

The locks are checked against what they promise, not against time: who holds, who is refused, who gets it next.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.memory import create_connected_server_and_client_session
from typer.testing import CliRunner

from naestro.cli import app
from naestro.distributed import AdvanceRequest, FileLocks, PostgresLocks, RunLocks, ScaleSettings, advance, open_locks
from naestro.distributed.locks import lock_key, run_keys, tenant_keys
from naestro.distributed.status import remote_statuses
from naestro.frontdoor import naestro_server
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.runs import RunStore
from naestro.runtime import build_runtime
from naestro.settings import Settings
from tests.fakes import ScriptedProvider
from tests.integration.test_checkpointers import PG_URL
from tests.integration.test_concurrent_runs import PLAN, script


def _locks(kind: str, tmp_path: Path) -> RunLocks:
    return PostgresLocks(PG_URL) if kind == "postgres" else FileLocks(tmp_path / "locks")


@pytest.mark.parametrize("kind", ["postgres", "file"])
async def test_one_holder_per_key_and_n_per_tenant(kind: str, tmp_path: Path) -> None:
    locks = _locks(kind, tmp_path)
    key = f"run:test-{os.getpid()}-{kind}"
    async with locks.hold([key]) as first:
        assert first == key
        async with locks.hold([key]) as second:
            assert second is None  # taken: refused at once with wait_s=0
    async with locks.hold([key]) as again:
        assert again == key  # released on exit

    slots = tenant_keys(f"t{os.getpid()}{kind}", 2)
    async with locks.hold(slots) as a, locks.hold(slots) as b, locks.hold(slots) as c:
        assert {a, b} == set(slots) and c is None  # the third run of a tenant limited to 2 waits its turn


@pytest.mark.parametrize("kind", ["postgres", "file"])
async def test_a_killed_holder_frees_its_lock(kind: str, tmp_path: Path) -> None:
    key = f"run:killed-{os.getpid()}-{kind}"
    # The holder takes the same lock as ``hold`` would (same advisory id, same file), with nothing but psycopg or
    # fcntl imported, so it is ready in a moment even on a busy machine.
    if kind == "postgres":
        holder = (f"import psycopg, time\nc = psycopg.connect({PG_URL!r}, autocommit=True)\n"
                  f"assert c.execute('SELECT pg_try_advisory_lock(%s)', ({lock_key(key)},)).fetchone()[0]\n"
                  f"print({key!r}, flush=True)\ntime.sleep(600)\n")
    else:
        path = tmp_path / "locks" / f"{lock_key(key) & 0xFFFFFFFFFFFFFFFF:016x}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        holder = (f"import fcntl, os, time\nfd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
                  f"fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nprint({key!r}, flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and (await asyncio.to_thread(proc.stdout.readline)).strip() == key
        locks = _locks(kind, tmp_path)
        async with locks.hold([key]) as taken:
            assert taken is None
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        async with locks.hold([key], wait_s=30) as freed:  # Postgres ends the session when the socket closes
            assert freed == key
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_advance_is_safe_to_deliver_again(settings: Settings) -> None:
    """A delivery that finds another executor on the run hands it back untouched; one that finds the run ended
    does nothing; neither runs a node again (one ``run_finished``)."""
    cfg = settings.model_copy(update={"checkpoint_url": PG_URL})
    runner = Runner(cfg, ScriptedProvider(script))
    scale = ScaleSettings(lock_wait_s=0, tenant_limit=1)
    locks = PostgresLocks(PG_URL)
    try:
        record = runner.store.create("three files", source_workspace=None, in_place=False)
        request = AdvanceRequest(run_id=record.run_id, plan=Plan.model_validate(PLAN).model_dump(mode="json",
                                                                                                 by_alias=True))
        async with locks.hold(run_keys(record.run_id)) as other:  # another worker drives the run
            assert other is not None
            busy = await advance(runner, locks, request, scale=scale)
        done = await advance(runner, locks, request, scale=scale)
        again = await advance(runner, locks, request, scale=scale)
        async with locks.hold(tenant_keys("default", scale.tenant_limit)) as slot:
            assert slot is not None  # the run gave its tenant's only slot back
    finally:
        await runner.services.aclose()
    assert busy.action == "busy" and busy.requeue and busy.status == "planning"  # created here, not submitted
    # Handed back with a delay (not at once: the copy would spin on the lock for the whole run), kept under the
    # visibility timeout so the delayed message is not restored as another copy.
    assert busy.requeue_delay(scale) == scale.busy_retry_s == 20.0
    assert busy.requeue_delay(scale.model_copy(update={"visibility_timeout_s": 3})) == 1.5
    assert done.requeue_delay(scale) is None and again.requeue_delay(scale) is None
    assert (done.action, done.status) == ("started", "passed")
    assert (again.action, again.status, again.requeue) == ("noop", "passed", False)
    events = (cfg.runs_dir / record.run_id / "events.jsonl").read_text()
    assert events.count('"event": "run_finished"') == 1


@pytest.mark.parametrize("kind", ["postgres", "file"])
async def test_held_looks_without_taking(kind: str, tmp_path: Path) -> None:
    locks = _locks(kind, tmp_path)
    key, other = f"run:look-{os.getpid()}-{kind}", f"run:never-{os.getpid()}-{kind}"
    async with locks.hold([key]) as taken:
        assert taken == key
        assert locks.held([key, other]) == {key}
        assert locks.held([key]) == {key}  # looking twice took nothing
    assert locks.held([key, other]) == set()
    async with locks.hold([key]) as again:
        assert again == key


@pytest.mark.parametrize("kind", ["postgres", "file"])
async def test_a_remote_run_shows_where_it_stands(kind: str, settings: Settings, tmp_path: Path) -> None:
    """Issue 20: a run executed by workers reads queued / running on HOST:PID / queued again (its worker died) /
    waiting for consent, whoever submitted it and wherever they are now, in `naestro runs list` too."""
    cfg = settings.model_copy(update={"checkpoint_url": PG_URL if kind == "postgres" else None})
    store = RunStore(cfg.runs_dir)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    records = {}
    for status in ("queued", "running", "waiting", "passed"):
        record = store.create(status, source_workspace=None, in_place=False)
        record.status, record.remote, record.pid = status, True, int(dead.stdout)  # the submitter has exited
        store.save(record)
        records[status] = record
    running = records["running"]
    assert records["queued"].display_status == "queued"  # was "interrupted" once the submitting CLI exited

    locks = open_locks(cfg.checkpoint_url, cfg.home)
    async with locks.hold(run_keys(running.run_id)) as held:  # a worker drives it
        assert held is not None
        running.claim()
        store.save(running)
        now = remote_statuses(cfg, store.list())
        cli = _runs_list(cfg)
        door = await _front_door_status(cfg, running.run_id)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    assert {r: (s.status, s.worker, s.text) for r, s in now.items()} == {
        records["queued"].run_id: ("queued", None, "queued"),
        running.run_id: ("running", worker, f"running on {worker}"),
        records["waiting"].run_id: ("waiting", None, "waiting for consent"),
        records["passed"].run_id: ("passed", None, "passed")}
    assert {r["run_id"]: (r["status"], r["worker"]) for r in cli}[running.run_id] == ("running", worker)

    assert (door["status"], door["worker"]) == ("running", worker)  # the MCP front door's `status` tool too

    after = remote_statuses(cfg, [store.load(running.run_id)])[running.run_id]  # its worker is gone
    assert (after.status, after.worker, after.text) == ("queued", None, f"queued again ({worker} stopped)")
    door = await _front_door_status(cfg, running.run_id)
    assert (door["status"], door["worker"]) == ("queued", None)  # not "interrupted" from a pid on another host


async def _front_door_status(cfg: Settings, run_id: str) -> dict[str, Any]:
    runtime = build_runtime(cfg, provider=ScriptedProvider(script))
    try:
        async with create_connected_server_and_client_session(naestro_server(runtime)) as client:
            res = await client.call_tool("status", {"run_id": run_id})
    finally:
        await runtime.aclose()
    assert not res.isError and isinstance(res.structuredContent, dict), res.content
    return res.structuredContent


def _runs_list(cfg: Settings) -> list[dict[str, Any]]:
    env = {"NAESTRO_HOME": str(cfg.home), "NAESTRO_CHECKPOINT_URL": cfg.checkpoint_url or ""}
    result = CliRunner().invoke(app, ["runs", "list", "--json"], env={k: v for k, v in env.items() if v})
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows
