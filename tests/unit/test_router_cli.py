"""`naestro router stats|check|tune` through the real CLI, on a temp NAESTRO_HOME and models file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from naestro.cli import app
from naestro.router import SqliteBanditStore

MODELS = """default: a
endpoints:
  - {name: a, kind: vllm, model: m, base_url: "http://127.0.0.1:9/v1", context: 4096}
router:
  priors: [{endpoint: a, kind: coder, alpha: 3, beta: 1}]
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "models.yaml").write_text(MODELS)
    monkeypatch.setenv("NAESTRO_HOME", str(tmp_path))
    monkeypatch.setenv("NAESTRO_MODELS_FILE", str(tmp_path / "models.yaml"))
    return tmp_path


def test_stats_reports_win_rate_spill_and_cost_per_success(home: Path) -> None:
    store = SqliteBanditStore(home / "router.sqlite")
    store.add_outcome("coder", "a", reward=1.0, success=True, cost_usd=0.02, latency_s=4.0)
    store.add_outcome("coder", "a", reward=0.0, success=False, cost_usd=0.02, latency_s=6.0)
    for spilled in (False, True, False, False):
        store.add_decision("coder", "a", spilled=spilled)
    res = CliRunner().invoke(app, ["router", "stats", "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert row == {"kind": "coder", "endpoint": "a", "routed": 4, "spill_pct": 25.0, "outcomes": 2,
                   "win_rate": 0.5, "prior": [3.0, 1.0], "prior_from": "models.yaml",
                   "posterior_mean": round(4 / 6, 3), "usd_per_success": 0.04,
                   "latency_s_per_success": 10.0}
    table = CliRunner().invoke(app, ["router", "stats"])
    assert table.exit_code == 0 and "coder" in table.output and "25.0" in table.output


def test_check_unreachable_endpoint_exits_3(home: Path) -> None:
    res = CliRunner().invoke(app, ["router", "check"])
    assert res.exit_code == 3
    assert "a: model endpoint 'a' unavailable: GET http://127.0.0.1:9/v1/models: ConnectError" in res.output


def test_tune_unknown_endpoint_and_bad_lists_are_usage_errors(home: Path) -> None:
    res = CliRunner().invoke(app, ["router", "tune", "nope"])
    assert res.exit_code == 2 and "unknown endpoint 'nope'" in res.output
    res = CliRunner().invoke(app, ["router", "tune", "a", "--concurrency", "0,x"])
    assert res.exit_code == 2
