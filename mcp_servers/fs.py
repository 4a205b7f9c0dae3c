"""MCP server ``fs``: read, write and list files confined to one workspace directory."""

from __future__ import annotations

from pathlib import Path

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel

from naestro.mcp_servers.workspace import confine, serve

MAX_READ_BYTES = 200_000


class Written(BaseModel):
    path: str
    bytes: int


class Listing(BaseModel):
    path: str
    entries: list[str]


def build(workspace: Path) -> FastMCP:
    mcp = FastMCP("fs", log_level="WARNING",
                  instructions=f"Files inside the workspace {workspace}; paths are relative to it.")

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def read(path: str) -> str:
        """Read a UTF-8 text file from the workspace."""
        target = confine(workspace, path)
        if not target.is_file():
            raise ToolError(f"{path!r} is not a file; call fs.list to see what exists")
        data = target.read_bytes()[:MAX_READ_BYTES]
        return data.decode("utf-8", errors="replace")

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True))
    def write(path: str, content: str) -> Written:
        """Create or overwrite a text file in the workspace (parent folders are created)."""
        target = confine(workspace, path)
        if target.is_dir():
            raise ToolError(f"{path!r} is a directory; give a file path")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return Written(path=str(target.relative_to(workspace.resolve())), bytes=len(content.encode()))

    @mcp.tool(name="list", annotations=ToolAnnotations(readOnlyHint=True))
    def list_(path: str = ".") -> Listing:
        """List a workspace folder recursively (files only, relative paths, at most 500)."""
        target = confine(workspace, path)
        if not target.is_dir():
            raise ToolError(f"{path!r} is not a folder")
        root = workspace.resolve()
        files = sorted(str(p.relative_to(root)) for p in target.rglob("*") if p.is_file())
        return Listing(path=path, entries=files[:500])

    return mcp


def main(argv: list[str] | None = None) -> None:
    serve(build, prog="naestro-mcp-fs", description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
