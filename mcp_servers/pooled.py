"""One builtin server process serving every run of a Naestro process (issue 16), over streamable HTTP.

``python -m mcp_servers.pooled NAME`` serves server NAME (``fs``, ``exec``, ...) on a free loopback port for
many runs at once; naestro/mcppool.py starts one per server kind. Nothing about a run is fixed at start: every
request carries its run's confinement, the ``ServerOptions`` as JSON in the ``X-Naestro-Options`` header, and
the pool's bearer token. A request without the token is refused (401) before anything else is looked at.

Per distinct options the process builds the server exactly as the standalone one is built (``build(options)``:
the same tool code closing over the same options) with its own MCP session manager, a *tenant*, and routes each
request to the tenant of its options. A session opened with run A's workspace is therefore unknown (404) to a
request carrying run B's options: a session's confinement cannot change after its ``initialize``. A tenant
with no session and no request for ``idle_s`` seconds is dropped (about 100 kB each).

Why a server per options and not one server whose tools read the options from a per-request contextvar: the
servers differ by options beyond the workspace (``web.search`` exists only with a search URL; ``exec`` hides
the NAESTRO_HOME a workspace lives in; instructions name the workspace), and in stateful streamable HTTP a
session's handlers run in a task started by its ``initialize`` request, so they would never see a later
request's contextvar. Building per options keeps every containment check the same code as the stdio server.

The token arrives in the environment (``NAESTRO_MCP_POOL_TOKEN``, removed from it at start; argv is readable
by every user in /proc). Once bound, the process prints ``listening PORT`` on stdout; it exits when its stdin
closes, so a parent that dies takes its pool with it.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp.server.fastmcp import FastMCP
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_servers.workspace import BUILTIN_SERVERS, ServerOptions, build_server

__all__ = ["OPTIONS_HEADER", "READY_PREFIX", "TOKEN_ENV", "PooledServer", "main", "options_header"]

OPTIONS_HEADER = "X-Naestro-Options"
"""The run's ``ServerOptions`` as JSON (ASCII: non-ASCII paths are \\u-escaped), on every request of a session."""
TOKEN_ENV = "NAESTRO_MCP_POOL_TOKEN"
READY_PREFIX = "listening "


def options_header(options: ServerOptions) -> dict[str, str]:
    """The header every request of a run's session carries: its options as ASCII JSON."""
    return {OPTIONS_HEADER: json.dumps(options.model_dump(mode="json"), ensure_ascii=True)}


def _refuse(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="naestro-mcp-pool"'} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _BearerToken:
    """Refuses every HTTP request that does not carry ``Authorization: Bearer <token>`` (compared in constant time)."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = Headers(scope=scope).get("authorization", "").encode()
            if not hmac.compare_digest(given, self.expected):
                await _refuse(401, "missing or wrong bearer token; this server serves only the Naestro process "
                                   "that started it")(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass
class _Tenant:
    """The server built for one set of options, and the session manager holding its sessions."""

    server: FastMCP
    manager: StreamableHTTPSessionManager
    stop: anyio.Event = field(default_factory=anyio.Event)
    busy: int = 0  # requests in flight (an open GET stream counts for as long as it is open)
    last: float = field(default_factory=time.monotonic)

    @property
    def sessions(self) -> int:
        # The SDK keeps no public count; its own bookkeeping is the only place that knows (mcp 1.x).
        return len(self.manager._server_instances)


class PooledServer:
    """The ASGI side of one pooled server kind: token check, options header, tenant per options."""

    def __init__(self, name: str, *, token: str, idle_s: float = 30.0,
                 build: Callable[[ServerOptions], FastMCP] | None = None) -> None:
        if name not in BUILTIN_SERVERS:
            raise ValueError(f"unknown server {name!r}; servers: {', '.join(BUILTIN_SERVERS)}")
        if not token:
            raise ValueError("a pooled server needs a non-empty bearer token")
        self.name, self.idle_s = name, idle_s
        self._token = token
        self._build = build or (lambda options: build_server(name, options))
        self._tenants: dict[str, _Tenant] = {}
        self._opening: anyio.Lock | None = None
        self._tg: TaskGroup | None = None

    def app(self, *, on_ready: Callable[[], None] | None = None) -> ASGIApp:
        """The ASGI app: ``/mcp`` (MCP) and ``/health`` (tenants and sessions), both behind the token."""

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            self._opening = anyio.Lock()
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._reap)
                if on_ready is not None:
                    on_ready()
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
                    self._tg = None

        app = Starlette(routes=[Route("/mcp", endpoint=_Endpoint(self)), Route("/health", endpoint=self._health)],
                        lifespan=lifespan)
        return _BearerToken(app, token=self._token)

    async def _health(self, _: object) -> JSONResponse:
        return JSONResponse({"server": self.name, "pid": os.getpid(), "tenants": len(self._tenants),
                             "sessions": sum(t.sessions for t in self._tenants.values())})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = Headers(scope=scope).get(OPTIONS_HEADER)
        if raw is None:
            await _refuse(400, f"missing {OPTIONS_HEADER} header: every request carries the run's server options "
                               f"as JSON")(scope, receive, send)
            return
        try:
            options = ServerOptions.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            await _refuse(400, f"invalid {OPTIONS_HEADER}: {problems}")(scope, receive, send)
            return
        key = options.model_dump_json()
        tenant = self._tenants.get(key)
        if tenant is None:
            try:
                tenant = await self._open(key, options)
            except Exception as exc:  # noqa: BLE001  (a server that cannot be built for these options: say why)
                await _refuse(500, f"cannot build the {self.name} server for these options: {exc}")(
                    scope, receive, send)
                return
        tenant.busy += 1  # no await since the lookup: the reaper cannot have dropped it in between
        try:
            await tenant.manager.handle_request(scope, receive, send)
        finally:
            tenant.busy -= 1
            tenant.last = time.monotonic()

    async def _open(self, key: str, options: ServerOptions) -> _Tenant:
        assert self._opening is not None and self._tg is not None, "serve the app with its lifespan"
        async with self._opening:
            if (tenant := self._tenants.get(key)) is not None:
                return tenant
            # Building registers the tools (pydantic models per signature, ~50 ms): off the event loop, which
            # serves every other run's requests meanwhile.
            server = await anyio.to_thread.run_sync(self._build, options)
            manager = StreamableHTTPSessionManager(
                # A plain JSON body per call, not an SSE stream: ~30% less CPU per call on both ends (measured
                # with bench/toolbus.py's pool rows); our tools send no progress or log notifications.
                app=server._mcp_server, json_response=True,
                security_settings=server.settings.transport_security,
                max_request_body_size=server.settings.max_request_body_size,
                # A session lives until its run closes it (DELETE) or this process ends, as a stdio server
                # lives with its run: a run may leave a server unused for longer than any idle timeout.
                session_idle_timeout=None)
            tenant = _Tenant(server=server, manager=manager)
            await self._tg.start(self._serve_tenant, tenant)
            self._tenants[key] = tenant
            return tenant

    @staticmethod
    async def _serve_tenant(tenant: _Tenant, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with tenant.manager.run():
            task_status.started()
            await tenant.stop.wait()

    async def _reap(self) -> None:
        """Drop tenants nobody uses: no session, no request in flight, idle for ``idle_s``."""
        while True:
            await anyio.sleep(max(self.idle_s / 2, 0.05))
            now = time.monotonic()
            for key, tenant in list(self._tenants.items()):
                if tenant.busy == 0 and tenant.sessions == 0 and now - tenant.last >= self.idle_s:
                    del self._tenants[key]
                    tenant.stop.set()


class _Endpoint:
    """``/mcp`` as a plain ASGI app (Starlette passes a class instance the raw scope)."""

    def __init__(self, server: PooledServer) -> None:
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.server.handle(scope, receive, send)


class _SessionEndNoise(logging.Filter):
    """The SDK logs a traceback when a client ends a session (DELETE) while its GET stream is open (mcp 1.30:
    "Error in standalone SSE writer", ClosedResourceError): every run's close would print one per server."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, (anyio.ClosedResourceError, anyio.BrokenResourceError))


def _announce(port: int) -> None:
    """Tell the parent the port, then point stdout at /dev/null: nobody reads the pipe after this line."""
    sys.stdout.write(f"{READY_PREFIX}{port}\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _exit_with_stdin(server: object) -> None:
    """Stop serving when stdin reaches EOF: the parent closed it, or died."""
    def watch() -> None:
        with contextlib.suppress(OSError):
            while sys.stdin.buffer.read(4096):
                pass
        server.should_exit = True  # type: ignore[attr-defined]  # uvicorn.Server
    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    import importlib

    import uvicorn

    p = argparse.ArgumentParser(prog="naestro-mcp-pooled", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=BUILTIN_SERVERS)
    p.add_argument("--idle-s", type=float, default=30.0, help="drop a run's server state this long after its "
                                                                "last session closed")
    args = p.parse_args(argv)
    token = os.environ.pop(TOKEN_ENV, "")  # this is the entry point: the one place that reads it
    if not token:
        p.error(f"set {TOKEN_ENV} in the environment (naestro/mcppool.py does); it is never taken from argv")
    logging.getLogger("mcp.server.streamable_http").addFilter(_SessionEndNoise())
    importlib.import_module(f"mcp_servers.{args.name}")  # before announcing: the first run does not pay for it
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)  # every run opens a session per server: 200 runs starting together overflowed 128
    port = int(sock.getsockname()[1])
    pooled = PooledServer(args.name, token=token, idle_s=args.idle_s)
    # Keep-alive well past the client's (httpx: 5 s idle). With uvicorn's default of 5 s both ends closed idle
    # connections at the same moment, and a request sent on one just closed by the server failed with "Server
    # disconnected without sending a response" (200 concurrent runs: 2 runs' fs.write).
    config = uvicorn.Config(pooled.app(on_ready=lambda: _announce(port)), log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=2, timeout_keep_alive=75)
    server = uvicorn.Server(config)
    _exit_with_stdin(server)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()

