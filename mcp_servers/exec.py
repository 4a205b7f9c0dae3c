"""MCP server ``exec``: run a shell command in the workspace, inside a bubblewrap sandbox, with a timeout.

The sandbox has no network, a read-only view of the system, the workspace as the only writable folder
(plus a private /tmp) and its own PID namespace. Without bubblewrap the tool refuses to run: there is no
unsandboxed fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel

from naestro.mcp_servers.workspace import serve

MAX_OUTPUT = 20_000
SANDBOX_WORKSPACE = "/tmp/workspace"  # inside the sandbox's private /tmp (the root is read-only)


class Completed(BaseModel):
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool


def sandbox_argv(workspace: Path, command: str) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise ToolError("bubblewrap (bwrap) is not installed, so commands cannot be sandboxed; "
                        "install it with `apt-get install bubblewrap` (scripts/setup.sh does)")
    # The workspace appears at a neutral /tmp/workspace: tools that search parent folders for config (pytest,
    # git, ruff) must not find the host project the run directory happens to live in.
    ws = str(workspace.resolve())
    return [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--bind", ws, SANDBOX_WORKSPACE, "--chdir", SANDBOX_WORKSPACE, "--unshare-net", "--unshare-pid",
            "--die-with-parent", "--new-session", "--setenv", "HOME", SANDBOX_WORKSPACE, "--setenv", "PATH", _path(),
            "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "/bin/sh", "-c", command]


def _path() -> str:
    """Naestro's own interpreter first, so `python3 -m pytest` in a command finds the installed tools."""
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")])


def _clip(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + f"\n… [{len(text) - MAX_OUTPUT} chars cut]"


async def run_sandboxed(workspace: Path, command: str, timeout_s: float) -> Completed:
    """Async so that one server runs many commands at once (parallel tasks share this server)."""
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*sandbox_argv(workspace, command), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
                                                start_new_session=True)
    timed_out = False
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    except TimeoutError:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = await proc.communicate()
    code = 124 if timed_out else (proc.returncode if proc.returncode is not None else -1)
    return Completed(exit_code=code, stdout=_clip(out), stderr=_clip(err),
                     duration_s=round(time.monotonic() - start, 3), timed_out=timed_out)


def build(workspace: Path) -> FastMCP:
    mcp = FastMCP("exec", log_level="WARNING",
                  instructions="Runs shell commands in the workspace (mounted at /tmp/workspace), sandboxed, "
                               "no network.")

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False))
    async def run(command: str, timeout_s: float = 60.0) -> Completed:
        """Run a /bin/sh command in the workspace folder; returns exit code, stdout, stderr and duration."""
        if not command.strip():
            raise ToolError("command is empty")
        if not 0 < timeout_s <= 600:
            raise ToolError("timeout_s must be in (0, 600]")
        return await run_sandboxed(workspace, command, timeout_s)

    return mcp


def main(argv: list[str] | None = None) -> None:
    serve(build, prog="naestro-mcp-exec", description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
