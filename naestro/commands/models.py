"""``naestro models``: the model endpoints of models.yaml, their health, and the embedded llama-servers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from naestro.commands._errors import fail
from naestro.commands._settings import load_settings, provider
from naestro.errors import RunError, UsageError

if TYPE_CHECKING:
    from naestro.llm import EndpointProvider

app = typer.Typer(invoke_without_command=True, help="Model endpoints (models.yaml) and their health.")
out = Console()


def _endpoints() -> EndpointProvider:
    """This NAESTRO_HOME's endpoints; a broken models.yaml is exit 2 with the file and field."""
    try:
        return provider(load_settings())
    except UsageError as exc:
        raise fail(exc) from exc


@app.callback()
def models(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List endpoints and their health (embedded servers start on demand)."""
    if ctx.invoked_subcommand:
        return
    endpoints = _endpoints()
    rows = [{"name": e.name, "kind": e.kind, "model": e.model, "context": e.context, "locality": e.locality,
             "capabilities": ",".join(e.capabilities), "health": endpoints.health(e),
             "role": "default" if e.name == endpoints.registry.default else
                     "fast" if e.name == endpoints.registry.fast else ""} for e in endpoints.registry.endpoints]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "kind", "model", "ctx", "where", "capabilities", "health", "")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    out.print(table)


@app.command("start")
def models_start(name: Annotated[str | None, typer.Argument(help="endpoint; default: all embedded")] = None) -> None:
    """Start embedded llama-server(s) now instead of on first use."""
    endpoints = _endpoints()
    for e in endpoints.registry.endpoints:
        if e.embedded and (name is None or e.name == name):
            try:
                info = endpoints.server(e).ensure()
            except RunError as exc:
                raise fail(exc) from exc
            out.print(f"{e.name}: up at {info.base_url} (pid {info.pid})")


@app.command("stop")
def models_stop() -> None:
    """Stop embedded llama-server processes started by Naestro."""
    endpoints = _endpoints()
    for e in endpoints.registry.endpoints:
        if e.embedded:
            stopped = endpoints.server(e).stop()
            out.print(f"{e.name}: {'stopped' if stopped else 'not running'}")
