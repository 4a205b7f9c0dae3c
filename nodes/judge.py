"""Model-graded evaluators behind ``EvaluatorCheck``: a rubric score in [0, 1] from the Evaluator role's model."""

from __future__ import annotations

import asyncio
import json

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import JsonValue

from naestro.context import Execution, RunContext
from naestro.errors import UsageError
from naestro.homes import home_of, workspace_files
from naestro.plan import EvaluatorCheck, Role, Task

EVALUATORS = ("llm_judge",)

_SCHEMA: dict[str, JsonValue] = {
    "type": "object", "additionalProperties": False, "required": ["reason", "score"],
    "properties": {"reason": {"type": "string", "maxLength": 400}, "score": {"type": "number"}}}


async def judge(check: EvaluatorCheck, task: Task, outputs: dict[str, JsonValue], summary: str,
                ctx: RunContext, ex: Execution) -> tuple[float, str]:
    if check.evaluator not in EVALUATORS:
        raise UsageError(f"unknown evaluator {check.evaluator!r} (known: {', '.join(EVALUATORS)})")
    files = (await asyncio.to_thread(workspace_files, ctx.workspace, leave_out=(home_of(ctx.run_dir),)))[:50]
    prompt = (f"Task: {task.description}\nRubric: {check.rubric or 'Does the result complete the task?'}\n"
              f"Agent summary: {summary}\nOutputs: {json.dumps(outputs)[:3000]}\nWorkspace files: {files}\n"
              "Score from 0 (fails the rubric) to 1 (fully meets it), with a one-sentence reason.")
    reply = await ctx.complete(ex, ctx.endpoint_for(Role.evaluator),
                               [SystemMessage(ctx.roles[Role.evaluator].prompt), HumanMessage(prompt)],
                               schema=_SCHEMA, name="verdict", purpose="evaluator")
    value = reply.value if isinstance(reply.value, dict) else {}
    raw = value.get("score", 0.0)
    score = min(1.0, max(0.0, float(raw))) if isinstance(raw, int | float) else 0.0
    return score, str(value.get("reason", ""))
