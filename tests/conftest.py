from __future__ import annotations

from pathlib import Path

import pytest

from naestro.runs import RunRecord, RunStatus, RunStore
from naestro.settings import Settings

REPO = Path(__file__).resolve().parent.parent


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
