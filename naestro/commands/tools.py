"""``naestro tools``: the tool registry (builtin MCP servers + external servers from tools.yaml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from naestro.commands._settings import load_settings
from naestro.errors import NaestroError, UsageError

if TYPE_CHECKING:
    from naestro.tools import Registry, ToolEntry

app = typer.Typer(no_args_is_help=True, help="The tool registry: every tool agents can call, as server.tool.")
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error per line, whatever the terminal width

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="tools.yaml with external servers "
                                                "(default: NAESTRO_HOME/tools.yaml)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _registry(config: Path | None) -> Registry:
    # The registry starts MCP servers (the MCP SDK, langchain adapters): loaded now, never for `--help` (issue 15).
    import asyncio
    import tempfile

    from naestro.tools import build_registry, load_tools_config
    from nodes.roles import load_roles

    settings = load_settings()
    try:
        cfg = load_tools_config(config or settings.home / "tools.yaml")
        roles = {str(role): list(spec.tools) for role, spec in load_roles().items()}
        # tools/list needs running servers; they are confined to a scratch workspace that is removed afterwards.
        with tempfile.TemporaryDirectory(prefix="naestro-tools-") as ws:
            return asyncio.run(build_registry(Path(ws), cfg, roles=roles))
    except NaestroError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2 if isinstance(exc, UsageError) else 3) from exc


def _hints(entry: ToolEntry) -> str:
    a = entry.annotations
    marks = [name for name, on in (("read-only", a.read_only), ("destructive", a.destructive),
                                   ("idempotent", a.idempotent), ("open-world", a.open_world)) if on]
    return ", ".join(marks) + ("" if entry.trusted else " (untrusted)")


@app.command("list")
def list_tools(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every tool: name, version, annotations, the roles allowed to call it."""
    registry = _registry(config)
    if as_json:
        print(json.dumps([t.model_dump(mode="json") for t in registry.tools], indent=2))
        return
    table = Table("tool", "version", "hints", "roles")
    for t in registry.tools:
        table.add_row(t.name, t.version, _hints(t), ", ".join(t.scopes) or "-")
    out.print(table)


@app.command()
def show(name: Annotated[str, typer.Argument(help="server.tool, e.g. fs.read")], config: ConfigOpt = None,
         as_json: JsonOpt = False) -> None:
    """One tool in full: input/output JSON Schema, annotations, version, trust, roles."""
    registry = _registry(config)
    try:
        entry = registry.get(name)
    except UsageError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    if as_json:
        print(entry.model_dump_json(indent=2))
        return
    out.print(f"[bold]{entry.name}[/bold]  version {entry.version}  via {entry.adapter}/{entry.transport}")
    out.print(f"trusted: {entry.trusted}   roles: {', '.join(entry.scopes) or '-'}   hints: {_hints(entry) or '-'}")
    out.print(entry.description, markup=False)
    out.print("input schema:", markup=False)
    out.print_json(json.dumps(entry.input_schema))
    if entry.output_schema is not None:
        out.print("output schema:", markup=False)
        out.print_json(json.dumps(entry.output_schema))
