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

from mcp_servers.workspace import MAX_PATH_PARTS, ServerOptions, confine, confine_read, new_server, readable, serve

MAX_READ_BYTES = 200_000
MAX_SEARCH_FILE_BYTES = 2_000_000  # larger files are skipped by search (logs, data dumps)


class Written(BaseModel):
    path: str
    bytes: int
    unchanged: bool = Field(default=False, description="the file already held exactly this content")


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


# A symlink (120000) or a submodule link (160000) in a patch: git apply would create a link that later reads
# and writes follow; fs.patch writes regular files only.
_LINK_MODE = re.compile(r"^(?:new file mode|deleted file mode|old mode|new mode|index \S+) (1[26]0000)\s*$", re.M)


async def apply_patch(workspace: Path, diff: str, *, hidden: tuple[Path, ...] = ()) -> Patched:
    """Check, then apply, a unified diff with ``git apply`` (all-or-nothing: a failed hunk changes nothing).

    Every name git may take from the diff (---/+++, ``diff --git``, rename/copy headers: ``diff_targets``, the
    same list the gate resolves) must resolve inside the workspace: ``copy from /etc/x`` would otherwise copy
    a file in from anywhere and ``rename from`` would delete it there."""
    from policies.facts import diff_strip, diff_targets  # here: the policy models cost the server's start ~20 ms

    paths = diff_targets(diff)
    if not paths:
        raise ToolError("no ---/+++ file headers found; give a unified diff (e.g. the output of `diff -u` or "
                        "`git diff`) with paths relative to the workspace")
    link = _LINK_MODE.search(diff)
    if link is not None:
        kind = "symlink" if link.group(1) == "120000" else "submodule link"
        raise ToolError(f"diff has a {kind} (mode {link.group(1)}); fs.patch writes regular files only: "
                        f"give the file's content as a regular file (mode 100644) or use fs.write")
    for p in paths:
        confine(workspace, p, arg="diff", hidden=hidden)
    git = shutil.which("git")
    if git is None:
        raise ToolError("git is not installed; fs.patch applies diffs with `git apply` (apt-get install git)")
    root = workspace.resolve()
    # A ceiling at the workspace's parent stops git from applying relative to an enclosing repository.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(root.parent)}
    prefix = f"-p{diff_strip(diff)}"
    for check in (True, False):
        argv = [git, "apply", prefix, "--recount", "--whitespace=nowarn", *(["--check"] if check else []), "-"]
        proc = await asyncio.create_subprocess_exec(*argv, cwd=root, env=env, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(diff.encode())
        if proc.returncode != 0:
            raise ToolError(f"patch does not apply, nothing was changed: {err.decode(errors='replace').strip()}; "
                            f"fs.read the file and make the diff's context lines match it exactly")
    return Patched(files=paths)


def _safe_glob(glob: str) -> str:
    """``rglob`` follows ``..`` and absolute patterns wherever they lead: refuse them before expanding."""
    if "\0" in glob:
        raise ToolError(f"glob {glob!r} contains a NUL byte; give a file name pattern such as \"*.py\"")
    if len(Path(glob).parts) > MAX_PATH_PARTS:  # pathlib's glob recurses per part: RecursionError past ~1,000
        raise ToolError(f"glob is {len(Path(glob).parts)} folders deep; at most {MAX_PATH_PARTS} are accepted")
    if Path(glob).is_absolute() or ".." in Path(glob).parts:
        raise ToolError(f"glob {glob!r} reaches outside the search folder; give a pattern relative to `path` "
                        f"without '..' (e.g. \"*.py\" or \"src/**/*.py\") and set `path` to the folder to search")
    return glob


def build(options: ServerOptions) -> FastMCP:
    workspace = options.workspace
    mcp = new_server("fs", instructions=f"Files inside the workspace {workspace}; paths are relative to it."
                     + (f" Readable by absolute path: {', '.join(map(str, options.roots))}." if options.roots else ""))

    def shown(target: Path) -> str:
        """Paths are reported relative to the workspace, or absolute under a read-only root."""
        ws = workspace.resolve()
        return str(target.relative_to(ws)) if target == ws or ws in target.parents else str(target)

    def reachable_file(found: Path) -> Path | None:
        """What a walk found, resolved, if it is a file a read may reach: a symlink in the workspace that
        points elsewhere is skipped, not followed."""
        real = Path(os.path.realpath(found))  # not .resolve(): a symlink loop raises there (Python < 3.13)
        return real if real.is_file() and readable(options, real) else None

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
        target = confine(workspace, path, hidden=options.hidden)
        if target.is_dir():
            raise ToolError(f"{path!r} is a directory; give a file path")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a parent is a file (notes.txt/x), or the file system refuses
            raise ToolError(f"cannot create the folder of {path!r}: {exc.strerror}; a part of it is a file") \
                from exc
        data = content.encode()
        try:
            unchanged = target.is_file() and not target.is_symlink() and target.stat().st_size == len(data) \
                and target.read_bytes() == data
        except OSError:
            unchanged = False
        # The path was resolved above; O_NOFOLLOW keeps a symlink put there since (by exec.run, say) from
        # redirecting the write out of the workspace.
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            raise ToolError(f"cannot write {path!r}: {exc.strerror}; give a regular file path in the workspace") \
                from exc
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return Written(path=str(target.relative_to(workspace.resolve())), bytes=len(data), unchanged=unchanged)

    @mcp.tool(name="list", annotations=ToolAnnotations(title="List files", readOnlyHint=True, openWorldHint=False))
    async def list_(path: str = ".") -> Listing:
        """List a workspace folder recursively (files only, relative paths, at most 500); a file lists itself."""
        target = confine_read(options, path)
        if target.is_file():
            # As `ls FILE` does. Agents list the file they just wrote to see it is there (seen in every issue-22
            # slice: "'stats.py' is not a folder", then the same call again).
            return Listing(path=path, entries=[shown(target)])
        if not target.is_dir():
            raise ToolError(f"{path!r} does not exist; call fs.list on a folder (\".\" for the workspace)")
        files = sorted(shown(p) for p in target.rglob("*") if reachable_file(p))
        return Listing(path=path, entries=files[:500])

    @mcp.tool(annotations=ToolAnnotations(title="Search files", readOnlyHint=True, openWorldHint=False))
    async def search(pattern: str, path: str = ".", regex: bool = False, glob: str = "*",
                     max_matches: Annotated[int, Field(ge=1, le=1000)] = 100) -> SearchResult:
        """Find lines containing `pattern` (plain text, or a Python regex with regex=true) in workspace files
        under `path` whose names match `glob` (e.g. "*.py")."""
        target = confine_read(options, path)
        glob = _safe_glob(glob)
        try:
            rx = re.compile(pattern if regex else re.escape(pattern))
        except re.error as exc:
            raise ToolError(f"invalid regex {pattern!r}: {exc}; escape special characters or pass regex=false") \
                from exc
        try:  # a name too long for the OS (the fuzz test found it) is bad input, not a crash
            if not target.exists():
                raise ToolError(f"{path!r} does not exist; call fs.list to see what exists")
            found = [target] if target.is_file() else sorted(target.rglob(glob))
        except OSError as exc:
            raise ToolError(f"cannot search {path!r} for files matching {glob!r}: {exc.strerror or exc}; "
                            "use a shorter path or glob") from exc
        files = [(f, real) for f in found if (real := reachable_file(f)) is not None]
        matches: list[Match] = []
        searched = 0
        for f, real in files:
            if real.stat().st_size > MAX_SEARCH_FILE_BYTES or ".git" in f.relative_to(target).parts:
                continue
            searched += 1
            for no, line in enumerate(real.read_text(errors="replace").splitlines(), start=1):
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
        return await apply_patch(workspace, diff, hidden=options.hidden)

    return mcp


def main(argv: list[str] | None = None) -> None:
    serve(build, prog="naestro-mcp-fs", description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
