"""Span helper semantics, resume continuing the run's trace, redaction on every exit path, exported names."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.errors import GraphInterrupt

import naestro.telemetry
from naestro.redact import PLACEHOLDER, find, redact
from naestro.telemetry import OtlpSink, Telemetry, TelemetrySettings, read_spans, span


def test_exported_names() -> None:
    assert naestro.telemetry.__all__ == [
        "SPANS_FILE", "EventsCollector", "OtlpSink", "SpanRecord", "Telemetry", "TelemetrySettings", "agent_span",
        "chat_span", "policy_span", "read_spans", "record_reply", "record_tool_result", "span", "span_tree",
        "tool_span"]


def test_span_outside_a_run_records_nothing(tmp_path: Path) -> None:
    with span("loose") as sp:
        assert not sp.is_recording()


def test_nesting_errors_interrupts_and_redaction(tmp_path: Path) -> None:
    telemetry = Telemetry(TelemetrySettings())
    key = "sk-proj-" + "A1b2C3d4" * 4
    with telemetry.run(run_id="r1", run_dir=tmp_path, attributes={"naestro.goal": f"use {key}"}), span("outer"):
        with pytest.raises(ValueError), span("fails"):
            raise ValueError(f"bad key {key}")
        with pytest.raises(GraphInterrupt), span("asks"):
            raise GraphInterrupt(())
    spans = {s["name"]: s for s in read_spans(tmp_path)}
    root, outer = spans["invoke_workflow naestro"], spans["outer"]
    assert outer["parent_id"] == root["span_id"]
    assert spans["fails"]["parent_id"] == outer["span_id"] and spans["asks"]["parent_id"] == outer["span_id"]
    assert spans["fails"]["status"] == "ERROR" and spans["fails"]["attributes"]["error.type"] == "ValueError"
    assert spans["asks"]["status"] == "UNSET" and spans["asks"]["attributes"]["naestro.interrupted"] == "GraphInterrupt"
    text = (tmp_path / "spans.jsonl").read_text()
    assert key not in text and redact(key) in text


def test_resume_continues_the_runs_trace(tmp_path: Path) -> None:
    telemetry = Telemetry(TelemetrySettings())
    with telemetry.run(run_id="r1", run_dir=tmp_path):
        pass
    with telemetry.run(run_id="r1", run_dir=tmp_path, resumed=True), span("after resume"):
        pass
    spans = {s["name"]: s for s in read_spans(tmp_path)}
    root, resume = spans["invoke_workflow naestro"], spans["naestro.resume"]
    assert resume["trace_id"] == root["trace_id"] and resume["parent_id"] == root["span_id"]
    assert spans["after resume"]["parent_id"] == resume["span_id"]


def test_otlp_export_is_redacted(tmp_path: Path) -> None:
    email = "bob.jones@example.com"
    with OtlpSink() as sink:
        telemetry = Telemetry(TelemetrySettings(otel_exporter_otlp_endpoint=sink.endpoint))
        with telemetry.run(run_id="r2", run_dir=tmp_path), span("mail", attributes={"to": email}):
            pass
        assert {s["name"] for s in sink.spans} == {"invoke_workflow naestro", "mail"}
        assert all(email not in str(s) for s in sink.spans)


def test_off_writes_nothing(tmp_path: Path) -> None:
    telemetry = Telemetry(TelemetrySettings(naestro_trace="off"))
    with telemetry.run(run_id="r3", run_dir=tmp_path), span("x") as sp:
        assert not sp.is_recording()
    assert not (tmp_path / "spans.jsonl").exists()


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "5555555555554444",
                                  "3782 822463 10005", "6011111111111117"])
def test_cards_are_found(card: str) -> None:
    assert [f.kind for f in find(f"pay with {card} today")] == ["card"]


@pytest.mark.parametrize("text", ["run 20261125-080659-d39b", "20261125080659", "order 1234 5678 9012 3452"])
def test_card_look_alikes_are_not(text: str) -> None:
    assert find(text) == []


@given(st.text(max_size=200))
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
    assert not [f for f in find(once) if PLACEHOLDER.search(once[f.start:f.end])]
