"""Introspector rules on event logs written by the real EventLog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from naestro.cli import app
from naestro.events import EventLog
from naestro.introspect import introspect_run
from tests.conftest import write_run


def _log(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path / "r1" / "events.jsonl", run_id="r1")


def fail(detail: str) -> list[dict[str, object]]:
    return [{"kind": "command", "passed": False, "detail": detail}]


def test_denied_tool_and_path_become_wrong_tool_and_weak_prompt(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.emit("tool_denied", task="a", tool="web.fetch", by="role_tools",
             reasons=['role "coder" may not use tool "web.fetch"'])
    log.emit("tool_denied", task="a", tool="fs.read", by="path_confinement", reasons=["../x is outside the workspace"])
    kinds = [(f.kind, f.task) for f in introspect_run(tmp_path / "r1")]
    assert kinds == [("wrong_tool", "a"), ("weak_prompt", "a")]


def test_same_failure_on_every_attempt_is_a_weak_prompt_but_a_fixed_one_is_not(tmp_path: Path) -> None:
    log = _log(tmp_path)
    for attempt in (1, 2):
        log.emit("tool_call", task="a", tool="fs.write", ok=True)
        log.emit("task_checked", task="a", attempt=attempt, status="retry", checks=fail("exited 1: assert 2 == 3"))
        log.emit("tool_call", task="b", tool="fs.write", ok=True)
        log.emit("task_checked", task="b", attempt=attempt, status="retry",
                 checks=fail("exited 1") if attempt == 1 else [{"kind": "command", "passed": True, "detail": "ok"}])
    findings = introspect_run(tmp_path / "r1")
    assert [(f.kind, f.task) for f in findings] == [("weak_prompt", "a")]
    assert "attempts [1, 2]" in findings[0].evidence


def test_an_attempt_that_only_timed_out_does_not_hide_a_repeated_failure(tmp_path: Path) -> None:
    """On a busy machine one attempt's tests hit the time limit: no verdict, so attempts 1 and 3 failing the same
    way are still a weak prompt (before, the timeout made the failures look different and nothing was proposed)."""
    log = _log(tmp_path)
    for attempt, detail in ((1, "exited 1: assert 2 == 3"), (2, "`pytest -q` timed out after 120 s: no verdict"),
                            (3, "exited 1: assert 2 == 3")):
        log.emit("tool_call", task="a", tool="fs.write", ok=True)
        log.emit("task_checked", task="a", attempt=attempt, status="retry", checks=fail(detail))
    findings = introspect_run(tmp_path / "r1")
    assert [(f.kind, f.task) for f in findings] == [("weak_prompt", "a")]
    assert "attempts [1, 3]" in findings[0].evidence


def test_verdict_flip_without_a_write_is_a_flaky_check(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.emit("tool_call", task="a", tool="fs.write", ok=True)
    log.emit("task_checked", task="a", attempt=1, status="retry", checks=fail("timed out"))
    log.emit("tool_call", task="a", tool="fs.read", ok=True)  # a read is not a change
    log.emit("task_checked", task="a", attempt=2, status="passed", checks=[{"kind": "command", "passed": True,
                                                                             "detail": "ok"}])
    log.emit("reroute", task="a", endpoint="coder-1.5b", reason="timeout")
    log.emit("budget_exceeded", task="a", resource="tokens", limit=100, spent=120)
    assert [f.kind for f in introspect_run(tmp_path / "r1")] == ["flaky_check", "router_mistake", "budget"]


def test_cli_introspect_and_eval_argument_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAESTRO_HOME", str(tmp_path / "home"))
    run_dir = write_run(tmp_path / "home", "r1", tmp_path)
    log = EventLog(run_dir / "events.jsonl", run_id="r1")
    log.emit("budget_exceeded", task="a", resource="wall_s", limit=10, spent=11)
    result = CliRunner().invoke(app, ["introspect", "r1", "--json"])
    assert result.exit_code == 0, result.output
    assert [f["kind"] for f in json.loads(result.output)] == ["budget"]
    assert CliRunner().invoke(app, ["introspect", "nope"]).exit_code == 2
    assert CliRunner().invoke(app, ["eval", "golden", "--goal", "nope"]).exit_code == 2
    assert CliRunner().invoke(app, ["eval", "golden", "--model", "nope"]).exit_code == 2
