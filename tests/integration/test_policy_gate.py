"""The policy gate inside real runs: real LangGraph + SQLite checkpoints + MCP servers + regorus; scripted model text.

Covers the issue's acceptance: path escapes, symlinks, non-allowlisted domains and unknown tools are
denied with the reason in the report and the audit log; in Copilot mode a shell command interrupts the run,
approval resumes it (without repeating earlier model calls or effects), refusal ends the task gracefully
with a report; kill switches stop or deny at the next gate.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from naestro.errors import RunPaused
from naestro.events import read_events
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from policies.audit import anchors_dir, load_public_key, verify_log
from policies.decision import ApprovedScope, RunPolicy
from policies.gate import ConsentAnswer
from policies.switches import KillSwitches
from tests.fakes import ScriptedProvider, all_text

SUMMARY = {"summary": "done"}


def steps_script(actions: list[dict[str, Any]]) -> Any:
    """The agent takes ``actions`` in order (one per model call), then finishes; the Reporter gets a summary."""
    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        if "Write 2-4 sentences" in all_text(messages):
            return SUMMARY
        step = sum(isinstance(m, AIMessage) for m in messages)
        if step < len(actions):
            return {"thought": "next", **actions[step]}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "finished", "outputs": {}}}
    return script


class _ReadOnlyBus:
    """Only the registry side of a bus (a gate built outside a run consults nothing else)."""

    def specs(self) -> list[Any]:
        return [SimpleNamespace(name="fs.read")]


def one_task(role: str = "coder", *, accept_file: str = "done.txt", attempts: int = 1) -> Plan:
    return Plan.model_validate({"goal": "g", "tasks": [{
        "id": "t", "role": role, "description": "probe", "max_attempts": attempts,
        "accept": [{"kind": "file_exists", "path": accept_file}]}]})


def audit_records(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    path = settings.runs_dir / run_id / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_escapes_unknown_tools_and_domains_are_denied_and_reported(settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "etc-link").symlink_to("/etc")
    provider = ScriptedProvider(steps_script([
        {"tool": "fs.read", "arguments": {"path": "../" * 12 + "etc/passwd"}},
        {"tool": "fs.read", "arguments": {"path": "etc-link/passwd"}},
        {"tool": "web.fetch", "arguments": {"url": "https://evil.example.org/exfil"}},
        {"tool": "nope.teleport", "arguments": {}},
        {"tool": "fs.write", "arguments": {"path": "done.txt", "content": "ok"}},
    ]))
    result = await Runner(settings, provider).start("g", plan=one_task(), workspace=src)
    assert result.passed, result.tasks  # denials are feedback: the agent went on and did the work

    events = read_events(result.report_path.parent / "events.jsonl")
    denied = [e for e in events if e["event"] == "tool_denied"]
    assert [e["tool"] for e in denied] == ["fs.read", "fs.read", "web.fetch", "nope.teleport"]
    reasons = [" ".join(e["reasons"]) for e in denied]
    assert "resolves to /etc/passwd, outside the workspace" in reasons[0]
    assert "resolves to /etc/passwd, outside the workspace" in reasons[1]  # the symlink was followed
    assert "evil.example.org is not on the allowlist" in reasons[2]
    assert "unknown tool \"nope.teleport\"" in reasons[3]

    report = result.report_path.read_text()
    assert report.count("⛔") == 4 and "outside the workspace" in report and "not on the allowlist" in report

    decisions = [r["data"] for r in audit_records(settings, result.record.run_id) if r["kind"] == "decision"]
    assert [d["verdict"] for d in decisions if d["action"] != "model:scripted"] == \
        ["deny", "deny", "deny", "deny", "allow"]
    assert verify_log(settings.runs_dir / result.record.run_id / "audit.jsonl", load_public_key(settings.keys_dir),
                      run_id=result.record.run_id, anchors=anchors_dir(settings.home)) == []


async def test_a_file_the_goal_says_not_to_change_is_not_written(settings: Settings, tmp_path: Path) -> None:
    """Issue 22: "fix stats.py ...; do not change test_stats.py": the Coder's rewrite of the tests is denied with a
    reason that says what to do, and the task goes on to fix the code; the tests file is as it was."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "test_stats.py").write_text("from stats import median\n\ndef test_m():\n    assert median([3, 1, 2]) == 2\n")
    provider = ScriptedProvider(steps_script([
        {"tool": "fs.write", "arguments": {"path": "test_stats.py", "content": "def test_m():\n    pass\n"}},
        {"tool": "fs.write", "arguments": {"path": "./stats.py",
                                           "content": "def median(xs):\n    return sorted(xs)[len(xs) // 2]\n"}},
    ]))
    goal = "Fix stats.py so that median works; do not change test_stats.py."
    result = await Runner(settings, provider).start(goal, plan=one_task(accept_file="stats.py"), workspace=src)
    assert result.passed, result.tasks

    events = read_events(result.report_path.parent / "events.jsonl")
    [denied] = [e for e in events if e["event"] == "tool_denied"]
    assert denied["tool"] == "fs.write"
    assert "the goal keeps" in " ".join(denied["reasons"]) and "test_stats.py" in " ".join(
        denied["reasons"])
    workspace = Path(result.record.workspace)
    assert "assert median([3, 1, 2]) == 2" in (workspace / "test_stats.py").read_text()
    assert (workspace / "stats.py").exists()


async def test_the_input_data_the_goal_describes_is_not_written(settings: Settings, tmp_path: Path) -> None:
    """Issue-22 slice at 6dd829b (report_score_stats): a re-planned Coder task wrote invented rows over scores.csv,
    the goal's input. The write is denied with a reason that says what to do; the input is as it was."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "scores.csv").write_text("student,score\nalice,80\nbob,90\n")
    provider = ScriptedProvider(steps_script([
        {"tool": "fs.write", "arguments": {"path": "scores.csv", "content": "```csv\nstudent,score\nAlice,85\n```"}},
        {"tool": "fs.write", "arguments": {"path": "stats.json", "content": '{"mean": 85, "max": 90, "count": 2}'}},
    ]))
    goal = "scores.csv has columns student,score. Write stats.json with the keys mean, max and count."
    result = await Runner(settings, provider).start(goal, plan=one_task(accept_file="stats.json"), workspace=src)
    assert result.passed, result.tasks
    events = read_events(result.report_path.parent / "events.jsonl")
    [denied] = [e for e in events if e["event"] == "tool_denied"]
    assert "the goal keeps" in " ".join(denied["reasons"]) and "scores.csv" in " ".join(denied["reasons"])
    assert (Path(result.record.workspace) / "scores.csv").read_text() == "student,score\nalice,80\nbob,90\n"


async def test_copilot_shell_command_waits_for_consent_then_resumes(settings: Settings) -> None:
    provider = ScriptedProvider(steps_script([
        {"tool": "fs.write", "arguments": {"path": "before.txt", "content": "1"}},
        {"tool": "exec.run", "arguments": {"command": "echo hi > done.txt"}},
    ]))
    runner = Runner(settings, provider)
    waiting = await runner.start("g", plan=one_task())
    assert waiting.record.status == "waiting" and not waiting.passed
    [pending] = waiting.pending
    assert pending.request["action"] == "exec.run" and pending.request["risk"] == "high"
    assert "shell command" in " ".join(map(str, pending.request["reasons"]))
    assert [p.id for p in await runner.pending(waiting.record.run_id)] == [pending.id]
    calls_before = provider.model.calls

    done = await runner.resume(waiting.record.run_id, {pending.id: ConsentAnswer(approve=True, by="tester",
                                                                                  purpose="test")})
    assert done.passed and done.record.status == "passed"
    assert (Path(done.record.workspace) / "done.txt").read_text().strip() == "hi"
    # The node re-ran from its start: earlier model replies and the fs.write came from the journal.
    assert provider.model.calls == calls_before + 2  # the finish step + the report summary
    events = read_events(done.report_path.parent / "events.jsonl")
    assert [e["tool"] for e in events if e["event"] == "tool_call"] == ["fs.write", "exec.run"]
    assert any(e["event"] == "tool_replayed" and e["tool"] == "fs.write" for e in events)
    consent = [r["data"] for r in audit_records(settings, done.record.run_id) if r["kind"] == "consent"]
    assert consent == [{**consent[0], "approve": True, "by": "tester", "purpose": "test", "action": "exec.run"}]
    assert "approved by tester" in done.report_path.read_text()


async def test_refused_consent_fails_the_task_gracefully_with_a_report(settings: Settings) -> None:
    provider = ScriptedProvider(steps_script([{"tool": "exec.run", "arguments": {"command": "rm -rf /tmp/x"}}]))
    runner = Runner(settings, provider)
    waiting = await runner.start("g", plan=one_task())
    [pending] = waiting.pending
    done = await runner.resume(waiting.record.run_id, {pending.id: ConsentAnswer(approve=False, by="tester")})
    assert done.record.status == "failed" and not done.pending
    assert done.tasks["t"]["status"] == "failed"
    report = done.report_path.read_text()
    assert "refused by tester" in report and "tester refused consent" in report


async def test_remembered_consent_covers_later_calls(settings: Settings) -> None:
    provider = ScriptedProvider(steps_script([
        {"tool": "exec.run", "arguments": {"command": "echo 1 > a.txt"}},
        {"tool": "exec.run", "arguments": {"command": "echo 2 > done.txt"}},
    ]))
    runner = Runner(settings, provider)
    waiting = await runner.start("g", plan=one_task())
    [pending] = waiting.pending
    done = await runner.resume(waiting.record.run_id, {pending.id: ConsentAnswer(approve=True, remember=True)})
    assert done.passed and not done.pending  # the second exec.run did not ask again
    # persisted in run.json, so a crash + resume keeps it; `naestro revoke consents` drops it
    assert runner.store.load(done.record.run_id).remembered == [ApprovedScope(tool="exec.run")]
    KillSwitches(settings.control_db).set("revoke_consents", done.record.run_id)
    gate = Runner(settings, provider).make_gate(run_id=done.record.run_id, workspace=Path(done.record.workspace),
                                                policy=done.record.policy, bus=_ReadOnlyBus(), events=None,
                                                record=runner.store.load(done.record.run_id))
    assert gate.remembered == [ApprovedScope(tool="exec.run")]
    gate.authorize_tool(task="t", role="coder", tool="fs.read", arguments={"path": "a.txt"})  # reads the switch
    assert gate.remembered == [] and runner.store.load(done.record.run_id).remembered == []


async def test_auto_mode_denies_what_is_not_pre_approved(settings: Settings) -> None:
    provider = ScriptedProvider(steps_script([
        {"tool": "exec.run", "arguments": {"command": "echo hi > done.txt"}},
        {"tool": "fs.write", "arguments": {"path": "done.txt", "content": "written instead"}},
    ]))
    result = await Runner(settings, provider).start("g", plan=one_task(), policy=RunPolicy(mode="auto"))
    assert result.passed and not result.pending
    denied = [e for e in read_events(result.report_path.parent / "events.jsonl") if e["event"] == "tool_denied"]
    assert denied[0]["tool"] == "exec.run" and "auto mode" in denied[0]["reasons"][0]

    approved = RunPolicy(mode="auto", approve=[ApprovedScope(tool="exec.run")])
    again = await Runner(settings, ScriptedProvider(steps_script([
        {"tool": "exec.run", "arguments": {"command": "echo hi > done.txt"}}]))).start(
            "g", plan=one_task(), policy=approved)
    assert again.passed


async def test_guide_mode_has_no_side_effects(settings: Settings) -> None:
    provider = ScriptedProvider(steps_script([{"tool": "fs.write", "arguments": {"path": "done.txt", "content": "x"}}]))
    result = await Runner(settings, provider).start("g", plan=one_task(), policy=RunPolicy(mode="guide"))
    assert not result.passed and not (Path(result.record.workspace) / "done.txt").exists()


async def test_quarantined_tool_is_denied_everywhere(settings: Settings) -> None:
    KillSwitches(settings.control_db).set("quarantine_tool", "fs.write", reason="incident 42")
    provider = ScriptedProvider(steps_script([{"tool": "fs.write", "arguments": {"path": "done.txt", "content": "x"}}]))
    result = await Runner(settings, provider).start("g", plan=one_task())
    assert not result.passed
    denied = [e for e in read_events(result.report_path.parent / "events.jsonl") if e["event"] == "tool_denied"]
    assert "quarantined" in denied[0]["reasons"][0]


async def test_pause_switch_stops_the_run_and_resume_continues(settings: Settings) -> None:
    switches = KillSwitches(settings.control_db)

    def pause_on_start(ev: dict[str, Any]) -> None:
        if ev["event"] == "task_started":
            switches.set("pause", str(ev["run"]), reason="looks wrong", by="tester")

    provider = ScriptedProvider(steps_script([{"tool": "fs.write", "arguments": {"path": "done.txt", "content": "x"}}]))
    with pytest.raises(RunPaused, match="looks wrong"):
        await Runner(settings, provider, on_event=pause_on_start).start("g", plan=one_task())
    [record] = Runner(settings, provider).store.list()
    assert record.status == "paused" and not (Path(record.workspace) / "done.txt").exists()
    done = await Runner(settings, provider).resume(record.run_id)
    assert done.passed
    kinds = [r["kind"] for r in audit_records(settings, record.run_id)]
    assert "paused" in kinds and "unpaused" in kinds


async def test_broken_policy_file_refuses_to_start(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "rego"
    bad.mkdir()
    (bad / "gate.rego").write_text("package naestro.gate\nimport rego.v1\n\ndecision := {\"allow\": true\n")
    from naestro.errors import PolicyError

    with pytest.raises(PolicyError, match=re.escape("gate.rego:5")):
        Runner(settings.model_copy(update={"policy_dir": bad}), ScriptedProvider(steps_script([])))
    assert not settings.runs_dir.exists()


async def test_the_planners_model_calls_pass_the_gate(settings: Settings) -> None:
    from naestro.errors import PolicyDenied

    plan = {"tasks": [{"id": "t", "role": "coder", "description": "probe",
                       "accept": [{"kind": "file_exists", "path": "done.txt"}]}]}

    def planner_then_agent(messages: list[BaseMessage]) -> Any:
        if "Your task (t)" in all_text(messages) or "Write 2-4 sentences" in all_text(messages):
            return steps_script([{"tool": "fs.write", "arguments": {"path": "done.txt", "content": "x"}}])(messages)
        return plan

    result = await Runner(settings, ScriptedProvider(planner_then_agent)).start("write done.txt")
    assert result.passed and result.record.plan_source == "model"
    decisions = [r["data"] for r in audit_records(settings, result.record.run_id) if r["kind"] == "decision"]
    assert decisions[0]["task"] == "plan" and decisions[0]["action"] == "model:scripted"

    KillSwitches(settings.control_db).set("quarantine_model", "scripted", reason="provider incident")
    with pytest.raises(PolicyDenied, match="quarantined"):
        await Runner(settings, ScriptedProvider(planner_then_agent)).start("write done.txt")


async def test_external_server_from_tools_yaml_is_callable_subject_to_policy(settings: Settings) -> None:
    import sys

    import yaml

    from tests.unit.test_mcp_registry import EXTERNAL

    script = settings.home / "calc_server.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(EXTERNAL)
    (settings.home / "tools.yaml").write_text(yaml.safe_dump(
        {"servers": {"calc": {"command": sys.executable, "args": [str(script)], "roles": ["dataops"]}}}))
    plan = Plan.model_validate({"goal": "g", "tasks": [{
        "id": "sum", "role": "dataops", "description": "add", "outputs": {"result": {"schema": {"type": "string"}}},
        "action": {"tool": "calc.add", "arguments": {"a": 2, "b": 3}},
        "accept": [{"kind": "regex", "output": "result", "pattern": "^5$"}]}]})
    provider = ScriptedProvider(steps_script([]))
    # An external server's tool is sensitive by default: Copilot asks before the first call.
    waiting = await Runner(settings, provider).start("g", plan=plan)
    [pending] = waiting.pending
    assert pending.request["action"] == "calc.add"
    assert "external server" in " ".join(map(str, pending.request["reasons"]))
    done = await Runner(settings, provider).resume(waiting.record.run_id, {pending.id: ConsentAnswer(approve=True)})
    assert done.passed, done.tasks
    # Pre-approved, it just runs; a role without the grant is denied by the policy.
    approved = RunPolicy(approve=[ApprovedScope(tool="calc.*")])
    assert (await Runner(settings, provider).start("g", plan=plan, policy=approved)).passed
    task = plan.tasks[0].model_dump(by_alias=True, exclude_defaults=True)
    other = Plan.model_validate({"goal": "g", "tasks": [{**task, "role": "coder"}]})
    denied = await Runner(settings, provider).start("g", plan=other, policy=approved)
    assert not denied.passed and "may not use tool \"calc.add\"" in denied.tasks["sum"]["summary"]
