"""git, db and pdf servers over real stdio, against a real git, SQLite, Postgres and generated PDFs."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from pydantic import JsonValue

from mcp_servers.pdf import parse_pages
from naestro.toolbus import McpToolBus, ToolResult, builtin_servers

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def structured(res: ToolResult) -> dict[str, JsonValue]:
    assert res.ok, res.text
    assert isinstance(res.structured, dict)
    return res.structured


async def test_git_init_status_commit_diff_log(tmp_path: Path) -> None:
    async with McpToolBus(builtin_servers(tmp_path, names=["git", "fs"])) as bus:
        not_repo = await bus.call("git.status", {})
        assert not not_repo.ok and "call git.init first" in not_repo.text
        assert structured(await bus.call("git.init", {}))["branch"] == "main"
        await bus.call("fs.write", {"path": "a.py", "content": "x = 1\n"})
        st = structured(await bus.call("git.status", {}))
        assert st["clean"] is False and st["entries"] == [{"path": "a.py", "index": "?", "worktree": "?"}]
        first = structured(await bus.call("git.commit", {"message": "Add a.py"}))
        assert first["files"] == ["a.py"] and len(str(first["sha"])) == 40
        assert structured(await bus.call("git.status", {}))["clean"] is True
        nothing = await bus.call("git.commit", {"message": "empty"})
        assert not nothing.ok and "nothing to commit" in nothing.text

        await bus.call("fs.write", {"path": "a.py", "content": "x = 2\n"})
        d = structured(await bus.call("git.diff", {}))
        assert d["files"] == ["a.py"] and "-x = 1\n+x = 2" in str(d["diff"])
        second = structured(await bus.call("git.commit", {"message": "Bump x", "paths": ["a.py"]}))
        log = structured(await bus.call("git.log", {"max_count": 5}))
        commits = log["commits"]
        assert isinstance(commits, list) and [c["subject"] for c in commits] == ["Bump x", "Add a.py"]  # type: ignore[index]
        assert commits[0]["sha"] == second["sha"] and "Naestro agent" in str(commits[0]["author"])  # type: ignore[index]
        against = structured(await bus.call("git.diff", {"against": "HEAD~1"}))
        assert "+x = 2" in str(against["diff"])
        bad_rev = await bus.call("git.diff", {"against": "--output=/tmp/x"})
        assert not bad_rev.ok and "invalid revision" in bad_rev.text
    assert (tmp_path / ".git").is_dir()


async def test_git_does_not_run_repository_hooks(tmp_path: Path) -> None:
    async with McpToolBus(builtin_servers(tmp_path, names=["git", "fs"])) as bus:
        await bus.call("git.init", {})
        hook = tmp_path / ".git" / "hooks" / "pre-commit"
        hook.write_text("#!/bin/sh\ntouch hook-ran\nexit 1\n")
        hook.chmod(0o755)
        await bus.call("fs.write", {"path": "f.txt", "content": "1"})
        structured(await bus.call("git.commit", {"message": "with a hostile hook"}))
    assert not (tmp_path / "hook-ran").exists()


@pytest.fixture
def sqlite_ws(tmp_path: Path) -> Path:
    conn = sqlite3.connect(tmp_path / "shop.sqlite")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, qty INTEGER, price REAL)")
    conn.executemany("INSERT INTO orders (item, qty, price) VALUES (?, ?, ?)",
                     [(f"item{i}", i, i * 1.5) for i in range(1, 51)])
    conn.commit()
    conn.close()
    (tmp_path / "other.sqlite").touch()
    return tmp_path


async def test_db_sqlite_is_read_only_with_row_limits(sqlite_ws: Path) -> None:
    async with McpToolBus(builtin_servers(sqlite_ws, names=["db"], database="shop.sqlite")) as bus:
        q = structured(await bus.call("db.query", {"sql": "SELECT item, qty FROM orders WHERE qty > ? ORDER BY id",
                                                   "params": [45], "max_rows": 3}))
        assert q["columns"] == ["item", "qty"] and q["rows"] == [["item46", 46], ["item47", 47], ["item48", 48]]
        assert q["truncated"] is True and q["row_count"] == 3
        total = structured(await bus.call("db.query", {"sql": "SELECT count(*), sum(qty) FROM orders"}))
        assert total["rows"] == [[50, 1275]] and total["truncated"] is False
        schema = structured(await bus.call("db.tables", {}))
        assert schema["tables"] == [{"name": "orders", "columns": [
            {"name": "id", "type": "INTEGER"}, {"name": "item", "type": "TEXT"},
            {"name": "qty", "type": "INTEGER"}, {"name": "price", "type": "REAL"}]}]
        for sql in ["DELETE FROM orders", "CREATE TABLE t (a)", "UPDATE orders SET qty = 0",
                    "ATTACH DATABASE 'other.sqlite' AS o", "PRAGMA query_only = OFF; DELETE FROM orders"]:
            res = await bus.call("db.query", {"sql": sql})
            assert not res.ok, sql
    conn = sqlite3.connect(sqlite_ws / "shop.sqlite")
    assert conn.execute("SELECT count(*), min(qty) FROM orders").fetchone() == (50, 1)
    conn.close()


async def test_db_needs_a_configured_database(tmp_path: Path) -> None:
    async with McpToolBus(builtin_servers(tmp_path, names=["db"])) as bus:
        res = await bus.call("db.query", {"sql": "SELECT 1"})
    assert not res.ok and "--database" in res.text


async def test_db_postgres_read_only(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    table = f"naestro_mcp_{uuid.uuid4().hex[:8]}"
    try:
        setup = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"Postgres at {POSTGRES} is required for this test: {exc}")
    with setup:
        setup.execute(f"CREATE TABLE {table} (n int)")
        setup.execute(f"INSERT INTO {table} SELECT generate_series(1, 30)")
        try:
            async with McpToolBus(builtin_servers(tmp_path, names=["db"], database=POSTGRES)) as bus:
                q = structured(await bus.call("db.query", {"sql": f"SELECT n FROM {table} WHERE n > %s ORDER BY n",
                                                           "params": [25], "max_rows": 2}))
                assert q["rows"] == [[26], [27]] and q["truncated"] is True
                names = [t["name"] for t in structured(await bus.call("db.tables", {}))["tables"]]  # type: ignore[union-attr,index]
                assert f"public.{table}" in names
                for sql in [f"DELETE FROM {table}", f"DROP TABLE {table}", "CREATE TABLE naestro_x (a int)"]:
                    res = await bus.call("db.query", {"sql": sql})
                    assert not res.ok and "read-only transaction" in res.text, res.text
            assert setup.execute(f"SELECT count(*) FROM {table}").fetchone() == (30,)
        finally:
            setup.execute(f"DROP TABLE IF EXISTS {table}")


def make_pdf(path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, "Quarterly report\nRevenue grew in every region.")
    with pdf.table() as table:
        for cells in [("Region", "Q1", "Q2"), ("North", "10", "12"), ("South, East", "7", "9")]:
            row = table.row()
            for c in cells:
                row.cell(c)
    pdf.add_page()
    pdf.multi_cell(0, 8, "Appendix: no tables here.")
    pdf.output(str(path))


async def test_pdf_text_and_tables(tmp_path: Path) -> None:
    make_pdf(tmp_path / "report.pdf")
    (tmp_path / "fake.pdf").write_text("not a pdf")
    async with McpToolBus(builtin_servers(tmp_path, names=["pdf"])) as bus:
        text = structured(await bus.call("pdf.text", {"path": "report.pdf"}))
        assert text["page_count"] == 2
        pages = text["pages"]
        assert isinstance(pages, list) and "Revenue grew in every region." in str(pages[0]["text"])  # type: ignore[index]
        assert pages[1] == {"page": 2, "text": "Appendix: no tables here."}
        csv = structured(await bus.call("pdf.tables", {"path": "report.pdf", "format": "csv", "out_dir": "out"}))
        tables = csv["tables"]
        assert isinstance(tables, list) and len(tables) == 1
        assert tables[0]["rows"] == [["Region", "Q1", "Q2"], ["North", "10", "12"], ["South, East", "7", "9"]]  # type: ignore[index]
        assert tables[0]["csv"] == 'Region,Q1,Q2\nNorth,10,12\n"South, East",7,9\n'  # type: ignore[index]
        assert (tmp_path / "out" / "report-p1-t0.csv").read_text() == tables[0]["csv"]  # type: ignore[index]
        as_json = structured(await bus.call("pdf.tables", {"path": "report.pdf", "pages": "2"}))
        assert as_json["tables"] == []
        broken = await bus.call("pdf.text", {"path": "fake.pdf"})
        assert not broken.ok and "not a readable PDF" in broken.text
        outside = await bus.call("pdf.text", {"path": "report.pdf", "pages": "3"})
        assert not outside.ok and "outside 1-2" in outside.text


def test_page_ranges() -> None:
    assert parse_pages(None, 3) == [1, 2, 3]
    assert parse_pages("1-2,2,3", 5) == [1, 2, 3]
