"""OpenTelemetry tracing for runs: one trace per run, kept locally in the run directory and optionally exported.

Spans are opened with :func:`span` wherever a run does something worth seeing (run, phase, plan, task, agent,
model call, tool call, policy decision). The tracer of the run in progress travels in a ``ContextVar``, like
OpenTelemetry's own context, so parallel task nodes (asyncio tasks that copy the context when LangGraph
creates them) nest under the right phase, and library code needs no tracer argument. Outside a run (or with
``NAESTRO_TRACE=off``) :func:`span` yields OpenTelemetry's no-op span and costs a ContextVar lookup.

Every span is written, redacted, to ``RUN_DIR/spans.jsonl`` as it ends (what ``naestro runs trace`` reads),
and, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, exported over
OTLP/HTTP through the same redaction. A resumed run continues the original trace: the root span's context is
kept in ``RUN_DIR/trace.json`` and the resume span is its child.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Literal, TypedDict

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from naestro.appendfile import AppendFile
from naestro.redact import redact, redact_value

__all__ = ["SPANS_FILE", "SpanRecord", "Telemetry", "TelemetrySettings", "read_spans", "span"]

SPANS_FILE = "spans.jsonl"
_CONTEXT_FILE = "trace.json"
# Attribute keys are names from code, never data: only values are redacted.
# Exceptions that are control flow, not failure: a consent interrupt suspends the node, it does not fail it.
_CONTROL_FLOW = {"GraphInterrupt", "NodeInterrupt", "ParentCommand", "GraphBubbleUp", "CancelledError"}

_ACTIVE: ContextVar[trace.Tracer | None] = ContextVar("naestro_tracer", default=None)

Attrs = Mapping[str, AttributeValue | None]


class TelemetrySettings(BaseSettings):
    """The standard OpenTelemetry variables plus ``NAESTRO_TRACE`` (``off`` disables tracing altogether)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    naestro_trace: Literal["local", "off"] = Field(default="local", description="local: spans.jsonl per run")
    naestro_home: Path = Field(default=Path(".naestro"), description="where `naestro observe up` leaves its endpoint")
    otel_service_name: str = "naestro"
    otel_sdk_disabled: bool = False
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None

    @property
    def traces_endpoint(self) -> str | None:
        """OTLP/HTTP traces URL: the OTEL variables (a base endpoint gets /v1/traces, as the spec says), else the
        Phoenix that `naestro observe up` started for this home, else None (no export)."""
        from naestro.telemetry._phoenix import observe_endpoint

        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        base = self.otel_exporter_otlp_endpoint or observe_endpoint(self.naestro_home)
        return f"{base.rstrip('/')}/v1/traces" if base else None


class SpanRecord(TypedDict):
    """One line of spans.jsonl."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    status_message: str
    attributes: dict[str, object]
    events: list[dict[str, object]]


def _record(s: ReadableSpan) -> SpanRecord:
    ctx = s.context
    assert ctx is not None
    return {
        "trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{s.parent.span_id:016x}" if s.parent is not None else None,
        "name": s.name, "kind": s.kind.name, "start_ns": s.start_time or 0, "end_ns": s.end_time or 0,
        "status": s.status.status_code.name, "status_message": s.status.description or "",
        "attributes": redact_value(dict(s.attributes or {}), keys=False),
        "events": [{"name": e.name, "ts_ns": e.timestamp,
                    "attributes": redact_value(dict(e.attributes or {}), keys=False)} for e in s.events],
    }


def _redacted(s: ReadableSpan) -> ReadableSpan:
    """A copy of a finished span with every string redacted, for exporters that leave this process."""
    return ReadableSpan(
        name=redact(s.name), context=s.context, parent=s.parent, resource=s.resource,
        attributes=redact_value(dict(s.attributes or {}), keys=False),
        events=[SpanEvent(e.name, redact_value(dict(e.attributes or {}), keys=False), e.timestamp) for e in s.events],
        links=s.links, kind=s.kind, status=Status(s.status.status_code, redact(s.status.description or "") or None),
        start_time=s.start_time, end_time=s.end_time, instrumentation_scope=s.instrumentation_scope)


class _RedactingExporter(SpanExporter):
    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([_redacted(s) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _RunFiles(SpanProcessor):
    """Appends each finished span to the spans.jsonl of the run whose trace it belongs to (the file stays open
    while the run is traced: an open per span was ~4 per task, issue 16)."""

    def __init__(self) -> None:
        self._files: dict[int, AppendFile] = {}
        self._lock = threading.Lock()

    def route(self, trace_id: int, path: Path) -> None:
        with self._lock:
            old = self._files.pop(trace_id, None)
            if old is not None:
                old.close()
            self._files[trace_id] = AppendFile(path)

    def unroute(self, trace_id: int) -> None:
        with self._lock:
            file = self._files.pop(trace_id, None)
            if file is not None:
                file.close()

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or span.context.trace_id not in self._files:
            return
        line = json.dumps(_record(span), default=str)
        with self._lock:
            file = self._files.get(span.context.trace_id)
            if file is not None:
                file.append(line)


def _mark(sp: Span, exc: BaseException) -> None:
    name = type(exc).__name__
    if name in _CONTROL_FLOW:
        sp.set_attribute("naestro.interrupted", name)
        return
    sp.set_attribute("error.type", name)
    sp.set_status(Status(StatusCode.ERROR, redact(f"{name}: {exc}")[:500]))


def _clean(attributes: Attrs | None) -> dict[str, AttributeValue]:
    return {k: v for k, v in (attributes or {}).items() if v is not None}


@contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, attributes: Attrs | None = None) -> Iterator[Span]:
    """A child of the current span in the run's trace; a no-op span when no run is being traced.

    An exception marks the span failed (message redacted) and propagates; LangGraph's interrupt and
    cancellation are recorded as ``naestro.interrupted`` instead of an error.
    """
    tracer = _ACTIVE.get()
    if tracer is None:
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(name, kind=kind, attributes=_clean(attributes), record_exception=False,
                                      set_status_on_exception=False) as sp:
        try:
            yield sp
        except BaseException as exc:
            _mark(sp, exc)
            raise


class Telemetry:
    """The process's tracer provider: per-run span files, plus the OTLP exporter when one is configured.

    Built once at the entry point (the Runner's default reads the environment through ``TelemetrySettings``);
    ``exporter`` replaces the OTLP exporter (the benchmark and tests pass one).
    """

    def __init__(self, settings: TelemetrySettings | None = None, *, exporter: SpanExporter | None = None) -> None:
        self.settings = s = settings or TelemetrySettings()
        self.enabled = s.naestro_trace != "off" and not s.otel_sdk_disabled
        self._files = _RunFiles()
        self._export: BatchSpanProcessor | None = None
        self.provider: TracerProvider | None = None
        self.tracer: trace.Tracer | None = None
        if not self.enabled:
            return
        self.provider = TracerProvider(resource=Resource.create(
            {"service.name": s.otel_service_name, "openinference.project.name": s.otel_service_name}))
        self.provider.add_span_processor(self._files)
        endpoint = s.traces_endpoint if exporter is None else None
        if endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=endpoint)  # headers, timeout: OTEL_EXPORTER_OTLP_*
        if exporter is not None:
            self._export = BatchSpanProcessor(_RedactingExporter(exporter))
            self.provider.add_span_processor(self._export)
        self.tracer = self.provider.get_tracer("naestro")

    @property
    def exporting(self) -> bool:
        return self._export is not None

    @contextmanager
    def run(self, *, run_id: str, run_dir: Path, resumed: bool = False,
            attributes: Attrs | None = None) -> Iterator[Span]:
        """The root span of a run (or of a resume, parented to the run's root), current for the block."""
        if self.tracer is None:
            yield trace.INVALID_SPAN
            return
        parent = otel_context.Context()  # a run never nests under whatever span its caller had open
        saved = run_dir / _CONTEXT_FILE
        if resumed and saved.exists():
            ids = json.loads(saved.read_text())
            remote = trace.SpanContext(trace_id=int(ids["trace_id"], 16), span_id=int(ids["span_id"], 16),
                                       is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
            parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        root = self.tracer.start_span(
            "naestro.resume" if resumed else "invoke_workflow naestro", context=parent,
            attributes=_clean({"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "naestro",
                               "naestro.run.id": run_id, "naestro.resumed": resumed, **(attributes or {})}))
        sc = root.get_span_context()
        run_dir.mkdir(parents=True, exist_ok=True)
        self._files.route(sc.trace_id, run_dir / SPANS_FILE)
        if not saved.exists():
            saved.write_text(json.dumps({"trace_id": f"{sc.trace_id:032x}", "span_id": f"{sc.span_id:016x}"}))
        token = _ACTIVE.set(self.tracer)
        try:
            with trace.use_span(root, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                try:
                    yield root
                except BaseException as exc:
                    _mark(root, exc)
                    raise
        finally:
            _ACTIVE.reset(token)
            root.end()
            self._files.unroute(sc.trace_id)
            if self._export is not None:  # a CLI process exits right after the run: ship its spans now
                self._export.force_flush()

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def read_spans(run_dir: Path) -> list[SpanRecord]:
    path = run_dir / SPANS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
