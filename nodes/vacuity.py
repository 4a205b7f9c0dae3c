"""Vacuous checks: acceptance checks that already pass before any task has run (or never can).

A check that passes on the untouched workspace shows nothing about the task's work, so a plan of such checks
reports success whatever the agents do. The 1.5B planner writes them often: ``file_exists people.json`` for a task
that reads people.json; a ``python3 -c`` check that recomputes the answer from the input file and asserts nothing
about the output. The planner probes every candidate plan's checks against a throwaway copy of the starting
workspace and returns the vacuous ones as plan problems, exactly like the validator's (this is the test-first
rule: a check must fail before the work is done).

File checks are evaluated in process; command checks run in the same bubblewrap sandbox as ``exec.run``, after
the run's policy gate allowed them (a check the gate would ask about is not probed: planning cannot wait for a
human). Evaluator checks are not probed. The same probe catches a command check that imports a module the
sandbox does not have (seen: ``import pandas``), which no work can make pass.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from mcp_servers.sandbox import Completed, missing_module
from naestro.errors import PlanProblem
from naestro.plan import CommandCheck, FileExistsCheck, JsonSchemaCheck, Plan, RegexCheck
from naestro.validate import pointer
from nodes.file_checks import file_check

__all__ = ["VACUOUS", "CommandRunner", "Probe", "vacuous_checks"]

CommandRunner = Callable[[str, Path], Awaitable[Completed | None]]
"""Runs a check's command in a workspace (sandboxed); None when it may not run (policy)."""

Probe = Callable[[Plan], Awaitable[list[PlanProblem]]]

VACUOUS = ("already passes before any task has run, so it cannot show the task did its work; check what the "
           "task produces instead (the content of the file it writes, or its output)")

# Copying a large workspace for every planning attempt costs more than the probe is worth: file checks still run.
_MAX_COPY_BYTES = 50_000_000


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _command_problem(done: Completed, plan: Plan) -> str | None:
    if done.exit_code == 0:
        return f"this command check {VACUOUS}"
    module = missing_module(done.stderr)
    if module is None:
        return None
    # `from fib import fib` fails before fib.py is written: a module the plan will write is not missing.
    text = plan.model_dump_json()
    if f"{module}.py" in text or f"{module}/" in text:
        return None
    return (f"this command check imports {module!r}, which the sandbox's python3 does not have, so it can never "
            "pass; use the standard library (csv, json, re) or a module a task writes")


async def vacuous_checks(plan: Plan, workspace: Path, run_command: CommandRunner) -> list[PlanProblem]:
    """A problem for every check of ``plan`` that passes on ``workspace`` as it is now (nothing is changed)."""
    problems: list[tuple[int, int, PlanProblem]] = []
    commands: list[tuple[int, int, str]] = []
    for i, task in enumerate(plan.tasks):
        for j, check in enumerate(task.accept):
            if isinstance(check, CommandCheck):
                commands.append((i, j, check.command))
            elif isinstance(check, FileExistsCheck | RegexCheck | JsonSchemaCheck) \
                    and file_check(check, {}, workspace)[0]:
                problems.append((i, j, PlanProblem(pointer("tasks", i, "accept", j),
                                                   f"this {check.kind} check {VACUOUS}")))
    if commands and _size(workspace) <= _MAX_COPY_BYTES:
        with tempfile.TemporaryDirectory(prefix="naestro-probe-") as tmp:
            copy = Path(tmp) / "workspace"
            shutil.copytree(workspace, copy, symlinks=True)
            for i, j, command in commands:
                done = await run_command(command, copy)
                problem = None if done is None else _command_problem(done, plan)
                if problem:
                    problems.append((i, j, PlanProblem(pointer("tasks", i, "accept", j), problem)))
    return [p for _, _, p in sorted(problems, key=lambda t: (t[0], t[1]))]
