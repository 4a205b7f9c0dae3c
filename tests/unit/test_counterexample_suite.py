"""Counter-examples in the golden suite (issue 21, Learn): the goals the improve loop made from failed runs, as the
active signed release holds them, run with `naestro eval golden --counterexamples`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from naestro.cli import app
from naestro.errors import ConfigError, UsageError
from naestro.golden import counterexample_goals
from naestro.improve.release import publish
from naestro.improve.repo import ConfigRepo, seed_files
from naestro.settings import Settings
from policies.audit import load_signing_key

GOAL = {"id": "ce_20261207_000000_abcd_write", "kind": "file", "goal": "Write a.txt saying hi",
        "check": [{"kind": "regex", "file": "a.txt", "pattern": "hi"}]}


def _release(settings: Settings, files: dict[str, str]) -> Path:
    improve = settings.home / "improve"
    publish(ConfigRepo.open(improve / "config.git", seed={**seed_files(), **files}), improve,
            load_signing_key(settings.keys_dir), proposal=None)
    return improve / "active"


def _golden(settings: Settings, *args: str) -> tuple[int, str]:
    env = {"NAESTRO_HOME": str(settings.home), "NAESTRO_MODELS_DIR": str(settings.models_path)}
    res = CliRunner().invoke(app, ["eval", "golden", "--counterexamples", *args], env=env)
    return res.exit_code, res.output


def test_the_active_release_counterexamples_join_the_suite(settings: Settings) -> None:
    with pytest.raises(UsageError, match="no counter-examples"):
        counterexample_goals(settings)  # no release yet
    code, output = _golden(settings)
    assert code == 2 and "no counter-examples" in output

    active = _release(settings, {"golden/ce_20261207_000000_abcd_write.json": json.dumps(GOAL)})
    (goal,) = counterexample_goals(settings)
    assert goal.id == GOAL["id"] and goal.goal == GOAL["goal"]
    # the CLI knows it (an unknown --goal lists the suite and exits before any model is asked)
    code, output = _golden(settings, "--goal", "nope")
    assert code == 2 and GOAL["id"] in output and "fib_code" in output

    (active / "golden" / "ce_20261207_000000_abcd_write.json").write_text(json.dumps({**GOAL, "goal": "rm -rf"}))
    with pytest.raises(ConfigError, match=r"golden/ce_20261207_000000_abcd_write\.json differs from the signed"):
        counterexample_goals(settings)  # edited after the merge: refused like a prompt would be
