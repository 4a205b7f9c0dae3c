"""The MCP tool bus for one run: persistent sessions to Naestro's servers, tools addressed as ``server.tool``.

Sessions are opened once per run (not per call) and every call has a timeout. Errors the model can fix
(unknown tool, bad arguments, a tool's own error) come back as ``ToolResult(ok=False)`` so the agent sees
them as an observation; transport failures raise ``ToolFailed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Protocol

from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.sessions import Connection, StdioConnection
from langchain_mcp_adapters.tools import load_mcp_tools
from pydantic import BaseModel, ConfigDict, JsonValue, TypeAdapter

from naestro.errors import ToolFailed

__all__ = ["McpToolBus", "ToolBus", "ToolResult", "ToolSpec", "builtin_servers"]


class ToolSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    description: str
    input_schema: dict[str, JsonValue]
    read_only: bool


class ToolResult(BaseModel):
    """A receipt of one call: what went in (hash), what came out, how long it took."""

    tool: str
    ok: bool
    text: str
    structured: JsonValue = None
    args_sha256: str
    result_sha256: str
    duration_s: float


class ToolBus(Protocol):
    def specs(self) -> list[ToolSpec]: ...
    async def call(self, name: str, arguments: dict[str, JsonValue], *, timeout_s: float = 120.0) -> ToolResult: ...


def _sha(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()


def builtin_servers(workspace: Path) -> dict[str, Connection]:
    """Naestro's own servers, as stdio child processes confined to ``workspace``."""
    def stdio(module: str) -> StdioConnection:
        return {"transport": "stdio", "command": sys.executable,
                "args": ["-m", f"naestro.mcp_servers.{module}", "--workspace", str(workspace)]}
    return {"fs": stdio("fs"), "exec": stdio("exec")}


class McpToolBus:
    """The default ToolBus: MCP sessions opened at ``__aenter__`` and closed at ``__aexit__``."""

    def __init__(self, servers: dict[str, Connection]) -> None:
        self._client = MultiServerMCPClient(servers)
        self._servers = list(servers)
        self._stack = AsyncExitStack()
        self._tools: dict[str, BaseTool] = {}

    async def __aenter__(self) -> McpToolBus:
        try:
            for server in self._servers:
                session = await self._stack.enter_async_context(self._client.session(server))
                for tool in await load_mcp_tools(session):
                    self._tools[f"{server}.{tool.name}"] = tool
        except Exception as exc:
            await self._stack.aclose()
            raise ToolFailed(tool=f"{server}.*", reason=f"could not start MCP server {server!r}: {exc}") from exc
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    def specs(self) -> list[ToolSpec]:
        out = []
        for name, tool in sorted(self._tools.items()):
            schema = (tool.args_schema if isinstance(tool.args_schema, dict)
                      else TypeAdapter(tool.get_input_schema()).json_schema())
            hints = tool.metadata or {}
            out.append(ToolSpec(name=name, description=tool.description, input_schema=schema,
                                read_only=bool(hints.get("readOnlyHint"))))
        return out

    async def call(self, name: str, arguments: dict[str, JsonValue], *, timeout_s: float = 120.0) -> ToolResult:
        args_json = json.dumps(arguments, sort_keys=True)
        start = time.monotonic()
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self._tools))
            return self._receipt(name, args_json, start, ok=False, text=f"unknown tool {name!r}; known tools: {known}")
        call = ToolCall(name=name, args=dict(arguments), id=f"call-{_sha(args_json)[:12]}", type="tool_call")
        try:
            msg = await asyncio.wait_for(tool.ainvoke(call), timeout=timeout_s)
        except TimeoutError:
            return self._receipt(name, args_json, start, ok=False, text=f"timed out after {timeout_s:g}s")
        except Exception as exc:
            raise ToolFailed(tool=name, reason=str(exc)) from exc
        assert isinstance(msg, ToolMessage)
        text = "\n".join(b["text"] for b in msg.content if isinstance(b, dict) and b.get("type") == "text") \
            if isinstance(msg.content, list) else str(msg.content)
        structured = None
        if isinstance(msg.artifact, dict):
            structured = msg.artifact.get("structured_content")
        return self._receipt(name, args_json, start, ok=msg.status != "error", text=text, structured=structured)

    @staticmethod
    def _receipt(name: str, args_json: str, start: float, *, ok: bool, text: str,
                 structured: JsonValue = None) -> ToolResult:
        return ToolResult(tool=name, ok=ok, text=text, structured=structured, args_sha256=_sha(args_json),
                          result_sha256=_sha(text), duration_s=round(time.monotonic() - start, 4))
