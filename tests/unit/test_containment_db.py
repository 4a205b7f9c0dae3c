"""Issue 14, db: a runaway query is interrupted at the server's deadline with ``QueryTimeout``, on SQLite (a
progress handler) and on Postgres (statement_timeout). The real db server, real SQLite and Postgres, driven by a
real MCP client over an in-memory transport and through FastMCP's own call path (which keeps the typed error)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.shared.memory import create_connected_server_and_client_session

from mcp_servers.db import QueryTimeout, build
from mcp_servers.workspace import ServerOptions
from naestro.errors import ConfigError

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
#: The issue's runaway recursive CTE, bounded so that a broken deadline fails the test (after minutes) instead of
#: hanging it: 10^8 rows take far longer than the 0.5 s deadline on any machine.
COUNTER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
RUNAWAY = COUNTER + "SELECT count(*) FROM c"


async def assert_interrupted(server: FastMCP, *, backend: str, timeout_s: float) -> None:
    with pytest.raises(ToolError) as raised:
        await server.call_tool("query", {"sql": RUNAWAY})
    async with create_connected_server_and_client_session(server) as client:
        res = await client.call_tool("query", {"sql": RUNAWAY})
        after = await client.call_tool("query", {"sql": "SELECT 1"})  # the server still answers
    cause = raised.value.__cause__
    assert isinstance(cause, QueryTimeout) and cause.backend == backend and cause.timeout_s == timeout_s
    text = " ".join(getattr(c, "text", "") for c in res.content)
    assert res.isError and f"exceeded the {timeout_s:g} s limit" in text and "WHERE" in text, text
    assert not after.isError and after.structuredContent == {"columns": ["1"] if backend == "SQLite" else
                                                             ["?column?"], "rows": [[1]], "row_count": 1,
                                                             "truncated": False}


async def test_sqlite_runaway_query_is_interrupted(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "db.sqlite").close()
    server = build(ServerOptions(workspace=tmp_path, database="db.sqlite"), query_timeout_s=0.5)
    await assert_interrupted(server, backend="SQLite", timeout_s=0.5)


async def test_sqlite_deadline_covers_rows_fetched_after_execute(tmp_path: Path) -> None:
    # SQLite computes rows as they are fetched: the first comes at once, the slow part runs in fetchmany.
    sqlite3.connect(tmp_path / "db.sqlite").close()
    server = build(ServerOptions(workspace=tmp_path, database="db.sqlite"), query_timeout_s=0.5)
    with pytest.raises(ToolError) as raised:
        await server.call_tool("query", {"sql": COUNTER + "SELECT x FROM c WHERE x = 1 OR x > 99999999",
                                         "max_rows": 5})
    assert isinstance(raised.value.__cause__, QueryTimeout)


def test_the_deadline_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="query_timeout_s"):
        build(ServerOptions(workspace=tmp_path, database="db.sqlite"), query_timeout_s=0)


async def test_postgres_runaway_query_is_interrupted(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(POSTGRES, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"Postgres at {POSTGRES} is not reachable: {exc}")
    server = build(ServerOptions(workspace=tmp_path, database=POSTGRES), query_timeout_s=0.5)
    await assert_interrupted(server, backend="Postgres", timeout_s=0.5)
