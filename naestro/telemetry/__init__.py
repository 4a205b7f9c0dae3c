"""Observability: OpenTelemetry traces per run (GenAI conventions), their terminal view, Prometheus metrics.

Spans: ``span`` and the GenAI helpers; ``Telemetry`` owns the provider (spans.jsonl per run, OTLP export).
Metrics: ``EventsCollector`` folds the runs' events.jsonl into Prometheus series (``naestro metrics``).
"""

from naestro.telemetry._genai import (
    agent_span,
    chat_span,
    policy_span,
    record_reply,
    record_tool_result,
    tool_span,
)
from naestro.telemetry._metrics import EventsCollector
from naestro.telemetry._sink import OtlpSink
from naestro.telemetry._tracing import SPANS_FILE, SpanRecord, Telemetry, TelemetrySettings, read_spans, span
from naestro.telemetry._view import span_tree

__all__ = [
    "SPANS_FILE",
    "EventsCollector",
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
