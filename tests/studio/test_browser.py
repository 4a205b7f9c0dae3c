"""The Studio in a real browser (Debian's Chromium driven by playwright-core) against a real `naestro studio`
process, whose model is scripted text behind a real OpenAI-compatible HTTP endpoint (tests/scripted_openai.py):
the steps are in studio/web/e2e/studio.e2e.mjs. The memory page against a home with a few remembered episodes in
the real embedded FalkorDB (studio/web/e2e/memory.e2e.mjs). Also the front end's own unit tests (vitest).

Screenshots land in tests/studio/artifacts/ (gitignored). Skipped only when Chromium is not installed
(scripts/setup.sh installs it); a missing npm install fails, naming the command that fixes it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from naestro.childproc import alive, terminate
from tests.mcp_http import free_port
from tests.scripted_openai import scripted_models
from tests.studio.scripted import GOAL, http_script

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "studio" / "web"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path(os.environ.get("NAESTRO_CHROMIUM", "/usr/bin/chromium"))
NAESTRO = Path(sys.executable).parent / "naestro"


def _node_modules() -> None:
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        pytest.fail("studio/web/node_modules is missing: run `npm ci --prefix studio/web` (scripts/setup.sh does)")


@contextlib.contextmanager
def serving(tmp_path: Path, home: Path, *, drop: tuple[str, ...] = (), **env: str,
            ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real `naestro studio` on a free port for the home, until the block ends (then SIGTERM, as a service
    manager stops it). ``drop``: environment variables the Studio must not see (besides its token)."""
    full = {**os.environ, "NAESTRO_HOME": str(home), **env}
    for name in ("NAESTRO_STUDIO_TOKEN", *drop):
        full.pop(name, None)
    port = free_port()
    log = (tmp_path / "studio.log").open("w")
    proc = subprocess.Popen([str(NAESTRO), "studio", "--port", str(port)], cwd=tmp_path, env=full, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300  # generous: start-up on a loaded machine, not a timing check
        while True:
            assert proc.poll() is None, (tmp_path / "studio.log").read_text()
            try:
                if httpx.get(f"{url}naestro/info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "naestro studio did not start: " + \
                (tmp_path / "studio.log").read_text()
            time.sleep(0.2)
        yield url, proc
    finally:
        terminate(proc, grace_s=30)
        log.close()


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with scripted_models(http_script, tmp_path) as models:
        home = tmp_path / "home"
        with serving(tmp_path, home, NAESTRO_MODELS_FILE=str(models)) as (url, _):
            yield url, home


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM} "
                    "(scripts/setup.sh installs Debian's chromium)")
def test_new_run_live_dag_consent_rollback_and_metrics_in_chromium(studio: tuple[str, Path]) -> None:
    _node_modules()
    url, home = studio
    ARTIFACTS.mkdir(exist_ok=True)
    done = subprocess.run(["node", str(WEB / "e2e" / "studio.e2e.mjs")], cwd=WEB, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "STUDIO_URL": url, "ARTIFACTS": str(ARTIFACTS),
                                            "GOAL": GOAL, "CHROMIUM": str(CHROMIUM)})
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = json.loads(done.stdout.strip().splitlines()[-1])["run_id"]
    run_dir = home / "runs" / run_id
    # what the browser did reached the run: the edited plan ran, the banner's approval is in the report, and the
    # rollback restored the files and moved the run's head
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "rolled_back" and record["head"]
    plan = json.loads((run_dir / record["plans"][-1]).read_text())
    assert plan["tasks"][0]["description"].endswith("(edited before the run)")
    assert "approved by studio (studio)" in (run_dir / "report.md").read_text()
    workspace = Path(record["workspace"])
    assert (workspace / "a.txt").read_text() == "hello\n" and not (workspace / "b.txt").exists()
    for name in ("new-run", "run-consent", "run-passed", "history", "metrics"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000


def _remember(home: Path) -> list[dict[str, str]]:
    """A few episodes written into the home's embedded memory (FalkorDB + MiniLM), as runs would have left them;
    the server stops when the write is done, so the Studio finds them on disk."""
    from naestro.memory import Entity, Episode, Memory

    def ep(run: str, kind: str, text: str, outcome: str, slice_: str, day: int) -> Episode:
        return Episode.model_validate({
            "kind": kind, "run_id": run, "seq": 0, "slice": slice_, "goal": f"goal of {run}", "text": text,
            "outcome": outcome, "valid_at": datetime(2026, 12, day, 9 + day, 15, tzinfo=UTC),
            "entities": [Entity(kind="goal", name=f"goal of {run}")]})
    episodes = [
        ep("r-fib", "task", "Task write_fib (coder) failed after 3 attempt(s) in run r-fib. Why it failed: "
           "NameError: name 'fibb' is not defined in fib.py", "failed", "coder", 1),
        ep("r-csv", "task", "Task write_csv (coder) passed after 1 attempt(s) in run r-csv. Task: write totals.csv "
           "from sales.csv", "passed", "coder", 2),
        ep("r-csv", "run", "Run r-csv passed. Goal: write totals.csv from sales.csv. Plan (model): write_csv "
           "(coder).", "passed", "plans", 2),
        ep("r-web", "denial", "Policy denied web.fetch in run r-web (researcher): the domain intranet.example is "
           "not on the allowlist", "denied", "researcher", 3),
    ]

    async def write() -> None:
        memory = Memory.open(home=home, url=None, readable={}, roles={})
        try:
            assert await memory.store.write(episodes) == len(episodes)
        finally:
            await memory.close()
    asyncio.run(write())
    assert not (home / "memory" / "server.json").exists()  # the writer was its only user: it stopped, saved
    return [{"key": e.key, "text": e.text} for e in episodes]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM} "
                    "(scripts/setup.sh installs Debian's chromium)")
def test_memory_page_shows_the_timeline_and_finds_an_episode_in_chromium(tmp_path: Path) -> None:
    _node_modules()
    home = tmp_path / "home"
    episodes = _remember(home)
    ARTIFACTS.mkdir(exist_ok=True)
    with serving(tmp_path, home) as (url, proc):
        done = subprocess.run(["node", str(WEB / "e2e" / "memory.e2e.mjs")], cwd=WEB, capture_output=True,
                              text=True, timeout=900,
                              env={**os.environ, "STUDIO_URL": url, "ARTIFACTS": str(ARTIFACTS),
                                   "CHROMIUM": str(CHROMIUM), "EPISODES": json.dumps(episodes),
                                   "SEARCH": "why did write_fib fail with a NameError", "HIT": "r-fib/task/0"})
        assert done.returncode == 0, done.stdout + done.stderr
        server = json.loads((home / "memory" / "server.json").read_text())  # the Studio started it on demand
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    # the search went through the gate as the operator, audited; the Studio stopped by SIGTERM left no server
    audit = (home / "memory" / "audit.jsonl").read_text()
    assert "memory.recall" in audit and "operator" in audit
    deadline = time.monotonic() + 120
    while (alive(server["pid"]) or alive(server["keeper"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(server["pid"]) and not alive(server["keeper"])
    assert (ARTIFACTS / "memory.png").stat().st_size > 10_000


def test_front_end_unit_tests_pass() -> None:
    _node_modules()
    npx = shutil.which("npx")
    assert npx, "npm is not installed (scripts/setup.sh needs node and npm for the Studio)"
    done = subprocess.run([npx, "vitest", "run"], cwd=WEB, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert " passed" in done.stdout
