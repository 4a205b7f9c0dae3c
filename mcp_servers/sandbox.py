"""The bubblewrap sandbox behind ``exec.run``: namespaces, resource limits, bounded output.

Layers, outermost first:

* a cgroup (v1 ``pids`` hierarchy, or v2 with the ``pids`` controller) caps the number of processes, so a fork
  bomb cannot take the host's PIDs. Without one, RLIMIT_NPROC is the fallback: it counts every process of the
  sandbox's host user, and the kernel never applies it to root. The result says which was in force
  (``pids_limit_by``);
* an unprivileged host user (issue 14: as root, a bubblewrap user namespace alone still maps the command to
  host uid 0, which reads root's 0600 files through the owner bits). When Naestro runs as root, a helper gives
  the command uid/gid 65534 (nobody) and id-maps the workspace in a private mount namespace, so the workspace
  owner's files are the command's (and what it writes lands as the owner's) while everything else on the
  host is seen as "other": ``/etc/shadow`` and ``/root`` stay closed. A workspace on a filesystem that cannot
  be id-mapped (overlayfs) falls back to root without capabilities; run as a non-root user, the command runs
  as that user in a user namespace. The result says which (``runs_as``);
* ``bwrap``: read-only ``/`` with the host's home folders, NAESTRO_HOME (audit keys, other runs) and ``/run``
  (host sockets) hidden, all capabilities dropped, the workspace bound read-write at /tmp/workspace, private
  /tmp, /dev and /proc, no network (``--unshare-net``), own PID namespace, killed with its parent, and an
  environment built from an allowlist (an IDE client starts the server with its own secrets in the
  environment);
* ``prlimit`` inside: CPU seconds (SIGXCPU at the soft limit), address space, file size, no core files;
* the caller: a wall-clock timeout and an output budget; past either the whole process tree is killed.

There is no unsandboxed fallback: without bwrap, prlimit or setpriv, ``SandboxUnavailable`` says how to
install them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Collection, Coroutine
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_servers.idmap import IDMAP_HELPER
from mcp_servers.pids_cgroup import kill_tree, make_cgroup, remove_cgroup
from mcp_servers.sandbox_path import SANDBOX_WORKSPACE

__all__ = ["Completed", "Limits", "SandboxUnavailable", "run_sandboxed", "sandbox_argv"]

CLIP_CHARS = 20_000  # per stream, in the returned text; the rest is counted, not returned
SIGXCPU_EXIT = 128 + signal.SIGXCPU
SIGXFSZ_EXIT = 128 + signal.SIGXFSZ
SANDBOX_UID = SANDBOX_GID = 65534  # nobody / nogroup: owns nothing on a usual host
#: The whole environment a command sees (besides PATH): fixed values, so a run replays the same anywhere.
SANDBOX_ENV = {"HOME": SANDBOX_WORKSPACE, "LANG": "C.UTF-8", "TZ": "UTC", "TERM": "dumb",
               "PYTHONDONTWRITEBYTECODE": "1"}


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
RunsAs = Literal["nobody", "caller", "root"]


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
    pids_limit_by: Literal["cgroup", "rlimit", "none"] = Field(
        description="what capped the number of processes: a pids cgroup, RLIMIT_NPROC, or nothing (root without "
                    "a pids cgroup: the kernel does not apply RLIMIT_NPROC to root)")
    runs_as: RunsAs = Field(
        description="the host user that ran the command: nobody (Naestro runs as root; the workspace is id-mapped "
                    "to stay writable), caller (Naestro's own non-root user, in a user namespace), or root "
                    "without capabilities (Naestro runs as root and the workspace's filesystem cannot be "
                    "id-mapped, e.g. overlayfs: files only root may read are readable where the sandbox sees them)")
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
        home = next((h for h in hidden if prefix == h or prefix.startswith(h + "/")), None)
        if home is not None:
            argv += [*_dirs_between(home, prefix), "--ro-bind", prefix, prefix]
    return argv


def _python_under_tmp() -> list[str]:
    """The Python installation back read-only when it lives under /tmp (e.g. a CI checkout's .venv): the
    sandbox's private /tmp would otherwise hide it and `python3 -m pytest` would find the system Python."""
    argv: list[str] = []
    for prefix in sorted({sys.base_prefix, sys.prefix}):
        if prefix.startswith("/tmp/"):
            argv += [*_dirs_between("/tmp", prefix), "--ro-bind", prefix, prefix]
    return argv


def _dirs_between(top: str, path: str) -> list[str]:
    """The folders from ``top`` (exclusive) down to ``path``'s parent, created 0755: bwrap would make them 0700,
    closed to the sandbox's unprivileged user."""
    parents = [str(p) for p in reversed(Path(path).parents) if p != Path(top) and Path(top) in p.parents]
    return [arg for folder in parents for arg in ("--perms", "0755", "--dir", folder)]


def _hidden(paths: Collection[Path], workspace: Path) -> list[str]:
    """Empty tmpfs over each existing path, and over its view inside the workspace mount when it lies in the
    workspace (``naestro run --in-place`` in a project holding ``.naestro``)."""
    argv: list[str] = []
    for path in sorted({p.resolve() for p in paths if os.path.exists(p)} - {Path("/")}):
        argv += ["--tmpfs", str(path)]
        if path != workspace and workspace in path.parents:
            argv += ["--tmpfs", f"{SANDBOX_WORKSPACE}/{path.relative_to(workspace)}"]
    return argv


def _host_sockets() -> list[str]:
    """Empty /run (and /var/run where it is not a link to it): the host's sockets (D-Bus, docker, a database's
    socket folder) live there. Abstract sockets are per network namespace, so ``--unshare-net`` closes those."""
    run = ["/run", *(["/var/run"] if os.path.isdir("/var/run") and not os.path.islink("/var/run") else [])]
    return [arg for path in run if os.path.isdir(path) for arg in ("--tmpfs", path)]


def sandbox_argv(workspace: Path, command: list[str] | str, limits: Limits | None = None, *,
                 cgroup: Path | None = None, hide: Collection[Path] = (), report_fd: int | None = None) -> list[str]:
    """The full argv for one sandboxed command (without a cgroup only RLIMIT_NPROC caps processes).

    ``hide``: host folders the command must not see (NAESTRO_HOME). ``report_fd``: where, when Naestro runs as
    root, the helper writes the ``runs_as`` it chose (nobody, or root when the workspace cannot be id-mapped)."""
    limits = limits or Limits()
    bwrap = _which("bwrap", "bubblewrap")
    prlimit = _which("prlimit", "util-linux")
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    # The workspace appears at a neutral /tmp/workspace: tools that search parent folders for config (pytest,
    # git, ruff) must not find the host project the run directory happens to live in.
    ws = workspace.resolve()
    mb = 1024 * 1024
    # With a cgroup, RLIMIT_NPROC stays off: for the shared uid nobody it would count every concurrent sandbox.
    nproc = [f"--nproc={limits.max_pids}"] if cgroup is None else []
    rlimits = [prlimit, f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}", f"--as={limits.memory_mb * mb}",
               f"--fsize={limits.max_file_mb * mb}", "--core=0", *nproc, "--"]
    env = [arg for name, value in {"PATH": _path(), **SANDBOX_ENV}.items() for arg in ("--setenv", name, value)]
    # /tmp and /dev/shm world-writable (sticky): the command is not root, and tempfile and multiprocessing need them
    mounts = ["--ro-bind", "/", "/", *_hide_homes(), *_host_sockets(), "--dev", "/dev", "--perms", "1777",
              "--tmpfs", "/dev/shm", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp", *_python_under_tmp(),
              "--bind", str(ws), SANDBOX_WORKSPACE, *_hidden(hide, ws),
              "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
              "--new-session", "--clearenv", *env]
    if os.geteuid() != 0:
        ids = ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID)]
        inner = [bwrap, *mounts, *ids, "--chdir", SANDBOX_WORKSPACE, "--cap-drop", "ALL", "--", *rlimits, *argv]
    else:
        setpriv = _which("setpriv", "util-linux")
        # bwrap stays root to build the sandbox; setpriv then drops to nobody, taking every capability with it.
        # The chdir comes after: bwrap's own --chdir runs as root without capabilities, which a workspace of
        # mode 0700 (now nobody's, through the id-mapping) refuses.
        drop = [setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--", "/bin/sh", "-c", 'cd "$0" && exec "$@"', SANDBOX_WORKSPACE]
        as_nobody = [bwrap, *mounts, "--chdir", "/", "--cap-drop", "ALL", *(arg for cap in ("CAP_SETUID",
                     "CAP_SETGID", "CAP_SETPCAP") for arg in ("--cap-add", cap)), "--", *drop, *rlimits, *argv]
        as_root = [bwrap, *mounts, "--chdir", SANDBOX_WORKSPACE, "--cap-drop", "ALL", "--", *rlimits, *argv]
        # A missing workspace cannot be id-mapped: the helper falls back and bwrap reports the missing folder.
        owner = [ws.stat().st_uid, ws.stat().st_gid] if ws.is_dir() else [0, 0]
        spec = {"workspace": str(ws), "owner": owner, "sandbox": [SANDBOX_UID, SANDBOX_GID], "fallback": as_root,
                "report_fd": report_fd}
        inner = [sys.executable, "-I", "-S", "-c", IDMAP_HELPER, json.dumps(spec), *as_nobody]
    if cgroup is None:
        return inner
    # Join the cgroup before exec'ing bwrap, so every process of the sandbox is counted from the start.
    return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *inner]


async def run_sandboxed(workspace: Path, command: list[str] | str, limits: Limits, *,
                        hide: Collection[Path] = ()) -> Completed:
    """Async so that one server runs many commands at once (parallel tasks share this server).

    ``hide``: host folders the command must not see, such as NAESTRO_HOME."""
    cgroup = make_cgroup(limits.max_pids)
    proc: asyncio.subprocess.Process | None = None
    report, report_w = os.pipe() if os.geteuid() == 0 else (None, None)
    try:
        argv = sandbox_argv(workspace, command, limits, cgroup=cgroup, hide=hide, report_fd=report_w)
        start = time.monotonic()
        # The environment too: bwrap's --clearenv cleans the command's, but bwrap's own (readable in
        # /proc/PID/environ by a process of the same user) would still hold the server's.
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE,
                                                    stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
                                                    env={"PATH": _path(), **SANDBOX_ENV},
                                                    pass_fds=() if report_w is None else (report_w,))
        if report_w is not None:
            os.close(report_w)
            report_w = None
        budget = _OutputBudget(limits.max_output_bytes)
        killed, code = await _supervise(proc, budget, limits, cgroup)
        runs_as = _runs_as(report)
    except BaseException:
        # Cancelled (notifications/cancelled, closed session) or failed: the tree must die. Under anyio every
        # further await in a cancelled scope is cancelled too, so kill now and reap in a task of its own.
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        _in_background(remove_cgroup(cgroup))
        raise
    finally:
        for fd in (report, report_w):
            if fd is not None:
                os.close(fd)
    await remove_cgroup(cgroup)
    if killed == "wall_time":
        code = 124
    elif killed is None and code == SIGXCPU_EXIT:
        killed = "cpu_time"
    elif killed is None and code == SIGXFSZ_EXIT:
        killed = "file_size"
    elif code < 0:
        code = 128 - code
    out, err = budget.text("stdout"), budget.text("stderr")
    pids_limit_by: Literal["cgroup", "rlimit", "none"] = (
        "cgroup" if cgroup else "rlimit" if runs_as != "root" else "none")
    return Completed(exit_code=code, stdout=out, stderr=err, duration_s=round(time.monotonic() - start, 3),
                     timed_out=killed == "wall_time", killed=killed, stdout_bytes=budget.seen["stdout"],
                     stderr_bytes=budget.seen["stderr"], truncated=budget.truncated,
                     pids_limit_by=pids_limit_by, runs_as=runs_as)


def _runs_as(report: int | None) -> RunsAs:
    """What the root helper chose; "root" when it said nothing (it failed before bwrap ran)."""
    if report is None:
        return "caller"
    os.set_blocking(report, False)
    with contextlib.suppress(BlockingIOError):
        if os.read(report, 16) == b"nobody":
            return "nobody"
    return "root"


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
        await kill_tree(proc, cgroup)
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
