"""Issue 14, config errors and plan redaction, through the real CLI on a temp NAESTRO_HOME.

Bad input (a models file or policy folder that does not load) exits 2 with one line that names the file, no
traceback and no half-made run directory, however wide the terminal is. plan.json keeps a direct action's
secrets as handles, while the run (and its approval in another process) executes the plan as given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from naestro.cli import app
from naestro.plan import Plan
from naestro.redact import PLACEHOLDER
from policies.engines import REGO_DIR
from tests.conftest import write_run

NAESTRO = Path(sys.executable).with_name("naestro")
KEY = "sk-proj-" + "Zq7" * 10  # the shape of an OpenAI project key
CARD = "4111 1111 1111 1111"  # a test Visa number: Luhn-valid, caught as PII
# An endpoint that refuses connections at once: a direct plan needs no model, the report's summary is skipped.
MODELS = """default: a
endpoints:
  - {name: a, kind: openai, model: m, base_url: "http://127.0.0.1:9/v1", context: 4096}
router: {retries: 0}
"""

BAD_MODELS: dict[str, bytes] = {
    "missing": b"",
    "not_utf8": b"default: a\nendpoints:\n  - {name: caf\xe9}\n",
    "bad_yaml": b"default: a\nendpoints: [\n  {name: a,\n",
    "a_list": b"- a\n- b\n",
    "bad_field": MODELS.replace("context: 4096", "context: 0").encode(),
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NAESTRO_HOME", str(home))
    monkeypatch.delenv("NAESTRO_POLICY_DIR", raising=False)
    (tmp_path / "models.yaml").write_text(MODELS)
    monkeypatch.setenv("NAESTRO_MODELS_FILE", str(tmp_path / "models.yaml"))
    return home


def bad_models(tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config with a long folder name so the error line is wider than eighty columns" / "models.yaml"
    if case != "missing":
        path.parent.mkdir()
        path.write_bytes(BAD_MODELS[case])
    monkeypatch.setenv("NAESTRO_MODELS_FILE", str(path))
    return path


def assert_one_line_usage_error(res: Result, *, names: Path) -> str:
    """Exit 2, no exception escaped, and stderr is exactly one line naming the file."""
    assert res.exit_code == 2, (res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(names) in lines[0], res.stderr
    return lines[0]


def runs_made(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "runs").iterdir()) if (home / "runs").exists() else []


# --- 1. NAESTRO_MODELS_FILE -------------------------------------------------------------------------------

COMMANDS = [["run", "write hello.txt"], ["plan", "write hello.txt"], ["models"], ["models", "start"],
            ["models", "stop"], ["router", "stats"], ["resume", "r1"], ["approve", "r1"],
            ["runs", "history", "r1"], ["runs", "replay", "r1", "--from", "0"], ["runs", "fork", "r1", "--at", "0"]]


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_a_bad_models_file_is_exit_2_with_one_line(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   case: str, argv: list[str]) -> None:
    write_run(home, "r1", tmp_path)
    path = bad_models(tmp_path, case, monkeypatch)
    line = assert_one_line_usage_error(CliRunner().invoke(app, argv), names=path)
    assert runs_made(home) == ["r1"]  # nothing half-made
    expected = {"missing": "cannot read: No such file or directory", "not_utf8": ":3: not UTF-8 text (byte 0xe9",
                "bad_yaml": ":4: invalid YAML:", "a_list": "must be a mapping with `default` and `endpoints`",
                "bad_field": ":3: endpoints.0.context: Input should be greater than 0"}[case]
    assert expected in line, line


def test_naestro_run_with_a_bad_models_file_prints_no_traceback_and_makes_no_run(tmp_path: Path) -> None:
    """The real entry point, as a user runs it (stderr not a terminal, COLUMNS unset)."""
    home = tmp_path / "home"
    models = tmp_path / "models.yaml"
    models.write_bytes(BAD_MODELS["not_utf8"])
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NAESTRO_POLICY_DIR")}
    done = subprocess.run([str(NAESTRO), "run", "write hello.txt"], capture_output=True, text=True, timeout=120,
                          env={**env, "NAESTRO_HOME": str(home), "NAESTRO_MODELS_FILE": str(models)})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines() == [
        f"error: {models}:3: not UTF-8 text (byte 0xe9 at offset 36); save it as UTF-8; fix it, or unset "
        "NAESTRO_MODELS_FILE to use the packaged models.yaml"]
    assert runs_made(home) == []


# --- 2. a policy folder whose data does not load ------------------------------------------------------------

BAD_DATA: dict[str, tuple[bytes, str]] = {
    "a_list": (b'[{"naestro": {}}]\n', "data.json: policy data must be a JSON object"),
    "not_utf8": (b'{"naestro": {"note": "caf\xe9"}}\n', "data.json:1: policy data is not UTF-8 text (byte 0xe9"),
    "bad_json": (b'{"naestro": \n', "data.json:2: malformed JSON data"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
@pytest.mark.parametrize("argv", [["run", "write hello.txt"], ["policy", "test"], ["runs", "history", "r1"],
                                  ["approve", "r1"]], ids=lambda a: "-".join(a[:2]))
def test_a_policy_folder_with_bad_data_is_exit_2_with_one_line(home: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch, case: str,
                                                               argv: list[str]) -> None:
    write_run(home, "r1", tmp_path)
    policies = tmp_path / "policies"
    shutil.copytree(REGO_DIR, policies)
    raw, expected = BAD_DATA[case]
    (policies / "data.json").write_bytes(raw)
    monkeypatch.setenv("NAESTRO_POLICY_DIR", str(policies))
    line = assert_one_line_usage_error(CliRunner().invoke(app, argv), names=policies / "data.json")
    assert expected in line, line
    assert runs_made(home) == ["r1"]


@pytest.mark.parametrize("argv", [["run", "write hello.txt"], ["policy", "test"]], ids=lambda a: a[0])
def test_a_policy_file_that_is_not_utf8_is_exit_2_with_one_line(home: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 argv: list[str]) -> None:
    """A .rego file with a Latin-1 byte was a UnicodeDecodeError traceback (issue 14 left-over)."""
    policies = tmp_path / "policies"
    shutil.copytree(REGO_DIR, policies)
    gate = policies / "gate.rego"
    gate.write_bytes(gate.read_bytes() + b"\n# caf\xe9\n")
    monkeypatch.setenv("NAESTRO_POLICY_DIR", str(policies))
    line = assert_one_line_usage_error(CliRunner().invoke(app, argv), names=gate)
    assert "policy is not UTF-8 text (byte 0xe9" in line, line
    assert runs_made(home) == []


# --- 3. plan.json ----------------------------------------------------------------------------------------

def direct_plan(tmp_path: Path) -> Path:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"goal": "write the service config", "tasks": [{
        "id": "cfg", "role": "dataops", "description": "write cfg.env",
        "action": {"tool": "fs.write", "arguments": {"path": "cfg.env",
                                                     "content": f"OPENAI_API_KEY={KEY}\nCARD={CARD}\n"}},
        "accept": [{"kind": "file_exists", "path": "cfg.env"}]}]}))
    return plan


def assert_redacted(plan_json: Path) -> None:
    text = plan_json.read_text()
    assert KEY not in text and "sk-proj" not in text, text
    assert CARD not in text and CARD.replace(" ", "") not in text, text
    assert len(PLACEHOLDER.findall(text)) >= 2
    Plan.model_validate_json(text)  # still a plan: `runs show`, the live view and fork read it


def test_plan_json_keeps_direct_action_secrets_as_handles_and_the_tool_gets_the_values(home: Path,
                                                                                      tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["run", "--plan", str(direct_plan(tmp_path)), "--mode", "auto",
                                   "--approve", "fs.write", "--scope", "secret", "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    summary = json.loads(res.stdout)
    run_dir = home / "runs" / summary["run_id"]
    assert_redacted(run_dir / "plan.json")
    # The run executed the plan as given: the file the user asked for holds the real values.
    assert (Path(summary["workspace"]) / "cfg.env").read_text() == f"OPENAI_API_KEY={KEY}\nCARD={CARD}\n"
    leaks = [str(p) for p in run_dir.rglob("*") if p.is_file() and p.name != "cfg.env"
             and "snapshots" not in p.relative_to(run_dir).parts and KEY.encode() in p.read_bytes()]
    assert leaks == []
    # The graph state holds the plan as shown too: no checkpoint (nor its WAL) carries the key.
    databases = list(home.glob("checkpoints.sqlite*"))
    assert databases and not [str(d) for d in databases if KEY.encode() in d.read_bytes()]


def test_a_run_approved_from_another_process_executes_the_plan_as_given(home: Path, tmp_path: Path) -> None:
    """The vault holding the handles lives in the process that started the run; `naestro approve` is another
    Runner (another process in real use) and must still write the real key, not its handle."""
    target = tmp_path / "service"
    target.mkdir()
    cli = CliRunner()
    waiting = cli.invoke(app, ["run", "--plan", str(direct_plan(tmp_path)), "--workspace", str(target),
                               "--in-place", "--scope", "secret", "--json"])  # copilot: writing in place asks
    assert waiting.exit_code == 4, (waiting.output, waiting.exception)
    run_id = json.loads(waiting.stdout)["run_id"]
    assert_redacted(home / "runs" / run_id / "plan.json")
    assert KEY not in waiting.output and not (target / "cfg.env").exists()
    given = home / "plans" / run_id / "plan.json"  # outside the run directory, owner-only
    assert KEY in given.read_text() and given.stat().st_mode & 0o077 == 0
    done = cli.invoke(app, ["approve", run_id, "--json"])
    assert done.exit_code == 0, (done.output, done.exception)
    assert (target / "cfg.env").read_text() == f"OPENAI_API_KEY={KEY}\nCARD={CARD}\n"
    assert KEY not in done.output


# --- 4. one line per problem, whatever the terminal -----------------------------------------------------------

def test_validation_problems_stay_one_line_each_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    long_id = "t" + "x" * 39
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"goal": "g", "tasks": [{
        "id": long_id, "role": "coder", "description": "d", "deps": ["missing_" + "y" * 32],
        "accept": [{"kind": "file_exists", "path": "a" * 120}]}]}))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([str(NAESTRO), "validate", str(plan)], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith("/tasks/0/") for line in lines), lines
    assert max(map(len, lines)) > 80  # long enough that rich would have wrapped it
