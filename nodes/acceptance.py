"""The acceptance evaluator: runs a task's typed checks against its outputs and the run workspace.

Commands run through the same sandboxed ``exec.run`` tool agents use, so a check cannot do what an
agent could not.
"""

from __future__ import annotations

import json
import re

from jsonschema import Draft202012Validator
from pydantic import JsonValue

from naestro.context import Execution, RunContext
from naestro.evaluators import Evidence, Verdict, emit_verdict, evaluate_check
from naestro.graphs.state import CheckResult
from naestro.nodes.file_checks import file_check_passes, target_text
from naestro.nodes.judge import judge
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
            return {"kind": "command", "passed": ok,
                    "detail": f"`{check.command}` exited {code}" + ("" if ok else f": {tail}")}
        case FileExistsCheck():
            ok = file_check_passes(check, ctx.workspace)
            return {"kind": "file_exists", "passed": ok,
                    "detail": f"{check.path} {'exists' if ok else 'does not exist'}"}
        case RegexCheck():
            text, what = target_text(check, outputs, ctx.workspace)
            ok = text is not None and re.search(check.pattern, text, re.MULTILINE) is not None
            detail = what if text is None else f"{what} {'matches' if ok else 'does not match'} /{check.pattern}/"
            return {"kind": "regex", "passed": ok, "detail": detail}
        case JsonSchemaCheck():
            if check.output is not None and check.output in outputs:
                value: JsonValue = outputs[check.output]
                what = f"output {check.output!r}"
            else:
                text, what = target_text(check, outputs, ctx.workspace)
                if text is None:
                    return {"kind": "json_schema", "passed": False, "detail": what}
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    return {"kind": "json_schema", "passed": False, "detail": f"{what} is not JSON: {exc}"}
            errors = sorted(Draft202012Validator(check.schema_).iter_errors(value), key=lambda e: list(e.path))
            detail = f"{what} matches the schema" if not errors else \
                f"{what}: " + "; ".join(f"/{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:3])
            return {"kind": "json_schema", "passed": not errors, "detail": detail}
        case EvaluatorCheck() if check.evaluator != "llm_judge":
            verdict = await evaluate_check(check, task, outputs, summary, ctx, ex)
            ok = verdict.passed and verdict.score >= check.threshold
            return {"kind": "evaluator", "passed": ok, "detail": verdict.render(threshold=check.threshold)}
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
                     attempt: int) -> list[CheckResult]:
    """Run every check; commands go through the gate as the Evaluator role (the plan came from a model)."""
    ex = Execution(node="check", task_id=task.id, role=Role.evaluator, attempt=attempt)
    return [await _one(check, task, outputs, summary, ctx, ex) for check in task.accept]
