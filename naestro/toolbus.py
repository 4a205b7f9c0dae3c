"""The MCP tool bus for one run: persistent sessions to MCP servers, tools addressed as ``server.tool``.

Sessions are opened once per run (not per call). Every call has a timeout; when it fires the bus sends the
server ``notifications/cancelled`` so the tool stops (exec kills its sandbox), then reports the timeout. Errors
the model can fix (unknown tool, bad arguments, a tool's own ``isError`` result) come back as
``ToolResult(ok=False)`` so the agent sees them as an observation; transport failures raise ``ToolFailed``.

Tool descriptions and annotations from servers not marked trusted (everything but Naestro's own servers) are
hints only: ``ToolSpec.trusted`` is False and the policy gate, never the annotation, decides.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Protocol

import mcp.types as mt
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.sessions import Connection, StdioConnection
from mcp import ClientSession
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from mcp_servers.workspace import BUILTIN_SERVERS, ServerOptions
from naestro.errors import ToolFailed
from naestro.toolcatalog import ToolCatalog

__all__ = ["McpToolBus", "ToolAnnotations", "ToolBus", "ToolResult", "ToolSpec", "builtin_servers", "schema_version"]


class ToolAnnotations(BaseModel):
    """MCP tool annotations (hints). For untrusted servers they are claims, not facts."""

    model_config = ConfigDict(frozen=True)
    title: str | None = None
    read_only: bool | None = Field(default=None, description="readOnlyHint")
    destructive: bool | None = Field(default=None, description="destructiveHint")
    idempotent: bool | None = Field(default=None, description="idempotentHint")
    open_world: bool | None = Field(default=None, description="openWorldHint: reaches outside the workspace")

    @classmethod
    def from_mcp(cls, ann: mt.ToolAnnotations | None) -> ToolAnnotations:
        if ann is None:
            return cls()
        return cls(title=ann.title, read_only=ann.readOnlyHint, destructive=ann.destructiveHint,
                   idempotent=ann.idempotentHint, open_world=ann.openWorldHint)


class ToolSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str = Field(description="server.tool")
    description: str
    input_schema: dict[str, JsonValue]
    read_only: bool
    server: str = ""
    output_schema: dict[str, JsonValue] | None = None
    annotations: ToolAnnotations = ToolAnnotations()
    version: str = Field(default="", description="server version + sha256 prefix of the input/output schemas")
    trusted: bool = Field(default=True, description="False for external servers: description/annotations untrusted")


class ToolResult(BaseModel):
    """A receipt of one call: what went in (hash), what came out (hash, bytes), how long it took."""

    tool: str
    ok: bool
    text: str
    structured: JsonValue = None
    args_sha256: str
    result_sha256: str
    duration_s: float
    result_bytes: int = 0
    timed_out: bool = False


class ToolBus(Protocol):
    def specs(self) -> list[ToolSpec]: ...
    async def call(self, name: str, arguments: dict[str, JsonValue], *, timeout_s: float = 120.0) -> ToolResult: ...


def _sha(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()


def schema_version(server_version: str, tool: mt.Tool) -> str:
    """A version that changes when the server release or the tool's contract (schemas) changes."""
    contract = json.dumps([tool.inputSchema, tool.outputSchema], sort_keys=True)
    return f"{server_version}+{_sha(contract)[:12]}"


def builtin_servers(workspace: Path, *, allow_domains: Collection[str] = (), database: str | None = None,
                    search_url: str | None = None, roots: Collection[str | Path] = (),
                    names: Collection[str] = BUILTIN_SERVERS) -> dict[str, Connection]:
    """Naestro's own servers, as stdio child processes confined to ``workspace`` (plus read-only ``roots``)."""
    options = ServerOptions(workspace=workspace, allow_domains=tuple(allow_domains), database=database,
                            search_url=search_url, roots=tuple(Path(r) for r in roots))

    def stdio(module: str) -> StdioConnection:
        return {"transport": "stdio", "command": sys.executable,
                "args": ["-m", f"mcp_servers.{module}", *options.argv()]}
    return {name: stdio(name) for name in names}


class _Tool(BaseModel):
    spec: ToolSpec
    server: str
    remote_name: str


class McpToolBus:
    """The default ToolBus: MCP sessions opened at ``__aenter__`` (or on first use) and closed at ``__aexit__``.

    ``untrusted`` names servers whose descriptions and annotations are not to be believed (external servers).
    ``catalog``: tool lists learnt from earlier sessions to the same pooled servers; a server found there is
    not opened until a tool of it is called (``naestro.toolcatalog``). Without it every server opens at start.
    """

    def __init__(self, servers: dict[str, Connection], *, untrusted: Collection[str] = (),
                 catalog: ToolCatalog | None = None) -> None:
        self._client = MultiServerMCPClient(servers)
        self._connections = servers
        self._servers = list(servers)
        self._untrusted = set(untrusted)
        self._catalog = catalog
        self._closing = asyncio.Event()
        self._holders: list[asyncio.Task[None]] = []
        self._sessions: dict[str, ClientSession] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._tools: dict[str, _Tool] = {}

    async def __aenter__(self) -> McpToolBus:
        """Start every server not in the catalog at once (each takes ~0.5 s to import and initialize)."""
        eager: list[str] = []
        for server in self._servers:
            listed = self._catalog.get(server, self._connections[server]) if self._catalog is not None else None
            if listed is None:
                eager.append(server)
                continue
            version, tools = listed
            for tool in tools:
                self._add(server, version, tool)
        loop = asyncio.get_running_loop()
        ready = {server: loop.create_future() for server in eager}
        self._holders = [asyncio.create_task(self._hold(server, ready[server])) for server in eager]
        for server, started in ready.items():
            try:
                session, version, tools = await started
            except Exception as exc:
                await self.__aexit__()
                raise ToolFailed(tool=f"{server}.*", reason=f"could not start MCP server {server!r}: {exc}") from exc
            self._sessions[server] = session
            if self._catalog is not None:
                self._catalog.put(server, self._connections[server], (version, tools))
            for tool in tools:
                self._add(server, version, tool)
        return self

    async def _session(self, server: str) -> ClientSession:
        """The server's session, opened now if the catalog spared it at start."""
        if (session := self._sessions.get(server)) is not None:
            return session
        async with self._opening.setdefault(server, asyncio.Lock()):
            if (session := self._sessions.get(server)) is not None:
                return session
            if self._closing.is_set():
                raise ToolFailed(tool=f"{server}.*", reason="the run's tool bus is closed")
            ready: asyncio.Future[tuple[ClientSession, str, list[mt.Tool]]] = asyncio.get_running_loop().create_future()
            # A context of its own: the session outlives the node that first called it (its spans, its config).
            # The catalog already knows the tools: no tools/list round trip unless the server's version changed.
            known = self._catalog.get(server, self._connections[server]) if self._catalog is not None else None
            hold = self._hold(server, ready, known_version=known[0] if known is not None else None)
            self._holders.append(asyncio.create_task(hold, context=contextvars.Context()))
            try:
                session, version, tools = await ready
            except Exception as exc:
                raise ToolFailed(tool=f"{server}.*", reason=f"could not open a session to MCP server {server!r}: "
                                                            f"{exc}") from exc
            if known is not None and version != known[0]:  # the server changed since the catalog learnt it
                if self._catalog is not None:
                    self._catalog.put(server, self._connections[server], (version, tools))
                for name in [n for n, t in self._tools.items() if t.server == server]:
                    del self._tools[name]
                for tool in tools:
                    self._add(server, version, tool)
            self._sessions[server] = session
            return session

    async def _hold(self, server: str, ready: asyncio.Future[tuple[ClientSession, str, list[mt.Tool]]], *,
                    known_version: str | None = None) -> None:
        """Own one session from open to close in a single task, as anyio's cancel scopes require.

        ``known_version``: the catalog's version of this server; when the server still has it, its tools are
        not listed again (a run's first call to a pooled server costs one round trip, not two: issue 16)."""
        try:
            async with self._client.session(server, auto_initialize=False) as session:
                init = await session.initialize()
                version = init.serverInfo.version
                tools = [] if version == known_version else (await session.list_tools()).tools
                ready.set_result((session, version, tools))
                await self._closing.wait()
        except Exception as exc:  # noqa: BLE001  (handed to __aenter__, which wraps it in ToolFailed)
            if not ready.done():
                ready.set_exception(exc)
            # else: the server died mid-run; calls to it now fail with ToolFailed

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        await asyncio.gather(*self._holders, return_exceptions=True)

    def _add(self, server: str, server_version: str, tool: mt.Tool) -> None:
        name = f"{server}.{tool.name}"
        annotations = ToolAnnotations.from_mcp(tool.annotations)
        trusted = server not in self._untrusted
        description = tool.description or ""
        if not trusted:
            description = f"[untrusted server {server}] {description}"
        self._tools[name] = _Tool(server=server, remote_name=tool.name, spec=ToolSpec(
            name=name, description=description, input_schema=tool.inputSchema,
            output_schema=tool.outputSchema, read_only=bool(trusted and annotations.read_only), server=server,
            annotations=annotations, version=schema_version(server_version, tool), trusted=trusted))

    def specs(self) -> list[ToolSpec]:
        return [t.spec for _, t in sorted(self._tools.items())]

    def open_servers(self) -> list[str]:
        """Servers this bus holds a session to (the others are known from the catalog and not opened yet)."""
        return sorted(self._sessions)

    async def call(self, name: str, arguments: dict[str, JsonValue], *, timeout_s: float = 120.0) -> ToolResult:
        args_json = json.dumps(arguments, sort_keys=True)
        start = time.monotonic()
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self._tools))
            return self._receipt(name, args_json, start, ok=False, text=f"unknown tool {name!r}; known tools: {known}")
        session = await self._session(tool.server)
        request_ids: list[int] = []
        request = mt.ClientRequest(mt.CallToolRequest(params=mt.CallToolRequestParams(
            name=tool.remote_name, arguments=dict(arguments))))

        async def send() -> mt.CallToolResult:
            # mcp 1.x does not tell the server when a caller gives up; remember the JSON-RPC id that
            # send_request is about to take (no await in between) so a timeout can cancel it on the server.
            request_ids.append(session._request_id)
            return await session.send_request(request, mt.CallToolResult)

        try:
            result = await asyncio.wait_for(send(), timeout=timeout_s)
        except TimeoutError:
            await self._cancel(session, request_ids, f"timed out after {timeout_s:g}s")
            return self._receipt(name, args_json, start, ok=False, timed_out=True,
                                 text=f"{name} timed out after {timeout_s:g}s and was cancelled; "
                                      f"use a smaller input or a longer timeout")
        except Exception as exc:
            raise ToolFailed(tool=name, reason=str(exc) or type(exc).__name__) from exc
        text = "\n".join(block.text if isinstance(block, mt.TextContent) else f"[{block.type} content]"
                         for block in result.content)
        return self._receipt(name, args_json, start, ok=not result.isError, text=text,
                             structured=result.structuredContent)

    @staticmethod
    async def _cancel(session: ClientSession, request_ids: list[int], reason: str) -> None:
        if not request_ids:
            return
        note = mt.ClientNotification(mt.CancelledNotification(
            params=mt.CancelledNotificationParams(requestId=request_ids[0], reason=reason)))
        try:
            await session.send_notification(note)
        except Exception:  # noqa: BLE001  (best effort: the session may be gone; the timeout is already reported)
            return

    @staticmethod
    def _receipt(name: str, args_json: str, start: float, *, ok: bool, text: str,
                 structured: JsonValue = None, timed_out: bool = False) -> ToolResult:
        body = json.dumps(structured, sort_keys=True) if structured is not None else text
        return ToolResult(tool=name, ok=ok, text=text, structured=structured, args_sha256=_sha(args_json),
                          result_sha256=_sha(body), duration_s=round(time.monotonic() - start, 4),
                          result_bytes=len(text.encode()), timed_out=timed_out)
