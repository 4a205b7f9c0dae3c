"""Tokens are the budget; wall time is an outer guard scaled to the model's measured speed (issue 18).

Real graph, gate, checkpointer and MCP tools; the model's text and its delay are scripted.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from naestro.budget import WALL_GUARD_FACTOR, RunBudget, TaskMeter
from naestro.events import read_events
from naestro.limits import Budget
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from tests.fakes import ScriptedProvider, all_text


def writer(messages: list[BaseMessage]) -> dict[str, Any]:
    """Writes a.txt, then finishes (the Coder is told once to verify first, so three calls)."""
    if "Write 2-4 sentences" in all_text(messages):
        return {"summary": "a.txt was written and its check passed."}
    if not any(isinstance(m, AIMessage) for m in messages):
        return {"thought": "write", "tool": "fs.write", "arguments": {"path": "a.txt", "content": "ok"}}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote a.txt", "outputs": {}}}


def one_task(budget: dict[str, Any]) -> Plan:
    return Plan.model_validate({"goal": "write a.txt saying ok", "tasks": [
        {"id": "a", "role": "coder", "description": "write a.txt", "budget": budget,
         "accept": [{"kind": "regex", "file": "a.txt", "pattern": "^ok$"}]}]})


async def test_a_slow_endpoint_does_not_fail_a_task_whose_token_budget_is_intact(settings: Settings) -> None:
    # Three calls of 1.2 s each, the first one alone longer than the 1 s wall_s: wall_s alone would fail the task
    # (the old behaviour), its 4000 tokens are far from spent (15 per call).
    plan = one_task({"tokens": 4000, "wall_s": 1})
    result = await Runner(settings, ScriptedProvider(writer, delay_s=1.2)).start(plan.goal, plan=plan)
    assert result.passed, result.tasks["a"].get("error")
    assert result.tasks["a"]["wall_s"] > 1  # it did run past the nominal wall_s
    events = read_events(result.report_path.parent / "events.jsonl")
    assert not [e for e in events if e["event"] == "budget_exceeded"]


async def test_a_hung_endpoint_still_hits_the_wall_guard(settings: Settings) -> None:
    # No call of the task ever returns, so no speed is measured: the guard is the endpoint's request timeout.
    def delay(messages: list[BaseMessage]) -> float:
        return 0.0 if "Write 2-4 sentences" in all_text(messages) else 60.0

    plan = one_task({"tokens": 4000, "wall_s": 0.5})
    result = await Runner(settings.model_copy(update={"review": False}),
                          ScriptedProvider(writer, delay_for=delay, timeout_s=1.5)).start(plan.goal, plan=plan)
    assert not result.passed and result.tasks["a"]["status"] == "failed"
    assert "exceeded its wall_s budget" in result.tasks["a"].get("error", "")
    # Its checks still ran (they fail: nothing was written) and nothing retried: no budget is left.
    assert result.tasks["a"]["attempts"] == 1 and not result.tasks["a"]["checks"][0]["passed"]
    events = read_events(result.report_path.parent / "events.jsonl")
    assert {e["resource"] for e in events if e["event"] == "budget_exceeded"} == {"wall_s"}


def test_the_guard_scales_with_the_measured_speed() -> None:
    run = RunBudget(ceiling=Budget())
    meter = TaskMeter(task_id="t", budget=Budget(tokens=1000, wall_s=10), run=run, unmeasured_s=60)
    assert meter.wall_guard_s() == 60  # nothing measured yet: the endpoint's request timeout
    meter.charge(tokens=100, usd=0.0, model_s=50.0)  # 2 tokens/s: the whole budget takes 500 s of model time
    assert meter.wall_guard_s() == WALL_GUARD_FACTOR * 500
    fast = TaskMeter(task_id="u", budget=Budget(tokens=1000, wall_s=10), run=RunBudget(ceiling=Budget()))
    fast.charge(tokens=500, usd=0.0, model_s=0.01)  # a fast endpoint: the nominal wall_s stands
    assert fast.wall_guard_s() == 10
    replayed = TaskMeter(task_id="v", budget=Budget(tokens=1000, wall_s=10), run=RunBudget(ceiling=Budget()))
    replayed.charge(tokens=100, usd=0.0)  # a replayed reply: no speed
    assert replayed.wall_guard_s() == 10 and replayed.run.speed.per_s() is None
    unbounded = TaskMeter(task_id="w", budget=Budget(wall_s=10), run=run)  # no token budget: wall_s only
    assert unbounded.wall_guard_s() == 10


def write_then_dawdle(messages: list[BaseMessage]) -> dict[str, Any]:
    """Writes a.txt, then reads it again and again with a long thought, never finishing: the budget ends it."""
    if "Write 2-4 sentences" in all_text(messages):
        return {"summary": "a.txt was written."}
    if not any(isinstance(m, AIMessage) for m in messages):
        return {"thought": "write", "tool": "fs.write", "arguments": {"path": "a.txt", "content": "ok"}}
    return {"thought": "let me look again " * 200, "tool": "fs.read", "arguments": {"path": "a.txt"}}


async def test_a_task_that_ran_out_of_tokens_after_its_work_passes_on_its_checks(settings: Settings) -> None:
    # The issue-22 golden slice: a Runner task of `pytest` ran out of tokens on tests that passed, and a run whose
    # every deliverable was right ended FAILED. The gate denies the model call that would overrun the budget; the
    # acceptance checks then decide, as they would have had the agent called finish.
    quiet = settings.model_copy(update={"review": False})
    first = await Runner(quiet, ScriptedProvider(write_then_dawdle)).start("g", plan=one_task({"tokens": 20}))
    found = re.search(r"estimated (\d+) would exceed", first.tasks["a"].get("error", ""))
    assert found, first.tasks["a"]  # the first call's own estimate: nothing was written, the checks fail
    assert first.tasks["a"]["status"] == "failed" and not first.tasks["a"]["checks"][0]["passed"]

    # Room for the first call only: its write lands, the second call (its estimate grown by the long thought) is
    # denied by the budget rule, and the regex check on a.txt passes.
    plan = one_task({"tokens": int(found.group(1)) + 100})
    result = await Runner(quiet, ScriptedProvider(write_then_dawdle)).start("g", plan=plan)
    record = result.tasks["a"]
    assert result.passed and record["status"] == "passed" and record["attempts"] == 1, record
    assert "budget ran out" in record["summary"] and "error" not in record
    events = read_events(result.report_path.parent / "events.jsonl")
    assert [e["status"] for e in events if e["event"] == "task_checked"] == ["passed"]



async def test_an_attempt_that_spent_its_own_tokens_is_followed_by_the_next(settings: Settings) -> None:
    """Seen twice in the issue-22 slice: an attempt wrote the wrong thing, then looped until its token budget ran
    out, and the task failed with attempts to spare. A budget is per attempt, so the next attempt gets its own and
    the checks' evidence; it writes the right content and the task passes."""
    told: list[bool] = []

    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        if "Write 2-4 sentences" in all_text(messages):
            return {"summary": "a.txt was written."}
        second = "ran out of its token budget" in all_text(messages)
        if not any(isinstance(m, AIMessage) for m in messages):
            told.append(second)
            return {"thought": "write", "tool": "fs.write",
                    "arguments": {"path": "a.txt", "content": "ok" if second else "no"}}
        if second:
            return {"thought": "done", "tool": "finish", "arguments": {"summary": "wrote a.txt", "outputs": {}}}
        return {"thought": "let me look again " * 200, "tool": "fs.read", "arguments": {"path": "a.txt"}}

    quiet = settings.model_copy(update={"review": False})
    first = await Runner(quiet, ScriptedProvider(write_then_dawdle)).start("g", plan=one_task({"tokens": 20}))
    found = re.search(r"estimated (\d+) would exceed", first.tasks["a"].get("error", ""))
    assert found, first.tasks["a"]
    plan = one_task({"tokens": int(found.group(1)) + 100})  # room for the first call only, as above
    result = await Runner(quiet, ScriptedProvider(script)).start("g", plan=plan)
    record = result.tasks["a"]
    assert result.passed and record["attempts"] == 2 and told == [False, True], record
    events = read_events(result.report_path.parent / "events.jsonl")
    assert [e["status"] for e in events if e["event"] == "task_checked"] == ["retry", "passed"]
