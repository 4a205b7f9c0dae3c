"""The acceptance evaluator: runs a task's typed checks against its outputs and the run workspace.

Commands run through the same sandboxed ``exec.run`` tool agents use, so a check cannot do what an
agent could not.
"""

from __future__ import annotations

from pydantic import JsonValue

from graphs.state import CheckResult
from naestro.context import Execution, RunContext
from naestro.evaluators import TIMED_OUT, Evidence, Verdict
from naestro.plan import (
    AcceptanceCheck,
    CommandCheck,
    EvaluatorCheck,
    FileExistsCheck,
    JsonSchemaCheck,
    RegexCheck,
    Role,
    Task,
)
from nodes.evaluation import emit_verdict, evaluate_check
from nodes.file_checks import file_check
from nodes.judge import judge
from nodes.reference_use import program_offer

__all__ = ["run_checks"]


async def _one(check: AcceptanceCheck, task: Task, outputs: dict[str, JsonValue], summary: str,
               ctx: RunContext, ex: Execution) -> CheckResult:
    match check:
        case CommandCheck():
            res = await ctx.call_tool(ex, "exec.run", {"command": check.command, "timeout_s": check.timeout_s},
                                      timeout_s=check.timeout_s + 10)
            data = res.structured if isinstance(res.structured, dict) else {}
            code = data.get("exit_code")
            ok = res.ok and code == 0
            # Test runners report failures on stdout and warnings on stderr: the agent needs both.
            tail = (str(data.get("stdout", ""))[-700:] + "\n" + str(data.get("stderr", ""))[-300:]).strip() \
                if data else res.text[-700:]
            if data.get("timed_out") is True:  # killed at its limit: no verdict on the work (the Introspector)
                return {"kind": "command", "passed": False,
                        "detail": f"`{check.command}` {TIMED_OUT} after {check.timeout_s:g} s: {tail}"}
            return {"kind": "command", "passed": ok,
                    "detail": f"`{check.command}` exited {code}" + ("" if ok else f": {tail}")}
        case FileExistsCheck() | RegexCheck() | JsonSchemaCheck():
            ok, detail = file_check(check, outputs, ctx.workspace)
            return {"kind": check.kind, "passed": ok, "detail": detail}
        case EvaluatorCheck() if check.evaluator != "llm_judge":
            verdict = await evaluate_check(check, task, outputs, summary, ctx, ex)
            ok = verdict.passed and verdict.score >= check.threshold
            detail = verdict.render(threshold=check.threshold)
            # An agreed reference's program, offered to the next attempt (the detail is its feedback).
            offer = None if ok else program_offer(check)
            return {"kind": "evaluator", "passed": ok, "detail": detail + (f"\n{offer}" if offer else "")}
        case EvaluatorCheck():
            score, reason = await judge(check, task, outputs, summary, ctx, ex)
            ok = score >= check.threshold
            # The judge's score as a verdict too, so every evaluator shows up the same way in events and report.
            verdict = Verdict.of(check.evaluator, [Evidence(check="rubric", ok=ok, detail=reason or "(no reason)")],
                                 score=score)
            emit_verdict(ctx, task_id=task.id, attempt=ex.attempt, verdict=verdict, threshold=check.threshold)
            return {"kind": "evaluator", "passed": ok,
                    "detail": f"{check.evaluator} scored {score:.2f} (threshold {check.threshold:.2f}): {reason}"}


async def run_checks(task: Task, outputs: dict[str, JsonValue], summary: str, ctx: RunContext, *,
                     attempt: int, node: str = "check") -> list[CheckResult]:
    """Run every check; commands go through the gate as the Evaluator role (the plan came from a model).

    ``node`` keys the calls in the effect journal: a second pass over the same attempt (after the agreed reference
    program ran) needs its own, or its commands would be replayed from the first pass instead of run."""
    ex = Execution(node=node, task_id=task.id, role=Role.evaluator, attempt=attempt)
    return [await _one(check, task, outputs, summary, ctx, ex) for check in task.accept]
