"""A run exported to a real local Phoenix (`naestro observe up`) shows one nested trace with tokens and cost.

Phoenix lives in its own ~850 MB venv; the test runs when ``NAESTRO_PHOENIX_VENV`` names one with
arize-phoenix installed (``naestro observe up`` installs it into HOME/observe/venv otherwise).
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from naestro.cli import app
from naestro.runner import Runner
from naestro.settings import Settings
from naestro.telemetry import Telemetry, TelemetrySettings
from tests.integration.test_run_graph import coder_script
from tests.integration.test_tracing import parallel_plan, priced_provider

VENV = os.environ.get("NAESTRO_PHOENIX_VENV")
pytestmark = pytest.mark.skipif(not VENV, reason="set NAESTRO_PHOENIX_VENV to a venv with arize-phoenix")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spans(url: str, want: int) -> list[dict[str, Any]]:
    """Phoenix ingests asynchronously: poll until it has the run's spans (or a minute passed)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while len(got) < want and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/v1/projects/naestro/spans?limit=1000", timeout=10) as r:
                got = list(json.loads(r.read())["data"])
        except urllib.error.HTTPError as exc:  # 404 until the project's first span is stored
            if exc.code != 404:
                raise
        time.sleep(0.5)
    return got


async def test_run_in_phoenix(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAESTRO_HOME", str(settings.home))
    port = free_port()
    started = CliRunner().invoke(app, ["observe", "up", "--venv", str(VENV), "--port", str(port),
                                       "--grpc-port", str(free_port())])
    try:
        assert started.exit_code == 0, started.output
        # The runner's default telemetry finds the endpoint `observe up` left in its home.
        runner = Runner(settings, priced_provider(coder_script({t: "ok" for t in "abd"})))
        assert runner.telemetry.exporting
        result = await runner.start("g", plan=parallel_plan())
        assert result.passed
        local = [json.loads(line) for line in (settings.runs_dir / result.record.run_id / "spans.jsonl")
                 .read_text().splitlines()]
        got = spans(f"http://127.0.0.1:{port}", len(local))
        assert {s["context"]["span_id"] for s in got} == {s["span_id"] for s in local}
        assert len({s["context"]["trace_id"] for s in got}) == 1
        by_id = {s["context"]["span_id"]: s for s in got}

        def path(s: dict[str, Any]) -> list[str]:
            names = [s["name"].split(" ")[0]]
            while s["parent_id"]:
                s = by_id[s["parent_id"]]
                names.append(s["name"].split(" ")[0])
            return names[::-1]

        chats = [s for s in got if s["span_kind"] == "LLM" and s["attributes"]["naestro.task.id"] == "a"]
        assert chats and all(path(s) == ["invoke_workflow", "naestro.graph", "naestro.task", "invoke_agent", "chat"]
                             for s in chats)
        assert all(s["attributes"]["llm.token_count.prompt"] == 10 and s["attributes"]["naestro.cost_usd"] > 0
                   for s in chats)
        tools = [s for s in got if s["span_kind"] == "TOOL"]
        assert tools and all(path(s)[-2:] == ["invoke_agent", "execute_tool"] for s in tools)
        policies = [s for s in got if s["name"].startswith("naestro.policy")]
        assert {path(s)[-2] for s in policies} == {"chat", "execute_tool"}
    finally:
        stopped = CliRunner().invoke(app, ["observe", "down"])
        assert "stopped" in stopped.output
    assert not Telemetry(TelemetrySettings(naestro_home=settings.home)).exporting
    assert Path(settings.home / "observe" / "phoenix.log").exists()
