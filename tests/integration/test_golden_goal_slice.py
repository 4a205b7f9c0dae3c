"""The issue-22 golden slice (code + tests, data transform + report): its checks pass right work and fail the
wrong work seen in runs (tests that never import the function, a hand-typed wrong value, an empty report), and the
goal-requirement extractor finds every deliverable each goal names."""

from __future__ import annotations

from pathlib import Path

import pytest

from naestro.golden import GoldenGoal, check_workspace, load_suite
from nodes.goal_requirements import derive_requirements

SUITE = Path(__file__).resolve().parent.parent / "golden"

RIGHT: dict[str, dict[str, str]] = {
    "tests_calc_add": {"calc.py": "def add(a, b):\n    return a + b\n",
                       "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"},
    "tests_slugify": {"slug.py": "import re\n\n\ndef slugify(text):\n"
                                 "    return re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-')\n",
                      "test_slug.py": "from slug import slugify\n\n\ndef test_it():\n"
                                      "    assert slugify('Hello, World!') == 'hello-world'\n"},
    "tests_fix_median": {"stats.py": "def median(xs):\n    xs = sorted(xs)\n    n = len(xs)\n"
                                     "    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2\n"},
    "report_region_totals": {"totals.csv": "region,total\nnorth,150.75\nsouth,99.75\neast,50.00\n",
                             "report.md": "# Sales\n\nThe grand total of all sales is 300.50.\n"},
    "report_score_stats": {"stats.json": '{"mean": 85.0, "max": 100, "count": 4}',
                           "summary.md": "# Scores\n\nThe mean score is 85.\n"},
    "report_big_orders": {"big_orders.csv": "id,customer,amount\n2,bob,150.5\n4,di,220\n6,fa,101\n",
                          "report.md": "# Orders\n\n3 orders are over 100.\n"},
}
WRONG: dict[str, dict[str, str]] = {
    "tests_calc_add": {"test_calc.py": "def test_add():\n    assert add(2, 3) == 5\n"},  # NameError (issue 22)
    "tests_slugify": {"slug.py": "def slugify(text):\n    return text.lower().replace(' ', '-')\n"},
    "tests_fix_median": {"test_stats.py": "from stats import median\n\n\ndef test_odd():\n    assert True\n"},
    "report_region_totals": {"totals.csv": "region,total\nnorth,150.75\nsouth,99.75\neast,8.5\n"},
    "report_score_stats": {"stats.json": '{"mean": 85.0, "max": 100, "count": 5}'},
    "report_big_orders": {"big_orders.csv": "id,customer,amount\n2,bob,150.5\n3,cy,100\n4,di,220\n6,fa,101\n"},
}


def goal(goal_id: str) -> GoldenGoal:
    return next(g for g in load_suite(SUITE) if g.id == goal_id)


def workspace(tmp_path: Path, g: GoldenGoal, *layers: dict[str, str]) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir(parents=True)
    for files in (g.files, *layers):
        for name, text in files.items():
            (ws / name).write_text(text)
    return ws


@pytest.mark.parametrize("goal_id", sorted(RIGHT))
async def test_right_work_passes_and_wrong_work_fails(tmp_path: Path, goal_id: str) -> None:
    g = goal(goal_id)
    right = workspace(tmp_path / "right", g, RIGHT[goal_id])
    assert all(v.passed for v in await check_workspace(g, right)), [v.render() for v in
                                                                    await check_workspace(g, right)]
    wrong = workspace(tmp_path / "wrong", g, RIGHT[goal_id], WRONG[goal_id])
    assert not all(v.passed for v in await check_workspace(g, wrong))


@pytest.mark.parametrize("goal_id", sorted(RIGHT))
def test_the_extractor_finds_every_deliverable(goal_id: str) -> None:
    g = goal(goal_id)
    reqs = derive_requirements(g.goal, exists=lambda name: name in g.files)
    made = {r.file for r in reqs if r.kind == "file"}
    assert made == set(RIGHT[goal_id]) - set(g.files)
    assert any(r.kind == "tests" for r in reqs) == goal_id.startswith("tests_")
