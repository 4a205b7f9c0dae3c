"""``naestro metrics --port P``: Prometheus /metrics over the runs' event logs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from naestro.commands._settings import load_settings

__all__ = ["app"]

app = typer.Typer(invoke_without_command=True, help="Serve Prometheus /metrics computed from the runs on disk.")
err = Console(stderr=True, soft_wrap=True)  # one error per line, whatever the terminal width


@app.callback()
def serve(port: Annotated[int, typer.Option("--port", help="TCP port")] = 9464,
          host: Annotated[str, typer.Option("--host", help="bind address (loopback by default)")] = "127.0.0.1",
          ) -> None:
    """Latency histograms, tokens, cost, success rates, policy denials, consent waits, router spills."""
    # Telemetry loads OpenTelemetry, and the server its HTTP stack: only when serving, never for `--help` (issue 15).
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import CollectorRegistry, make_wsgi_app

    from naestro.telemetry import EventsCollector

    class _QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # one line per scrape is noise
            pass

    settings = load_settings()
    registry = CollectorRegistry()
    registry.register(EventsCollector(settings.runs_dir))
    try:
        server = make_server(host, port, make_wsgi_app(registry), handler_class=_QuietHandler)
    except OSError as exc:
        err.print(f"error: cannot listen on {host}:{port}: {exc.strerror}")
        raise typer.Exit(2) from exc
    err.print(f"serving http://{host}:{server.server_port}/metrics for {settings.runs_dir}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
