"""What a builtin MCP server loads before it is ready (issue 16: server start ≤ 2 s), and bench.startup itself.

A server's start is the mcp SDK's import plus ours; ours must not add the runtime's heavy libraries (models,
graphs, PII detection, tracing, policy engines) nor the ones a single tool needs (pdfplumber, html2text,
psycopg: imported inside those tools). Each server runs for real, in its own process, until it answers
``initialize``; ``-X importtime`` lists every module it imported on the way. Import sets only: the times are
measured by ``python -m bench.startup`` (BENCHMARKS.md), never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import startup
from mcp_servers import pooled
from mcp_servers.workspace import BUILTIN_SERVERS

# Roots of packages a server must not import to get ready.
SERVER_FORBIDDEN = (
    "langchain_core", "langchain_openai", "langchain_mcp_adapters", "langgraph", "openai", "presidio_analyzer",
    "spacy", "opentelemetry", "regorus", "pdfplumber", "pdfminer", "html2text", "psycopg", "naestro.runner",
    "naestro.llm", "naestro.router", "naestro.telemetry", "naestro.redact", "policies.gate", "policies.engines",
    "graphs", "nodes",
)


def _imported_until_ready(argv: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> set[str]:
    """Start ``argv`` (a stdio server) under ``-X importtime``, wait for its answer to ``initialize``, close its
    stdin (it exits) and return every module it imported in its life: all but the last few ms are before ready."""
    log = tmp_path / "importtime.log"
    with log.open("wb") as stderr:  # a file, not a pipe: the log (~50 kB) could fill a pipe nobody reads yet
        proc = subprocess.Popen([sys.executable, "-X", "importtime", *argv], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr, cwd=tmp_path, env=env)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(startup.INITIALIZE.encode() + b"\n")
        proc.stdin.flush()
        line = proc.stdout.readline()  # a stdio server writes nothing but JSON-RPC on stdout
        proc.stdin.close()
        proc.stdout.close()
        proc.wait(timeout=120)
    text = log.read_text(errors="replace")
    answer = json.loads(line) if line.strip() else {}
    assert answer.get("id") == 1 and "serverInfo" in answer.get("result", {}), (line, text[-2000:])
    return {row.rsplit("|", 1)[1].strip() for row in text.splitlines() if row.startswith("import time:")}


def _forbidden(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in SERVER_FORBIDDEN))


@pytest.mark.parametrize("name", BUILTIN_SERVERS)
def test_a_server_gets_ready_without_heavy_imports(name: str, tmp_path: Path) -> None:
    modules = _imported_until_ready(["-m", f"mcp_servers.{name}", "--workspace", str(tmp_path)], tmp_path)
    assert {"mcp_servers.workspace", "mcp.server.fastmcp"} <= modules  # the log is the server's (run as __main__)
    assert not _forbidden(modules), f"mcp_servers.{name} loaded {_forbidden(modules)} before answering initialize"


def test_the_front_door_gets_ready_without_the_model_client(tmp_path: Path) -> None:
    """`naestro mcp serve naestro` builds the whole runtime, but openai (~0.5 s of import) loads with the first
    model call, not before the server answers ``initialize``."""
    env = {**os.environ, "NAESTRO_HOME": str(tmp_path / "home")}
    modules = _imported_until_ready(["-m", "naestro", "mcp", "serve", "naestro", "--workspace", str(tmp_path)],
                                    tmp_path, env)
    assert {"naestro.frontdoor", "naestro.runtime"} <= modules
    client = sorted(m for m in modules if m.split(".")[0] in ("openai", "langchain_openai", "aiohttp"))
    assert not client, f"the front door loaded {client[:8]}... before answering initialize"


def test_the_pooled_entry_builds_every_server_without_heavy_imports() -> None:
    """The pooled process imports its server module before it listens and builds a server per run."""
    code = ("import sys, tempfile, pathlib\n"
            "import mcp_servers.pooled, uvicorn\n"
            "from mcp_servers.workspace import BUILTIN_SERVERS, ServerOptions, build_server\n"
            "ws = pathlib.Path(tempfile.mkdtemp())\n"
            "for n in BUILTIN_SERVERS: build_server(n, ServerOptions(workspace=ws))\n"
            "print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not _forbidden(set(out.split())), _forbidden(set(out.split()))


def test_bench_copies_of_server_constants_match() -> None:
    """bench.startup repeats these so that the bench process itself imports nothing it measures."""
    assert startup.BUILTIN_SERVERS == BUILTIN_SERVERS
    assert (startup.TOKEN_ENV, startup.READY_PREFIX) == (pooled.TOKEN_ENV, pooled.READY_PREFIX)


def test_bench_startup_measures_a_real_server(capsys: pytest.CaptureFixture[str]) -> None:
    """One round of the bench as documented (anchors, fs over stdio and pooled): every probe got ready."""
    startup.main(["--rounds", "1", "--only", "fs"])
    report = capsys.readouterr().out
    for probe in ("python -c pass", "bare FastMCP", "fs stdio", "fs pooled"):
        assert any(line.startswith(probe) and " ms " in line for line in report.splitlines()), report
    assert "no sample" not in report and "failed" not in report, report
