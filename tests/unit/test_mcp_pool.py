"""The shared MCP server pool (issue 16): real server processes, real streamable HTTP, one pool for many runs.

Each run opens its own sessions and sends its confinement with them; these tests check that runs stay apart,
that only the pool's owner gets in, that a dead server comes back for the next run and that closing one run
leaves the others' sessions up.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mcp_servers.pooled import OPTIONS_HEADER, READY_PREFIX, TOKEN_ENV, options_header
from mcp_servers.workspace import ServerOptions
from naestro.mcppool import McpServerPool
from naestro.toolbus import McpToolBus

SERVERS = ("fs", "exec")
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
async def pool() -> AsyncIterator[McpServerPool]:
    p = McpServerPool(idle_s=0.5)
    yield p
    await p.aclose()


def workspaces(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a" / "workspace", tmp_path / "b" / "workspace"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    return a, b


async def test_two_runs_on_one_pool_see_only_their_own_workspace(pool: McpServerPool, tmp_path: Path) -> None:
    a, b = workspaces(tmp_path)
    async with McpToolBus(await pool.connections(ServerOptions(workspace=a), names=SERVERS)) as run_a, \
            McpToolBus(await pool.connections(ServerOptions(workspace=b), names=SERVERS)) as run_b:
        assert len(pool.pids()) == len(SERVERS)  # one process per kind, not per run
        assert (await run_a.call("fs.write", {"path": "secret.txt", "content": "only A"})).ok
        assert (await run_b.call("fs.write", {"path": "mine.txt", "content": "only B"})).ok
        assert (a / "secret.txt").read_text() == "only A" and not (b / "secret.txt").exists()
        assert (b / "mine.txt").exists() and not (a / "mine.txt").exists()

        relative = await run_b.call("fs.read", {"path": "secret.txt"})
        absolute = await run_b.call("fs.read", {"path": str(a / "secret.txt")})
        climbing = await run_b.call("fs.read", {"path": "../../a/workspace/secret.txt"})
        assert not relative.ok and "not a file" in relative.text
        assert not absolute.ok and "outside the workspace" in absolute.text
        assert not climbing.ok and "outside the workspace" in climbing.text
        listed = await run_b.call("fs.list", {})
        assert listed.structured == {"path": ".", "entries": ["mine.txt"]}

        seen_by_b = await run_b.call("exec.run", {"command": "ls; cat secret.txt"})
        seen_by_a = await run_a.call("exec.run", {"command": "ls; cat secret.txt"})
        assert isinstance(seen_by_b.structured, dict) and isinstance(seen_by_a.structured, dict)
        assert seen_by_b.structured["stdout"] == "mine.txt\n" and seen_by_b.structured["exit_code"] != 0
        assert seen_by_a.structured["stdout"] == "secret.txt\nonly A"
        outside = await run_b.call("exec.run", {"command": ["cat", str(a / "secret.txt")]})
        assert isinstance(outside.structured, dict) and outside.structured["exit_code"] != 0
        assert "only A" not in outside.text


async def test_each_run_gets_the_servers_its_options_describe(pool: McpServerPool, tmp_path: Path) -> None:
    """Options beyond the workspace travel too: web.search exists only for a run with a search URL."""
    a, b = workspaces(tmp_path)
    with_search = ServerOptions(workspace=a, search_url="http://127.0.0.1:9/search", allow_domains=("a.test",))
    async with McpToolBus(await pool.connections(with_search, names=["web"])) as run_a, \
            McpToolBus(await pool.connections(ServerOptions(workspace=b), names=["web"])) as run_b:
        assert "web.search" in {s.name for s in run_a.specs()}
        assert "web.search" not in {s.name for s in run_b.specs()}
        refused = await run_b.call("web.fetch", {"url": "http://a.test/"})
        assert not refused.ok and "not in this server's domain allowlist (none configured)" in refused.text


async def test_requests_without_the_pool_token_are_refused(pool: McpServerPool, tmp_path: Path) -> None:
    a, _ = workspaces(tmp_path)
    conn = (await pool.connections(ServerOptions(workspace=a), names=["fs"]))["fs"]
    url, headers = conn["url"], dict(conn.get("headers") or {})
    options = {OPTIONS_HEADER: headers[OPTIONS_HEADER]}
    async with httpx.AsyncClient(timeout=30) as client:
        for auth in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": headers["Authorization"] + "x"},
                     {"Authorization": headers["Authorization"].removeprefix("Bearer ")}):
            refused = await client.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **options, **auth})
            assert refused.status_code == 401, auth
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert (await client.get(url.replace("/mcp", "/health"), headers=auth)).status_code == 401
        no_options = await client.post(url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization":
                                                                       headers["Authorization"]})
        assert no_options.status_code == 400 and OPTIONS_HEADER in no_options.json()["error"]
        bad_options = await client.post(url, json=INITIALIZE, headers={
            **MCP_HEADERS, "Authorization": headers["Authorization"], OPTIONS_HEADER: json.dumps({"workspace": 1,
                                                                                                   "x": 2})})
        assert bad_options.status_code == 400 and "invalid" in bad_options.json()["error"]
        accepted = await client.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers})
        assert accepted.status_code == 200 and accepted.headers.get("mcp-session-id")


async def test_a_session_keeps_the_options_it_was_opened_with(pool: McpServerPool, tmp_path: Path) -> None:
    """A request naming run A's session but carrying run B's options does not reach A's session (404)."""
    a, b = workspaces(tmp_path)
    conn = (await pool.connections(ServerOptions(workspace=a), names=["fs"]))["fs"]
    url, headers = conn["url"], dict(conn.get("headers") or {})
    async with httpx.AsyncClient(timeout=30) as client:
        opened = await client.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers})
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        await client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                          headers={**MCP_HEADERS, **headers, **session})
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        own = await client.post(url, json=listing, headers={**MCP_HEADERS, **headers, **session})
        assert own.status_code == 200 and "read" in own.text
        other = {**headers, **options_header(ServerOptions(workspace=b))}
        switched = await client.post(url, json=listing, headers={**MCP_HEADERS, **other, **session})
        assert switched.status_code == 404


async def test_a_killed_server_is_started_again_for_the_next_run(pool: McpServerPool, tmp_path: Path) -> None:
    a, b = workspaces(tmp_path)
    async with McpToolBus(await pool.connections(ServerOptions(workspace=a), names=SERVERS)) as run_a:
        assert (await run_a.call("fs.write", {"path": "x.txt", "content": "x"})).ok
        killed = pool.pids()["fs"]
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "fs" in pool.pids() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert "fs" not in pool.pids()
        assert (await run_a.call("exec.run", {"command": ["true"]})).ok  # the run's other sessions stay up
        async with McpToolBus(await pool.connections(ServerOptions(workspace=b), names=SERVERS)) as run_b:
            assert pool.pids()["fs"] != killed and pool.restarts == {"fs": 1}
            assert (await run_b.call("fs.write", {"path": "y.txt", "content": "y"})).ok
            assert (b / "y.txt").read_text() == "y"


async def test_closing_a_run_leaves_the_other_runs_sessions_up(pool: McpServerPool, tmp_path: Path) -> None:
    a, b = workspaces(tmp_path)
    run_b = McpToolBus(await pool.connections(ServerOptions(workspace=b), names=SERVERS))
    async with run_b:
        async with McpToolBus(await pool.connections(ServerOptions(workspace=a), names=SERVERS)) as run_a:
            assert (await run_a.call("fs.write", {"path": "a.txt", "content": "a"})).ok
        pids = pool.pids()
        assert (await run_b.call("fs.write", {"path": "b.txt", "content": "b"})).ok
        assert (await run_b.call("exec.run", {"command": ["cat", "b.txt"]})).structured["stdout"] == "b"  # type: ignore[index,call-overload]
        assert pool.pids() == pids  # the pool's processes outlive a run
        health = await _health(pool, "fs")
        assert health["sessions"] == 1  # only run B's fs session is left open


async def test_a_timed_out_call_is_cancelled_on_the_pooled_server(pool: McpServerPool, tmp_path: Path) -> None:
    a, _ = workspaces(tmp_path)
    marker = "876.543"  # a sleep argument no other process on the machine uses
    async with McpToolBus(await pool.connections(ServerOptions(workspace=a), names=["exec"])) as run:
        res = await run.call("exec.run", {"command": ["sleep", marker], "timeout_s": 300}, timeout_s=1.0)
        assert not res.ok and res.timed_out and "cancelled" in res.text
        ok = await run.call("exec.run", {"command": "echo alive"})  # the session is still usable
        assert isinstance(ok.structured, dict) and ok.structured["stdout"] == "alive\n"
        deadline = time.monotonic() + 30
        while _processes_with(marker) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not _processes_with(marker)  # the cancel reached the pooled server and killed the sandbox


def _processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if f"sleep {marker}" in line and "ps -eo" not in line]


async def test_a_runs_server_state_is_dropped_after_its_sessions_close(pool: McpServerPool, tmp_path: Path) -> None:
    a, _ = workspaces(tmp_path)
    async with McpToolBus(await pool.connections(ServerOptions(workspace=a), names=["fs"])) as run:
        assert (await run.call("fs.list", {})).ok
        assert (await _health(pool, "fs"))["tenants"] == 1
    deadline = time.monotonic() + 30
    while (await _health(pool, "fs"))["tenants"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert (await _health(pool, "fs")) == {"server": "fs", "pid": pool.pids()["fs"], "tenants": 0, "sessions": 0}


async def test_close_ends_the_processes_and_a_later_run_starts_them_again(tmp_path: Path) -> None:
    a, _ = workspaces(tmp_path)
    pool = McpServerPool()
    try:
        await pool.connections(ServerOptions(workspace=a), names=["fs"])
        first = pool.pids()["fs"]
        await pool.aclose()
        assert pool.pids() == {}
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)
        async with McpToolBus(await pool.connections(ServerOptions(workspace=a), names=["fs"])) as run:
            assert (await run.call("fs.list", {})).ok
    finally:
        await pool.aclose()


def test_a_pooled_server_exits_when_its_parent_goes_away() -> None:
    """The parent's end of stdin closing (the parent died) stops the server; no token, no start."""
    proc = subprocess.Popen([sys.executable, "-m", "mcp_servers.pooled", "fs"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env={**os.environ, TOKEN_ENV: "t"})
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().decode().startswith(READY_PREFIX)
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    proc.stdout.close()
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    refused = subprocess.run([sys.executable, "-m", "mcp_servers.pooled", "fs"], env=env, capture_output=True,
                             text=True, timeout=60, check=False)
    assert refused.returncode == 2 and TOKEN_ENV in refused.stderr and "argv" in refused.stderr


async def _health(pool: McpServerPool, name: str) -> dict[str, object]:
    conn = (await pool.connections(ServerOptions(workspace=Path(".")), names=[name]))[name]
    headers = dict(conn.get("headers") or {})
    async with httpx.AsyncClient(timeout=30) as client:
        resp = await client.get(conn["url"].replace("/mcp", "/health"),
                                headers={"Authorization": headers["Authorization"]})
    resp.raise_for_status()
    data: dict[str, object] = resp.json()
    return data
