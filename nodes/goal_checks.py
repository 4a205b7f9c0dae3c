"""The goal-level acceptance step: the goal's own requirements (``nodes.goal_requirements``), checked on the final
workspace before a run may report PASSED (issue 22).

The plan's checks are what a model chose to check; these are what the user asked for. They are derived when the
run is planned (from the starting workspace: which named files are inputs) and kept in the graph state, so a user
(CLI, SDK, Studio) sees what will be checked; the report node checks them and a failure makes the phase FAILED,
which sends the run down the re-plan path with the failing requirement as the reason, or ends it FAILED.

Files are checked in process. Tests run with pytest through the run's ``exec.run`` tool as the Evaluator role: the
policy gate decides (copilot mode may ask a human), the sandbox runs it, the effect journal replays it when the
node is resumed after a consent interrupt.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import hashlib
import io
import json
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from graphs.state import GoalCheck
from mcp_servers.sandbox import Limits, SandboxUnavailable, run_sandboxed
from naestro.context import Execution, RunContext
from naestro.homes import copy_workspace, home_of
from naestro.plan import Role
from nodes.file_checks import inside
from nodes.goal_requirements import GoalRequirement, derive_requirements
from nodes.vacuity import fits_throwaway_copy

__all__ = ["GoalCheck", "as_goal_check", "check_goal", "goal_failures", "goal_passed", "in_workspace",
           "planned_goal_checks"]

PYTEST = "python3 -m pytest -q -p no:cacheprovider"
TEST_TIMEOUT_S = 120.0
_NO_TESTS = 5  # pytest's exit code when it collected nothing


def in_workspace(workspace: Path) -> Callable[[str], bool]:
    """Whether a named file exists in ``workspace`` (at plan time: an input, not a deliverable). Blocking."""
    return lambda name: (p := inside(workspace, name)) is not None and p.exists()


def _digest(workspace: Path, name: str) -> str | None:
    """sha256 of a workspace file's content, or None when it is not a file there. Blocking."""
    path = inside(workspace, name)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else None


def as_goal_check(req: GoalRequirement) -> GoalCheck:
    return {"requirement": req.model_dump(mode="json"), "description": req.describe(), "passed": None,
            "detail": f"asked for by the goal: {req.words!r}"}


def planned_goal_checks(goal: str, workspace: Path, *, extra: Iterable[GoalRequirement] = ()) -> list[GoalCheck]:
    """The goal's requirements, unchecked, plus ``extra`` ones not already among them (the model helper's,
    validated); files already in ``workspace`` are inputs. Blocking (stats files)."""
    reqs = derive_requirements(goal, exists=in_workspace(workspace), digest=functools.partial(_digest, workspace))
    seen = {(r.kind, r.file, r.items) for r in reqs}
    reqs += [r for r in extra if (r.kind, r.file, r.items) not in seen]
    return [as_goal_check(r) for r in reqs]


def goal_passed(checks: list[GoalCheck] | None) -> bool:
    return all(c["passed"] is True for c in checks or [])


def goal_failures(checks: list[GoalCheck] | None) -> dict[str, str]:
    """Requirement → why it failed: the re-plan's reasons and the report's."""
    return {c["description"]: c["detail"] for c in checks or [] if c["passed"] is not True}


Verdict = tuple[bool, str]


def _reading(check: Callable[[GoalRequirement, str], Verdict]) -> Callable[[GoalRequirement, Path], Verdict]:
    """``check`` of the text of the file the requirement names; a file that is not there fails, saying so."""
    @functools.wraps(check)
    def on_file(req: GoalRequirement, workspace: Path) -> Verdict:
        path = inside(workspace, req.file)
        if path is None or not path.is_file():
            return False, f"{req.file} does not exist"
        return check(req, path.read_text(errors="replace"))
    return on_file


@_reading
def _file(req: GoalRequirement, text: str) -> Verdict:
    if not text.strip():
        return False, f"{req.file} is empty"
    if req.file.endswith(".py"):
        try:
            compile(text, req.file, "exec")
        except (SyntaxError, ValueError) as exc:
            return False, f"{req.file} does not compile: {exc}"
    if req.file.endswith(".json"):
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return False, f"{req.file} is not JSON: {exc}"
    return True, f"{req.file} exists ({len(text.encode())} bytes)"


def _unchanged(req: GoalRequirement, workspace: Path) -> Verdict:
    now = _digest(workspace, req.file)
    if now is None:
        return False, f"{req.file} was removed; the goal keeps it as it is"
    if now != req.items[0]:
        return False, (f"{req.file} was changed; the goal keeps it as it is: put back its original content "
                       "and change only what the goal asks for")
    return True, f"{req.file} is as it was when the run started"


@_reading
def _columns(req: GoalRequirement, text: str) -> Verdict:
    rows = [r for r in csv.reader(io.StringIO(text), delimiter="\t" if req.file.endswith(".tsv") else ",")
            if any(c.strip() for c in r)]
    header = [c.strip().lower() for c in rows[0]] if rows else []
    missing = [c for c in req.items if c.strip().lower() not in header]
    if missing:
        return False, f"{req.file}'s header {rows[0] if rows else '(none)'} lacks {missing}"
    return True, f"{req.file}'s header has {list(req.items)}"


@_reading
def _keys(req: GoalRequirement, text: str) -> Verdict:
    try:
        value = json.loads(text) if req.file.endswith(".json") else [json.loads(ln) for ln in text.splitlines()
                                                                      if ln.strip()]
    except json.JSONDecodeError as exc:
        return False, f"{req.file} is not JSON: {exc}"
    objects = value if isinstance(value, list) else [value]
    if not objects or not all(isinstance(o, dict) for o in objects):
        return False, f"{req.file} holds no JSON object (or a list of them) to have keys"
    missing = sorted({k for o in objects if isinstance(o, dict) for k in req.items if k not in o})
    if missing:
        return False, f"{req.file} lacks the key(s) {missing}"
    return True, f"{req.file} has the keys {list(req.items)}"


@_reading
def _states(req: GoalRequirement, text: str) -> Verdict:
    flat = " ".join(text.split()).lower()
    missing = [t for t in req.items if " ".join(t.split()).lower() not in flat]
    if missing:
        return False, f"{req.file} does not contain {missing}"
    if req.quantity and not any(ch.isdigit() for ch in text):
        return False, f"{req.file} states no number, and the goal asks it to state {req.words!r}"
    return True, f"{req.file} states {'what the goal asks' if req.items else 'a number'}"


@_reading
def _exact(req: GoalRequirement, text: str) -> Verdict:
    content = text.strip()
    if any(content == t.strip() for t in req.items):
        return True, f"{req.file} is exactly what the goal spells out"
    shown = content if len(content) <= 120 else content[:117] + "..."
    return False, f"{req.file} is {shown!r}; the goal says its whole content is exactly {req.items[0]!r}"


async def _tests(req: GoalRequirement, ctx: RunContext, ex: Execution) -> tuple[bool, str]:
    command = " ".join([PYTEST, *map(shlex.quote, req.items)])
    res = await ctx.call_tool(ex, "exec.run", {"command": command, "timeout_s": TEST_TIMEOUT_S},
                              timeout_s=TEST_TIMEOUT_S + 10)
    data = res.structured if isinstance(res.structured, dict) else {}
    code = data.get("exit_code")
    if not res.ok or not isinstance(code, int):
        return False, f"`{command}` did not run: {res.text[:400]}"
    if code == 0:
        return await _exercised(req, ctx, command)
    tail = (str(data.get("stdout", ""))[-900:] + "\n" + str(data.get("stderr", ""))[-300:]).strip()
    if code == _NO_TESTS:
        return False, f"`{command}` collected no tests (exit 5): the goal asks for tests that pass"
    return False, f"`{command}` exited {code}: {tail}"


async def _exercised(req: GoalRequirement, ctx: RunContext, command: str) -> Verdict:
    """Tests that still pass with the goal's code removed do not test it: golden run of 2026-12-06, tests_calc_add,
    test_calc.py defined its own add() and passed, and the run claimed "write calc.py ... add pytest tests for it
    ... make the tests pass". The same command the gate just allowed, in the same sandbox, on a throwaway copy of
    the workspace without those files (as the deferred vacuity probe does)."""
    present = [f for f in req.exercises if (path := inside(ctx.workspace, f)) is not None and path.is_file()]
    if not present:
        return True, f"`{command}` exited 0"
    home = (home_of(ctx.run_dir),)  # in the workspace in an --in-place run: never copied
    if not await asyncio.to_thread(functools.partial(fits_throwaway_copy, ctx.workspace, leave_out=home)):
        # Unverified is not passed: a run never says PASSED on tests nobody showed to test the goal's code.
        return False, (f"`{command}` exited 0, but whether it tests {', '.join(present)} could not be checked: the "
                       "workspace is too large to copy for the probe (50 MB); run the tests without those files "
                       "to see that they fail")
    with tempfile.TemporaryDirectory(prefix="naestro-exercised-") as tmp:
        copy = Path(tmp) / "workspace"
        await asyncio.to_thread(copy_workspace, ctx.workspace, copy, leave_out=home,
                                ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        for name in present:
            (copy / name).unlink()
        try:
            done = await run_sandboxed(copy, command, Limits(wall_s=TEST_TIMEOUT_S, cpu_s=int(TEST_TIMEOUT_S)))
        except SandboxUnavailable as exc:
            return False, f"`{command}` exited 0, but whether it tests {', '.join(present)} could not be checked: {exc}"
    if done.exit_code == 0:
        return False, (f"`{command}` passes even with {', '.join(present)} removed: the tests do not exercise the "
                       f"code the goal asks for; they must import it (e.g. `from {Path(present[0]).stem} import ...`)")
    return True, f"`{command}` exited 0, and fails without {', '.join(present)}"


async def check_goal(checks: list[GoalCheck], ctx: RunContext, *, run_commands: bool) -> list[GoalCheck]:
    """``checks`` with their verdicts on the workspace as it is now. Without ``run_commands`` (the plan's tasks
    did not all pass: the phase fails anyway) tests are not run, so a failed run asks nobody for consent."""
    ex = Execution(node="goal", task_id="goal", role=Role.evaluator, attempt=1)
    out: list[GoalCheck] = []
    for check in checks:
        req = GoalRequirement.model_validate(check["requirement"])
        if req.kind == "tests":
            if not run_commands:
                out.append({**check, "passed": None, "detail": "not run: the plan's tasks did not all pass"})
                continue
            ok, detail = await _tests(req, ctx, ex)
        else:
            checker = {"file": _file, "columns": _columns, "keys": _keys, "states": _states,
                       "unchanged": _unchanged, "exact": _exact}[req.kind]
            ok, detail = await asyncio.to_thread(checker, req, ctx.workspace)
        out.append({**check, "passed": ok, "detail": detail})
    if out:
        ctx.events.emit("goal_checked", passed=goal_passed(out),
                        checks=[{"requirement": c["description"], "passed": c["passed"],
                                 "detail": c["detail"][:500]} for c in out])
    return out
