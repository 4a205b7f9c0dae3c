"""Confinement of paths to a workspace root, shared by the servers that touch files."""

from __future__ import annotations

from pathlib import Path

from mcp.server.fastmcp.exceptions import ToolError


def confine(root: Path, path: str) -> Path:
    """Resolve ``path`` (relative to root; ``..`` and symlinks resolved) and refuse anything outside root."""
    root = root.resolve()
    candidate = (root / path).resolve()
    if candidate != root and root not in candidate.parents:
        raise ToolError(f"path {path!r} resolves outside the workspace ({candidate}); use a path relative to "
                        f"the workspace root")
    return candidate
