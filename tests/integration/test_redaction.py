"""Seeded secrets and PII never leave the entry points: goal text, a workspace file, a tool's output.

A real run (LangGraph, SQLite checkpoints, MCP servers, regorus, bubblewrap sandbox, OTLP export to a real
receiver); only the model's text is scripted. Afterwards every artifact is scanned for the seeds: run dir
(events, spans, audit log, journal, report, run.json, plans), the checkpoint database's bytes, the exported
spans, captured logs and console output, and the workspace files the agent wrote.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from naestro import redact as redact_module
from naestro.events import read_events
from naestro.plan import Plan
from naestro.redact import PLACEHOLDER, presidio_available
from naestro.runner import Runner
from naestro.settings import Settings
from naestro.telemetry import OtlpSink, Telemetry, TelemetrySettings
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text


def iban() -> str:
    """A fresh German IBAN with valid check digits (presidio validates them)."""
    bban = "".join(secrets.choice("0123456789") for _ in range(18))
    check = 98 - int(bban + "131400") % 97  # D=13, E=14, then "00"
    return f"DE{check:02d}{bban}"


def seeds() -> dict[str, str]:
    """Fresh values per test run, so a hit can only come from this run."""
    r = secrets.token_hex(12)
    extra = {"person": "Maria Gonzalez", "iban": iban()} if presidio_available() else {}
    return {**extra,
        "openai_key": f"sk-proj-{secrets.token_urlsafe(24)}",
        "github_token": f"ghp_{secrets.token_hex(18)}",
        "aws_key": "AKIA" + secrets.token_hex(8).upper(),
        "password": f"Pw{r}",
        "private_key": f"-----BEGIN RSA PRIVATE KEY-----\nMIIE{r}\n-----END RSA PRIVATE KEY-----",
        "env_token": f"unshaped{r[::-1]}",  # no known shape: caught because it is an exported variable's value
        "email": f"alice.{r[:6]}@example.org",
        "card": "4111 1111 1111 1111",
        "phone": "415-555-0132",
    }


async def test_seeded_secrets_reach_no_output(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    s = seeds()
    monkeypatch.setenv("NAESTRO_TEST_API_TOKEN", s["env_token"])
    redact_module._env_secrets.cache_clear()
    caplog.set_level(logging.DEBUG)
    goal = f"Deploy with key {s['openai_key']} and tell {s['email']} (card {s['card']})."
    if presidio_available():  # people and places in prose, checksummed numbers in data (naestro[redact])
        goal += f" Ask {s['person']} in Madrid first."
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text(
        f"github: {s['github_token']}\naws: {s['aws_key']}\npassword = {s['password']}\n{s['private_key']}\n")
    # the tool prints seeds that appear nowhere in its arguments (reversed in the command)
    printed = f"{s['env_token']} {s['phone']} {s.get('iban', '')}"
    command = f"python3 -c \"print('{printed[::-1]}'[::-1])\""
    seen: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        seen.append(text)
        if "Write 2-4 sentences" in text:
            return {"summary": f"Done. Last observation: {str(messages[-1].content)[-300:]}"}
        step = sum(isinstance(m, AIMessage) for m in messages)
        last = str(messages[-1].content)
        actions: list[dict[str, Any]] = [
            {"tool": "fs.read", "arguments": {"path": "notes.txt"}},
            {"tool": "exec.run", "arguments": {"command": command}},
            # it writes back what it saw: the handles resolve for the gate, which denies the secrets to fs.write
            # (no `secret` scope), so the file is never written
            {"tool": "fs.write", "arguments": {"path": "out.txt", "content": "\n".join(seen[-2:])[-4000:] + last}},
        ]
        if step < len(actions):
            return {"thought": "next", **actions[step]}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": f"copied: {last[:400]}",
                                                                      "outputs": {"notes": last[:400]}}}

    plan = Plan.model_validate({"goal": goal, "tasks": [{
        "id": "a", "role": "coder", "description": f"copy the notes for {s['email']}",
        "outputs": {"notes": {"schema": {"type": "string"}}},
        "accept": [{"kind": "file_exists", "path": "notes.txt"}]}]})
    policy = RunPolicy(approve=[ApprovedScope(tool="exec.run")])
    with OtlpSink() as sink:
        telemetry = Telemetry(TelemetrySettings(), exporter=OTLPSpanExporter(endpoint=sink.endpoint + "/v1/traces"))
        runner = Runner(settings, ScriptedProvider(script), telemetry=telemetry)
        result = await runner.start(goal, plan=plan, workspace=workspace, policy=policy)
        exported = json.dumps(sink.spans)
    assert result.passed, result.tasks

    run_dir = settings.runs_dir / result.record.run_id
    out = Path(result.record.workspace) / "out.txt"
    # The run did handle the seeds: the model saw placeholders where they were.
    model_saw = "\n".join(seen)
    assert model_saw.count("[REDACTED:secret:") >= 5 and model_saw.count("[REDACTED:pii:") >= 3
    assert not out.exists() and "[REDACTED:" in (run_dir / "report.md").read_text()
    denied = [e for e in read_events(run_dir / "events.jsonl") if e["event"] == "tool_denied"]
    assert [e["tool"] for e in denied] == ["fs.write"] and "secret" in json.dumps(denied)
    assert sink.spans and (run_dir / "spans.jsonl").exists() and (run_dir / "audit.jsonl").exists()

    # The seeded file itself (in the run's copy of the workspace, and in snapshots/, the workspace copies kept
    # for rollback) is the user's own data, secrets included by design; everything else is scanned.
    seeded = Path(result.record.workspace) / "notes.txt"
    outputs: dict[str, bytes] = {str(p): p.read_bytes() for p in run_dir.rglob("*")
                                 if p.is_file() and p != seeded and "snapshots" not in p.relative_to(run_dir).parts}
    for db in settings.home.glob("checkpoints.sqlite*"):  # the database and its WAL
        outputs[str(db)] = db.read_bytes()
    outputs["model input"] = model_saw.encode()
    outputs["otlp export"] = exported.encode()
    outputs["logs"] = caplog.text.encode()
    captured = capsys.readouterr()
    outputs["console"] = (captured.out + captured.err).encode()
    for p in Path(result.record.workspace).rglob("*"):  # what the agent wrote (the seeded file excepted)
        if p.is_file() and p != seeded:
            outputs[str(p)] = p.read_bytes()
    assert any("checkpoints.sqlite" in k for k in outputs)
    leaks = [(name, where) for name, value in s.items() for where, data in outputs.items()
             for needle in {value, value.replace(" ", ""), value.split("\n")[1] if "\n" in value else value}
             if needle.encode() in data]
    assert leaks == [], "\n".join(map(str, leaks))
    os.environ.pop("NAESTRO_TEST_API_TOKEN", None)
    redact_module._env_secrets.cache_clear()


@pytest.mark.parametrize("scopes", [[], ["secret"]])
async def test_secret_handles_reach_tools_only_with_the_secret_scope(settings: Settings, scopes: list[str]) -> None:
    key = f"sk-proj-{secrets.token_urlsafe(24)}"

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        assert key not in text  # the model only ever sees the handle
        if "Write 2-4 sentences" in text:
            return {"summary": "s"}
        if sum(isinstance(m, AIMessage) for m in messages) == 0:
            handle = PLACEHOLDER.search(text)
            assert handle, text
            return {"thought": "configure", "tool": "fs.write",
                    "arguments": {"path": "cfg.env", "content": f"API_KEY={handle.group()}\n"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}

    plan = Plan.model_validate({"goal": f"configure the service with {key}", "tasks": [{
        "id": "a", "role": "coder", "description": "write cfg.env", "max_attempts": 1,
        "accept": [{"kind": "file_exists", "path": "cfg.env"}]}]})
    result = await Runner(settings, ScriptedProvider(script)).start(plan.goal, plan=plan,
                                                                    policy=RunPolicy(scopes=scopes))
    cfg = Path(result.record.workspace) / "cfg.env"
    if scopes:  # allowed: the tool got the real value; it is in the file the user asked for, nowhere else
        assert result.passed and cfg.read_text() == f"API_KEY={key}\n"
    else:  # the gate saw the real value's "secret" label and denied the call
        assert not result.passed and not cfg.exists()
    run_dir = settings.runs_dir / result.record.run_id
    denied = [e for e in read_events(run_dir / "events.jsonl") if e["event"] == "tool_denied"]
    assert bool(denied) is not bool(scopes) and all("secret" in json.dumps(e) for e in denied)
    written = [p for p in run_dir.rglob("*") if p.is_file() and p != cfg and "snapshots" not in p.parts]
    written += list(settings.home.glob("checkpoints.sqlite*"))
    assert [str(p) for p in written if key.encode() in p.read_bytes()] == []


@pytest.mark.skipif(not presidio_available(), reason="names are found by presidio's NER (naestro[redact])")
async def test_a_name_in_the_goal_reaches_the_file_the_user_asked_for_and_nothing_else(settings: Settings) -> None:
    """The model sees a handle for the name; the tool writes the name; audit, events and checkpoints keep the
    handle, and the file read back reaches the model concealed again."""
    name = "Maria Gonzalez"
    seen: list[str] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        seen.append(text)
        if "Write 2-4 sentences" in text:
            return {"summary": "s"}
        step = sum(isinstance(m, AIMessage) for m in messages)
        if step == 0:
            handle = PLACEHOLDER.search(text)
            assert handle, text
            return {"thought": "greet", "tool": "fs.write",
                    "arguments": {"path": "hello.txt", "content": f"Hello, {handle.group()}!\n"}}
        if step == 1:
            return {"thought": "check", "tool": "fs.read", "arguments": {"path": "hello.txt"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}

    goal = f"Write hello.txt greeting {name} from Madrid."
    plan = Plan.model_validate({"goal": goal, "tasks": [{
        "id": "a", "role": "coder", "description": f"write hello.txt greeting {name}", "max_attempts": 1,
        "accept": [{"kind": "file_exists", "path": "hello.txt"}]}]})
    result = await Runner(settings, ScriptedProvider(script)).start(goal, plan=plan)
    hello = Path(result.record.workspace) / "hello.txt"
    assert result.passed and hello.read_text() == f"Hello, {name}!\n"
    model_saw = "\n".join(seen)
    assert name not in model_saw and "Gonzalez" not in model_saw and model_saw.count("[REDACTED:pii:") >= 2
    run_dir = settings.runs_dir / result.record.run_id
    audit = (run_dir / "audit.jsonl").read_text()
    assert "fs.write" in audit and "[REDACTED:pii:" in audit
    written = [p for p in run_dir.rglob("*") if p.is_file() and p != hello and "snapshots" not in p.parts]
    written += list(settings.home.glob("checkpoints.sqlite*"))
    assert [str(p) for p in written if b"Gonzalez" in p.read_bytes()] == []
