"""Guide mode proposes; a deny is never a reason to re-plan (issue 18).

Seen: guide mode on a plan whose write was denied re-planned new tasks that guide mode also denied, retried each
three times (39k tokens, 5.5 min), and the --json output no longer listed the user's tasks. Real graph, gate,
MCP tools and checkpointer; the model's text is scripted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from naestro.events import read_events
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from nodes.proposal import DENIED, PROPOSED
from policies.decision import RunPolicy
from tests.fakes import ScriptedProvider, all_text

PLAN = {"goal": "Write hello.py printing hello, run it, and update README.md to say how", "tasks": [
    {"id": "write_hello", "role": "coder", "description": "Write hello.py that prints hello and run it",
     "accept": [{"kind": "command", "command": "python3 hello.py"}]},
    {"id": "readme", "role": "coder", "description": "Update README.md", "deps": ["write_hello"],
     "accept": [{"kind": "regex", "file": "README.md", "pattern": "python3 hello.py"}]}]}

STEPS = {"write_hello": [("fs.write", {"path": "hello.py", "content": "print('hello')\n"}),
                         ("exec.run", {"command": "python3 hello.py"})],
         "readme": [("fs.write", {"path": "README.md", "content": "# Hello\nRun `python3 hello.py`.\n"})]}


def agent(observations: list[str]) -> Any:
    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You are the Planner" in text or "Turn the user's goal into a small plan" in text:
            raise AssertionError("no re-plan may happen")
        if "Write 2-4 sentences" in text:
            return {"summary": "proposed"}
        tid = "readme" if "Your task (readme)" in text else "write_hello"
        done = sum(isinstance(m, AIMessage) for m in messages)
        if done:
            observations.append(str(messages[-1].content))
        if done < len(STEPS[tid]):
            tool, args = STEPS[tid][done]
            return {"thought": "next", "tool": tool, "arguments": args}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": f"{tid} proposed", "outputs": {}}}
    return script


async def test_guide_mode_ends_with_a_proposal_and_no_replan(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"max_replans": 2})
    source = tmp_path / "src"
    source.mkdir()
    (source / "README.md").write_text("# Hello\nTODO\n")
    observations: list[str] = []
    plan = Plan.model_validate(PLAN)
    result = await Runner(settings, ScriptedProvider(agent(observations))).start(
        plan.goal, plan=plan, workspace=source, policy=RunPolicy(mode="guide"))
    workspace = Path(result.record.workspace)
    assert not result.passed and not (workspace / "hello.py").exists()
    assert (workspace / "README.md").read_text() == "# Hello\nTODO\n"
    # The user's tasks, one attempt each (no retry, no Reviewer pass), the dependent one proposed too.
    assert list(result.tasks) == ["write_hello", "readme"] and result.record.plans == ["plan.json"]
    assert {t: (r["status"], r["attempts"]) for t, r in result.tasks.items()} == {
        "write_hello": ("failed", 1), "readme": ("failed", 1)}
    assert all(r.get("error", "").startswith("guide mode: ") for r in result.tasks.values())
    # the agent heard its actions were recorded, and was not told to verify by running anything
    assert [o.split("]")[0] for o in observations] == ["[fs.write ERROR", "[exec.run ERROR", "[fs.write ERROR"]
    assert all(PROPOSED in o for o in observations)
    events = read_events(result.report_path.parent / "events.jsonl")
    assert not [e for e in events if e["event"] == "replanning"]
    assert [e["reason"] for e in events if e["event"] == "replan_skipped"] == [
        "guide mode proposes; it does not re-plan"]
    assert [(e["task"], e["tool"]) for e in events if e["event"] == "proposed"] == [
        ("write_hello", "fs.write"), ("write_hello", "exec.run"), ("readme", "fs.write")]
    report = result.report_path.read_text()
    assert report.startswith("# Naestro proposal (guide mode: nothing was run)")
    assert "new file `hello.py`" in report and "print('hello')" in report
    assert "changes to `README.md`" in report and "-TODO" in report and "+Run `python3 hello.py`." in report
    assert "- write_hello: `python3 hello.py`" in report  # the command it would run
    assert "- write_hello (acceptance check): `python3 hello.py`" in report


async def test_a_policy_deny_is_not_a_reason_to_replan(settings: Settings) -> None:
    """Copilot mode: the agent's write outside the workspace is denied by policy; the task fails; no re-plan."""
    settings = settings.model_copy(update={"max_replans": 2, "review": False})
    plan = Plan.model_validate({"goal": "write notes", "tasks": [
        {"id": "notes", "role": "coder", "description": "write notes.txt",
         "accept": [{"kind": "regex", "file": "notes.txt", "pattern": "ok"}]}]})

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "Turn the user's goal into a small plan" in text:
            raise AssertionError("no re-plan may happen")
        if "Write 2-4 sentences" in text:
            return {"summary": "denied"}
        if not any(isinstance(m, AIMessage) for m in messages):
            return {"thought": "w", "tool": "fs.write",
                    "arguments": {"path": "/etc/naestro-notes.txt", "content": "ok"}}
        return {"thought": "f", "tool": "finish", "arguments": {"summary": "s", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script)).start(plan.goal, plan=plan)
    assert not result.passed and result.tasks["notes"]["status"] == "failed"
    assert result.tasks["notes"].get("error", "").startswith(f"{DENIED}: fs.write")
    events = read_events(result.report_path.parent / "events.jsonl")
    assert not [e for e in events if e["event"] == "replanning"]
    [skipped] = [e["reason"] for e in events if e["event"] == "replan_skipped"]
    assert "route around the policy" in skipped
    assert result.report_path.read_text().startswith("# Naestro report: FAILED")


async def test_a_mistaken_read_outside_the_workspace_does_not_stop_the_replan(settings: Settings) -> None:
    """Issue-22 slice: the Coder listed an absolute path outside the workspace; the gate denied that read-only call
    (path_confinement), and the run that failed on its tests was never re-planned. A denied write still stops the
    re-plan (the test above)."""
    settings = settings.model_copy(update={"max_replans": 1, "review": False})
    plan = Plan.model_validate({"goal": "write notes", "tasks": [
        {"id": "notes", "role": "coder", "description": "write notes.txt", "max_attempts": 1,
         "accept": [{"kind": "regex", "file": "notes.txt", "pattern": "^ok$"}]}]})
    replan = {"goal": "write notes", "tasks": [
        {"id": "fix", "role": "coder", "description": "write notes.txt saying ok",
         "accept": [{"kind": "regex", "file": "notes.txt", "pattern": "^ok$"}]}]}

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "You are the Planner" in text:
            return replan
        if "Write 2-4 sentences" in text:
            return {"summary": "notes.txt says ok"}
        turns = sum(isinstance(m, AIMessage) for m in messages)
        if turns == 0:
            return {"thought": "where am I", "tool": "fs.list", "arguments": {"path": "/srv/project"}}
        if turns == 1:
            content = "ok" if "Your task (fix)" in text else "not ok"
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": "notes.txt", "content": content}}
        return {"thought": "f", "tool": "finish", "arguments": {"summary": "s", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script)).start(plan.goal, plan=plan)
    events = read_events(result.report_path.parent / "events.jsonl")
    assert [e["tool"] for e in events if e["event"] == "tool_denied"] == ["fs.list", "fs.list"]  # both phases
    assert not [e for e in events if e["event"] == "replan_skipped"]
    assert [e["phase"] for e in events if e["event"] == "replanning"] == [1]
    assert result.passed and result.tasks["fix"]["status"] == "passed"
