"""Observability: OpenTelemetry traces per run (GenAI conventions), their terminal view, Prometheus metrics."""

from naestro.telemetry._genai import (
    agent_span,
    chat_span,
    policy_span,
    record_reply,
    record_tool_result,
    tool_span,
)
from naestro.telemetry._sink import OtlpSink
from naestro.telemetry._tracing import SPANS_FILE, SpanRecord, Telemetry, TelemetrySettings, read_spans, span
from naestro.telemetry._view import span_tree

__all__ = [
    "SPANS_FILE",
    "OtlpSink",
    "SpanRecord",
    "Telemetry",
    "TelemetrySettings",
    "agent_span",
    "chat_span",
    "policy_span",
    "read_spans",
    "record_reply",
    "record_tool_result",
    "span",
    "span_tree",
    "tool_span",
]
