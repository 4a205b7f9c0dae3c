"""What each pooled MCP server lists, learnt once, so a run opens a session to a server only when it calls it.

Every run used to open a session to all six pooled servers before its first step (``initialize`` +
``tools/list``: two round trips and a per-options server build in the child, six times per run), though most
runs call two of them. Which tools a pooled server lists depends on its options but not on the run's
workspace (``web.search`` exists only with a search URL; descriptions do not name the workspace: checked by
listing two runs' tools), so the first session that lists a server for some options teaches every later run
with the same options. A run then knows its tools (the gate and the prompts need them) without any session,
and ``McpToolBus`` opens a server's session on the first call to one of its tools.

The key is the server's URL (a restarted child listens on a new port, so its entries are never reused) and
the run's options without the workspace. Connections that are not the pool's (stdio, external servers) have
no key and are opened at start, as before.
"""

from __future__ import annotations

import json
import threading

import mcp.types as mt
from langchain_mcp_adapters.sessions import Connection

from mcp_servers.pooled import OPTIONS_HEADER

__all__ = ["Listed", "ToolCatalog"]

Listed = tuple[str, list[mt.Tool]]
"""(server version, its tools) as a session's ``initialize`` and ``tools/list`` answered them."""


class ToolCatalog:
    """Tool lists of pooled servers by (server, URL, options without the workspace); shared by a process's runs."""

    def __init__(self) -> None:
        self._listed: dict[tuple[str, str, str], Listed] = {}
        self._lock = threading.Lock()  # runs of several event loops (threads) share one pool

    @staticmethod
    def key(server: str, connection: Connection) -> tuple[str, str, str] | None:
        if connection.get("transport") != "streamable_http":
            return None
        headers = connection.get("headers")
        raw = headers.get(OPTIONS_HEADER) if isinstance(headers, dict) else None
        if not isinstance(raw, str):
            return None
        options = json.loads(raw)
        options.pop("workspace", None)
        return server, str(connection.get("url")), json.dumps(options, sort_keys=True)

    def get(self, server: str, connection: Connection) -> Listed | None:
        key = self.key(server, connection)
        if key is None:
            return None
        with self._lock:
            return self._listed.get(key)

    def put(self, server: str, connection: Connection, listed: Listed) -> None:
        key = self.key(server, connection)
        if key is not None:
            with self._lock:
                self._listed[key] = listed
