"""The task node: one attempt of one task (role agent or direct action), then its acceptance checks.

Dispatched by the scheduler with ``Send("task", TaskInput)`` (graphs/compile.py), so one node serves every
task of every plan. The verdict decides the next step through the state: ``retry`` / ``review`` make the
scheduler dispatch the task again, a final status lets its dependents start. Execute and check share a node
so that a checkpoint never holds an attempt without its verdict; a consent interrupt in either re-runs the
node on resume, and the effect journal replays what already happened.
"""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import JsonValue

from graphs.state import FINAL, CheckResult, TaskInput, TaskRecord, TaskStatus
from mcp_servers.sandbox import Completed, Limits, SandboxUnavailable, run_sandboxed
from naestro.budget import TaskMeter, effective_budget
from naestro.context import Execution, RunContext
from naestro.errors import BudgetExceeded, PolicyDenied
from naestro.plan import CommandCheck, Role, Task, shown_to_agent
from naestro.redact import redact
from naestro.telemetry import agent_span, span
from nodes.acceptance import run_checks
from nodes.agent import run_agent
from nodes.proposal import DENIED
from nodes.reference_apply import apply_agreed_programs
from nodes.vacuity import VACUOUS, DeferredProbe

__all__ = ["task_node"]

# How the budget ended an attempt: "" it did not; "final" nothing is left to try with (the run's budget, the wall
# guard, a first call that alone exceeds the budget); "again" the attempt's own token budget, after some work.
Spent = Literal["", "final", "again"]


def _record(*, status: TaskStatus = "ran", attempts: int = 0, model: str = "", error: str | None = None) -> TaskRecord:
    record: TaskRecord = {"status": status, "attempts": attempts, "outputs": {}, "summary": "", "checks": [],
                          "feedback": "", "tokens": 0, "cost_usd": 0.0, "wall_s": 0.0, "model": model}
    if error is not None:
        record["error"] = error
    return record


async def _direct(task: Task, ctx: RunContext, ex: Execution) -> tuple[dict[str, JsonValue], str, bool]:
    assert task.action is not None
    result = await ctx.call_tool(ex, task.action.tool, dict(task.action.arguments))
    data = result.structured if isinstance(result.structured, dict) else {}
    outputs: dict[str, JsonValue] = {n: data.get(n, result.text) for n in task.outputs}
    return outputs, result.text[:500], result.ok


async def task_node(inp: TaskInput, ctx: RunContext) -> dict[str, Any]:
    """One attempt of ``inp["task"]``: execute, then check; the record it returns carries the verdict."""
    await ctx.snapshot_step()  # before anything can change the workspace (see RunContext); checks run there too
    task = ctx.plan.task(inp["task"])
    with span(f"naestro.task {task.id}", attributes={"naestro.task.id": task.id, "naestro.role": task.role.value,
                                                      "naestro.direct": task.is_direct}) as sp:
        record, spent = await _execute(task, inp, ctx)
        sp.set_attributes({"naestro.attempt": record["attempts"], "naestro.task.status": record["status"],
                           "naestro.tokens": record["tokens"], "naestro.cost_usd": record["cost_usd"]})
    if record["status"] == "ran" or spent:
        with span(f"naestro.check {task.id}", attributes={"naestro.task.id": task.id}) as sp:
            record = await _check(task, record, ctx, inp["phase"], spent=spent)
            sp.set_attribute("naestro.checks.passed", record["status"] == "passed")
    if record["status"] in FINAL:
        ctx.events.emit("task_finished", task=task.id, status=record["status"], attempts=record["attempts"],
                        tokens=record["tokens"], wall_s=record["wall_s"])
    return {"tasks": {task.id: record}}


async def _execute(task: Task, inp: TaskInput, ctx: RunContext) -> tuple[TaskRecord, Spent]:
    """The attempt's record, and whether the agent stopped because the budget ran out (its checks still decide:
    an agent that did the work and then ran out of tokens, or a verification task whose work earlier tasks had
    done, passes when the checks pass; found in the issue-22 golden slice, where a Runner task of `pytest` ran out
    of tokens on tests that passed and its run ended FAILED with every deliverable right)."""
    prev = inp["prev"]
    blocked: list[JsonValue] = [*inp["blocked"]]
    guide = ctx.gate.policy.mode == "guide"  # every task proposes, whatever its dependencies proposed
    if blocked and not guide:
        ctx.events.emit("task_skipped", task=task.id, blocked_by=blocked)
        return _record(status="skipped", error=f"dependencies did not pass: {blocked}"), ""
    attempt = (prev["attempts"] if prev else 0) + 1
    reviewing = prev is not None and prev["status"] == "review"
    feedback = prev["feedback"] if prev and prev["status"] in ("retry", "review") else ""
    # The Reviewer pass is the same task done by the Reviewer role: its prompt, tools and budget.
    doer = task.model_copy(update={"role": Role.reviewer}) if reviewing else task
    if reviewing:
        feedback = (f"The {task.role.value} made {attempt - 1} attempt(s) and the checks still fail. Read the "
                    f"files, find the defect, fix it and verify.\n{feedback}")
    role = ctx.roles[doer.role]
    budget = effective_budget(task.budget, role.budget, ctx.plan.budget)
    model = "" if task.is_direct else ctx.endpoint_for(doer.role, task.model)
    meter = TaskMeter(task_id=task.id, budget=budget, run=ctx.run_budget,
                      unmeasured_s=ctx.provider.registry.get(model).timeout_s if model else None)
    ctx.events.emit("task_started", task=task.id, role=doer.role.value, attempt=attempt, model=model,
                    direct=task.is_direct, review=reviewing)
    start = time.monotonic()
    record = _record(attempts=attempt, model=model)
    spent = again = False  # the budget ended the attempt; ``again``: only the attempt's own, after some work
    ex = Execution(node="task", task_id=task.id, role=doer.role, attempt=attempt, meter=meter)
    try:
        if task.is_direct:
            outputs, summary, ok = await _direct(task, ctx, ex)
            record["outputs"], record["summary"] = outputs, summary
            if not ok:
                record["status"], record["error"] = "failed", summary
        else:
            with agent_span(role=doer.role.value, task=task.id, attempt=attempt, endpoint=model,
                            conversation=ctx.thread):
                # Wall time is a guard scaled to the model's measured speed; tokens are the budget (issue 18).
                outcome = await meter.guard(run_agent(doer, ctx, ex, inputs=inp["inputs"], feedback=feedback))
            record["outputs"], record["summary"] = outcome.outputs, outcome.summary
    except (BudgetExceeded, TimeoutError) as exc:
        err = exc if isinstance(exc, BudgetExceeded) else BudgetExceeded(
            scope=f"task {task.id!r}", resource="wall_s", limit=budget.wall_s or 0, spent=meter.elapsed_s)
        record["status"], record["error"] = "failed", str(err)
        ctx.events.emit("budget_exceeded", task=task.id, resource=err.resource, limit=err.limit, spent=err.spent)
        spent = not task.is_direct
        again = err.scope != "run" and err.resource != "wall_s" and meter.tokens > 0
    except PolicyDenied as exc:  # a model call was denied: the task cannot go on
        record["status"], record["error"] = "failed", str(exc)
        spent = exc.by == "policy" and bool(exc.rules) and set(exc.rules) == {"budget"}
        again = spent and meter.tokens > 0 and not any(r.startswith("run budget") for r in exc.reasons)
    if ex.refused:
        record["refused"] = True
    if prev and prev.get("applied"):  # what wrote a file stays on the record (the report says it)
        record["applied"] = prev["applied"]
    if guide and record["status"] == "ran":  # nothing ran, so nothing to check, retry or review (nodes/proposal.py)
        record["status"] = "failed"
        record["error"] = f"guide mode: {ex.proposed} action(s) proposed, nothing was run (the proposal is report.md)"
    elif ex.denied:  # the re-plan rule reads it (nodes/proposal.py): a deny is no reason to re-plan
        record["error"] = record.get("error") or f"{DENIED}: {', '.join(sorted(set(ex.denied)))}"
    elif prev and prev.get("error", "").startswith(DENIED) and not record.get("error"):
        record["error"] = prev["error"]
    record["tokens"] = meter.tokens + (prev["tokens"] if prev else 0)
    record["cost_usd"] = meter.usd + (prev["cost_usd"] if prev else 0.0)
    record["wall_s"] = round(time.monotonic() - start + (prev["wall_s"] if prev else 0.0), 3)
    ctx.events.emit("task_ran", task=task.id, attempt=attempt, status=record["status"], tokens=meter.tokens,
                    wall_s=round(time.monotonic() - start, 3))
    if not spent or ex.refused or guide:
        return record, ""
    return record, "again" if again else "final"


def _feedback(task: Task, checks: list[CheckResult]) -> str:
    """What failed, the evidence (the check's detail: evaluator evidence lines), and the check itself."""
    return "\n".join(f"- {c['kind']} check failed: {c['detail']}\n"
                     f"  the check: {shown_to_agent(spec)}"
                     for spec, c in zip(task.accept, checks, strict=True) if not c["passed"])


def _reviewable(task: Task, record: TaskRecord, ctx: RunContext) -> bool:
    """One Reviewer pass after the role's last failed attempt: not for direct actions, the Reviewer's own work, or
    an attempt where a human refused consent (the human decided; a Reviewer would only ask again)."""
    return (ctx.review and not task.is_direct and task.role is not Role.reviewer
            and record["attempts"] == task.max_attempts and not record.get("refused", False))


async def _deferred_vacuity(task: Task, checks: list[CheckResult], ctx: RunContext, phase: int) -> list[CheckResult]:
    """Command checks the planner could not probe (the gate would have asked) that passed now are run again on
    the workspace the phase was planned from (``DeferredProbe``): passing there too, they fail as vacuous.

    Issue 18: in copilot mode ``python3 -c "print('Hello, World!')"`` passed a task that was to write hello.py.
    The check's own command was just allowed by the gate in the run workspace (or approved by a human); the
    probe is the same command in the same sandbox on a throwaway copy.

    In a re-plan (phase > 0) the workspace planned from holds the earlier phases' work, so a check on a file they
    wrote passes there too: it says the work was done before, not that it cannot be. When the re-plan is guarded
    by checks that already failed once (the failed tasks' carried checks in ``verify_carried``, or the goal's
    unmet requirements; ``DeferredProbe.guarded``), such a check stays passed, with that noted: the run's verdict
    rests on those, re-checked on the final workspace. Otherwise it fails as in the first phase (issue-22 slice:
    the re-plan templates' ``ls *.py`` / ``ls *.csv`` failed their first task as vacuous in every re-plan, so
    every re-plan phase did nothing)."""
    if not any(isinstance(spec, CommandCheck) for spec in task.accept):
        return checks  # nothing to probe: no thread hop for the probe file (issue 16: per-task overhead)
    probe = DeferredProbe(ctx.run_dir, phase)
    pending = await asyncio.to_thread(probe.pending)
    if not pending:
        return checks
    guarded = phase > 0 and await asyncio.to_thread(probe.guarded)
    out: list[CheckResult] = []
    for spec, result in zip(task.accept, checks, strict=True):
        if isinstance(spec, CommandCheck) and result["passed"] and redact(spec.command) in pending:
            async def run(command: str, where: Path, timeout: float = spec.timeout_s) -> Completed:
                return await run_sandboxed(where, ctx.vault.reveal(command),
                                           Limits(wall_s=min(600.0, timeout), cpu_s=min(600, int(timeout) + 1)))
            try:
                vacuous = await probe.passes_before(spec.command, run)
            except SandboxUnavailable:
                vacuous = False  # exec.run uses the same sandbox: the check itself could not have run
            ctx.events.emit("vacuity_probed", task=task.id, command=spec.command, vacuous=vacuous, phase=phase)
            if vacuous and guarded:
                result = {**result, "detail": f"{result['detail']} (it passed before this phase's work too: "
                                              "done by an earlier phase)"}
            elif vacuous:
                result = {"kind": result["kind"], "passed": False,
                          "detail": f"`{spec.command}` {VACUOUS} (probed after the check ran: the planner could "
                                    "not run it, the gate would have asked)"}
        out.append(result)
    return out


async def _check(task: Task, record: TaskRecord, ctx: RunContext, phase: int, *, spent: Spent = "") -> TaskRecord:
    """Acceptance checks of an attempt that ran (or ran out of budget: ``spent``); the verdict is the record's next
    status. A first attempt whose file differs from an agreed reference result gets the agreed program run
    (``nodes.reference_apply``) and its checks run again. A spent attempt whose checks fail stays failed, unless
    only its own token budget ran out after some work (``again``): then the next attempt, told so."""
    record = record.copy()
    checks = await run_checks(task, record["outputs"], record["summary"], ctx, attempt=record["attempts"])
    checks = await _deferred_vacuity(task, checks, ctx, phase)
    if not all(c["passed"] for c in checks):
        written = await apply_agreed_programs(task, [c["passed"] for c in checks], ctx, attempt=record["attempts"])
        if written:  # checked again: the file must now equal the agreed result, and every other check still counts
            checks = await run_checks(task, record["outputs"], record["summary"], ctx, attempt=record["attempts"],
                                      node="recheck")
            checks = await _deferred_vacuity(task, checks, ctx, phase)
            record["applied"] = written
            record["summary"] = (f"{record['summary']} [{', '.join(written)} then written by the agreed reference "
                                 "program]").strip()
    record["checks"] = checks
    if all(c["passed"] for c in checks):
        record["status"], record["feedback"] = "passed", ""
        if spent:
            record["summary"] = (f"{record['summary']} [the agent stopped when its budget ran out "
                                 f"({record.get('error', '')[:300]}); the acceptance checks pass]").strip()
            record.pop("error", None)
        if record.get("error", "").startswith(DENIED):  # it found a way within the policy
            del record["error"]
    else:
        record["feedback"] = _feedback(task, checks)
        if spent == "again" and record["attempts"] < task.max_attempts:
            # The attempt's own token budget ran out after it had worked (seen twice in the issue-22 slice: a
            # write/run loop, a Coder that typed rows by hand): the next attempt has a budget of its own and the
            # checks' evidence. The run's budget, the wall guard (a hung endpoint would hang again) or a first
            # call that alone exceeds the budget leave nothing to try again.
            record["status"] = "retry"
            record["feedback"] = (f"The previous attempt ran out of its token budget before finishing "
                                  f"({record.pop('error', '')[:200]}): be direct.\n{record['feedback']}")
        elif spent:
            record["status"] = "failed"  # the budget error stays the record's error
        elif any(VACUOUS in c["detail"] for c in checks):
            record["status"] = "failed"  # no attempt can fix a check that passes without the work
        elif record["attempts"] < task.max_attempts:
            record["status"] = "retry"
        else:
            record["status"] = "review" if _reviewable(task, record, ctx) else "failed"
    emit = functools.partial(
        ctx.events.emit, "task_checked", task=task.id, status=record["status"], attempt=record["attempts"],
        checks=[{"kind": c["kind"], "passed": c["passed"], "detail": c["detail"]} for c in record["checks"]])
    if task.is_direct:
        emit()  # no model call to learn from: no subscriber writes a store (issue 16: a thread hop per task)
    else:
        # In a worker thread: subscribers act on verdicts (the router's bandit writes its SQLite/Postgres store).
        await asyncio.to_thread(emit)
    return record
