"""Memory in real runs (issue 19): the run graph writes episodes when a run ends, the Planner of a later run
recalls the plan that passed, and two passes of one plan shape become a skill. Real LangGraph, SQLite, MCP, Rego,
sandbox, the embedded FalkorDB child process of the home and MiniLM; only the model's text is scripted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from typer.testing import CliRunner, Result

from naestro.cli import app
from naestro.events import read_events
from naestro.runner import Runner
from naestro.settings import Settings
from tests.fakes import ScriptedProvider, all_text


def planned(file: str) -> dict[str, Any]:
    return {"goal": "g", "tasks": [{"id": "write_file", "role": "coder", "description": f"Write {file}",
                                    "accept": [{"kind": "regex", "file": file, "pattern": "^ok$"}]}]}


def script_for(file: str, planner_prompts: list[str]) -> Any:
    def script(messages: list[BaseMessage]) -> Any:
        text = all_text(messages)
        if "You are the Planner" in text:
            planner_prompts.append(text)
            return planned(file)
        if "Write 2-4 sentences" in text:
            return {"summary": "done"}
        if not any(isinstance(m, AIMessage) for m in messages):
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": file, "content": "ok"}}
        return {"thought": "f", "tool": "finish", "arguments": {"summary": f"wrote {file}", "outputs": {}}}
    return script


async def test_runs_remember_recall_and_induce_a_skill(tmp_path: Path, settings: Settings) -> None:
    settings = settings.model_copy(update={"memory": True, "reference_checks": False})
    prompts: list[str] = []
    runner = Runner(settings, ScriptedProvider(script_for("alpha.txt", prompts)))
    try:
        first = await runner.start("Write alpha.txt containing ok")
        assert first.passed
        events = read_events(settings.runs_dir / first.record.run_id / "events.jsonl")
        written = [e for e in events if e["event"] == "memory_written"]
        assert written and written[0]["episodes"] == 2  # the task and the run
        assert "Memory of similar past goals" not in prompts[0]  # nothing to recall yet
        runner.provider.model.script = script_for("beta.txt", prompts)  # type: ignore[attr-defined]
        second = await runner.start("Write beta.txt containing ok")
        assert second.passed
        recall = prompts[-1]
        assert "Memory of similar past goals" in recall and "PASSED goal 'Write alpha.txt containing ok'" in recall
        events = read_events(settings.runs_dir / second.record.run_id / "events.jsonl")
        recalled = [e for e in events if e["event"] == "memory_recalled"]
        assert recalled and recalled[0]["keys"] == [f"{first.record.run_id}/run/1"]
        decisions = [e for e in events if e["event"] == "policy_decision" and e["action"] == "memory.recall"]
        assert [(d["task"], d["verdict"]) for d in decisions] == [("plan", "allow")]
    finally:
        await runner.runtime.aclose()  # stops the home's FalkorDB: nobody else uses it
    skills = json.loads((settings.home / "memory" / "skills.json").read_text())
    assert [(s["name"], s["support"]) for s in skills] == [("coder[regex](txt)", 2)]
    env = {"NAESTRO_HOME": str(settings.home)}

    async def cli(*args: str) -> Result:  # the commands call asyncio.run: not on this test's loop
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    listed = await cli("skills", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.output)[0]["support"] == 2
    found = await cli("memory", "search", "alpha.txt", "--json")
    assert found.exit_code == 0, found.output
    assert any(h["run_id"] == first.record.run_id for h in json.loads(found.output))
    denied = await cli("memory", "search", "alpha", "--role", "coder", "--slice", "plans")
    assert denied.exit_code == 3 and "may not read memory slice" in denied.output
    forgot = await cli("memory", "forget", "--run", first.record.run_id)
    assert forgot.exit_code == 0 and "forgot 2 episode(s)" in forgot.output
    timeline = await cli("memory", "timeline", "--json")
    assert {e["run_id"] for e in json.loads(timeline.output)["episodes"]} == {second.record.run_id}
