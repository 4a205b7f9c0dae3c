"""The agreed reference program, run by Naestro when a task's first attempt leaves its file different from the
agreed result (program-aided: the model writes the program, the runtime runs it).

Seen on adults_csv with the 1.5B (golden run 7 at 1f7797c, and whenever its references agreed since): two
independent programs agreed on adults.csv, the agent was told so with row-level evidence and offered the program
(``program_offer``), and it still typed the rows by hand: more attempts and a Reviewer pass, then a re-plan that
did the same, and the run FAILED with the right program in hand. A program that samples agreed on (and a third
did not contest) is the best answer the run has. Measured at bd56d9c: adults_csv 3/3 and region_totals 2 of its
3 passes came this way (BENCHMARKS.md).

Only after the agent's own first attempt wrote the file (its work comes first), once per task, and only for data
files (CSV, JSON, text): a report's reference prints the quantities the prose must state, which no program
writes. The call goes through the gate and the sandbox as the task's role (journaled like any tool call; copilot
mode asks), the task's checks then run again, and report.md says which file the program wrote. Guide mode runs
nothing. The risk: programs that agree on a wrong result now write it, and Naestro's own checks pass; only the
goal's own requirements (``nodes.goal_requirements``) can catch that. The improve loop does not count such a run
as passed (``naestro.improve.validate.outcome_of_events``).
"""

from __future__ import annotations

import asyncio

from pydantic import JsonValue

from naestro.context import Execution, RunContext
from naestro.evaluators import comparison_for
from naestro.plan import EvaluatorCheck, Task
from nodes.file_checks import inside
from nodes.reference_use import agreed_program

__all__ = ["applicable_programs", "apply_agreed_programs"]


def applicable_programs(task: Task, passed: list[bool]) -> list[tuple[str, list[str]]]:
    """(file, argv) of each failed agreed reference check on a data file (a report's numbers are prose's to state);
    a program that printed its result comes wrapped so that its output goes into the file (``agreed_program``)."""
    out: list[tuple[str, list[str]]] = []
    for spec, ok in zip(task.accept, passed, strict=True):
        program = None if ok or not isinstance(spec, EvaluatorCheck) else agreed_program(spec)
        if program is not None and comparison_for(program[0]) != "numbers":
            out.append(program)
    return out


async def apply_agreed_programs(task: Task, passed: list[bool], ctx: RunContext, *, attempt: int) -> list[str]:
    """Run the agreed program of each of ``task``'s failed reference checks (``passed``: each check's outcome, in
    ``task.accept`` order) that writes its file, in the run workspace; the files whose program ran cleanly.

    Only where the agent wrote the file and it differs: an agent that wrote nothing (its budget ran out, it never
    got to it) is not done for it; its next attempt is told, as before. Otherwise a prompt or budget that stops
    the agent from working would look as good as one that lets it work (the improve loop's replay of a starved
    Coder passed with the program's file)."""
    if task.is_direct or attempt != 1 or ctx.gate.policy.mode == "guide":
        return []
    programs = applicable_programs(task, passed)
    if not programs:
        return []
    programs = await asyncio.to_thread(lambda: [(f, argv) for f, argv in programs
                                                if (path := inside(ctx.workspace, f)) is not None and path.is_file()])
    ex = Execution(node="reference", task_id=task.id, role=task.role, attempt=attempt)
    written: list[str] = []
    for file, argv in programs:
        command: list[JsonValue] = [*argv]
        result = await ctx.call_tool(ex, "exec.run", {"command": command})
        data = result.structured if isinstance(result.structured, dict) else {}
        ok = result.ok and data.get("exit_code") == 0
        ctx.events.emit("reference_applied", task=task.id, attempt=attempt, file=file, ok=ok,
                        detail="" if ok else result.text[-300:])
        if ok:
            written.append(file)
    return written
