"""MCP server ``exec``: run a command in the workspace inside a bubblewrap sandbox, with resource limits.

The sandbox (``mcp_servers.sandbox``) has no network, a read-only view of the system, the workspace as
the only writable folder (plus a private /tmp), its own PID namespace, an unprivileged user, an environment of
its own, and CPU / wall-time / memory / process / output limits. NAESTRO_HOME (the audit signing key, other
runs) is hidden from it. Without bubblewrap the tool refuses to run: there is no unsandboxed fallback.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from mcp_servers.sandbox import (
    Completed,
    Limits,
    SandboxUnavailable,
    missing_module,
    run_sandboxed,
    sandbox_argv,
)
from mcp_servers.workspace import ServerOptions, new_server, serve
from naestro.settings import Settings

__all__ = ["Completed", "build", "main", "sandbox_argv"]


def _homes_to_hide(settings: Settings, workspace: Path) -> tuple[Path, ...]:
    """The data folders to hide: the configured NAESTRO_HOME, and the one a run's workspace lives in
    (HOME/runs/RUN/workspace, see naestro/runs.py): the tool bus starts this server without NAESTRO_HOME in
    its environment, so a home set only in the runner's environment is known by the workspace's place."""
    homes = [settings.home]
    ws = workspace.resolve()
    if ws.name == "workspace" and ws.parent.parent.name == "runs":
        homes.append(ws.parents[2])
    return tuple(homes)


def build(options: ServerOptions, *, settings: Settings | None = None) -> FastMCP:
    """``settings``: where NAESTRO_HOME is (default: from the environment, as the CLI resolves it)."""
    workspace = options.workspace
    hide = (*_homes_to_hide(settings or Settings(), workspace), *options.hidden)
    mcp = new_server("exec", instructions="Runs commands in the workspace (mounted at /tmp/workspace), sandboxed: "
                                          "no network, read-only system, CPU/memory/time/output limits.")

    @mcp.tool(annotations=ToolAnnotations(title="Run sandboxed command", readOnlyHint=False, destructiveHint=True,
                                          idempotentHint=False, openWorldHint=False))
    async def run(command: Annotated[list[str] | str, Field(description=(
                      'an argv list (["python3", "t.py"]) run directly, or a string run by /bin/sh -c'))],
                  timeout_s: Annotated[float, Field(description="wall-clock limit in seconds")] = 60.0,
                  cpu_s: Annotated[int | None, Field(description="CPU-time limit in seconds")] = None,
                  memory_mb: Annotated[int | None, Field(description="address-space limit per process")] = None,
                  ) -> Completed:
        """Run a command in the workspace folder; returns exit code, stdout, stderr, duration and which limit
        (if any) stopped it."""
        if not (command.strip() if isinstance(command, str) else command and command[0]):
            raise ToolError("command is empty; give an argv list or a shell string")
        try:
            # Default CPU budget: every core busy for the whole wall time, so only an explicit cpu_s bites.
            cpu = cpu_s if cpu_s is not None else min(600, math.ceil(timeout_s) * (os.cpu_count() or 1))
            limits = Limits(wall_s=timeout_s, cpu_s=cpu,
                            **({"memory_mb": memory_mb} if memory_mb is not None else {}))
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"invalid limits ({problems}); timeout_s must be in (0, 600], cpu_s in [1, 600], "
                            f"memory_mb in [16, 16384]") from exc
        try:
            done = await run_sandboxed(workspace, command, limits, hide=hide)
        except SandboxUnavailable as exc:
            raise ToolError(str(exc)) from exc
        missing = missing_module(done.stderr) if done.exit_code else None
        if missing and not (workspace / f"{missing}.py").exists():
            # Small models reach for pandas whatever the prompt says; the fix is not in the traceback.
            return done.model_copy(update={"hint": f"{missing!r} is not installed in this sandbox (Python's "
                                                   "standard library only): use csv, json, statistics, re instead"})
        return done

    return mcp


def main(argv: list[str] | None = None) -> None:
    serve(build, prog="naestro-mcp-exec", description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
