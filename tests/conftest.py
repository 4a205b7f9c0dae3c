from __future__ import annotations

import concurrent.futures.thread
import os
import sys
import threading
import time
import traceback
from pathlib import Path

import mcp.client.stdio  # noqa: F401  (see below)
import pytest

from naestro.runs import RunRecord, RunStatus, RunStore
from naestro.settings import Settings

REPO = Path(__file__).resolve().parent.parent

# mcp's stdio client binds `errlog=sys.stderr` when it is first imported. The CLI imports it lazily, inside a
# command; under typer's CliRunner that is a buffer with no file descriptor, and every MCP server then fails to
# start ("fileno"). Importing it here binds the real stderr, as a real terminal would.


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Runs and checkpoints in a temp home; models are shared with the developer's home (joined once, 1.6 GB).
    return Settings(home=tmp_path / "home", models_dir=REPO / ".naestro" / "models", max_replans=0)


def write_run(home: Path, run_id: str, workspace: Path, status: RunStatus = "passed") -> Path:
    """A minimal run directory (run.json only), for CLI commands that act on an existing run."""
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True)
    RunStore(home / "runs").save(RunRecord(run_id=run_id, goal="g", status=status, created="x", updated="x", pid=1,
                                           workspace=str(workspace)))
    return run_dir


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def _leaked_threads() -> list[threading.Thread]:
    # Executor workers are told to stop by concurrent.futures' own exit hook; any other non-daemon thread that is
    # still alive blocks the interpreter's exit forever.
    return [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon
            and getattr(t, "_target", None) is not concurrent.futures.thread._worker]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Fail loudly instead of hanging: a leaked non-daemon thread (an unclosed aiosqlite connection did this)
    makes Python wait for it forever after the summary, and CI then times out with every test green."""
    deadline = time.monotonic() + 10
    while (leaked := _leaked_threads()) and time.monotonic() < deadline:
        leaked[0].join(timeout=0.5)
    if not leaked:
        return
    frames = sys._current_frames()
    sys.stderr.write(f"\nLEAKED THREADS: {len(leaked)} non-daemon thread(s) still running after the tests; "
                     "close what started them (connections, servers, executors):\n")
    for t in leaked:
        frame = frames.get(t.ident or -1)
        stack = "".join(traceback.format_stack(frame)) if frame else "  (no frame)\n"
        sys.stderr.write(f"- {t.name}\n{stack}")
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit((_EXIT_STATUS or [1])[0] or 1)
