"""Runs of one runtime share its MCP server processes (issue 16), each with its own sessions and workspace.

Real LangGraph, SQLite checkpoints, the real pool over streamable HTTP; only model text is scripted.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from mcp import ClientSession

from mcp_servers.workspace import BUILTIN_SERVERS
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from naestro.toolbus import McpToolBus
from naestro.tools import pooled_run_servers
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text

AUTO = RunPolicy(approve=[ApprovedScope(tool="exec.run")])  # the command check runs without asking


def script(messages: list[BaseMessage]) -> dict[str, Any]:
    """Write a.txt with the word the task's description names, then finish."""
    text = all_text(messages)
    if "Write 2-4 sentences" in text:  # the Reporter's summary
        return {"summary": "The file was written and its check passed."}
    word = re.search(r"write a\.txt saying (\w+)", text)
    assert word, text
    if not any(isinstance(m, AIMessage) for m in messages):
        return {"thought": "write it", "tool": "fs.write", "arguments": {"path": "a.txt", "content": word.group(1)}}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote a.txt", "outputs": {}}}


def plan(word: str) -> Plan:
    return Plan.model_validate({"goal": f"say {word}", "tasks": [
        {"id": "a", "role": "coder", "description": f"write a.txt saying {word}",
         "accept": [{"kind": "regex", "file": "a.txt", "pattern": f"^{word}$"},
                    {"kind": "command", "command": f"grep -qx {word} a.txt"}]}]})


async def test_concurrent_runs_share_the_pool_and_keep_their_workspaces(settings: Settings) -> None:
    runner = Runner(settings, ScriptedProvider(script, delay_s=0.2))
    pool = runner.runtime.mcp_pool
    assert pool.pids() == {}  # nothing starts before a run needs it
    words = ("one", "two", "three")
    results = await asyncio.gather(*(runner.start(f"say {w}", plan=plan(w), policy=AUTO) for w in words))
    assert [r.passed for r in results] == [True, True, True]
    for word, result in zip(words, results, strict=True):
        workspace = Path(result.record.workspace)
        assert sorted(p.name for p in workspace.iterdir()) == ["a.txt"]
        assert (workspace / "a.txt").read_text() == word
    pids = pool.pids()
    assert sorted(pids) == sorted(BUILTIN_SERVERS)  # one process per server kind for all three runs
    again = await runner.start("say four", plan=plan("four"), policy=AUTO)  # finished runs closed only their sessions
    assert again.passed and pool.pids() == pids
    await runner.services.aclose()  # the runtime's end ends the pool
    assert pool.pids() == {}


async def test_a_run_opens_sessions_only_to_the_servers_it_calls(settings: Settings, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run lists every pooled server's tools; later runs know them from the pool's catalog and open a
    server's session on the first call to it, without listing its tools again (issue 16: six sessions per run,
    most never used, and two round trips to open one)."""
    runner = Runner(settings, ScriptedProvider(script))
    assert (await runner.start("say one", plan=plan("one"), policy=AUTO)).passed
    record = runner.store.create("lazy", source_workspace=None, in_place=False, policy=AUTO)
    live = await runner.services.live(record.run_id)
    assert live.bus is not None
    assert live.bus.open_servers() == []  # every tool known, no session opened yet
    servers, untrusted = await pooled_run_servers(runner.runtime.mcp_pool, tmp_path, runner.runtime.tools_config)
    async with McpToolBus(servers, untrusted=untrusted) as listed:  # no catalog: every session opened and listed
        assert [s.model_dump() for s in live.bus.specs()] == [s.model_dump() for s in listed.specs()]
    listings: list[object] = []
    original = ClientSession.list_tools

    async def counted(self: ClientSession, *args: Any, **kwargs: Any) -> Any:
        listings.append(self)
        return await original(self, *args, **kwargs)
    monkeypatch.setattr(ClientSession, "list_tools", counted)
    result = await live.bus.call("fs.write", {"path": "x.txt", "content": "lazy"})
    assert result.ok, result.text
    assert live.bus.open_servers() == ["fs"] and listings == []  # the catalog's version matched: no tools/list
    assert (Path(record.workspace) / "x.txt").read_text() == "lazy"
    assert (await live.bus.call("fs.read", {"path": "x.txt"})).ok and live.bus.open_servers() == ["fs"]
    await runner.services.aclose()
