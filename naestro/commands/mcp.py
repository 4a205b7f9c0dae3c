"""``naestro mcp``: run Naestro's own MCP servers for IDE clients (Claude Desktop, Cursor, VS Code, Inspector)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# mcp_servers.workspace.BUILTIN_SERVERS, then the front door (naestro/frontdoor.py), repeated because the
# help text needs the names and that module imports the MCP SDK; tests/unit/test_cli_imports.py pins them equal.
SERVERS: tuple[str, ...] = ("fs", "exec", "git", "pdf", "db", "web", "naestro")

app = typer.Typer(no_args_is_help=True, help="Naestro's MCP servers (stdio or streamable HTTP).")


@app.command()
def serve(name: Annotated[str, typer.Argument(help=f"server: {', '.join(SERVERS)}")],
          workspace: Annotated[Path, typer.Option(help="the folder the server is confined to")] = Path("."),
          http: Annotated[int | None, typer.Option(metavar="PORT", help="serve streamable HTTP at "
                                                   "http://127.0.0.1:PORT/mcp instead of stdio")] = None,
          allow_domain: Annotated[list[str] | None, typer.Option(help="web: a host fetch may reach, or "
                                                                  "*.example.com for its subdomains (repeat)")] = None,
          database: Annotated[str | None, typer.Option(help="db: SQLite file in the workspace or "
                                                       "postgresql:// DSN")] = None,
          search_url: Annotated[str | None, typer.Option(help="web: a SearXNG instance for web.search")] = None,
          ) -> None:
    """Run one server over stdio (the default, for IDE clients) or streamable HTTP."""
    # The MCP SDK (and httpx) load when a server starts, never for `--help` (issue 15).
    from mcp_servers.workspace import ServerOptions, build_server, serve_server

    if name not in SERVERS:
        typer.echo(f"error: unknown server {name!r}; choose one of: {', '.join(SERVERS)}", err=True)
        raise typer.Exit(2)
    workspace.mkdir(parents=True, exist_ok=True)
    options = ServerOptions(workspace=workspace, allow_domains=tuple(allow_domain or ()), database=database,
                            search_url=search_url)
    if name == "naestro":  # the front door drives runs: it lives with the CLI and needs the runtime
        from naestro.frontdoor import build

        serve_server(build(options), http_port=http)
    else:
        serve_server(build_server(name, options), http_port=http)


@app.command("list")
def list_servers() -> None:
    """The server names (the tool servers agents use, then `naestro` for IDE clients)."""
    for name in SERVERS:
        typer.echo(name)
