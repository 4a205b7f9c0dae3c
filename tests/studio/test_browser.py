"""The Studio in a real browser (Debian's Chromium driven by playwright-core) against a real `naestro studio`
process, whose model is scripted text behind a real OpenAI-compatible HTTP endpoint (tests/scripted_openai.py):
the steps are in studio/web/e2e/studio.e2e.mjs. Also the front end's own unit tests (vitest).

Screenshots land in tests/studio/artifacts/ (gitignored). Skipped only when Chromium is not installed
(scripts/setup.sh installs it); a missing npm install fails, naming the command that fixes it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from naestro.childproc import terminate
from tests.mcp_http import free_port
from tests.scripted_openai import models_yaml, scripted_openai
from tests.studio.scripted import GOAL, http_script

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "studio" / "web"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path(os.environ.get("NAESTRO_CHROMIUM", "/usr/bin/chromium"))
NAESTRO = Path(sys.executable).parent / "naestro"


def _node_modules() -> None:
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        pytest.fail("studio/web/node_modules is missing: run `npm ci --prefix studio/web` (scripts/setup.sh does)")


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with scripted_openai(http_script) as base_url:
        models = tmp_path / "models.yaml"
        models.write_text(models_yaml(base_url))
        home = tmp_path / "home"
        env = {**os.environ, "NAESTRO_HOME": str(home), "NAESTRO_MODELS_FILE": str(models)}
        env.pop("NAESTRO_STUDIO_TOKEN", None)
        port = free_port()
        log = (tmp_path / "studio.log").open("w")
        proc = subprocess.Popen([str(NAESTRO), "studio", "--port", str(port)], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 60
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
            yield url, home
        finally:
            terminate(proc, grace_s=30)
            log.close()


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


def test_front_end_unit_tests_pass() -> None:
    _node_modules()
    npx = shutil.which("npx")
    assert npx, "npm is not installed (scripts/setup.sh needs node and npm for the Studio)"
    done = subprocess.run([npx, "vitest", "run"], cwd=WEB, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert " passed" in done.stdout
