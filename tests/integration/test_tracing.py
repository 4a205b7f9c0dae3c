"""Traces of real runs (LangGraph, SQLite checkpoints, MCP servers, regorus policy); only model text is scripted."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from naestro.cli import app
from naestro.endpoints import Endpoint, ModelRegistry
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from naestro.telemetry import OtlpSink, SpanRecord, Telemetry, TelemetrySettings, read_spans
from policies.gate import ConsentAnswer
from tests.fakes import ScriptedProvider
from tests.integration.test_run_graph import coder_script, regex_task

PRICED = Endpoint(name="scripted", kind="openai", model="scripted-7b", base_url="http://127.0.0.1:9/v1", context=8192,
                  capabilities=("json_schema",), price_in_per_1k=0.01, price_out_per_1k=0.03)


def priced_provider(script: Any, *, delay_s: float = 0.0) -> ScriptedProvider:
    """The scripted model behind an endpoint with a price table, so cost is non-zero."""
    provider = ScriptedProvider(script, delay_s=delay_s)
    provider.registry = ModelRegistry(default="scripted", fast="scripted", endpoints=(PRICED,))
    return provider


def children(spans: list[SpanRecord], parent: SpanRecord) -> list[SpanRecord]:
    return sorted((s for s in spans if s["parent_id"] == parent["span_id"]), key=lambda s: s["start_ns"])


def names(spans: list[SpanRecord]) -> list[str]:
    return [s["name"] for s in spans]


def one(spans: list[SpanRecord], name: str) -> SpanRecord:
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, (name, names(spans))
    return found[0]


def parallel_plan() -> Plan:
    return Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "ok"), regex_task("b", "ok"),
                                                       regex_task("d", "ok", ["a", "b"])]})


async def test_run_trace_tree_parallel_tasks(settings: Settings) -> None:
    runner = Runner(settings, priced_provider(coder_script({t: "ok" for t in "abd"}), delay_s=0.2))
    result = await runner.start("g", plan=parallel_plan())
    assert result.passed
    spans = read_spans(settings.runs_dir / result.record.run_id)
    assert len({s["trace_id"] for s in spans}) == 1  # one trace per run
    root = one(spans, "invoke_workflow naestro")
    assert root["parent_id"] is None and root["attributes"]["naestro.run.id"] == result.record.run_id
    phase = one(children(spans, root), "naestro.graph")
    under_phase = names(children(spans, phase))
    assert Counter(under_phase) == Counter(["naestro.task a", "naestro.task b", "naestro.task d", "naestro.check a",
                                            "naestro.check b", "naestro.check d", "chat scripted-7b"])  # + reporter
    task_spans = {t: one(spans, f"naestro.task {t}") for t in "abd"}
    # a and b ran in parallel (their spans overlap) and still each kept its own subtree
    a, b = task_spans["a"], task_spans["b"]
    assert a["start_ns"] < b["end_ns"] and b["start_ns"] < a["end_ns"]
    for tid, task_span in task_spans.items():
        (agent,) = children(spans, task_span)
        assert agent["name"] == "invoke_agent coder"
        assert agent["attributes"]["gen_ai.operation.name"] == "invoke_agent"
        # write, finish (refused: nothing was run yet), finish
        assert names(children(spans, agent)) == ["chat scripted-7b", "execute_tool fs.write", "chat scripted-7b",
                                                 "chat scripted-7b"]
        for call in children(spans, agent):
            assert call["attributes"]["naestro.task.id"] == tid
            (policy,) = children(spans, call)
            assert policy["name"].startswith("naestro.policy ")
            assert policy["attributes"]["naestro.policy.verdict"] == "allow"
            assert policy["attributes"]["naestro.policy.latency_us"] > 0
        chat, tool, _, _ = children(spans, agent)
        attrs = chat["attributes"]
        assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "scripted-7b"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (10, 5)
        assert attrs["naestro.cost_usd"] == pytest.approx(PRICED.cost_usd(10, 5))
        assert tool["attributes"]["gen_ai.tool.name"] == "fs.write" and tool["attributes"]["naestro.tool.ok"] is True
    # the run's events carry the same cost the spans do
    assert sum(s["attributes"]["naestro.cost_usd"] for s in spans if s["name"].startswith("chat ")) \
        == pytest.approx(sum(r["cost_usd"] for r in result.tasks.values()) + PRICED.cost_usd(10, 5))


async def test_denied_tool_and_trace_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def script(messages: list[Any]) -> dict[str, Any]:
        if "Write 2-4 sentences" in str(messages[-1].content):
            return {"summary": "s"}
        if len(messages) == 2:  # a path outside the workspace: the policy denies it
            return {"thought": "x", "tool": "fs.write", "arguments": {"path": "/etc/naestro.txt", "content": "ok"}}
        if len(messages) == 4:
            return {"thought": "x", "tool": "fs.write", "arguments": {"path": "a.txt", "content": "ok"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}

    runner = Runner(settings, priced_provider(script))
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "ok")]})
    result = await runner.start("g", plan=plan)
    spans = read_spans(settings.runs_dir / result.record.run_id)
    denied = [s for s in spans if s["attributes"].get("naestro.policy.verdict") == "deny"]
    assert len(denied) == 1 and denied[0]["attributes"]["naestro.policy.reasons"]
    tool = next(s for s in spans if s["span_id"] == denied[0]["parent_id"])
    assert tool["name"] == "execute_tool fs.write" and tool["attributes"]["naestro.tool.ok"] is False

    monkeypatch.setenv("NAESTRO_HOME", str(settings.home))
    shown = CliRunner().invoke(app, ["runs", "trace", result.record.run_id])
    assert shown.exit_code == 0, shown.output
    for line in ("invoke_workflow naestro", "naestro.graph", "naestro.task a", "invoke_agent coder",
                 "chat scripted-7b", "verdict=deny", "in=10 out=5"):
        assert line in shown.output
    as_json = CliRunner().invoke(app, ["runs", "trace", result.record.run_id, "--json"])
    assert len(as_json.output.splitlines()) == len(spans)


async def test_otlp_export_and_tracing_off(settings: Settings, tmp_path: Path) -> None:
    with OtlpSink() as sink:
        telemetry = Telemetry(TelemetrySettings(otel_exporter_otlp_endpoint=sink.endpoint,
                                                otel_service_name="naestro-test"))
        assert telemetry.exporting
        import os
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint  # the exporter reads the standard variable
        try:
            telemetry = Telemetry(TelemetrySettings())
            runner = Runner(settings, priced_provider(coder_script({"a": "ok"})), telemetry=telemetry)
            result = await runner.start("g", plan=Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "ok")]}))
        finally:
            del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
        local = read_spans(settings.runs_dir / result.record.run_id)
        # the run span ends last and force_flush ships everything before start() returns
        assert sorted(s["span_id"] for s in sink.spans) == sorted(s["span_id"] for s in local)
        assert {s["resource"]["service.name"] for s in sink.spans} == {"naestro"}
    off = Runner(settings, priced_provider(coder_script({"a": "ok"})),
                 telemetry=Telemetry(TelemetrySettings(naestro_trace="off")))
    result = await off.start("g", plan=Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "ok")]}))
    assert result.passed and read_spans(settings.runs_dir / result.record.run_id) == []


async def test_consent_wait_and_resume_stay_in_the_runs_trace(settings: Settings) -> None:
    def script(messages: list[Any]) -> dict[str, Any]:
        if "Write 2-4 sentences" in str(messages[-1].content):
            return {"summary": "s"}
        if len(messages) == 2:
            return {"thought": "x", "tool": "exec.run", "arguments": {"command": "echo ok > a.txt"}}
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}

    runner = Runner(settings, priced_provider(script))
    waiting = await runner.start("g", plan=Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "ok")]}))
    (pending,) = waiting.pending
    done = await runner.resume(waiting.record.run_id, {pending.id: ConsentAnswer(approve=True, by="tester")})
    assert done.passed
    spans = read_spans(settings.runs_dir / done.record.run_id)
    assert len({s["trace_id"] for s in spans}) == 1
    root = one(spans, "invoke_workflow naestro")
    resume = one(spans, "naestro.resume")
    assert resume["parent_id"] == root["span_id"]
    asked, answered = sorted((s for s in spans if s["name"] == "naestro.consent exec.run"), key=lambda s: s["start_ns"])
    assert asked["attributes"]["naestro.interrupted"] == "GraphInterrupt" and asked["status"] == "UNSET"
    assert answered["attributes"]["naestro.consent.approve"] is True
    assert answered["attributes"]["naestro.consent.by"] == "tester"
    # the resumed phase, task and tool spans hang under the resume span
    by_id = {s["span_id"]: s for s in spans}
    node = answered
    while node["parent_id"] in by_id:
        node = by_id[node["parent_id"]]
    assert node is root and any(by_id[s["parent_id"]] is resume for s in spans if s["parent_id"] in by_id)


async def test_planned_run_has_a_plan_span_with_its_policy_decision(settings: Settings) -> None:
    plan = {"tasks": [{"id": "a", "role": "coder", "description": "write a.txt",
                       "accept": [{"kind": "regex", "file": "a.txt", "pattern": "ok"}]}]}
    agent = coder_script({"a": "ok"})

    def planner_then_agent(messages: list[Any]) -> Any:
        text = "\n".join(str(m.content) for m in messages)
        return agent(messages) if "Your task (a)" in text or "Write 2-4 sentences" in text else plan

    result = await Runner(settings, priced_provider(planner_then_agent)).start("write a.txt saying ok")
    assert result.passed and result.record.plan_source == "model"
    spans = read_spans(settings.runs_dir / result.record.run_id)
    root = one(spans, "invoke_workflow naestro")
    planned = one(spans, "naestro.plan")
    graph = one(spans, "naestro.graph")  # planning is the graph's first node
    assert graph["parent_id"] == root["span_id"] and planned["parent_id"] == graph["span_id"]
    assert planned["attributes"]["naestro.plan.source"] == "model" and planned["attributes"]["naestro.plan.tasks"] == 1
    assert [s["name"] for s in children(spans, planned)] == ["naestro.policy model:scripted"]
    assert planned["end_ns"] <= min(s["start_ns"] for s in spans if s["name"].startswith("naestro.task "))
