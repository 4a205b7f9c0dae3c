"""Issue 20 in the browser: runs that ``naestro worker``s execute, shown by a real ``naestro studio`` in Debian's
Chromium (studio/web/e2e/remote.e2e.mjs): the runs list and the run view show "queued", "queued again (HOST:PID
stopped)" (it says running, nobody holds its lock: its worker died) and "waiting for consent", the words
``naestro runs show`` prints, from the committed bundle in studio/static. Runs are written as a submitter and a
dead worker leave them; locks are flocks in the home (no checkpoint URL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from naestro.runs import RunStore
from tests.studio.test_browser import ARTIFACTS, CHROMIUM, WEB, _node_modules, serving


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM} "
                    "(scripts/setup.sh installs Debian's chromium)")
def test_remote_runs_read_as_the_cli_says_in_chromium(tmp_path: Path) -> None:
    _node_modules()
    home = tmp_path / "home"
    store = RunStore(home / "runs")
    dead = subprocess.run([sys.executable, "-c", "import os, socket; print(socket.gethostname(), os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.split()
    expect: dict[str, str] = {}
    for status, words in (("queued", "queued"), ("running", f"queued again ({dead[0]}:{dead[1]} stopped)"),
                          ("waiting", "waiting for consent")):
        record = store.create(status, source_workspace=None, in_place=False)
        record.status, record.remote, record.pid, record.host = status, True, int(dead[1]), dead[0]
        store.save(record)
        expect[record.run_id] = words
    ARTIFACTS.mkdir(exist_ok=True)
    with serving(tmp_path, home, drop=("NAESTRO_CHECKPOINT_URL",)) as (url, _):
        done = subprocess.run(["node", str(WEB / "e2e" / "remote.e2e.mjs")], cwd=WEB, capture_output=True,
                              text=True, timeout=900, env={**os.environ, "STUDIO_URL": url,
                                                           "ARTIFACTS": str(ARTIFACTS), "CHROMIUM": str(CHROMIUM),
                                                           "EXPECT": json.dumps(expect)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (ARTIFACTS / "remote-runs.png").stat().st_size > 10_000
