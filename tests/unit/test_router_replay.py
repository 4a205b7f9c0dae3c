"""Routing replay on files written here (real JSONL files, real CLI), and on the recorded HumanEval files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from naestro.cli import app
from naestro.errors import ConfigError
from naestro.router.replay import load_items, load_outcomes, replay
from tests.conftest import REPO


def write_files(tmp_path: Path, rows: list[tuple[str, bool, bool]], *, tokens: int = 100) -> tuple[Path, Path]:
    """rows: (id, small passed, large passed); the large model is 3× slower."""
    items, outcomes = tmp_path / "items.jsonl", tmp_path / "outcomes.jsonl"
    items.write_text("".join(json.dumps({"id": i, "prompt": "x" * (tokens + n)}) + "\n"
                             for n, (i, _, _) in enumerate(rows)))
    lines = []
    for i, s, big in rows:
        lines.append({"id": i, "model": "tiny", "passed": s, "prompt_tokens": 10, "completion_tokens": 5,
                      "latency_s": 1.0})
        lines.append({"id": i, "model": "huge", "passed": big, "prompt_tokens": 10, "completion_tokens": 5,
                      "latency_s": 3.0})
    outcomes.write_text("".join(json.dumps(o) + "\n" for o in lines))
    return items, outcomes


def test_anchor_rows_and_oracle_are_exact(tmp_path: Path) -> None:
    rows = [(f"p{n}", n % 4 == 0, n % 2 == 0) for n in range(40)]  # small passes ¼, large ½, small ⊂ large
    items, outcomes = write_files(tmp_path, rows)
    result = replay(load_items(items), load_outcomes(outcomes), seeds=5)
    assert (result.small, result.large) == ("tiny", "huge")
    assert result.train + result.test == 40 and result.test == 20
    small, large, oracle = result.row("always-small"), result.row("always-large"), result.row("oracle")
    assert small.large_share == 0 and small.cost == 1.0 and large.large_share == 1 and large.cost == 3.0
    assert oracle.quality == large.quality  # the large model solves a superset here
    assert oracle.large_share == pytest.approx(large.quality - small.quality)
    assert oracle.cost == pytest.approx(1 + 2 * oracle.large_share)
    assert {r.name for r in result.rows} == {"always-small", "always-large", "random", "rules", "length-rule",
                                             "bandit", "bandit-role", "oracle"}
    assert result.row("rules").large_share == 1.0  # the rule router sends everything to the default (large)


def test_bandit_learns_to_skip_the_large_model_when_it_adds_nothing(tmp_path: Path) -> None:
    rows = [(f"p{n}", n % 3 != 0, n % 3 != 0) for n in range(200)]  # identical quality, large costs 3×
    items, outcomes = write_files(tmp_path, rows)
    result = replay(load_items(items), load_outcomes(outcomes), seeds=10, latency_weight=0.5)
    assert result.row("bandit").large_share < 0.25
    assert result.row("bandit").quality == pytest.approx(result.row("always-large").quality, abs=0.02)


def test_prices_replace_latency_as_cost(tmp_path: Path) -> None:
    items, outcomes = write_files(tmp_path, [(f"p{n}", True, True) for n in range(10)])
    result = replay(load_items(items), load_outcomes(outcomes), seeds=2,
                    prices={"tiny": (1.0, 1.0), "huge": (0.1, 0.1)})
    assert result.large == "tiny"  # higher mean cost is "large", whatever the name
    assert result.row("always-large").cost == pytest.approx(0.015)


@pytest.mark.parametrize(("text", "message"), [
    ('{"id": "a"}\n', ":1: prompt: no item text"),
    ("not json\n", ":1: not JSON"),
    ("", "no items"),
])
def test_malformed_items_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "items.jsonl"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_items(p)
    assert message in str(info.value) and info.value.file == str(p)


def write_signalled(tmp_path: Path, rows: list[tuple[str, bool, bool, bool, float]]) -> tuple[Path, Path]:
    """rows: (id, small passed, large passed, small's examples pass, small's mean logprob)."""
    items, outcomes = tmp_path / "items.jsonl", tmp_path / "outcomes.jsonl"
    items.write_text("".join(json.dumps({"task_id": i, "prompt": "def f():\n"}) + "\n" for i, *_ in rows))
    lines = []
    for i, s, big, ex, lp in rows:
        lines.append({"id": i, "model": "tiny", "passed": s, "prompt_tokens": 10, "completion_tokens": 5,
                      "latency_s": 1.0, "completion": "    return 1\n",
                      "signals": {"examples_total": 2, "examples_passed": 2 if ex else 1, "mean_logprob": lp,
                                  "min_logprob": lp * 10}})
        lines.append({"id": i, "model": "huge", "passed": big, "prompt_tokens": 10, "completion_tokens": 5,
                      "latency_s": 3.0})
    outcomes.write_text("".join(json.dumps(o) + "\n" for o in lines))
    return items, outcomes


def test_cascade_rows_are_computed_from_the_recorded_signals(tmp_path: Path) -> None:
    # The small model fails 1 in 4 and its answer then fails an example; 1 in 16 of its answers also
    # fails an example (a wrong docstring example, say). The large model passes everything.
    rows = [(f"p{n}", n % 4 != 0, True, n % 4 != 0 and n % 16 != 1, -0.05) for n in range(80)]
    items, outcomes = write_signalled(tmp_path, rows)
    result = replay(load_items(items), load_outcomes(outcomes), seeds=2, max_large_share=0.6)
    by_id = {i: (s, ex) for i, s, _, ex, _ in rows}
    test_ids = sorted(by_id, key=lambda i: hashlib.sha256(f"0:{i}".encode()).hexdigest())[:40]
    escalated = [i for i in test_ids if not by_id[i][1]]
    fixed = result.row("cascade-examples")
    assert fixed.quality == 1.0  # every small failure was caught and the large model fixed it
    assert fixed.large_share == pytest.approx(len(escalated) / 40)
    assert fixed.cost == pytest.approx(1.0 + 3.0 * len(escalated) / 40)
    assert result.cascade is not None and result.cascade.examples
    assert result.row("cascade").quality == 1.0 and result.row("cascade").large_share <= 0.6
    assert result.cascade_cv is not None and result.cascade_cv.quality == 1.0
    assert result.cv_large is not None and result.cv_large.quality == 1.0
    assert [r.name for r in result.rows][-3:] == ["cascade-examples", "cascade", "oracle"]


def test_cascade_repair_keeps_the_small_model_when_its_repair_passes_the_examples(tmp_path: Path) -> None:
    # Every 4th small answer fails the tests and an example; its repair (told the failures) passes the examples
    # for every 8th item (and then passes the tests on every 16th). The large model passes everything.
    rows = [(f"p{n}", n % 4 != 0, True, n % 4 != 0, -0.05) for n in range(80)]
    items, outcomes = write_signalled(tmp_path, rows)
    repaired = []
    for line in outcomes.read_text().splitlines():
        o = json.loads(line)
        n = int(o["id"][1:])
        if o["model"] == "tiny" and n % 4 == 0:
            o["repair"] = {"passed": n % 16 == 0, "examples_passed": 2 if n % 8 == 0 else 0, "examples_total": 2,
                           "prompt_tokens": 20, "completion_tokens": 5, "latency_s": 0.5}
        repaired.append(json.dumps(o) + "\n")
    outcomes.write_text("".join(repaired))
    result = replay(load_items(items), load_outcomes(outcomes), seeds=2)
    everything = {r.name: r for r in result.untuned}
    kept = [n for n in range(80) if n % 8 == 0]  # repaired to pass the examples: not escalated
    up = [n for n in range(80) if n % 4 == 0 and n % 8 != 0]
    row = everything["cascade-repair"]
    assert row.large_share == pytest.approx(len(up) / 80)
    assert row.quality == pytest.approx((60 + len(up) + sum(n % 16 == 0 for n in kept)) / 80)
    assert row.cost == pytest.approx((80 * 1.0 + 20 * 0.5 + 3.0 * len(up)) / 80)
    assert everything["cascade-examples"].large_share == pytest.approx(20 / 80)
    assert "cascade-repair" in {r.name for r in result.rows}
    # without a repair for every answer that fails an example, the row is left out and the note says why
    rows_without = [{k: v for k, v in json.loads(line).items() if not (k == "repair" and '"p0"' in line)}
                    for line in repaired]
    outcomes.write_text("".join(json.dumps(o) + "\n" for o in rows_without))
    partial = replay(load_items(items), load_outcomes(outcomes), seeds=2)
    assert "cascade-repair" not in {r.name for r in partial.rows} and "have no recorded repair" in partial.note


def test_signalled_only_replays_the_re_recorded_items(tmp_path: Path) -> None:
    rows = [(f"p{n}", n % 4 != 0, True, n % 4 != 0, -0.05) for n in range(12)]
    items, outcomes = write_signalled(tmp_path, rows)
    legacy = [{"id": f"old{n}", "model": m, "passed": True, "prompt_tokens": 1, "completion_tokens": 1,
               "latency_s": 1.0 + 2 * k} for n in range(6) for k, m in enumerate(("tiny", "huge"))]
    with items.open("a") as f:
        f.write("".join(json.dumps({"id": f"old{n}", "prompt": "x"}) + "\n" for n in range(6)))
    with outcomes.open("a") as f:
        f.write("".join(json.dumps(o) + "\n" for o in legacy))
    assert "cascade" not in {r.name for r in replay(load_items(items), load_outcomes(outcomes), seeds=2).rows}
    result = replay(load_items(items), load_outcomes(outcomes), seeds=2, signalled_only=True)
    assert result.train + result.test == 12 and result.row("cascade-examples").quality == 1.0
    res = CliRunner().invoke(app, ["bench", "routing", "--items", str(items), "--outcomes", str(outcomes),
                                   "--signalled-only", "--seeds", "2"])
    assert res.exit_code == 0 and "2-fold cross-validated over all 12 items" in res.output


def test_no_cascade_rows_without_signals(tmp_path: Path) -> None:
    items, outcomes = write_files(tmp_path, [(f"p{n}", n % 2 == 0, True) for n in range(12)])
    result = replay(load_items(items), load_outcomes(outcomes), seeds=2)
    assert "cascade" not in {r.name for r in result.rows} and result.cascade_cv is None
    assert "lack the small model's signals" in result.note


def test_three_models_or_too_few_items_are_rejected(tmp_path: Path) -> None:
    items, outcomes = write_files(tmp_path, [(f"p{n}", True, False) for n in range(6)])
    extra = {"id": "p0", "model": "third", "passed": True, "prompt_tokens": 1, "completion_tokens": 1,
             "latency_s": 1}
    with pytest.raises(ConfigError, match="exactly two models"):
        replay(load_items(items), [*load_outcomes(outcomes), load_outcomes(outcomes)[0].model_validate(extra)])
    small_items, small_outcomes = write_files(tmp_path, [("a", True, True), ("b", True, False)])
    with pytest.raises(ConfigError, match="need at least 4"):
        replay(load_items(small_items), load_outcomes(small_outcomes))


def test_cli_json_rows(tmp_path: Path) -> None:
    items, outcomes = write_files(tmp_path, [(f"p{n}", n % 2 == 0, True) for n in range(20)])
    res = CliRunner().invoke(app, ["bench", "routing", "--items", str(items), "--outcomes", str(outcomes),
                                   "--json", "--seeds", "3"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["name"] for r in rows][:2] == ["always-small", "always-large"] and "bandit" in [r["name"] for r in rows]
    assert set(rows[0]) == {"name", "quality", "cost", "large_share"}
    bad = CliRunner().invoke(app, ["bench", "routing", "--items", str(tmp_path / "missing.jsonl"),
                                   "--outcomes", str(outcomes)])
    assert bad.exit_code == 2 and "cannot read" in bad.output


def test_recorded_humaneval_files_replay() -> None:
    items = load_items(REPO / "bench" / "routing" / "humaneval_items.jsonl")
    outcomes = load_outcomes(REPO / "bench" / "routing" / "humaneval_outcomes.jsonl")
    assert len(items) == 164 and all(i.startswith("HumanEval/") for i in items)
    assert {o.model for o in outcomes} == {"qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"}
    result = replay(items, outcomes, seeds=3)
    assert result.large == "qwen2.5-coder-1.5b-instruct"
    if result.cascade_cv is not None:  # once every item's small-model row carries signals
        assert {"cascade-examples", "cascade"} <= {r.name for r in result.rows}
