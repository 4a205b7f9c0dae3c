"""The run graph served by the real LangGraph API server (``langgraph dev``, WITHOUT --allow-blocking), driven
with langgraph-sdk as a user would: the assistant and its input schema, a streamed run whose task nodes appear
as they run, a consent interrupt in the thread, ``Command(resume=...)``, the report in the thread state, and
the same run in ``naestro runs show``. The model is scripted text over HTTP (tests/scripted_openai.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from naestro.childproc import terminate
from tests.mcp_http import free_port
from tests.scripted_openai import scripted_models

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

PLAN = {"goal": "write a.txt saying hello, then show it", "tasks": [
    {"id": "a", "role": "coder", "description": "write a.txt containing hello",
     "accept": [{"kind": "regex", "file": "a.txt", "pattern": "hello"}]},
    {"id": "b", "role": "runner", "description": "show a.txt", "deps": ["a"],
     "action": {"tool": "exec.run", "arguments": {"command": "cat a.txt"}},
     "accept": [{"kind": "file_exists", "path": "a.txt"}]}]}


def script(messages: list[dict[str, Any]]) -> dict[str, Any]:
    text = "\n".join(str(m.get("content", "")) for m in messages)
    if "Write 2-4 sentences" in text:
        return {"summary": "a.txt was written and shown."}
    if not any(m.get("role") == "assistant" for m in messages):
        return {"thought": "write it", "tool": "fs.write", "arguments": {"path": "a.txt", "content": "hello\n"}}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote a.txt", "outputs": {}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """``langgraph dev`` on a free port, with its own NAESTRO_HOME and the scripted model (one per module:
    it takes ~30 s to start)."""
    tmp_path = tmp_path_factory.mktemp("served")
    with scripted_models(script, tmp_path) as models:
        env = {**os.environ, "NAESTRO_HOME": str(tmp_path / "home"), "NAESTRO_MODELS_FILE": str(models),
               "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
        port = free_port()
        log = (tmp_path / "langgraph-dev.log").open("w")
        proc = subprocess.Popen([str(VENV_BIN / "langgraph"), "dev", "--no-browser", "--no-reload", "--port",
                                 str(port), "--config", str(REPO / "langgraph.json")], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "langgraph-dev.log").read_text()[-3000:]
                try:
                    if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                pytest.fail("langgraph dev did not start: " + (tmp_path / "langgraph-dev.log").read_text()[-3000:])
            yield url, env
        finally:
            terminate(proc, grace_s=20)
            log.close()
        server_log = (tmp_path / "langgraph-dev.log").read_text()
        assert "BlockingError" not in server_log, server_log[-4000:]


async def test_sdk_runs_a_goal_answers_a_consent_interrupt_and_reads_the_report(
        server: tuple[str, dict[str, str]]) -> None:
    url, env = server
    client = get_client(url=url)
    [assistant] = await client.assistants.search(graph_id="naestro")
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    assert schemas["input_schema"]["required"] == ["goal"]
    assert {"plan", "workspace", "mode", "approve"} <= set(schemas["input_schema"]["properties"])

    thread = await client.threads.create()
    nodes: list[str] = []
    async for part in client.runs.stream(thread["thread_id"], "naestro", input={"goal": PLAN["goal"], "plan": PLAN},
                                         stream_mode="updates"):
        assert part.event != "error", part.data
        if part.event == "updates" and isinstance(part.data, dict):
            nodes += [n for n in part.data if n != "__interrupt__"]
    assert nodes[:3] == ["plan", "schedule", "task"]  # task a ran and streamed before b (sent by a's edge) asked

    waiting = await client.threads.get(thread["thread_id"])
    assert waiting["status"] == "interrupted"
    [[interrupt]] = list(waiting["interrupts"].values())  # keyed by the waiting task
    interrupt_id, request = interrupt["id"], interrupt["value"]
    assert request["kind"] == "consent" and request["action"] == "exec.run" and request["task"] == "b"
    run_id = request["run"]
    shown = subprocess.run([str(VENV_BIN / "naestro"), "runs", "show", run_id, "--json"], env=env,
                           capture_output=True, text=True, check=True)
    assert json.loads(shown.stdout)["status"] == "waiting"

    async for part in client.runs.stream(thread["thread_id"], "naestro", stream_mode="updates",
                                         command={"resume": {interrupt_id: {"approve": True, "by": "sdk"}}}):
        assert part.event != "error", part.data
    state = await client.threads.get_state(thread["thread_id"])
    values = state["values"]
    assert values["status"] == "passed" and values["run_id"] == run_id
    assert values["tasks"]["b"]["status"] == "passed" and "hello" in values["tasks"]["b"]["summary"]
    assert values["report"].startswith("# Naestro report: PASSED")
    assert re.search(r"`exec.run` approved by sdk", values["report"])

    shown = subprocess.run([str(VENV_BIN / "naestro"), "runs", "show", run_id, "--json"], env=env,
                           capture_output=True, text=True, check=True)
    assert json.loads(shown.stdout)["status"] == "passed"
    # Naestro's own routes on the same server (langgraph.json http.app -> studio/api.py)
    async with httpx.AsyncClient(base_url=url) as http:
        record = (await http.get(f"/naestro/runs/{run_id}")).json()
        assert record["status"] == "passed" and record["served"] is True
        assert [e["task"] for e in record["events"] if e["event"] == "task_finished"] == ["a", "b"]
        assert run_id in [r["run_id"] for r in (await http.get("/naestro/runs")).json()]
        report = await http.get(f"/naestro/runs/{run_id}/report")
        assert report.text == values["report"]
        assert (await http.get("/naestro/runs/nope")).status_code == 404


async def _start_until_consent(client: Any) -> tuple[str, str]:
    thread = await client.threads.create()
    async for part in client.runs.stream(thread["thread_id"], "naestro", input={"goal": PLAN["goal"], "plan": PLAN},
                                         stream_mode="updates"):
        assert part.event != "error", part.data
    waiting = await client.threads.get(thread["thread_id"])
    [[interrupt]] = list(waiting["interrupts"].values())
    return thread["thread_id"], str(interrupt["value"]["run"])


async def test_the_cli_answers_the_servers_interrupt_and_the_sdk_sees_it(server: tuple[str, dict[str, str]]) -> None:
    url, env = server
    client = get_client(url=url)
    thread_id, run_id = await _start_until_consent(client)
    approved = subprocess.run([str(VENV_BIN / "naestro"), "approve", run_id, "--server", url, "--json"], env=env,
                              capture_output=True, text=True)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert json.loads(approved.stdout) == {"run_id": run_id, "status": "passed"}
    state = await client.threads.get_state(thread_id)  # the same thread, seen by the SDK
    assert state["values"]["status"] == "passed" and not state["next"]
    assert "(naestro approve)" in state["values"]["report"]
    assert (await client.threads.get(thread_id))["interrupts"] == {}
