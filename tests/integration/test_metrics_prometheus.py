"""``naestro metrics`` scraped by a real Prometheus (Debian's prometheus 2.42, installed by scripts/setup.sh).

The runs are real (LangGraph, SQLite, MCP servers, regorus); only model text is scripted. One run passes with
a policy denial on the way, one waits for a human's consent (exec.run); then ``naestro metrics`` serves
/metrics from their event logs in its own process and Prometheus scrapes it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from naestro.telemetry import EventsCollector
from tests.integration.test_tracing import priced_provider

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def steps(actions: list[dict[str, Any]]) -> Any:
    def script(messages: list[Any]) -> dict[str, Any]:
        if "Write 2-4 sentences" in str(messages[-1].content):
            return {"summary": "s"}
        step = sum(1 for m in messages if m.type == "ai")
        if step < len(actions):
            return {"thought": "next", **actions[step]}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}
    return script


def plan(tid: str) -> Plan:
    return Plan.model_validate({"goal": "g", "tasks": [{"id": tid, "role": "coder", "description": "write it",
                                                         "accept": [{"kind": "file_exists", "path": "a.txt"}]}]})


async def make_runs(settings: Settings) -> None:
    denied_then_ok = steps([{"tool": "fs.write", "arguments": {"path": "/etc/x.txt", "content": "x"}},
                            {"tool": "fs.write", "arguments": {"path": "a.txt", "content": "x"}}])
    passed = await Runner(settings, priced_provider(denied_then_ok)).start("g", plan=plan("a"))
    assert passed.passed
    asks = steps([{"tool": "exec.run", "arguments": {"command": "echo x > a.txt"}}])
    waiting = await Runner(settings, priced_provider(asks)).start("g", plan=plan("b"))
    assert waiting.pending


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


async def test_collector_counts_the_events(settings: Settings) -> None:
    await make_runs(settings)
    families = {m.name: m for m in EventsCollector(settings.runs_dir).collect()}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for m in families.values() for s in m.samples}
    assert samples[("naestro_tool_denials_total", (("by", "policy"), ("tool", "fs.write")))] == 1
    assert samples[("naestro_consent_requests_total", (("action", "exec.run"),))] == 1
    assert samples[("naestro_consent_waiting", ())] == 1
    assert samples[("naestro_runs", (("status", "passed"),))] == 1
    assert samples[("naestro_runs", (("status", "waiting"),))] == 1
    assert samples[("naestro_tokens_total", (("endpoint", "scripted"), ("type", "input")))] > 0
    assert samples[("naestro_cost_usd_total", (("endpoint", "scripted"),))] > 0
    assert samples[("naestro_model_latency_seconds_count", (("endpoint", "scripted"),))] \
        == samples[("naestro_model_calls_total", (("endpoint", "scripted"), ("purpose", "agent")))] \
        + samples[("naestro_model_calls_total", (("endpoint", "scripted"), ("purpose", "reporter")))]
    assert samples[("naestro_run_success_ratio", ())] == 1.0


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus package is installed by scripts/setup.sh")
async def test_real_prometheus_scrapes_metrics(settings: Settings, tmp_path: Path) -> None:
    await make_runs(settings)
    metrics_port, prom_port = free_port(), free_port()
    env = {**os.environ, "NAESTRO_HOME": str(settings.home)}
    server = subprocess.Popen([sys.executable, "-m", "naestro", "metrics", "--port", str(metrics_port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: naestro\n"
                      f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n")
    assert PROMETHEUS is not None
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # Prometheus starts, then scrapes every second
        up: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                up = query(prom_port, 'up{job="naestro"}')
            except OSError:
                up = []
            if up and up[0]["value"][1] == "1" and query(prom_port, "naestro_model_calls_total"):
                break
            time.sleep(0.5)
        assert up and up[0]["value"][1] == "1", "Prometheus never scraped naestro metrics"
        for series in ("naestro_model_latency_seconds_bucket", "naestro_tokens_total", "naestro_cost_usd_total",
                       "naestro_run_success_ratio", "naestro_task_success_ratio", "naestro_policy_decisions_total",
                       "naestro_tool_denials_total", "naestro_consent_requests_total", "naestro_consent_waiting",
                       "naestro_tool_duration_seconds_bucket", "naestro_policy_decision_seconds_bucket"):
            assert query(prom_port, series), series
        denials = query(prom_port, 'sum(naestro_policy_decisions_total{verdict="deny"})')
        assert float(denials[0]["value"][1]) == 1
        tokens = query(prom_port, 'sum by (type) (naestro_tokens_total)')
        assert {r["metric"]["type"] for r in tokens} == {"input", "output"}
        waiting = query(prom_port, "naestro_consent_waiting")
        assert waiting[0]["value"][1] == "1"
    finally:
        for p in (prom, server):
            p.terminate()
            p.wait(timeout=10)
