"""The goal's unmet requirements as acceptance checks of the task a re-plan makes toward them.

When a re-plan leaves nothing of the model's plan (``nodes.planning._toward_the_goal``), one Coder task works on
what the goal still lacks. Accepted only when the goal's files exist, it passed at once whatever it wrote: issue-22
slice at fda50b7, tests_calc_add #1: the goal check found "pytest passes even with calc.py removed" (test_calc.py
defined its own add), the re-planned task rewrote test_calc.py without importing add (NameError in every test),
its file_exists checks passed, and the run ended FAILED with no attempt ever told why. With these checks the
attempt's own checks fail with pytest's output and the next attempt gets it as feedback.

Each check is the requirement's own bar where a task check can hold it (pytest on the named tests, a quoted text,
a column, a key) and a sign of it where only the run's probe can: "the tests fail without calc.py" needs a copy of
the workspace without calc.py (``nodes.goal_checks``), so the task checks that each test file imports the goal's
code. The goal checks still decide the run on the final workspace.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from pathlib import PurePosixPath

from graphs.state import GoalCheck
from naestro.plan import AcceptanceCheck, CommandCheck, FileExistsCheck, RegexCheck
from nodes.goal_checks import PYTEST, TEST_TIMEOUT_S
from nodes.goal_requirements import GoalRequirement

__all__ = ["task_checks", "unmet_requirements"]


def unmet_requirements(checks: Iterable[GoalCheck] | None) -> list[GoalRequirement]:
    """The requirements of ``checks`` not passed (failed, or not run because the plan's tasks failed)."""
    return [GoalRequirement.model_validate(c["requirement"]) for c in checks or [] if c["passed"] is not True]


def _imports(module: str) -> str:
    """A pattern for a line importing ``module`` (``from calc import add``, ``import calc``, ``import os, calc``)."""
    name = re.escape(module)
    return rf"(?m)^\s*(?:from\s+{name}\s+import\b|import\s+(?:[\w.]+\s*,\s*)*{name}\b)"


def task_checks(req: GoalRequirement) -> list[AcceptanceCheck]:
    """Acceptance checks an attempt is told about for one requirement (none for "unchanged": a task cannot be
    asked to have not changed a file)."""
    match req.kind:
        case "file":
            return [FileExistsCheck(kind="file_exists", path=req.file)]
        case "tests":
            command = " ".join([PYTEST, *map(shlex.quote, req.items)])
            modules = [PurePosixPath(code).with_suffix("").as_posix().replace("/", ".") for code in req.exercises]
            return [CommandCheck(kind="command", command=command, timeout_s=TEST_TIMEOUT_S),
                    *(RegexCheck(kind="regex", file=test, pattern=_imports(module))
                      for test in req.items for module in modules)]
        case "columns":
            header = "".join(rf"(?=[^\n]*\b{re.escape(c)}\b)" for c in req.items)
            return [RegexCheck(kind="regex", file=req.file, pattern=rf"\A{header}")]
        case "keys":
            return [RegexCheck(kind="regex", file=req.file, pattern=rf"\"{re.escape(k)}\"\s*:") for k in req.items]
        case "states":
            quantity = [RegexCheck(kind="regex", file=req.file, pattern=r"\d")] if req.quantity else []
            return [*(RegexCheck(kind="regex", file=req.file, pattern=re.escape(item)) for item in req.items),
                    *quantity]
        case "exact":
            either = "|".join(re.escape(t.strip()) for t in req.items)
            return [RegexCheck(kind="regex", file=req.file, pattern=rf"\A\s*(?:{either})\s*\Z")]
        case "unchanged":
            return []
