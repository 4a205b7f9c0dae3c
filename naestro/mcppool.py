"""The shared MCP server pool (issue 16): one process per builtin server kind, for every run of a Runtime.

Before, each run started its own six stdio server processes (50 concurrent runs: 300 processes, 12.9 GB, and
seconds of start-up per run). The pool starts each kind once, lazily, on the first run that needs it
(``python -m mcp_servers.pooled NAME``, streamable HTTP on a free loopback port) and every run opens its own
MCP sessions to it. A run's confinement travels with its sessions: each request carries the run's
``ServerOptions`` in a header, and the server keeps one server instance per distinct options
(mcp_servers/pooled.py), so two runs never see each other's workspace.

Only this process can talk to its pool: a random bearer token, made here and handed to the children in their
environment (never argv), is required on every request. A child that died is started again the next time a
run asks for connections (a crash ends the sessions it held; later runs are not affected). ``close`` ends the
processes; a pool that is used again after ``close`` starts them again. If this process dies, the children
see their stdin close and exit.

Processes are plain ``subprocess.Popen`` children, not asyncio ones: the pool outlives any one event loop
(the CLI runs one per command, tests one per test), and the blocking part of starting them runs in a worker
thread.
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio.to_thread
import httpx
from langchain_mcp_adapters.sessions import Connection
from mcp.client.stdio import get_default_environment

from mcp_servers.pooled import READY_PREFIX, TOKEN_ENV, options_header
from mcp_servers.workspace import BUILTIN_SERVERS, ServerOptions
from naestro.childproc import terminate
from naestro.errors import ToolFailed
from naestro.toolcatalog import ToolCatalog

__all__ = ["McpServerPool"]

log = logging.getLogger(__name__)

#: How long a session waits for the next event of a response stream: longer than any tool may run (exec.run
#: allows 600 s); the bus enforces each call's own timeout.
SSE_READ_TIMEOUT = timedelta(hours=1)


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    url: str


def loopback_client(headers: dict[str, str] | None = None, timeout: httpx.Timeout | None = None,
                    auth: httpx.Auth | None = None) -> httpx.AsyncClient:
    """The HTTP client of one session to the pool: plain HTTP on loopback, so no proxy from the environment
    (``HTTP_PROXY`` must not route a run's tool calls) and no CA bundle to load (the SDK's default client loads
    it for every session: 37 ms of CPU each, six sessions per run, measured with cProfile in bench.overhead)."""
    return httpx.AsyncClient(headers=headers, auth=auth, trust_env=False, verify=False,
                             timeout=timeout or httpx.Timeout(30.0, read=SSE_READ_TIMEOUT.total_seconds()))


class McpServerPool:
    """One pooled process per builtin server kind; ``connections(options)`` gives a run its own sessions' way in.

    ``home`` is the NAESTRO_HOME the children know (``exec`` hides it from the sandbox even when a workspace
    lives elsewhere). ``idle_s``: how long a child keeps the server built for a run after its last session.
    """

    def __init__(self, *, home: Path | None = None, start_timeout_s: float = 60.0, idle_s: float = 30.0) -> None:
        self.home, self.start_timeout_s, self.idle_s = home, start_timeout_s, idle_s
        self._token = secrets.token_urlsafe(32)
        self._children: dict[str, _Child] = {}
        self._lock = threading.Lock()
        self.restarts: dict[str, int] = {}
        self.catalog = ToolCatalog()  # what the children list, so runs open sessions on first use
        # Children end with the pool even when nobody calls close (a test's runtime that goes out of scope).
        self._finalizer = weakref.finalize(self, _stop, self._children)

    async def connections(self, options: ServerOptions, *,
                          names: Collection[str] = BUILTIN_SERVERS) -> dict[str, Connection]:
        """Connections to the pooled servers for one run confined by ``options`` (servers start here if needed)."""
        urls = await anyio.to_thread.run_sync(self._ensure, tuple(names))
        headers = {"Authorization": f"Bearer {self._token}", **options_header(options)}
        return {name: {"transport": "streamable_http", "url": url, "headers": headers,
                       "sse_read_timeout": SSE_READ_TIMEOUT, "httpx_client_factory": loopback_client}
                for name, url in urls.items()}

    def pids(self) -> dict[str, int]:
        """The running children by server kind (for benches, tests and `ps`)."""
        with self._lock:
            return {n: c.proc.pid for n, c in self._children.items() if c.proc.poll() is None}

    def close(self) -> None:
        """End every child (SIGTERM, then SIGKILL after 5 s). Runs' open sessions to them end too."""
        with self._lock:
            _stop(self._children)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.close)

    def _ensure(self, names: tuple[str, ...]) -> dict[str, str]:
        unknown = sorted(set(names) - set(BUILTIN_SERVERS))
        if unknown:
            raise ValueError(f"unknown builtin servers {unknown}; servers: {', '.join(BUILTIN_SERVERS)}")
        with self._lock:
            starting: dict[str, subprocess.Popen[bytes]] = {}
            for name in names:
                child = self._children.get(name)
                if child is not None and child.proc.poll() is None:
                    continue
                if child is not None:
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    log.warning("pooled MCP server %s (pid %d) exited with %s; starting it again", name,
                                child.proc.pid, child.proc.returncode)
                    del self._children[name]
                starting[name] = self._spawn(name)  # all at once: they import in parallel
            deadline = time.monotonic() + self.start_timeout_s
            failed: list[tuple[str, str]] = []
            for name, proc in starting.items():
                try:
                    port = _read_port(proc, deadline)
                except _StartFailed as exc:
                    terminate(proc)
                    failed.append((name, str(exc)))
                    continue
                self._children[name] = _Child(proc=proc, url=f"http://127.0.0.1:{port}/mcp")
            if failed:
                name, reason = failed[0]
                raise ToolFailed(tool=f"{name}.*", reason=f"could not start the pooled MCP server {name!r}: {reason}; "
                                 f"run `python -m mcp_servers.{name} --help` to see why it does not start")
            return {name: self._children[name].url for name in names}

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        # The environment a stdio server gets (HOME, PATH, USER, ...), plus the token and where the home is.
        env = {**get_default_environment(), TOKEN_ENV: self._token,
               **({"NAESTRO_HOME": str(self.home)} if self.home is not None else {})}
        return subprocess.Popen([sys.executable, "-m", "mcp_servers.pooled", name, "--idle-s", str(self.idle_s)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True)


class _StartFailed(Exception):
    pass


def _read_port(proc: subprocess.Popen[bytes], deadline: float) -> int:
    """The port from the child's ``listening PORT`` line, or why there is none by ``deadline``."""
    assert proc.stdout is not None
    fd, line = proc.stdout.fileno(), b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise _StartFailed("it did not report a port in time (a loaded machine: raise start_timeout_s)")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 256)
        if not chunk:
            raise _StartFailed(f"it exited with {proc.wait()} before listening (its stderr is above)")
        line += chunk
    text = line.decode(errors="replace").strip()
    if not text.startswith(READY_PREFIX):
        raise _StartFailed(f"unexpected first line {text[:80]!r}")
    return int(text.removeprefix(READY_PREFIX))


def _stop(children: dict[str, _Child]) -> None:
    for child in children.values():
        if child.proc.poll() is None:
            child.proc.terminate()
    for child in children.values():
        terminate(child.proc)
    children.clear()
