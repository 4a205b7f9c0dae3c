"""Where the sandbox shows the workspace, and the paths an agent copies from there.

``exec.run`` mounts the workspace at ``/tmp/workspace``, so what runs there prints that path (pytest's
``rootdir: /tmp/workspace``, tracebacks, ``pwd``). Agents copy it into ``fs.*`` calls, which the gate then denied
as outside the workspace: several wasted steps per attempt in the issue-22 golden slice, and a denial that
stopped a re-plan. The fs servers and the gate's path facts read ``/tmp/workspace/x`` as the workspace's ``x``
(one place, here); everything else about a path is confined as before (``/tmp/workspace/../etc`` is ``../etc``).
"""

from __future__ import annotations

__all__ = ["SANDBOX_WORKSPACE", "unaliased"]

SANDBOX_WORKSPACE = "/tmp/workspace"  # inside the sandbox's private /tmp (the root is read-only)


def unaliased(path: str) -> str:
    """``path`` with the sandbox's workspace prefix made workspace-relative; any other path unchanged."""
    if path.rstrip("/") == SANDBOX_WORKSPACE:
        return "."
    if path.startswith(SANDBOX_WORKSPACE + "/"):
        return path[len(SANDBOX_WORKSPACE) + 1:] or "."
    return path
