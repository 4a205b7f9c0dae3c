"""End to end against the real embedded llama-server (Qwen2.5-Coder). Slow; runs in CI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

NAESTRO = [sys.executable, "-m", "naestro"]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "NAESTRO_HOME": str(home), "NAESTRO_MODELS_DIR": str(REPO / ".naestro" / "models"),
            "NAESTRO_PLANNER_ATTEMPTS": "2"}


def _cli(home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NAESTRO, *args], env=_env(home), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One NAESTRO_HOME for the module, so the llama-servers start once; stopped at the end, never leaked."""
    path = tmp_path_factory.mktemp("home")
    yield path
    _cli(path, "models", "stop", timeout=60)


def test_plan_on_a_new_goal_validates(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    res = _cli(home, "plan", "Write wordcount.py that prints the number of words in a text file given as "
                                 "its first argument, and check it on a sample file.", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert _cli(home, "validate", str(out)).returncode == 0


PLAN = {
    "goal": "Prepare a data file, then write fib.py",
    "tasks": [
        {"id": "seed", "role": "runner", "description": "create the numbers file",
         "action": {"tool": "exec.run", "arguments": {"command": "seq 1 10 > numbers.txt"}},
         "accept": [{"kind": "file_exists", "path": "numbers.txt"}]},
        # A generous wall budget: on a busy 2-core machine one 1.5B reply can take minutes (this test is about
        # consent, crash and resume, not speed).
        {"id": "fib", "role": "coder", "deps": ["seed"], "model": "coder-1.5b", "budget": {"wall_s": 1800},
         "description": "Write fib.py defining fib(n) that returns the n-th Fibonacci number (fib(0)=0, fib(1)=1).",
         "accept": [{"kind": "command", "command": "python3 -c 'from fib import fib; assert fib(10) == 55'"}],
         "max_attempts": 3},
    ],
}


def test_consent_from_the_cli_then_sigkill_mid_run_then_resume(home: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    # Copilot (the default): the seed's shell command asks; a non-interactive caller gets exit 4 + the request.
    asked = _cli(home, "run", "--plan", str(plan), "--json")
    assert asked.returncode == 4, asked.stdout + asked.stderr
    waiting = json.loads(asked.stdout)
    [request] = waiting["pending"]
    assert request["action"] == "exec.run" and request["arguments"]["command"] == "seq 1 10 > numbers.txt"
    # Approve from the CLI, remembered for the run (the agent's and the checks' exec.run calls too).
    proc = subprocess.Popen([*NAESTRO, "approve", waiting["run_id"], "--remember", "--purpose", "e2e", "--json"],
                            env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    runs = home / "runs"
    deadline = time.monotonic() + 900  # the first 1.5B reply can take minutes on a busy 2-core machine
    run_dir = None
    while time.monotonic() < deadline:
        dirs = list(runs.glob("*/events.jsonl")) if runs.exists() else []
        if dirs and any('"event": "model_call"' in line for line in dirs[0].read_text().splitlines()
                        if '"task": "fib"' in line):
            run_dir = dirs[0].parent  # seed is done and the fib agent is mid-flight
            break
        time.sleep(0.2)
    assert run_dir is not None, "the run never reached the model"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    listed = json.loads(_cli(home, "runs", "list", "--json").stdout)
    assert listed[0]["status"] == "interrupted"

    res = _cli(home, "resume", run_dir.name, "--json", timeout=2400)
    assert res.returncode == 0, res.stdout + res.stderr
    summary = json.loads(res.stdout)
    assert summary["passed"] and summary["tasks"]["fib"]["status"] == "passed"
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    # seed started twice before the kill (asked, then re-ran after approval) and never after the crash resume
    last_resume = max(i for i, e in enumerate(events) if e["event"] == "run_resumed")
    assert [e["task"] for e in events if e["event"] == "task_started"].count("seed") == 2
    assert "seed" not in [e["task"] for e in events[last_resume:] if e["event"] == "task_started"]
    report = (run_dir / "report.md").read_text()
    assert report.startswith("# Naestro report: PASSED") and "approved by" in report
    assert _cli(home, "runs", "show", run_dir.name).returncode == 0
    assert _cli(home, "audit", "verify", run_dir.name).returncode == 0  # two processes appended, chain intact
