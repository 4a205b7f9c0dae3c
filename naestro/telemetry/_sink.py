"""A minimal OTLP/HTTP trace receiver: decodes ``POST /v1/traces`` (protobuf) and keeps the spans in memory.

For checking an export end to end where no collector is installed (the tracing benchmark and tests point
``OTEL_EXPORTER_OTLP_ENDPOINT`` at it); not a store: spans live as long as the receiver.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

__all__ = ["OtlpSink"]


def _value(v: AnyValue) -> object:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _span(s: PbSpan, resource: dict[str, object]) -> dict[str, object]:
    return {"trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(), "parent_id": s.parent_span_id.hex() or None,
            "name": s.name, "attributes": {a.key: _value(a.value) for a in s.attributes},
            "status_message": s.status.message, "resource": resource}


class OtlpSink:
    """``with OtlpSink() as sink:`` serves on 127.0.0.1 (a free port); ``sink.spans`` are the decoded spans."""

    def __init__(self, port: int = 0) -> None:
        self.spans: list[dict[str, object]] = []
        self.requests = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                found = []
                for rs in req.resource_spans:
                    resource = {a.key: _value(a.value) for a in rs.resource.attributes}
                    found += [_span(s, resource) for ss in rs.scope_spans for s in ss.spans]
                with sink._lock:
                    sink.requests += 1
                    sink.spans.extend(found)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
