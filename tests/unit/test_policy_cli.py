"""Kill-switch commands, the consent prompt and `naestro policy test`, through the real CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from naestro.cli import app
from naestro.commands.consent import prompt_answers
from naestro.runner import PendingConsent
from naestro.settings import Settings
from policies.audit import anchors_dir, load_public_key, verify_log
from policies.switches import KillSwitches
from tests.conftest import write_run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NAESTRO_HOME", str(home))
    write_run(home, "r1", tmp_path, status="running")
    return home


def test_pause_quarantine_and_revoke_are_durable_and_audited(home: Path) -> None:
    cli = CliRunner()
    assert cli.invoke(app, ["pause", "r1", "--reason", "odd output"]).exit_code == 0
    assert cli.invoke(app, ["quarantine", "tool", "exec.run", "--reason", "CVE"]).exit_code == 0
    assert cli.invoke(app, ["quarantine", "model", "cloud-gpt"]).exit_code == 0
    switches = KillSwitches(Settings().control_db)  # what every gate of every run reads
    paused = switches.paused("r1")
    assert paused is not None and paused.reason == "odd output"
    assert switches.targets("quarantine_tool") == ["exec.run"] and switches.targets("quarantine_model") == ["cloud-gpt"]

    assert cli.invoke(app, ["revoke", "quarantine", "tool", "exec.run"]).exit_code == 0
    assert switches.targets("quarantine_tool") == []
    assert cli.invoke(app, ["revoke", "consents", "r1"]).exit_code == 0
    assert cli.invoke(app, ["pause", "no-such-run"]).exit_code == 2

    key = load_public_key(home / "keys")
    run_log = [json.loads(x)["data"]["action"] for x in (home / "runs/r1/audit.jsonl").read_text().splitlines()]
    assert run_log == ["pause", "revoke_consents"]
    control = home / "audit" / "control.jsonl"
    assert [json.loads(x)["data"]["action"] for x in control.read_text().splitlines()] == \
        ["quarantine_tool", "quarantine_model", "lift_quarantine_tool"]
    assert verify_log(home / "runs/r1/audit.jsonl", key, run_id="r1", anchors=anchors_dir(home)) == []
    assert verify_log(control, key, run_id="control", anchors=anchors_dir(home)) == []
    assert cli.invoke(app, ["audit", "verify", "control"]).exit_code == 0


def test_consent_prompt_maps_keys_to_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    pending = [PendingConsent(id=f"i{n}", request={"task": "t", "role": "coder", "action": "exec.run",
                                                   "arguments": {"command": "ls"}, "reasons": ["shell command"],
                                                   "risk": "high", "remember_scope": {"tool": "exec.run"}})
               for n in range(3)]
    monkeypatch.setattr("sys.stdin", io.StringIO('A\nfor the demo\nd\ne\nwhy not\n{"command": "ls -la"}\n'))
    answers = prompt_answers(pending, Console(file=io.StringIO()))
    assert answers["i0"].approve and answers["i0"].remember and answers["i0"].purpose == "for the demo"
    assert not answers["i1"].approve
    assert answers["i2"].approve and answers["i2"].arguments == {"command": "ls -la"}


def test_policy_test_command_runs_every_engine(home: Path) -> None:
    result = CliRunner().invoke(app, ["policy", "test", "--json"])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert {r["engine"] for r in results} == {"regorus", "opa-go"} and all(r["passed"] for r in results)
