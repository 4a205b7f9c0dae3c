"""``naestro observe up|down|status``: a local Arize Phoenix trace UI on loopback, fed by every run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from naestro.commands._settings import load_settings

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Local trace UI (Arize Phoenix, own venv, loopback only).")
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error per line, whatever the terminal width

PortOpt = Annotated[int, typer.Option("--port", help="UI and OTLP/HTTP port")]
VenvOpt = Annotated[Path | None, typer.Option("--venv", help="an existing venv with arize-phoenix installed")]


@app.command()
def up(port: PortOpt = 6006, grpc_port: Annotated[int, typer.Option("--grpc-port")] = 4317,
       venv: VenvOpt = None) -> None:
    """Start Phoenix on loopback (the first time, installs the pinned arize-phoenix into HOME/observe/venv)."""
    # naestro.telemetry loads OpenTelemetry and the runtime: only when a command runs, never for `--help` (issue 15).
    from naestro.telemetry._phoenix import Phoenix, PhoenixFailed

    settings = load_settings()
    phoenix = Phoenix(settings.home.resolve(), port=port, grpc_port=grpc_port, venv=venv)
    try:
        url = phoenix.up()
    except PhoenixFailed as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(3) from exc
    out.print(f"Phoenix: {url} (project 'naestro'). Runs of this NAESTRO_HOME now export their spans there;\n"
              f"other processes: export OTEL_EXPORTER_OTLP_ENDPOINT={url}")


@app.command()
def down() -> None:
    """Stop the Phoenix `observe up` started; runs go back to local spans only."""
    from naestro.telemetry._phoenix import Phoenix

    stopped = Phoenix(load_settings().home.resolve()).down()
    out.print("Phoenix stopped" if stopped else "Phoenix was not running")


@app.command()
def status() -> None:
    from naestro.telemetry._phoenix import Phoenix

    phoenix = Phoenix(load_settings().home.resolve())
    pid = phoenix.pid()
    out.print(f"Phoenix running (pid {pid})" if pid else "Phoenix not running")
    if pid is None:
        raise typer.Exit(1)
