"""MCP server ``git``: status, diff, log, commit (and init) for the repository in the workspace.

git runs inside the same bubblewrap sandbox as ``exec.run``: a repository's own config can name programs
(hooks, filters, ``core.fsmonitor``, external diff drivers) and those must not run with the server's rights.
Hooks are switched off as well (``core.hooksPath=/dev/null``, ``--no-verify``).

The sandbox can read the host's filesystem, so git must only ever open the workspace's repository (issue 14):
a ``.git`` that is a gitfile (``gitdir: /elsewhere``), a symlink or holds links resolving outside the workspace
is refused before git runs, and git runs with a clean environment, ``GIT_DIR``/``GIT_WORK_TREE`` explicit
(``core.worktree`` in a repository's config cannot move the work tree) and no system or global config.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_servers.sandbox import Completed, Limits, SandboxUnavailable, run_sandboxed
from mcp_servers.sandbox_path import SANDBOX_WORKSPACE
from mcp_servers.workspace import ServerOptions, confine, new_server, serve

__all__ = ["build", "main"]

MAX_DIFF_CHARS = 20_000
AUTHOR = ("Naestro agent", "agent@naestro.invalid")


class StatusEntry(BaseModel):
    path: str
    index: str = Field(description="staged change: M modified, A added, D deleted, R renamed, ? untracked")
    worktree: str = Field(description="unstaged change, same letters")


class Status(BaseModel):
    branch: str
    clean: bool
    entries: list[StatusEntry]


class Diff(BaseModel):
    diff: str
    files: list[str]
    truncated: bool


class Commit(BaseModel):
    sha: str
    author: str
    date: str = Field(description="ISO 8601")
    subject: str


class Log(BaseModel):
    commits: list[Commit]


class Committed(BaseModel):
    sha: str
    subject: str
    files: list[str]


class Initialized(BaseModel):
    path: str
    branch: str


_GITFILE = re.compile(r"gitdir: (.+?)\s*$")
_GITFILE_MAX_BYTES = 4096
_OUTSIDE = ("git tools work only on a repository inside the workspace: remove the workspace's .git (exec.run "
            "`rm -rf .git`) and call git.init, or copy the repository into the workspace")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _first_line(path: Path) -> str:
    with path.open("rb") as f:
        return f.read(_GITFILE_MAX_BYTES).decode(errors="replace").partition("\n")[0]


def _repository_dir(workspace: Path) -> Path:
    """The workspace's git directory, resolved on the host: refused unless it, its common directory (a linked
    worktree's), its alternate object stores and every symlink in it stay inside the workspace.

    Refusals never quote the files they read: a gitfile pointing at ``/etc/shadow`` must not echo it."""
    try:
        return _checked_git_dir(workspace.resolve())
    except (OSError, RuntimeError) as exc:  # unreadable, or a symlink loop (RuntimeError before Python 3.13)
        raise ToolError(f"the workspace's .git cannot be read ({type(exc).__name__}); {_OUTSIDE}") from exc


def _checked_git_dir(ws: Path) -> Path:
    dotgit = ws / ".git"
    if not dotgit.exists() and not dotgit.is_symlink():
        return dotgit  # no repository yet: git says so (and git.init creates it here)
    real = dotgit.resolve()
    if not _inside(real, ws):
        raise ToolError(f"the workspace's .git is a link that resolves outside the workspace; {_OUTSIDE}")
    if real.is_file():
        found = _GITFILE.match(_first_line(real))
        if found is None:
            raise ToolError(f"the workspace's .git is a file but not a gitfile (`gitdir: <folder>`); {_OUTSIDE}")
        # git resolves a relative gitdir against the folder holding .git, not against a symlink's target
        real = (ws / found.group(1)).resolve()
        if not _inside(real, ws) or not real.is_dir():
            raise ToolError(f"the workspace's .git is a gitfile naming a git directory outside the workspace (or "
                            f"none); {_OUTSIDE}")
    common = real
    if (real / "commondir").is_file():
        common = (real / _first_line(real / "commondir").strip()).resolve()
    alternates = common / "objects" / "info" / "alternates"
    stores = alternates.read_text(errors="replace").splitlines() if alternates.is_file() else []
    elsewhere = [common, *((common / "objects" / s.strip()).resolve() for s in stores
                           if s.strip() and not s.startswith("#"))]
    for folder in {real, common}:
        for top, dirs, files in os.walk(folder):
            elsewhere += [(Path(top) / n).resolve() for n in (*dirs, *files) if (Path(top) / n).is_symlink()]
    if any(not _inside(p, ws) for p in elsewhere):
        raise ToolError(f"the workspace's git directory refers outside the workspace (commondir, alternates or "
                        f"a symlink); {_OUTSIDE}")
    return real


def _git_argv(workspace: Path, args: tuple[str, ...]) -> list[str]:
    """git inside the sandbox (the workspace at SANDBOX_WORKSPACE), with nothing inherited: no GIT_* variables
    from the server's environment, no system or global config, the repository named outright."""
    ws = workspace.resolve()
    git_dir = PurePosixPath(SANDBOX_WORKSPACE) / _repository_dir(workspace).relative_to(ws).as_posix()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": SANDBOX_WORKSPACE, "LC_ALL": "C",
           "GIT_DIR": str(git_dir), "GIT_WORK_TREE": SANDBOX_WORKSPACE,
           "GIT_CEILING_DIRECTORIES": str(PurePosixPath(SANDBOX_WORKSPACE).parent),
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0",
           # the paths checked by confine are the paths git uses: no `:(top)`-style pathspec magic
           "GIT_LITERAL_PATHSPECS": "1"}
    return ["env", "-i", *(f"{k}={v}" for k, v in env.items()),
            "git", "-c", f"safe.directory={SANDBOX_WORKSPACE}", "-c", "core.hooksPath=/dev/null",
            "-c", "core.fsmonitor=false", "-c", "color.ui=false", "-c", f"user.name={AUTHOR[0]}",
            "-c", f"user.email={AUTHOR[1]}", *args]


def build(options: ServerOptions) -> FastMCP:
    workspace = options.workspace
    mcp = new_server("git", instructions="git in the workspace repository: status, diff, log, commit, init.")

    async def git(*args: str, check: bool = True) -> Completed:
        if any("\0" in a for a in args):
            raise ToolError("an argument contains a NUL byte; give plain text without control characters")
        try:
            done = await run_sandboxed(workspace, _git_argv(workspace, args), Limits(wall_s=60, cpu_s=60),
                                       hide=options.hidden)
        except SandboxUnavailable as exc:
            raise ToolError(str(exc)) from exc
        if check and done.exit_code != 0:
            message = (done.stderr or done.stdout).strip()
            if "not a git repository" in message:
                raise ToolError("the workspace is not a git repository; call git.init first")
            raise ToolError(f"git {args[0]} failed (exit {done.exit_code}): {message}")
        return done

    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    @mcp.tool(annotations=ToolAnnotations(title="Init repository", readOnlyHint=False, destructiveHint=False,
                                          idempotentHint=True, openWorldHint=False))
    async def init(branch: str = "main") -> Initialized:
        """Create a git repository in the workspace (no-op if there is one)."""
        await git("init", "-q", "-b", branch)
        head = await git("symbolic-ref", "--short", "HEAD")
        return Initialized(path=".", branch=head.stdout.strip())

    @mcp.tool(annotations=ToolAnnotations(title="Status", **read_only.model_dump(exclude={"title"})))
    async def status() -> Status:
        """Branch and changed files (staged, unstaged, untracked)."""
        # Submodules are not entered: a submodule's own .git may point anywhere on the host.
        done = await git("status", "--porcelain=v1", "-b", "-z", "--untracked-files=all", "--ignore-submodules=all")
        records = done.stdout.split("\0")
        branch = records[0].removeprefix("## ").split("...")[0] if records and records[0].startswith("## ") else ""
        entries: list[StatusEntry] = []
        rest = records[1:]
        i = 0
        while i < len(rest):
            rec = rest[i]
            i += 1
            if len(rec) < 4:
                continue
            entries.append(StatusEntry(path=rec[3:], index=rec[0], worktree=rec[1]))
            if rec[0] in "RC":
                i += 1  # a rename's source path follows as its own record
        return Status(branch=branch.removeprefix("No commits yet on "), clean=not entries, entries=entries)

    @mcp.tool(annotations=ToolAnnotations(title="Diff", **read_only.model_dump(exclude={"title"})))
    async def diff(staged: bool = False, paths: list[str] | None = None,
                   against: Annotated[str | None, Field(description="a commit to compare with, e.g. HEAD~1")] = None,
                   ) -> Diff:
        """Unified diff of unstaged changes (or staged ones with staged=true, or against a commit)."""
        for p in paths or []:
            confine(workspace, p, arg="paths", hidden=options.hidden)
        if against is not None and (against.startswith("-") or not against.strip()):
            raise ToolError(f"invalid revision {against!r}; give a commit such as HEAD~1 or a sha")
        rev = [against] if against else []
        scope = ["--", *(paths or [])]
        text = (await git("diff", "--no-ext-diff", "--no-textconv", "--ignore-submodules=all",
                          *(["--cached"] if staged else []), *rev, *scope)).stdout
        names = (await git("diff", "--name-only", "--ignore-submodules=all", *(["--cached"] if staged else []),
                           *rev, *scope)).stdout
        return Diff(diff=text[:MAX_DIFF_CHARS], files=names.split(), truncated=len(text) > MAX_DIFF_CHARS)

    @mcp.tool(annotations=ToolAnnotations(title="Log", **read_only.model_dump(exclude={"title"})))
    async def log(max_count: Annotated[int, Field(ge=1, le=200)] = 20, path: str | None = None) -> Log:
        """Recent commits, newest first (optionally only those touching `path`)."""
        if path is not None:
            confine(workspace, path, arg="path", hidden=options.hidden)
        head = await git("rev-parse", "--verify", "-q", "HEAD", check=False)
        if head.exit_code != 0:
            return Log(commits=[])
        done = await git("log", f"--max-count={max_count}", "--format=%H%x1f%an <%ae>%x1f%aI%x1f%s%x1e",
                         *(["--", path] if path else []))
        commits = []
        for rec in done.stdout.split("\x1e"):
            fields = rec.strip().split("\x1f")
            if len(fields) == 4:
                commits.append(Commit(sha=fields[0], author=fields[1], date=fields[2], subject=fields[3]))
        return Log(commits=commits)

    @mcp.tool(annotations=ToolAnnotations(title="Commit", readOnlyHint=False, destructiveHint=False,
                                          idempotentHint=False, openWorldHint=False))
    async def commit(message: str, paths: list[str] | None = None, kind: Literal["all", "staged"] = "all",
                     ) -> Committed:
        """Commit changes: the given paths, or all changes (kind="all", the default), or only what is staged."""
        if not message.strip():
            raise ToolError("commit message is empty; say what changed and why")
        if "\0" in message:  # refused before `git add` stages anything
            raise ToolError("commit message contains a NUL byte; give plain text")
        for p in paths or []:
            confine(workspace, p, arg="paths", hidden=options.hidden)
        if paths:
            await git("add", "--", *paths)
        elif kind == "all":
            await git("add", "-A")
        staged = (await git("diff", "--cached", "--name-only")).stdout.split()
        if not staged:
            raise ToolError("nothing to commit; change files first (git.status shows what changed)")
        await git("commit", "-q", "--no-verify", "-m", message)
        sha = (await git("rev-parse", "HEAD")).stdout.strip()
        return Committed(sha=sha, subject=message.strip().splitlines()[0], files=staged)

    return mcp


def main(argv: list[str] | None = None) -> None:
    serve(build, prog="naestro-mcp-git", description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
