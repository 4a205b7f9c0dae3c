"""Confinement of paths to a workspace root, and the one entry point every server shares.

Each server module defines ``build(options: ServerOptions) -> FastMCP``; ``serve`` parses the command line
(``--workspace DIR [--http PORT] [--allow-domain D ...] [--database DSN]``) and runs the server over stdio or
streamable HTTP (served at ``http://HOST:PORT/mcp``).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
from collections.abc import Callable, Collection
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import LoggingLevel
from pydantic import BaseModel, ConfigDict, Field

from mcp_servers.sandbox_path import unaliased

__all__ = ["BUILTIN_SERVERS", "ServerOptions", "build_server", "confine", "confine_read",
           "new_server", "serve", "serve_server"]

#: Naestro's own servers, by the name that prefixes their tools (``fs.read``, ``exec.run``, ...).
BUILTIN_SERVERS: tuple[str, ...] = ("fs", "exec", "git", "pdf", "db", "web")
# The server for people driving runs from an IDE client (``naestro mcp serve naestro``) is naestro/frontdoor.py:
# it needs the runtime, and these servers import none of it.


class ServerOptions(BaseModel):
    """What a server is confined to. The same options reach a server from the CLI or from the tool bus."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    workspace: Path
    allow_domains: tuple[str, ...] = Field(default=(), description="web: hosts fetch may reach; *.x for subdomains")
    database: str | None = Field(default=None, description="db: SQLite path in the workspace, or postgresql:// DSN")
    search_url: str | None = Field(default=None, description="web: a SearXNG instance for web.search")
    roots: tuple[Path, ...] = Field(default=(), description="fs/pdf: extra folders readable by absolute path")
    hidden: tuple[Path, ...] = Field(default=(), description=(
        "folders no tool reads, writes, lists or runs against, even inside the workspace: Naestro's home in an "
        "--in-place run (naestro/homes.py)"))

    def argv(self) -> list[str]:
        """The command-line form of these options, for starting the server as a child process."""
        args = ["--workspace", str(self.workspace)]
        for domain in self.allow_domains:
            args += ["--allow-domain", domain]
        if self.database:
            args += ["--database", self.database]
        if self.search_url:
            args += ["--search-url", self.search_url]
        for root in self.roots:
            args += ["--root", str(root)]
        for folder in self.hidden:
            args += ["--hide", str(folder)]
        return args


def new_server(name: str, *, instructions: str) -> FastMCP:
    """A FastMCP server that reports Naestro's version (tool versions in the registry derive from it)."""
    mcp = FastMCP(name, instructions=instructions, log_level="WARNING")
    mcp._mcp_server.version = _release()

    @mcp._mcp_server.set_logging_level()  # type: ignore[no-untyped-call,untyped-decorator]  # untyped in the SDK
    async def set_level(level: LoggingLevel) -> None:
        """logging/setLevel: the client picks how much of the server's log it wants (RFC 5424 levels)."""
        logging.getLogger("mcp").setLevel(_PY_LEVELS[level])

    return mcp


@functools.cache
def _release() -> str:
    """Naestro's version, looked up once per process: a pooled server builds a server per run."""
    try:
        return version("naestro")
    except PackageNotFoundError:  # running from a source tree without `pip install -e .`
        return "0+source"


_PY_LEVELS: dict[LoggingLevel, int] = {
    "debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO, "warning": logging.WARNING,
    "error": logging.ERROR, "critical": logging.CRITICAL, "alert": logging.CRITICAL, "emergency": logging.CRITICAL}


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


MAX_PATH_PARTS = 64
"""Deeper paths are refused before pathlib recurses into them (a 1,500-deep path raised RecursionError)."""


def _resolve(joined: Path, path: str, arg: str) -> Path:
    """``joined.resolve()``, with what makes it raise (a NUL byte, a symlink loop) refused as bad input."""
    if "\0" in path:
        raise ToolError(f"{arg} {path!r} contains a NUL byte; give a plain path without control characters")
    parts = Path(path).parts
    if len(parts) > MAX_PATH_PARTS:
        raise ToolError(f"{arg} is {len(parts)} folders deep; at most {MAX_PATH_PARTS} are accepted")
    if any(len(p.encode()) > 255 for p in parts):
        raise ToolError(f"{arg} has a name longer than 255 bytes (the file system's limit); shorten it")
    try:
        return joined.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ToolError(f"{arg} {path!r} cannot be resolved ({exc}); give a path without a symlink loop") from exc


def _refuse_hidden(candidate: Path, path: str, arg: str, hidden: Collection[Path]) -> None:
    if any(_inside(candidate, h.resolve()) for h in hidden):
        raise ToolError(f"{arg} {path!r} is in Naestro's own data folder, which no tool may read or change; use "
                        f"the project's files")


def confine(root: Path, path: str, *, arg: str = "path", hidden: Collection[Path] = ()) -> Path:
    """Resolve ``path`` (relative to root; ``..`` and symlinks resolved) and refuse anything outside root or in
    one of the ``hidden`` folders (``ServerOptions.hidden``).

    ``arg`` names the tool argument the path came from, so the refusal says which one to fix."""
    root, path = root.resolve(), unaliased(path)
    candidate = _resolve(root / path, path, arg)
    if not _inside(candidate, root):
        raise ToolError(f"{arg} {path!r} resolves outside the workspace ({candidate}); use a path relative to "
                        f"the workspace root")
    _refuse_hidden(candidate, path, arg, hidden)
    return candidate


def confine_read(options: ServerOptions, path: str, *, arg: str = "path") -> Path:
    """Like ``confine``, but a path resolving inside one of the read-only ``roots`` is also accepted."""
    if not options.roots:
        return confine(options.workspace, path, arg=arg, hidden=options.hidden)
    path = unaliased(path)
    candidate = _resolve(options.workspace.resolve() / path, path, arg)  # an absolute path replaces the workspace
    _refuse_hidden(candidate, path, arg, options.hidden)
    if readable(options, candidate):
        return candidate
    roots = ", ".join(str(r) for r in options.roots)
    raise ToolError(f"{arg} {path!r} is outside the workspace and the readable roots ({roots}); use a "
                    f"workspace-relative path or an absolute path under a root")


def readable(options: ServerOptions, resolved: Path) -> bool:
    """Whether an already resolved path lies in the workspace or a read-only root, and in no hidden folder (for
    what a walk finds)."""
    return any(_inside(resolved, root.resolve()) for root in (options.workspace, *options.roots)) \
        and not any(_inside(resolved, h.resolve()) for h in options.hidden)


def build_server(name: str, options: ServerOptions) -> FastMCP:
    """Import a builtin server module by name (lazily: pdf and web pull heavier libraries) and build it."""
    if name not in BUILTIN_SERVERS:
        raise ValueError(f"unknown server {name!r}; servers: {', '.join(BUILTIN_SERVERS)}")
    module = importlib.import_module(f"mcp_servers.{name}")
    build: Callable[[ServerOptions], FastMCP] = module.build
    return build(options)


def serve_server(mcp: FastMCP, *, http_port: int | None = None, host: str = "127.0.0.1") -> None:
    """Run over stdio, or over streamable HTTP on ``host:http_port`` (loopback by default)."""
    if http_port is None:
        mcp.run()
        return
    mcp.settings.host, mcp.settings.port = host, http_port
    mcp.run("streamable-http")


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--workspace", type=Path, default=Path.cwd())
    p.add_argument("--http", type=int, default=None, metavar="PORT", help="serve streamable HTTP instead of stdio")
    p.add_argument("--allow-domain", action="append", default=[],
                   help="web: a host fetch may reach (*.example.com: its subdomains)")
    p.add_argument("--database", default=None, help="db: SQLite file (relative to the workspace) or postgresql:// DSN")
    p.add_argument("--search-url", default=None, help="web: base URL of a SearXNG instance for web.search")
    p.add_argument("--root", action="append", default=[], type=Path, help="fs/pdf: an extra read-only folder")
    p.add_argument("--hide", action="append", default=[], type=Path,
                   help="a folder no tool may reach, even inside the workspace (Naestro's home)")
    return p


def serve(build: Callable[[ServerOptions], FastMCP], *, prog: str, description: str | None,
          argv: list[str] | None) -> None:
    """Standalone entry point shared by the servers (``python -m mcp_servers.NAME``)."""
    args = parser(prog, description).parse_args(argv)
    args.workspace.mkdir(parents=True, exist_ok=True)
    options = ServerOptions(workspace=args.workspace, allow_domains=tuple(args.allow_domain), database=args.database,
                            search_url=args.search_url, roots=tuple(args.root), hidden=tuple(args.hide))
    serve_server(build(options), http_port=args.http)
