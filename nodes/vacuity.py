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

Every mode (issue 18: in copilot mode the gate asks about ``exec.run``, so the probe never ran and
``python3 -c "print('Hello, World!')"`` passed for "create hello.py"): a command check that reads no file at
all (``reads_no_file``: no file name, no module that is not the standard library's, no test runner, nothing
in the workspace) is a plan problem without running anything. A check the probe could not run while planning
is probed later (``DeferredProbe``): the planning node keeps a copy of the workspace it planned against, and
once the run's gate has allowed the check itself (a human approved it), a check that passed is run again on
a copy of that baseline; passing there too, it is vacuous and the task fails.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from mcp_servers.sandbox import Completed, missing_module
from naestro.errors import PlanProblem
from naestro.homes import copy_workspace, home_of, workspace_bytes
from naestro.plan import CommandCheck, FileExistsCheck, JsonSchemaCheck, Plan, RegexCheck
from naestro.plan_checks import pointer
from naestro.redact import redact
from nodes.file_checks import file_check

__all__ = ["READS_NO_FILE", "VACUOUS", "CommandRunner", "DeferredProbe", "Probe", "files_named", "imported_modules",
           "reads_no_file", "vacuous_checks"]

CommandRunner = Callable[[str, Path], Awaitable[Completed | None]]
"""Runs a check's command in a workspace (sandboxed); None when it may not run (policy)."""

Probe = Callable[[Plan], Awaitable[list[PlanProblem]]]

VACUOUS = ("already passes before any task has run, so it cannot show the task did its work; check what the "
           "task produces instead (the content of the file it writes, or its output)")

READS_NO_FILE = ("reads no file, so it passes or fails whatever the task produces; run or read what the task "
                 "writes instead (e.g. python3 hello.py, or python3 -c \"from m import f; assert f(2) == 4\")")

# Copying a large workspace for every planning attempt costs more than the probe is worth: file checks still run.
_MAX_COPY_BYTES = 50_000_000

# A file name, or a glob of them (``*.py``, ``report_?.md``): what a task may write.
_FILE_TOKEN = re.compile(r"[\w./*?-]*[\w*?]\.(?:py|pyi|txt|csv|tsv|json|jsonl|md|yaml|yml|toml|ini|cfg|html|xml|sh|"
                         r"sql|js|ts|log|db|sqlite|c|h|cpp|rs|go|java|rb)\b")
_IMPORT = re.compile(r"(?:^|[\s;\"'(])(?:from\s+([A-Za-z_][\w.]*)\s+import|import\s+([A-Za-z_][\w., ]*))")
_RUN_MODULE = re.compile(r"-m\s+([A-Za-z_][\w.]*)")
_RELATIVE_PATH = re.compile(r"[\w.-]+/[\w./-]*")
_TEST_RUNNER = re.compile(r"(?:^|[\s;&|])(?:pytest|py\.test)\b|-m\s+(?:pytest|unittest)\b")


def imported_modules(command: str) -> set[str]:
    """Modules outside the standard library a command imports or runs (``from fib import``, ``-m pkg``)."""
    names: set[str] = set()
    for m in _IMPORT.finditer(command):
        spec = m.group(1) or m.group(2) or ""
        names |= {part.strip().split(" ")[0].split(".")[0] for part in spec.split(",") if part.strip()}
    names |= {m.group(1).split(".")[0] for m in _RUN_MODULE.finditer(command)}
    return {n for n in names if n and n not in sys.stdlib_module_names}


def files_named(command: str) -> set[str]:
    """The file names (and globs of them) a command names."""
    return set(_FILE_TOKEN.findall(command))


def _workspace_names(command: str, workspace: Path) -> bool:
    """A word of the command that names something in the workspace (``cat out/result``, ``test -d build``)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    for word in words:
        word = word.strip("'\"()[];,")
        if not word or word in (".", "./") or word.startswith(("/", "-", "~")) or ".." in word or len(word) > 255:
            continue
        if _RELATIVE_PATH.fullmatch(word):  # out/, build/report: a folder or file a task may still create
            return True
        try:
            if (workspace / word).exists():
                return True
        except OSError:
            continue
    return False


def reads_no_file(command: str, workspace: Path) -> bool:
    """Whether a command check reads nothing a task could produce: no file name, no module outside the standard
    library (``from fib import fib``), no test runner (``pytest`` discovers the tests a task writes), no word
    naming something in the workspace. Such a check (``python3 -c "print('Hello')"``, ``echo ok``) shows nothing
    about the work, in any mode, without running it."""
    return not (_FILE_TOKEN.search(command) or imported_modules(command) or _TEST_RUNNER.search(command)
                or _workspace_names(command, workspace))


def fits_throwaway_copy(workspace: Path, *, leave_out: Collection[Path | None] = ()) -> bool:
    """Whether a probe may copy this workspace without ``leave_out`` (at most ``_MAX_COPY_BYTES``). Blocking:
    walks the tree."""
    return workspace_bytes(workspace, leave_out=leave_out) <= _MAX_COPY_BYTES


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


async def vacuous_checks(plan: Plan, workspace: Path, run_command: CommandRunner, *,
                         leave_out: Collection[Path | None] = ()) -> list[PlanProblem]:
    """A problem for every check of ``plan`` that passes on ``workspace`` as it is now (nothing is changed), run
    on a copy without ``leave_out`` (Naestro's home in an --in-place run)."""
    problems: list[tuple[int, int, PlanProblem]] = []
    commands: list[tuple[int, int, str]] = []
    for i, task in enumerate(plan.tasks):
        for j, check in enumerate(task.accept):
            if isinstance(check, CommandCheck) and reads_no_file(check.command, workspace):
                problems.append((i, j, PlanProblem(pointer("tasks", i, "accept", j),
                                                   f"this command check {READS_NO_FILE}")))
            elif isinstance(check, CommandCheck):
                commands.append((i, j, check.command))
            elif isinstance(check, FileExistsCheck | RegexCheck | JsonSchemaCheck) \
                    and file_check(check, {}, workspace)[0]:
                problems.append((i, j, PlanProblem(pointer("tasks", i, "accept", j),
                                                   f"this {check.kind} check {VACUOUS}")))
    if commands and fits_throwaway_copy(workspace, leave_out=leave_out):
        with tempfile.TemporaryDirectory(prefix="naestro-probe-") as tmp:
            copy = Path(tmp) / "workspace"
            copy_workspace(workspace, copy, leave_out=leave_out)
            for i, j, command in commands:
                done = await run_command(command, copy)
                problem = None if done is None else _command_problem(done, plan)
                if problem:
                    problems.append((i, j, PlanProblem(pointer("tasks", i, "accept", j), problem)))
    return [p for _, _, p in sorted(problems, key=lambda t: (t[0], t[1]))]


class DeferredProbe:
    """The probe of the checks planning could not run, done at check time against the workspace planned from.

    ``RUN/baseline/phaseN/`` is a copy of the workspace as the phase's planner saw it, and
    ``RUN/baseline/phaseN.json`` lists the command checks the probe did not run. Run only after the gate
    allowed the check itself in the run workspace (a human approved it, in copilot mode): the probe is that same
    command, in the same sandbox, on a throwaway copy of the baseline.
    """

    def __init__(self, run_dir: Path, phase: int) -> None:
        self.folder = run_dir / "baseline" / f"phase{phase}"
        self.leave_out = (home_of(run_dir),)  # in an --in-place run the home (and this folder) is in the workspace
        self.listing = run_dir / "baseline" / f"phase{phase}.json"

    def keep(self, workspace: Path, commands: list[str], *, guarded: bool = False) -> None:
        """Blocking (copies the workspace): call it from a worker thread. Nothing is kept with no command.

        ``guarded``: a re-plan whose verdict rests on checks that already failed once (the failed tasks' carried
        checks, the goal's unmet requirements), re-checked on the final workspace (``guarded()``)."""
        if not commands:
            return
        self.listing.parent.mkdir(parents=True, exist_ok=True)
        copied = fits_throwaway_copy(workspace, leave_out=self.leave_out)
        if copied:
            if self.folder.exists():
                shutil.rmtree(self.folder)
            copy_workspace(workspace, self.folder, leave_out=self.leave_out)
        self.listing.write_text(json.dumps({"commands": sorted(set(commands)), "baseline": copied,
                                            "guarded": guarded}), encoding="utf-8")

    def guarded(self) -> bool:
        try:
            return bool(json.loads(self.listing.read_text(encoding="utf-8")).get("guarded"))
        except (OSError, ValueError):
            return False

    def pending(self) -> set[str]:
        """The commands to probe at check time (none when the planner probed everything)."""
        try:
            data = json.loads(self.listing.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        return {str(c) for c in data.get("commands", [])} if data.get("baseline") and self.folder.is_dir() else set()

    def keep_unprobed(self, plan: Plan, probed: set[str], workspace: Path, *, guarded: bool = False) -> None:
        """Keep the baseline for ``plan``'s command checks the planner's probe did not run (blocking).

        Commands are listed as ``naestro.redact`` shows them (a key in a check is not written to disk); the
        check-time side compares the same way."""
        self.keep(workspace, [redact(c.command) for t in plan.tasks for c in t.accept
                              if isinstance(c, CommandCheck) and c.command not in probed], guarded=guarded)

    async def passes_before(self, command: str, run: Callable[[str, Path], Awaitable[Completed]]) -> bool:
        """Whether ``command`` exits 0 on a copy of the baseline (the workspace before the phase's work)."""
        with tempfile.TemporaryDirectory(prefix="naestro-probe-") as tmp:
            copy = Path(tmp) / "workspace"
            await asyncio.to_thread(copy_workspace, self.folder, copy, leave_out=())
            done = await run(command, copy)
        return done.exit_code == 0
