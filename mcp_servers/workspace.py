"""Confinement of paths to a workspace root, shared by the servers that touch files."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError


def confine(root: Path, path: str) -> Path:
    """Resolve ``path`` (relative to root; ``..`` and symlinks resolved) and refuse anything outside root."""
    root = root.resolve()
    candidate = (root / path).resolve()
    if candidate != root and root not in candidate.parents:
        raise ToolError(f"path {path!r} resolves outside the workspace ({candidate}); use a path relative to "
                        f"the workspace root")
    return candidate


def serve(build: Callable[[Path], FastMCP], *, prog: str, description: str | None, argv: list[str] | None) -> None:
    """Standalone entry point shared by the servers: ``--workspace DIR``, stdio transport."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--workspace", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    args.workspace.mkdir(parents=True, exist_ok=True)
    build(args.workspace).run()
