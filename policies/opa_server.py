"""An OPA REST API server backed by the reference OPA Go engine: ``naestro policy serve --port P``.

No OPA server binary installs from this project's registries (PyPI, Debian, npm; see FACTS.md), so the
REST backend is exercised against this server: the real OPA v1 evaluator (``opa-golib-python-bindings``)
behind the subset of OPA's REST API that policy clients use — ``GET /health``, ``GET/PUT/DELETE
/v1/policies/{id}``, ``PUT /v1/data/{path}``, ``POST /v1/data/{path}`` (``{"input": ...}`` →
``{"result": ...}``). ``OpaRestEngine`` talks to it exactly as it would to ``opa run --server``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OpaApiServer"]


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.modules: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.engine: Any = None

    def rebuild(self, modules: dict[str, str], data: dict[str, Any]) -> None:
        from opa_bindings import OpaEngine

        engine = OpaEngine()
        for name, source in modules.items():
            engine.add_policy(name, source)  # raises OpaError on a parse/compile error
        engine.add_data(data)
        old, self.engine, self.modules, self.data = self.engine, engine, modules, data
        if old is not None:
            old.close()


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else keep-alive replies wait ~40 ms for a delayed ACK

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the gate audits decisions
            pass

        def _send(self, status: int, body: Any = None) -> None:
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _error(self, status: int, code: str, message: str) -> None:
            self._send(status, {"code": code, "message": message})

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/health":
                self._send(200, {})
            elif path.rstrip("/") == "/v1/policies":
                with state.lock:
                    self._send(200, {"result": [{"id": k, "raw": v} for k, v in state.modules.items()]})
            elif path.startswith("/v1/policies/"):
                pid = path.removeprefix("/v1/policies/")
                with state.lock:
                    if pid in state.modules:
                        self._send(200, {"result": {"id": pid, "raw": state.modules[pid]}})
                    else:
                        self._error(404, "resource_not_found", f"storage_not_found_error: policy id {pid!r}")
            else:
                self._error(404, "resource_not_found", f"no route {path}")

        def do_PUT(self) -> None:
            from opa_bindings import OpaError

            path = self.path.split("?")[0]
            body = self._body()
            with state.lock:
                modules, data = dict(state.modules), json.loads(json.dumps(state.data))
                if path.startswith("/v1/policies/"):
                    modules[path.removeprefix("/v1/policies/")] = body.decode()
                    ok_status = 200
                elif path.startswith("/v1/data/"):
                    try:
                        value = json.loads(body or b"null")
                    except json.JSONDecodeError as exc:
                        return self._error(400, "invalid_parameter", f"body is not JSON: {exc}")
                    keys = [k for k in path.removeprefix("/v1/data/").split("/") if k]
                    node = data
                    for key in keys[:-1]:
                        node = node.setdefault(key, {})
                    node[keys[-1]] = value
                    ok_status = 204
                else:
                    return self._error(404, "resource_not_found", f"no route {path}")
                try:
                    state.rebuild(modules, data)
                except OpaError as exc:
                    return self._send(400, {"code": "invalid_parameter", "message": exc.message,
                                            "errors": [{"code": "rego_parse_error", "message": exc.message}]})
            self._send(ok_status, {} if ok_status == 200 else None)

        def do_DELETE(self) -> None:
            path = self.path.split("?")[0]
            with state.lock:
                pid = path.removeprefix("/v1/policies/")
                if not path.startswith("/v1/policies/") or pid not in state.modules:
                    return self._error(404, "resource_not_found", f"no policy {pid!r}")
                modules = {k: v for k, v in state.modules.items() if k != pid}
                state.rebuild(modules, state.data)
            self._send(200, {})

        def do_POST(self) -> None:
            from opa_bindings import OpaError, OpaUndefinedError

            path = self.path.split("?")[0]
            if not path.startswith("/v1/data"):
                return self._error(404, "resource_not_found", f"no route {path}")
            try:
                doc = json.loads(self._body() or b"{}")
            except json.JSONDecodeError as exc:
                return self._error(400, "invalid_parameter", f"body is not JSON: {exc}")
            target = ".".join(k for k in path.removeprefix("/v1/data").split("/") if k)
            with state.lock:
                if state.engine is None:
                    return self._send(200, {})
                try:
                    result = state.engine.eval_document(target, input=doc.get("input"))
                except OpaUndefinedError:
                    return self._send(200, {})
                except OpaError as exc:
                    return self._error(500, "internal_error", exc.message)
            self._send(200, {"result": result})

    return Handler


class OpaApiServer:
    """Serve OPA's REST API on 127.0.0.1:``port`` (0 = any free port) in a background thread."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self._state = _State()
        self._httpd = ThreadingHTTPServer((host, port), _handler(self._state))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> OpaApiServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="opa-api", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OpaApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

