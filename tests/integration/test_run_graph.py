"""Compiled plans on real LangGraph + real SQLite checkpoints + real MCP servers; only model text is scripted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from graphs.compile import compile_graph, ready_tasks
from naestro.errors import EndpointUnavailable
from naestro.events import read_events
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text


def coder_script(contents: dict[str, str], *, fixed_after_feedback: dict[str, str] | None = None) -> Any:
    """Task ``t`` writes ``t.txt`` with contents[t] (or the fixed text once it has seen feedback), then finishes."""
    def script(messages: list[BaseMessage]) -> dict[str, Any]:
        text = all_text(messages)
        if "Write 2-4 sentences" in text:  # the Reporter's summary
            return {"summary": "All tasks wrote their files and every check passed."}
        task = re.search(r"Your task \((\w+)\)", text)
        assert task, text
        tid = task.group(1)
        steps = sum(isinstance(m, AIMessage) for m in messages)
        if steps == 0:
            body = contents[tid]
            if fixed_after_feedback and "previous attempt FAILED" in text:
                body = fixed_after_feedback[tid]
            return {"thought": "write it", "tool": "fs.write", "arguments": {"path": f"{tid}.txt", "content": body}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": f"wrote {tid}.txt", "outputs": {}}}
    return script


def regex_task(tid: str, pattern: str, deps: list[str] | None = None) -> dict[str, Any]:
    return {"id": tid, "role": "coder", "description": f"write {tid}.txt", "deps": deps or [],
            "accept": [{"kind": "regex", "file": f"{tid}.txt", "pattern": pattern}]}


def test_one_static_graph_serves_every_plan(settings: Settings) -> None:
    graph = compile_graph(Runner(settings, ScriptedProvider(lambda m: {})).services)
    nodes = set(graph.get_graph().nodes)
    assert nodes == {"__start__", "plan", "schedule", "task", "report", "replan", "finish", "__end__"}
    edges = {(e.source, e.target) for e in graph.get_graph().edges}
    assert {("__start__", "plan"), ("plan", "schedule"), ("task", "schedule"), ("schedule", "task"),
            ("schedule", "report"), ("report", "replan"), ("report", "finish"), ("replan", "schedule")} <= edges
    schema = graph.get_input_jsonschema()
    assert schema["required"] == ["goal"] and {"plan", "workspace", "mode", "approve"} <= set(schema["properties"])


def test_scheduler_dispatches_by_dependency_readiness() -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "x"), regex_task("b", "x"),
                                                       regex_task("c", "x", ["a", "b"])]})

    def rec(status: str) -> Any:
        return {"status": status, "attempts": 1, "outputs": {}, "summary": "", "checks": [], "feedback": "",
                "tokens": 0, "cost_usd": 0.0, "wall_s": 0.0, "model": ""}

    assert [r["task"] for r in ready_tasks(plan, {"goal": "g", "tasks": {}})] == ["a", "b"]
    assert ready_tasks(plan, {"goal": "g", "tasks": {}, "run_id": "r", "phase": 1})[0]["phase"] == 1
    # a passed, b asks for a retry: only b again (c waits for both)
    again = ready_tasks(plan, {"goal": "g", "tasks": {"a": rec("passed"), "b": rec("retry")}})
    assert [(r["task"], r["prev"]["status"] if r["prev"] else None) for r in again] == [("b", "retry")]
    # b failed for good: c is dispatched, told which dependency blocks it
    blocked = ready_tasks(plan, {"goal": "g", "tasks": {"a": rec("passed"), "b": rec("failed")}})
    assert [(r["task"], r["blocked"]) for r in blocked] == [("c", ["b"])]
    assert ready_tasks(plan, {"goal": "g", "tasks": {t: rec("passed") for t in "abc"}}) == []


async def test_parallel_tasks_overlap_and_pass(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task(t, "ok") for t in ("a", "b", "c")]
                                + [regex_task("d", "ok", ["a", "b", "c"])]})
    provider = ScriptedProvider(coder_script({t: "ok" for t in "abcd"}), delay_s=0.3)
    seen: list[str] = []

    def on_event(ev: dict[str, Any]) -> None:  # what the live CLI view does: read the plan back on "planned"
        if ev["event"] == "planned":
            rec = runner.store.load(str(ev["run"]))
            seen.extend(t.id for t in runner.plan_of(rec, len(rec.plans) - 1).tasks)

    runner = Runner(settings, provider, on_event=on_event)
    result = await runner.start("g", plan=plan)
    assert seen == ["a", "b", "c", "d"]
    assert result.passed and result.record.status == "passed"
    events = read_events(settings.runs_dir / result.record.run_id / "events.jsonl")
    started = {e["task"]: e["t"] for e in events if e["event"] == "task_started"}
    ran = {e["task"]: e["t"] for e in events if e["event"] == "task_ran"}
    # all three independent tasks started before any of them finished: they overlapped in time
    assert max(started[t] for t in "abc") < min(ran[t] for t in "abc")
    assert started["d"] > max(ran[t] for t in "abc")
    report = result.report_path.read_text()
    assert report.startswith("# Naestro report: PASSED") and "`d.txt`" in report
    assert (Path(result.record.workspace) / "d.txt").read_text() == "ok"


async def test_failed_check_retries_with_feedback(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "^right$")]})
    provider = ScriptedProvider(coder_script({"a": "wrong"}, fixed_after_feedback={"a": "right"}))
    result = await Runner(settings, provider).start("g", plan=plan)
    assert result.passed
    assert result.tasks["a"]["attempts"] == 2


async def test_exhausted_retries_fail_and_skip_dependents(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "^right$"), regex_task("b", "x", ["a"])]})
    script = coder_script({"a": "wrong", "b": "x"})
    reporter_prompts: list[str] = []

    def recorded(messages: list[BaseMessage]) -> Any:
        if "Write 2-4 sentences" in all_text(messages):
            reporter_prompts.append(all_text(messages))
        return script(messages)

    result = await Runner(settings, ScriptedProvider(recorded)).start("g", plan=plan)
    assert not result.passed and result.record.status == "failed"
    # The Reporter is told the outcome (the agents' own summaries claimed success).
    assert "Outcome: FAILED (tasks not passed: a, b)" in reporter_prompts[0]
    # Two Coder attempts, then one Reviewer pass with the evidence, then the task fails.
    assert result.tasks["a"]["status"] == "failed" and result.tasks["a"]["attempts"] == 3
    events = read_events(settings.runs_dir / result.record.run_id / "events.jsonl")
    started = [(e["role"], e["review"]) for e in events if e.get("event") == "task_started" and e["task"] == "a"]
    assert started == [("coder", False), ("coder", False), ("reviewer", True)]
    assert result.tasks["b"]["status"] == "skipped"
    assert "does not match" in result.report_path.read_text()


async def test_the_reviewer_pass_sees_the_evidence_and_can_fix_the_task(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "^right$")]})
    coder = coder_script({"a": "wrong"})
    prompts: list[str] = []

    def script(messages: list[BaseMessage]) -> Any:
        text = all_text(messages)
        if "You are the Reviewer" in text and not any(isinstance(m, AIMessage) for m in messages):
            prompts.append(text)
            return {"thought": "fix", "tool": "fs.write", "arguments": {"path": "a.txt", "content": "right"}}
        return coder(messages)

    result = await Runner(settings, ScriptedProvider(script)).start("g", plan=plan)
    assert result.passed and result.tasks["a"]["attempts"] == 3
    assert len(prompts) == 1 and "made 2 attempt(s)" in prompts[0] and "does not match" in prompts[0]


async def test_the_reviewer_pass_can_be_turned_off(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "^right$")]})
    result = await Runner(settings.model_copy(update={"review": False}),
                          ScriptedProvider(coder_script({"a": "wrong"}))).start("g", plan=plan)
    assert result.tasks["a"]["status"] == "failed" and result.tasks["a"]["attempts"] == 2


async def test_token_budget_is_enforced_by_the_gate_before_the_call(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [{**regex_task("a", "ok"), "budget": {"tokens": 20}}]})
    provider = ScriptedProvider(coder_script({"a": "ok"}))
    result = await Runner(settings, provider).start("g", plan=plan)
    assert result.tasks["a"]["status"] == "failed"
    error = result.tasks["a"].get("error", "")
    # The prompt alone would overrun the task's 20-token budget: the policy denies the model call unmade.
    assert re.search(r"task budget: tokens spent 0 \+ estimated \d+ would exceed the limit 20", error), error
    events = read_events(result.report_path.parent / "events.jsonl")
    assert not [e for e in events if e["event"] == "model_call" and e.get("task") == "a"]


async def test_resume_after_crash_does_not_redo_finished_tasks(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "ok"), regex_task("b", "ok", ["a"])]})
    script = coder_script({"a": "ok", "b": "ok"})

    def crashing(messages: list[BaseMessage]) -> Any:
        if "Your task (b)" in all_text(messages):
            raise EndpointUnavailable(endpoint="scripted", reason="simulated crash")
        return script(messages)

    runner = Runner(settings, ScriptedProvider(crashing))
    with pytest.raises(EndpointUnavailable):
        await runner.start("g", plan=plan)
    run_id = runner.store.list()[0].run_id
    assert runner.store.load(run_id).status == "error"

    healthy = ScriptedProvider(script)
    result = await Runner(settings, healthy).resume(run_id)
    assert result.passed
    events = read_events(settings.runs_dir / run_id / "events.jsonl")
    assert [e["task"] for e in events if e["event"] == "task_started"].count("a") == 1
    # b's three steps (write, finish refused until something ran, finish) + the report summary; a was not redone
    assert healthy.model.calls == 3 + 1


async def test_direct_action_runs_without_model(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [{
        "id": "w", "role": "dataops", "description": "write a file",
        "action": {"tool": "fs.write", "arguments": {"path": "hello.txt", "content": "hi"}},
        "outputs": {"bytes": {"schema": {"type": "integer"}}},
        "accept": [{"kind": "file_exists", "path": "hello.txt"},
                   {"kind": "json_schema", "output": "bytes", "schema": {"type": "integer", "const": 2}}]}]})
    provider = ScriptedProvider(lambda m: {"summary": "wrote hello.txt"})
    result = await Runner(settings, provider).start("g", plan=plan)
    assert result.passed, result.tasks
    assert result.tasks["w"]["outputs"] == {"bytes": 2}


async def test_repeated_identical_action_is_not_repeated(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "ok")]})
    observations: list[str] = []

    def script(messages: list[BaseMessage]) -> Any:
        text = all_text(messages)
        if "Write 2-4 sentences" in text:
            return {"summary": "done"}
        steps = sum(isinstance(m, AIMessage) for m in messages)
        observations.append(str(messages[-1].content))
        if steps < 2:
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": "a.txt", "content": "ok"}}
        return {"thought": "f", "tool": "finish", "arguments": {"summary": "s", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script)).start("g", plan=plan)
    assert result.passed
    assert observations[2].startswith("You just made exactly this fs.write call")
    events = read_events(settings.runs_dir / result.record.run_id / "events.jsonl")
    assert sum(e["event"] == "tool_call" for e in events) == 1


async def test_workspace_is_copied_unless_in_place(settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "seed.txt").write_text("seed")
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "ok")]})
    script = coder_script({"a": "ok"})
    copied = await Runner(settings, ScriptedProvider(script)).start("g", plan=plan, workspace=src)
    assert copied.passed and (Path(copied.record.workspace) / "seed.txt").exists()
    assert not (src / "a.txt").exists()  # the original is untouched
    # Writing into the user's own folder is sensitive (not Naestro's scratch copy): pre-approve it here.
    approve = RunPolicy(approve=[ApprovedScope(tool="fs.write", under=str(src.resolve()))])
    in_place = await Runner(settings, ScriptedProvider(script)).start("g", plan=plan, workspace=src, in_place=True,
                                                                      policy=approve)
    assert in_place.passed and (src / "a.txt").read_text() == "ok"


async def test_replan_of_the_unfinished_part(settings: Settings) -> None:
    settings = settings.model_copy(update={"max_replans": 1, "review": False})
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "^right$")]})
    # The re-plan redoes `a` and adds a task of its own; the original check on a.txt is carried over.
    replan = {"goal": "g", "tasks": [regex_task("a", "^(right|almost)$"), regex_task("extra", "x")]}
    writes = iter(["wrong", "wrong", "right"])  # attempts 1 and 2 fail, the re-planned task writes it right
    coder = coder_script({"extra": "x"})

    def coder_with_a(messages: list[BaseMessage]) -> Any:
        if "Your task (a)" in all_text(messages) and not any(isinstance(m, AIMessage) for m in messages):
            return {"thought": "write", "tool": "fs.write", "arguments": {"path": "a.txt", "content": next(writes)}}
        return coder(messages)

    def script(messages: list[BaseMessage]) -> Any:
        text = all_text(messages)
        if "You are the Planner" in text:
            assert "Unfinished, with the reason it failed" in text and '"a"' in text
            return replan
        return coder_with_a(messages)

    result = await Runner(settings, ScriptedProvider(script)).start("g", plan=plan)
    assert result.passed
    replanned = Plan.model_validate_json((settings.runs_dir / result.record.run_id / "plan.replan1.json").read_text())
    verify = replanned.task("verify_carried")
    assert set(verify.deps) == {"a", "extra"} and verify.accept == plan.task("a").accept
    assert result.record.plans == ["plan.json", "plan.replan1.json"]
    # one LangGraph thread for the whole run: the re-plan is a node, its plan the next phase's state
    assert result.record.threads == [result.record.run_id]
    run_dir = settings.runs_dir / result.record.run_id
    assert (run_dir / "report.phase0.md").read_text().startswith("# Naestro report: FAILED")
    assert result.report_path.read_text().startswith("# Naestro report: PASSED")


async def test_a_replan_that_drops_the_failed_check_cannot_pass(settings: Settings) -> None:
    """The re-planner's own checks are weaker (any file); the original check still decides: no false success."""
    settings = settings.model_copy(update={"max_replans": 1})
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "^right$")]})
    replan = {"goal": "g", "tasks": [regex_task("fix", ".")]}
    coder = coder_script({"a": "wrong", "fix": "anything"})

    def script(messages: list[BaseMessage]) -> Any:
        return replan if "You are the Planner" in all_text(messages) else coder(messages)

    result = await Runner(settings, ScriptedProvider(script)).start("g", plan=plan)
    assert not result.passed
    assert result.tasks["fix"]["status"] == "passed" and result.tasks["verify_carried"]["status"] == "failed"
    events = read_events(settings.runs_dir / result.record.run_id / "events.jsonl")
    carried = [e for e in events if e.get("event") == "checks_carried"]
    assert carried and "a.txt" in carried[0]["carried"][0]
    assert result.report_path.read_text().startswith("# Naestro report: FAILED")


async def test_a_coder_that_finishes_without_running_anything_is_told_to_verify_once(settings: Settings) -> None:
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "ok")]})
    seen: list[str] = []

    def script(messages: list[BaseMessage]) -> Any:
        text = all_text(messages)
        if "Write 2-4 sentences" in text:
            return {"summary": "done"}
        seen.append(str(messages[-1].content))
        if sum(isinstance(m, AIMessage) for m in messages) == 0:
            return {"thought": "w", "tool": "fs.write", "arguments": {"path": "a.txt", "content": "ok"}}
        return {"thought": "f", "tool": "finish", "arguments": {"summary": "s", "outputs": {}}}

    result = await Runner(settings, ScriptedProvider(script)).start("g", plan=plan)
    assert result.passed
    # write, finish (refused once: nothing was run), finish (accepted: the reminder is given once per attempt)
    assert len(seen) == 3 and "You have not run anything with exec.run yet" in seen[2]
