"""The unmet goal requirements as a re-planned task's checks (``nodes.goal_task_checks``), on real files."""

from __future__ import annotations

from pathlib import Path

from naestro.plan import CommandCheck, RegexCheck
from nodes.file_checks import file_check
from nodes.goal_requirements import GoalRequirement
from nodes.goal_task_checks import task_checks


def passes(req: GoalRequirement, files: dict[str, str], tmp_path: Path) -> list[bool]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return [file_check(c, {}, tmp_path)[0] for c in task_checks(req) if not isinstance(c, CommandCheck)]


def test_tests_must_run_and_import_the_goals_code(tmp_path: Path) -> None:
    req = GoalRequirement(kind="tests", items=("test_calc.py",), exercises=("calc.py", "pkg/util.py"))
    checks = task_checks(req)
    assert isinstance(checks[0], CommandCheck)
    assert checks[0].command.endswith("pytest -q -p no:cacheprovider test_calc.py")
    assert [c.file for c in checks[1:] if isinstance(c, RegexCheck)] == ["test_calc.py", "test_calc.py"]
    assert passes(req, {"test_calc.py": "import os, calc\nfrom pkg.util import f\n"}, tmp_path) == [True, True]
    assert passes(req, {"test_calc.py": "from calculator import add\nimport pkg\n# import calc\n"},
                  tmp_path) == [False, False]


def test_columns_keys_and_stated_texts(tmp_path: Path) -> None:
    columns = GoalRequirement(kind="columns", file="out.csv", items=("region", "total"))
    assert passes(columns, {"out.csv": "total,region\neast,1\n"}, tmp_path) == [True]
    assert passes(columns, {"out.csv": "region,sum\neast,total\n"}, tmp_path) == [False]  # header line only
    keys = GoalRequirement(kind="keys", file="t.json", items=("east",))
    assert passes(keys, {"t.json": '{"east": 1}'}, tmp_path) == [True]
    assert passes(keys, {"t.json": '{"west": "east"}'}, tmp_path) == [False]
    states = GoalRequirement(kind="states", file="r.md", items=("a+b",), quantity=True)
    assert passes(states, {"r.md": "a+b is 3"}, tmp_path) == [True, True]
    assert passes(states, {"r.md": "aab is three"}, tmp_path) == [False, False]
    assert task_checks(GoalRequirement(kind="unchanged", file="x.py", items=("0" * 64,))) == []
