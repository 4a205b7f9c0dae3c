"""A ``pids`` cgroup per sandboxed command: caps its processes (a fork bomb stops at ``max_pids``) and lets the
server kill every member of the tree on timeout or exit, including processes that left bwrap's process group.

Without a delegated ``pids`` controller (no cgroup v1 ``pids`` hierarchy, v2 without ``pids`` in
``subtree_control``) there is no group: bwrap's ``--die-with-parent`` and its PID namespace take the tree down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from pathlib import Path

__all__ = ["kill_tree", "make_cgroup", "remove_cgroup"]


def _pids_root() -> Path | None:
    """The cgroup v1 ``pids`` hierarchy, or the v2 root when it delegates the ``pids`` controller."""
    v1, v2 = Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")
    if (v1 / "cgroup.procs").exists():
        return v1
    control = v2 / "cgroup.subtree_control"
    if control.exists() and "pids" in control.read_text().split():
        return v2
    return None


def make_cgroup(max_pids: int) -> Path | None:
    root = _pids_root()
    if root is None:
        return None
    group = root / f"naestro-exec-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
        (group / "pids.max").write_text(str(max_pids))
    except OSError:
        with contextlib.suppress(OSError):
            group.rmdir()
        return None
    return group


async def kill_tree(proc: asyncio.subprocess.Process, cgroup: Path | None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is None:
        return  # bwrap's --die-with-parent and the PID namespace take the rest down
    await _kill_members(cgroup)


async def _kill_members(cgroup: Path) -> None:
    for _ in range(50):
        try:
            pids = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.02)


async def remove_cgroup(cgroup: Path | None) -> None:
    """Kill whatever is left in the group (strays of a fork bomb), then remove it."""
    if cgroup is None:
        return
    await _kill_members(cgroup)
    for _ in range(250):  # rmdir fails with EBUSY until the last killed process is reaped
        try:
            cgroup.rmdir()
            return
        except OSError:
            await asyncio.sleep(0.02)
