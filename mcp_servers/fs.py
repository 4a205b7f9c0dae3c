"""MCP server ``fs``: read, write, list, search and patch files confined to one workspace directory."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Annotated

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from naestro.mcp_servers.workspace import ServerOptions, confine, confine_read, new_server, serve

MAX_READ_BYTES = 200_000
MAX_SEARCH_FILE_BYTES = 2_000_000  # larger files are skipped by search (logs, data dumps)


class Written(BaseModel):
    path: str
    bytes: int


class Listing(BaseModel):
    path: str
    entries: list[str]


class Match(BaseModel):
    path: str
    line: int = Field(description="1-based line number")
    text: str


class SearchResult(BaseModel):
    pattern: str
    matches: list[Match]
    files_searched: int
    truncated: bool = Field(description="true when max_matches was reached; narrow the path or pattern")


class Patched(BaseModel):
    files: list[str] = Field(description="workspace-relative paths the patch touched")


_DIFF_PATH = re.compile(r"^(?:---|\+\+\+) (?:[ab]/)?(.+?)(?:\t.*)?$")


def diff_paths(diff: str) -> list[str]:
    """Paths named in a unified diff's ---/+++ headers (without a/ b/ prefixes; /dev/null skipped)."""
    paths = []
    for line in diff.splitlines():
        m = _DIFF_PATH.match(line)
        if m and m.group(1) != "/dev/null" and m.group(1) not in paths:
            paths.append(m.group(1))
    return paths


async def apply_patch(workspace: Path, diff: str) -> Patched:
    """Check, then apply, a unified diff with ``git apply`` (all-or-nothing: a failed hunk changes nothing)."""
    paths = diff_paths(diff)
    if not paths:
        raise ToolError("no ---/+++ file headers found; give a unified diff (e.g. the output of `diff -u` or "
                        "`git diff`) with paths relative to the workspace")
    for p in paths:
        confine(workspace, p)
    git = shutil.which("git")
    if git is None:
        raise ToolError("git is not installed; fs.patch applies diffs with `git apply` (apt-get install git)")
    root = workspace.resolve()
    # A ceiling at the workspace's parent stops git from applying relative to an enclosing repository.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(root.parent)}
    prefix = ["-p1"] if any(line.startswith(("--- a/", "+++ b/")) for line in diff.splitlines()) else ["-p0"]
    for check in (True, False):
        argv = [git, "apply", *prefix, "--recount", "--whitespace=nowarn", *(["--check"] if check else []), "-"]
        proc = await asyncio.create_subprocess_exec(*argv, cwd=root, env=env, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(diff.encode())
        if proc.returncode != 0:
            raise ToolError(f"patch does not apply, nothing was changed: {err.decode(errors='replace').strip()}; "
                            f"fs.read the file and make the diff's context lines match it exactly")
    return Patched(files=paths)


def build(options: ServerOptions) -> FastMCP:
    workspace = options.workspace
    mcp = new_server("fs", instructions=f"Files inside the workspace {workspace}; paths are relative to it."
                     + (f" Readable by absolute path: {', '.join(map(str, options.roots))}." if options.roots else ""))

    def shown(target: Path) -> str:
        """Paths are reported relative to the workspace, or absolute under a read-only root."""
        ws = workspace.resolve()
        return str(target.relative_to(ws)) if target == ws or ws in target.parents else str(target)

    @mcp.tool(annotations=ToolAnnotations(title="Read file", readOnlyHint=True, openWorldHint=False))
    async def read(path: str) -> str:
        """Read a UTF-8 text file from the workspace (at most 200 kB)."""
        target = confine_read(options, path)
        if not target.is_file():
            raise ToolError(f"{path!r} is not a file; call fs.list to see what exists")
        data = target.read_bytes()[:MAX_READ_BYTES]
        return data.decode("utf-8", errors="replace")

    @mcp.tool(annotations=ToolAnnotations(title="Write file", readOnlyHint=False, destructiveHint=True,
                                          idempotentHint=True, openWorldHint=False))
    async def write(path: str, content: str) -> Written:
        """Create or overwrite a text file in the workspace (parent folders are created)."""
        target = confine(workspace, path)
        if target.is_dir():
            raise ToolError(f"{path!r} is a directory; give a file path")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return Written(path=str(target.relative_to(workspace.resolve())), bytes=len(content.encode()))

    @mcp.tool(name="list", annotations=ToolAnnotations(title="List files", readOnlyHint=True, openWorldHint=False))
    async def list_(path: str = ".") -> Listing:
        """List a workspace folder recursively (files only, relative paths, at most 500)."""
        target = confine_read(options, path)
        if not target.is_dir():
            raise ToolError(f"{path!r} is not a folder")
        files = sorted(shown(p) for p in target.rglob("*") if p.is_file())
        return Listing(path=path, entries=files[:500])

    @mcp.tool(annotations=ToolAnnotations(title="Search files", readOnlyHint=True, openWorldHint=False))
    async def search(pattern: str, path: str = ".", regex: bool = False, glob: str = "*",
                     max_matches: Annotated[int, Field(ge=1, le=1000)] = 100) -> SearchResult:
        """Find lines containing `pattern` (plain text, or a Python regex with regex=true) in workspace files
        under `path` whose names match `glob` (e.g. "*.py")."""
        target = confine_read(options, path)
        if not target.exists():
            raise ToolError(f"{path!r} does not exist; call fs.list to see what exists")
        try:
            rx = re.compile(pattern if regex else re.escape(pattern))
        except re.error as exc:
            raise ToolError(f"invalid regex {pattern!r}: {exc}; escape special characters or pass regex=false") \
                from exc
        files = [target] if target.is_file() else sorted(p for p in target.rglob(glob) if p.is_file())
        matches: list[Match] = []
        searched = 0
        for f in files:
            if f.stat().st_size > MAX_SEARCH_FILE_BYTES or ".git" in f.relative_to(target).parts:
                continue
            searched += 1
            for no, line in enumerate(f.read_text(errors="replace").splitlines(), start=1):
                if rx.search(line):
                    matches.append(Match(path=shown(f), line=no, text=line[:500]))
                    if len(matches) >= max_matches:
                        return SearchResult(pattern=pattern, matches=matches, files_searched=searched, truncated=True)
        return SearchResult(pattern=pattern, matches=matches, files_searched=searched, truncated=False)

    @mcp.tool(annotations=ToolAnnotations(title="Apply unified diff", readOnlyHint=False, destructiveHint=True,
                                          idempotentHint=False, openWorldHint=False))
    async def patch(diff: str) -> Patched:
        """Apply a unified diff (`diff -u` / `git diff` format, paths relative to the workspace) to workspace
        files. All or nothing: if any hunk does not apply, no file changes."""
        return await apply_patch(workspace, diff)

    return mcp


def main(argv: list[str] | None = None) -> None:
    serve(build, prog="naestro-mcp-fs", description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
