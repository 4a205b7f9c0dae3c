"""The `naestro` MCP server (plan, run, status, approve) driven by a real MCP client over an in-memory transport,
with real runs (runner, LangGraph, tool servers, policy gate); only the model's text is scripted."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session
from pydantic import JsonValue

from naestro.frontdoor import naestro_server
from naestro.runtime import build_runtime
from naestro.settings import Settings
from tests.fakes import ScriptedProvider, all_text

PLAN = {"goal": "count", "tasks": [{"id": "count", "role": "runner", "description": "count files into n.txt",
                                    "accept": [{"kind": "regex", "file": "n.txt", "pattern": "^counted$"}]}]}


def script(messages: list[BaseMessage]) -> dict[str, Any]:
    text = all_text(messages)
    if "Write 2-4 sentences" in text:
        return {"summary": "Counted the files."}
    if "Your task" not in text:  # the planner
        return PLAN
    assert re.search(r"Your task \(count\)", text)
    if sum(isinstance(m, AIMessage) for m in messages) == 0:
        return {"thought": "count", "tool": "exec.run", "arguments": {"command": "echo counted > n.txt"}}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "counted", "outputs": {}}}


async def call(client: ClientSession, tool: str, args: dict[str, JsonValue]) -> dict[str, Any]:
    res = await client.call_tool(tool, args)
    assert not res.isError, res.content
    assert isinstance(res.structuredContent, dict)
    return res.structuredContent


async def wait_for(client: ClientSession, run_id: str, *states: str) -> dict[str, Any]:
    for _ in range(600):
        st = await call(client, "status", {"run_id": run_id})
        if st["status"] in states:
            return st
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {states}: {st}")


async def test_plan_run_status_approve(settings: Settings, tmp_path: Path) -> None:
    server = naestro_server(build_runtime(settings, provider=ScriptedProvider(script)))
    async with create_connected_server_and_client_session(server) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"plan", "run", "status", "approve"}

        planned = await call(client, "plan", {"goal": "count the files"})
        assert planned["source"] == "model" and planned["tasks"] == 1

        # copilot mode: the shell command needs consent, so the run waits for `approve`
        started = await call(client, "run", {"goal": "count the files", "plan": planned["plan"]})
        run_id = started["run_id"]
        waiting = await wait_for(client, run_id, "waiting")
        (consent,) = waiting["pending"]
        assert consent["action"] == "exec.run" and consent["reasons"]
        early = await client.call_tool("approve", {"run_id": run_id, "consent_id": "nope"})
        assert early.isError and "no pending consent nope" in str(early.content)

        await call(client, "approve", {"run_id": run_id})
        done = await wait_for(client, run_id, "passed", "failed")
        assert done["status"] == "passed" and done["tasks"] == [{"id": "count", "status": "passed", "attempts": 1}]
        assert done["report"] and done["report"].startswith("# Naestro report: PASSED")
        assert Path(done["workspace"], "n.txt").read_text() == "counted\n"

        unknown = await client.call_tool("status", {"run_id": "no-such-run"})
        assert unknown.isError and "naestro runs list" in str(unknown.content)
        empty = await client.call_tool("run", {})
        assert empty.isError and "give a goal" in str(empty.content)
