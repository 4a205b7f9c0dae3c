from __future__ import annotations

from pathlib import Path

import pytest

from naestro.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Runs and checkpoints in a temp home; models are shared with the developer's home (joined once, 1.6 GB).
    return Settings(home=tmp_path / "home", models_dir=REPO / ".naestro" / "models", max_replans=0)
