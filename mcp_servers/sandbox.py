"""The bubblewrap sandbox behind ``exec.run``: namespaces, resource limits, bounded output.

Layers, outermost first:

* a cgroup (v1 ``pids`` hierarchy, or v2 with the ``pids`` controller) caps the number of processes, so a fork
  bomb cannot take the host's PIDs. RLIMIT_NPROC is the fallback, but the kernel does not apply it to root,
  so the result says which one was in force (``pids_limit_by``);
* ``bwrap``: read-only ``/`` with the host's home folders hidden, all capabilities dropped, the workspace
  bound read-write at /tmp/workspace, private /tmp, /dev and /proc,
  no network (``--unshare-net``), own PID namespace, killed with its parent;
* ``prlimit`` inside: CPU seconds (SIGXCPU at the soft limit), address space, file size, no core files;
* the caller: a wall-clock timeout and an output budget; past either the whole process tree is killed.

There is no unsandboxed fallback: without bwrap or prlimit, ``SandboxUnavailable`` says how to install them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Completed", "Limits", "SandboxUnavailable", "run_sandboxed", "sandbox_argv"]

SANDBOX_WORKSPACE = "/tmp/workspace"  # inside the sandbox's private /tmp (the root is read-only)
CLIP_CHARS = 20_000  # per stream, in the returned text; the rest is counted, not returned
SIGXCPU_EXIT = 128 + signal.SIGXCPU
SIGXFSZ_EXIT = 128 + signal.SIGXFSZ


_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


def missing_module(stderr: str) -> str | None:
    """The top-level module a Python traceback says is not installed (``pandas`` from ``pandas.io``), if any."""
    found = _MISSING_MODULE.search(stderr)
    return found.group(1).split(".")[0] if found else None


class SandboxUnavailable(Exception):
    """bubblewrap or prlimit is missing; the message says how to install it."""


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    wall_s: float = Field(default=60.0, gt=0, le=600, description="wall-clock seconds before the tree is killed")
    cpu_s: int = Field(default=60, ge=1, le=600, description="CPU seconds (SIGXCPU, exit code 152)")
    memory_mb: int = Field(default=1024, ge=16, le=16384, description="address space per process (RLIMIT_AS)")
    max_output_bytes: int = Field(default=1_000_000, ge=1024, le=50_000_000,
                                  description="stdout+stderr bytes before the tree is killed")
    max_pids: int = Field(default=128, ge=4, le=4096, description="processes at once (cgroup pids.max)")
    max_file_mb: int = Field(default=256, ge=1, le=16384, description="largest file a process may write")


KillReason = Literal["wall_time", "cpu_time", "file_size", "output_limit"]


class Completed(BaseModel):
    exit_code: int = Field(description="the command's exit code; 128+N when killed by signal N; 124 on timeout")
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    killed: KillReason | None = Field(default=None, description="which limit stopped the command, if any")
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool = Field(description="stdout or stderr was longer than the returned text")
    pids_limit_by: Literal["cgroup", "rlimit"]
    hint: str | None = Field(default=None, description="what to do about a failure the sandbox explains")


def _which(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SandboxUnavailable(f"{tool} is not installed, so commands cannot be sandboxed (there is no "
                                 f"unsandboxed fallback); install it with `apt-get install {install}` "
                                 f"(scripts/setup.sh does)")
    return path


def _path() -> str:
    """Naestro's own interpreter first, so `python3 -m pytest` in a command finds the installed tools."""
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")])


def _hide_homes() -> list[str]:
    """Empty tmpfs over the host's home folders (keys, tokens, shell history), then the Python installation
    back read-only: the interpreter may live under a home (pyenv) and commands need it."""
    hidden = sorted({"/root", "/home", str(Path.home())})
    argv = [arg for home in hidden if Path(home).is_dir() for arg in ("--tmpfs", home)]
    for prefix in sorted({sys.base_prefix, sys.prefix}):
        if any(prefix == h or prefix.startswith(h + "/") for h in hidden):
            argv += ["--ro-bind", prefix, prefix]
    return argv


def _python_under_tmp() -> list[str]:
    """The Python installation back read-only when it lives under /tmp (e.g. a CI checkout's .venv): the
    sandbox's private /tmp would otherwise hide it and `python3 -m pytest` would find the system Python."""
    argv: list[str] = []
    for prefix in sorted({sys.base_prefix, sys.prefix}):
        if prefix.startswith("/tmp/"):
            argv += ["--ro-bind", prefix, prefix]
    return argv


def sandbox_argv(workspace: Path, command: list[str] | str, limits: Limits | None = None, *,
                 cgroup: Path | None = None) -> list[str]:
    """The full argv for one sandboxed command (without a cgroup only RLIMIT_NPROC caps processes)."""
    limits = limits or Limits()
    bwrap = _which("bwrap", "bubblewrap")
    prlimit = _which("prlimit", "util-linux")
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    # The workspace appears at a neutral /tmp/workspace: tools that search parent folders for config (pytest,
    # git, ruff) must not find the host project the run directory happens to live in.
    ws = str(workspace.resolve())
    mb = 1024 * 1024
    rlimits = [prlimit, f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}", f"--as={limits.memory_mb * mb}",
               f"--fsize={limits.max_file_mb * mb}", "--core=0", f"--nproc={limits.max_pids}", "--"]
    inner = [bwrap, "--ro-bind", "/", "/", *_hide_homes(), "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
             *_python_under_tmp(), "--bind", ws, SANDBOX_WORKSPACE, "--chdir", SANDBOX_WORKSPACE,
             "--unshare-net", "--unshare-pid",
             "--unshare-ipc", "--unshare-uts", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
             "--setenv", "HOME", SANDBOX_WORKSPACE, "--setenv", "PATH", _path(),
             "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--", *rlimits, *argv]
    if cgroup is None:
        return inner
    # Join the cgroup before exec'ing bwrap, so every process of the sandbox is counted from the start.
    return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *inner]


def _pids_root() -> Path | None:
    """The cgroup v1 ``pids`` hierarchy, or the v2 root when it delegates the ``pids`` controller."""
    v1, v2 = Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")
    if (v1 / "cgroup.procs").exists():
        return v1
    control = v2 / "cgroup.subtree_control"
    if control.exists() and "pids" in control.read_text().split():
        return v2
    return None


def _make_cgroup(max_pids: int) -> Path | None:
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


async def _kill_tree(proc: asyncio.subprocess.Process, cgroup: Path | None) -> None:
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


async def _remove_cgroup(cgroup: Path | None) -> None:
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


async def run_sandboxed(workspace: Path, command: list[str] | str, limits: Limits) -> Completed:
    """Async so that one server runs many commands at once (parallel tasks share this server)."""
    cgroup = _make_cgroup(limits.max_pids)
    proc: asyncio.subprocess.Process | None = None
    try:
        argv = sandbox_argv(workspace, command, limits, cgroup=cgroup)
        start = time.monotonic()
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE,
                                                    stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        budget = _OutputBudget(limits.max_output_bytes)
        killed, code = await _supervise(proc, budget, limits, cgroup)
    except BaseException:
        # Cancelled (notifications/cancelled, closed session) or failed: the tree must die. Under anyio every
        # further await in a cancelled scope is cancelled too, so kill now and reap in a task of its own.
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        _in_background(_remove_cgroup(cgroup))
        raise
    await _remove_cgroup(cgroup)
    if killed == "wall_time":
        code = 124
    elif killed is None and code == SIGXCPU_EXIT:
        killed = "cpu_time"
    elif killed is None and code == SIGXFSZ_EXIT:
        killed = "file_size"
    elif code < 0:
        code = 128 - code
    out, err = budget.text("stdout"), budget.text("stderr")
    return Completed(exit_code=code, stdout=out, stderr=err, duration_s=round(time.monotonic() - start, 3),
                     timed_out=killed == "wall_time", killed=killed, stdout_bytes=budget.seen["stdout"],
                     stderr_bytes=budget.seen["stderr"], truncated=budget.truncated,
                     pids_limit_by="cgroup" if cgroup else "rlimit")


async def _supervise(proc: asyncio.subprocess.Process, budget: _OutputBudget, limits: Limits,
                     cgroup: Path | None) -> tuple[KillReason | None, int]:
    """Read output within the budget until exit, the wall-clock limit or the output limit."""
    assert proc.stdout is not None and proc.stderr is not None
    readers = asyncio.gather(budget.read(proc.stdout, "stdout"), budget.read(proc.stderr, "stderr"))

    async def drained() -> None:
        await readers

    killed: KillReason | None = None
    exceeded, finished = asyncio.ensure_future(budget.exceeded.wait()), asyncio.ensure_future(drained())
    try:
        async with asyncio.timeout(limits.wall_s):
            await asyncio.wait([exceeded, finished], return_when=asyncio.FIRST_COMPLETED)
            if budget.exceeded.is_set():
                killed = "output_limit"
            else:
                await proc.wait()
    except TimeoutError:
        killed = "wall_time"
    finally:
        exceeded.cancel()
    if killed is not None:
        await _kill_tree(proc, cgroup)
    await asyncio.gather(readers, return_exceptions=True)
    return killed, await proc.wait()


_background: set[asyncio.Task[None]] = set()  # strong references until the reaping tasks finish


def _in_background(job: Coroutine[None, None, None]) -> None:
    task = asyncio.get_running_loop().create_task(job)
    _background.add(task)
    task.add_done_callback(_background.discard)


class _OutputBudget:
    """Keeps the head of each stream and counts the rest; sets ``exceeded`` past the byte budget."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.seen = {"stdout": 0, "stderr": 0}
        self.exceeded = asyncio.Event()

    async def read(self, stream: asyncio.StreamReader, name: str) -> None:
        while chunk := await stream.read(65536):
            self.seen[name] += len(chunk)
            room = CLIP_CHARS * 4 - len(self.kept[name])
            if room > 0:
                self.kept[name] += chunk[:room]
            if sum(self.seen.values()) > self.limit:
                self.exceeded.set()
                return

    @property
    def truncated(self) -> bool:
        return any(len(self.text(n, clip=False)) > CLIP_CHARS or self.seen[n] > len(self.kept[n])
                   for n in self.kept)

    def text(self, name: str, *, clip: bool = True) -> str:
        text = self.kept[name].decode("utf-8", errors="replace")
        if not clip or (len(text) <= CLIP_CHARS and self.seen[name] == len(self.kept[name])):
            return text
        return text[:CLIP_CHARS] + f"\n… [{self.seen[name]:,} bytes in all; output cut]"
