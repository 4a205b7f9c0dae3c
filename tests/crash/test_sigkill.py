"""SIGKILL a real run at random points (20 trials); every run resumes, completes, and each completed tool
call has exactly one effect (a call cut off between its effect and its receipt is redone, and says so)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.crash.child import KEYS

TRIALS = int(os.environ.get("NAESTRO_CRASH_TRIALS", "20"))


def child(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.crash.child", str(home), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run_dir(home: Path) -> Path | None:
    found = list((home / "runs").glob("*/run.json")) if (home / "runs").exists() else []
    return found[0].parent if found else None


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_at_a_random_point_then_resume(trial: int, tmp_path: Path) -> None:
    rng = random.Random(trial)
    home = tmp_path / "home"
    proc = child(home, "start")
    time.sleep(rng.uniform(0.5, 6.0))  # anywhere from MCP start-up to the last task
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rd = run_dir(home)
    if rd is None or not (rd / "plan.json").exists():  # killed before the run existed: start it again
        assert child(home, "start").wait(timeout=300) == 0
        rd = run_dir(home)
        assert rd is not None
    else:
        resumed = child(home, "resume", rd.name)
        out, errs = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out + errs
    record = json.loads((rd / "run.json").read_text())
    assert record["status"] == "passed"
    effects = (Path(record["workspace"]) / "effects.log").read_text().split()
    events = [json.loads(x) for x in (rd / "events.jsonl").read_text().splitlines()]
    redone = sum(1 for e in events if e["event"] == "tool_redone")
    counts = {k: effects.count(k) for k in KEYS}
    assert all(c >= 1 for c in counts.values()), counts
    # at most the one call in flight at the kill may have run twice, and only if the journal said so
    assert sum(c - 1 for c in counts.values()) <= redone, (counts, redone)
    assert set(effects) == set(KEYS)
