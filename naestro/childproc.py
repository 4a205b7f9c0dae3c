"""Child processes Naestro starts (model servers, pooled MCP servers, the memory's FalkorDB): ending them and
telling whether one still runs, one way for all of them."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

__all__ = ["alive", "terminate"]


def terminate(proc: subprocess.Popen[bytes], *, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; reaped and its pipes closed, so no zombie or open fd is left."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie runs nothing: this process's own is reaped, any other counts as gone (an
    orphan adopted by an init that does not reap stays a zombie, and signal 0 still reaches it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False  # no /proc here: signal 0 reached it, so it counts as running
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")  # the state follows the (command name), which may hold ")"
