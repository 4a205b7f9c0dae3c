"""Memory in real runs (issue 19): the run graph writes episodes when a run ends, the Planner of a later run
recalls the plan that passed, its agents recall earlier failures of their task through the gate, two passes of
one plan shape become a skill, and the CLI and the Studio show it. Real LangGraph, SQLite, MCP, Rego, sandbox, the
embedded FalkorDB child process of the home and MiniLM; only the model's text is scripted."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from naestro.cli import app
from naestro.events import read_events
from naestro.runner import Runner
from naestro.settings import Settings
from policies.engines import REGO_DIR
from studio.api import build_app
from tests.fakes import ScriptedProvider, all_text


def studio_memory(settings: Settings, run_id: str) -> dict[str, Any]:
    """The Studio's memory routes on the home (its lifespan closes the memory it opened)."""
    with TestClient(build_app(settings)) as client:
        timeline = client.get("/naestro/memory/timeline").json()
        one_run = client.get("/naestro/memory/timeline", params={"run": run_id}).json()
        found = client.get("/naestro/memory/search", params={"q": "Write alpha.txt", "limit": 3}).json()
        return {"timeline_runs": set(timeline["runs"]), "skills": len(timeline["skills"]),
                "run_kinds": sorted(e["kind"] for e in one_run["episodes"]), "search_top": found[0]["run_id"],
                "bad_kind": client.get("/naestro/memory/timeline", params={"kind": "nope"}).status_code,
                "no_query": client.get("/naestro/memory/search").status_code}


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
        # the planner's recall of past plans, then the Coder's of facts for its task (as its role)
        assert [(d["task"], d["verdict"]) for d in decisions] == [("plan", "allow"), ("write_file", "allow")]
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
    studio = await asyncio.to_thread(studio_memory, settings, first.record.run_id)
    assert studio["timeline_runs"] == {first.record.run_id, second.record.run_id}
    assert studio["run_kinds"] == ["run", "task"] and studio["skills"] == 1
    assert studio["search_top"] == first.record.run_id
    assert studio["bad_kind"] == 400 and studio["no_query"] == 400
    denied = await cli("memory", "search", "alpha", "--role", "coder", "--slice", "plans")
    assert denied.exit_code == 3 and "may not read memory slice" in denied.output
    forgot = await cli("memory", "forget", "--run", first.record.run_id)
    assert forgot.exit_code == 0 and "forgot 2 episode(s)" in forgot.output
    timeline = await cli("memory", "timeline", "--json")
    assert {e["run_id"] for e in json.loads(timeline.output)["episodes"]} == {second.record.run_id}


def agent_script(content: str, prompts: list[str]) -> Any:
    """Plans one coder task writing alpha.txt; every agent attempt writes ``content`` and finishes."""
    def script(messages: list[BaseMessage]) -> Any:
        text = all_text(messages)
        if "You are the Planner" in text:
            return planned("alpha.txt")
        if "Write 2-4 sentences" in text:
            return {"summary": "done"}
        if not any(isinstance(m, AIMessage) for m in messages):
            prompts.append(text)
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": "alpha.txt", "content": content}}
        return {"thought": "f", "tool": "finish", "arguments": {"summary": "wrote alpha.txt", "outputs": {}}}
    return script


async def test_agents_recall_earlier_failures_through_the_gate(tmp_path: Path, settings: Settings) -> None:
    """A second run's Coder prompt holds the first run's failure of the same task (from the slices its role may
    read), the recall is a gate decision and an event; a role the policy lets read nothing gets a deny, no data."""
    settings = settings.model_copy(update={"memory": True, "reference_checks": False, "review": False})
    prompts: list[str] = []
    runner = Runner(settings, ScriptedProvider(agent_script("wrong", prompts)))
    try:
        first = await runner.start("Write alpha.txt containing ok")
        assert not first.passed
        first_id = first.record.run_id
        assert prompts and not any("Facts remembered from earlier runs" in p for p in prompts)
        prompts.clear()
        runner.provider.model.script = agent_script("ok", prompts)  # type: ignore[attr-defined]
        second = await runner.start("Write alpha.txt containing ok")
        assert second.passed
    finally:
        await runner.runtime.aclose()
    coder = prompts[0]
    assert "Facts remembered from earlier runs" in coder
    assert f"Task write_file (coder) failed after 2 attempt(s) in run {first_id}" in coder
    assert "Why it failed:" in coder
    events = read_events(settings.runs_dir / second.record.run_id / "events.jsonl")
    recalled = [e for e in events if e["event"] == "memory_recalled" and e.get("task") == "write_file"]
    assert recalled and recalled[0]["role"] == "coder"
    assert f"{first_id}/task/0" in recalled[0]["keys"]
    decisions = [(d["task"], d["verdict"]) for d in events
                 if d["event"] == "policy_decision" and d["action"] == "memory.recall"]
    assert ("write_file", "allow") in decisions

    # The same home under a policy whose data lets the coder read no slice: the recall is denied and audited.
    policy = tmp_path / "rego"
    shutil.copytree(REGO_DIR, policy)
    data = json.loads((policy / "memory.json").read_text())
    del data["naestro"]["memory"]["readable"]["coder"]
    (policy / "memory.json").write_text(json.dumps(data))
    prompts.clear()
    denied_runner = Runner(settings.model_copy(update={"policy_dir": policy}),
                           ScriptedProvider(agent_script("ok", prompts)))
    try:
        third = await denied_runner.start("Write alpha.txt containing ok")
        assert third.passed
    finally:
        await denied_runner.runtime.aclose()
    assert prompts and not any("Facts remembered from earlier runs" in p for p in prompts)
    events = read_events(settings.runs_dir / third.record.run_id / "events.jsonl")
    denials = [e for e in events if e["event"] == "memory_denied"]
    assert [(e["role"], e["task"]) for e in denials] == [("coder", "write_file")]
    assert "slices" in " ".join(denials[0]["reasons"])
    assert not [e for e in events if e["event"] == "memory_recalled" and e.get("task") == "write_file"]
    decisions = [(d["task"], d["verdict"]) for d in events
                 if d["event"] == "policy_decision" and d["action"] == "memory.recall"]
    assert ("write_file", "deny") in decisions
