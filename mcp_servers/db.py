"""MCP server ``db``: read-only SQL against the configured SQLite file or Postgres database, with row limits.

Read-only is enforced by the database, not by parsing SQL: SQLite is opened ``mode=ro`` with
``PRAGMA query_only`` and an authorizer that refuses ATTACH (which could open other files); Postgres runs every
statement in a ``READ ONLY`` transaction and rolls it back. For Postgres, also give the server a role without
write grants: a read-only transaction still lets functions with side effects run.

Every query has a deadline (``query_timeout_s``, 10 s by default; issue 14: an unbounded recursive CTE ran for
minutes): SQLite checks it from a progress handler, Postgres enforces it as ``statement_timeout``. Past it the
query is interrupted and the tool fails with ``QueryTimeout``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import sqlite3
import time
import uuid
from typing import Annotated

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, JsonValue

from mcp_servers.workspace import ServerOptions, confine, new_server, serve
from naestro.errors import ConfigError

__all__ = ["QueryTimeout", "build", "main"]

DEFAULT_QUERY_TIMEOUT_S = 10.0
_PROGRESS_EVERY = 1_000  # SQLite VM instructions between deadline checks: microseconds apart, costs ~nothing


class QueryTimeout(ToolError):
    """The query ran past the server's deadline and was interrupted; the model should ask for less."""

    def __init__(self, *, backend: str, timeout_s: float) -> None:
        self.backend, self.timeout_s = backend, timeout_s
        super().__init__(f"the query exceeded the {timeout_s:g} s limit and was interrupted ({backend}); narrow "
                         "it: filter with WHERE, add LIMIT, aggregate instead of listing rows, and give a recursive "
                         "CTE a stop condition (WHERE n < 1000)")


class QueryResult(BaseModel):
    columns: list[str]
    rows: list[list[JsonValue]]
    row_count: int = Field(description="rows returned (at most max_rows)")
    truncated: bool = Field(description="the query had more rows than max_rows; add LIMIT/WHERE or aggregate")


class Column(BaseModel):
    name: str
    type: str


class Table(BaseModel):
    name: str
    columns: list[Column]


class Schema(BaseModel):
    backend: str
    tables: list[Table]


def _json(value: object) -> JsonValue:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "base64:" + base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return str(value)


def _deny_attach(action: int, *_: object) -> int:
    return sqlite3.SQLITE_DENY if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) else sqlite3.SQLITE_OK


def _sqlite_query(path: str, sql: str, params: list[JsonValue], max_rows: int, *, timeout_s: float) -> QueryResult:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.set_authorizer(_deny_attach)
        deadline = time.monotonic() + timeout_s
        expired: list[bool] = []

        def past_deadline() -> bool:
            """A true return interrupts the statement (sqlite3.OperationalError "interrupted")."""
            if time.monotonic() > deadline:
                expired.append(True)
            return bool(expired)

        # Set before execute and kept through fetchmany: SQLite computes rows as they are stepped, so a slow
        # query may spend its time in either.
        conn.set_progress_handler(past_deadline, _PROGRESS_EVERY)
        try:
            cur = conn.execute(sql, params)
            columns = [d[0] for d in cur.description or []]
            fetched = cur.fetchmany(max_rows + 1)
        except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an integer parameter past 64 bits
            if expired:
                raise QueryTimeout(backend="SQLite", timeout_s=timeout_s) from exc
            raise ToolError(f"SQLite error: {exc}; the database is read-only (SELECT, WITH, PRAGMA table_info)") \
                from exc
    finally:
        conn.close()
    rows = [[_json(v) for v in row] for row in fetched[:max_rows]]
    return QueryResult(columns=columns, rows=rows, row_count=len(rows), truncated=len(fetched) > max_rows)


async def _postgres_query(dsn: str, sql: str, params: list[JsonValue], max_rows: int, *,
                          timeout_s: float) -> QueryResult:
    try:
        import psycopg
    except ImportError as exc:
        raise ToolError("Postgres support needs psycopg: pip install 'naestro[postgres]'") from exc
    try:
        conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=10)
    except psycopg.Error as exc:
        raise ToolError(f"cannot connect to Postgres: {exc}; check the --database DSN") from exc
    try:
        await conn.set_read_only(True)
        async with conn.cursor() as cur:
            try:
                # SET takes no bind parameters; the value is an int computed here, not input.
                await cur.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout_s * 1000))}")
                await cur.execute(sql.encode(), params or None)  # bytes: the SQL text is the tool's input
            except psycopg.errors.QueryCanceled as exc:  # 57014: statement_timeout (nothing else cancels here)
                raise QueryTimeout(backend="Postgres", timeout_s=timeout_s) from exc
            except psycopg.Error as exc:
                raise ToolError(f"Postgres error: {str(exc).strip()} (queries run in a READ ONLY transaction)") from exc
            columns = [d.name for d in cur.description or []]
            fetched = await cur.fetchmany(max_rows + 1) if cur.description else []
        await conn.rollback()
    finally:
        await conn.close()
    rows = [[_json(v) for v in row] for row in fetched[:max_rows]]
    return QueryResult(columns=columns, rows=rows, row_count=len(rows), truncated=len(fetched) > max_rows)


SQLITE_SCHEMA = ("SELECT m.name, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p "
                 "WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid")
POSTGRES_SCHEMA = ("SELECT table_schema || '.' || table_name, column_name, data_type FROM information_schema.columns "
                   "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                   "ORDER BY table_schema, table_name, ordinal_position")


def build(options: ServerOptions, *, query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S) -> FastMCP:
    """``query_timeout_s``: the deadline of every query (SQLite and Postgres alike)."""
    if not query_timeout_s > 0:
        raise ConfigError(f"the db server's query_timeout_s must be a positive number of seconds, got "
                          f"{query_timeout_s!r}")
    database = options.database
    mcp = new_server("db", instructions="Read-only SQL against the configured database "
                                        f"({'Postgres' if database and _is_postgres(database) else 'SQLite'}).")

    async def query_any(sql: str, params: list[JsonValue], max_rows: int) -> QueryResult:
        if not database:
            raise ToolError("no database configured for this server; start it with --database FILE.sqlite "
                            "(in the workspace) or --database postgresql://...")
        if _is_postgres(database):
            return await _postgres_query(database, sql, params, max_rows, timeout_s=query_timeout_s)
        path = confine(options.workspace, database, hidden=options.hidden)
        if not path.is_file():
            raise ToolError(f"SQLite database {database!r} does not exist in the workspace")
        return await asyncio.to_thread(_sqlite_query, str(path), sql, params, max_rows, timeout_s=query_timeout_s)

    @mcp.tool(annotations=ToolAnnotations(title="Read-only SQL query", readOnlyHint=True, openWorldHint=False))
    async def query(sql: str, params: list[JsonValue] | None = None,
                    max_rows: Annotated[int, Field(ge=1, le=10_000)] = 200) -> QueryResult:
        """Run one read-only SQL statement (placeholders: ? for SQLite, %s for Postgres); returns at most
        max_rows rows and says when there were more."""
        if not sql.strip():
            raise ToolError("sql is empty")
        return await query_any(sql, params or [], max_rows)

    @mcp.tool(annotations=ToolAnnotations(title="Tables and columns", readOnlyHint=True, openWorldHint=False))
    async def tables() -> Schema:
        """The database's tables and views with their columns and types."""
        backend = "postgres" if database and _is_postgres(database) else "sqlite"
        res = await query_any(POSTGRES_SCHEMA if backend == "postgres" else SQLITE_SCHEMA, [], 10_000)
        grouped: dict[str, list[Column]] = {}
        for table, column, type_ in res.rows:
            grouped.setdefault(str(table), []).append(Column(name=str(column), type=str(type_)))
        return Schema(backend=backend, tables=[Table(name=t, columns=c) for t, c in grouped.items()])

    return mcp


def _is_postgres(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


def main(argv: list[str] | None = None) -> None:
    serve(build, prog="naestro-mcp-db", description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
