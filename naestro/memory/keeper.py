"""The keeper of the embedded FalkorDB: a small supervisor that starts redis-server as its child and ends it when
the last Naestro process using it is gone, however that process went.

Why a process of its own: SIGTERM's default action ends Python without running ``atexit`` or ``finally``, and a
SIGKILL or a crash runs nothing at all, so a server stopped from inside its users outlives a killed user. A
SIGTERM handler would not fix that (SIGKILL, crashes) and would fight the handlers uvicorn (the Studio) and
Celery (workers) install for their own graceful shutdown. What the kernel always does is close a dead process's
files, which drops its shared ``flock`` on ``users.lock``: that lock is the reference count (``falkor.py``), and
the keeper looks at it twice a second. Testcontainers' Ryuk and CPython's ``multiprocessing.resource_tracker``
reap on the same fact (a dead client's socket or pipe closes). The keeper holds ``start.lock`` while it looks
and while it shuts down, so no process joins a server that is going away, and a user's own ``release`` never
races it. The server dies with the keeper too (``PR_SET_PDEATHSIG``: SIGTERM, which redis answers by saving and
exiting), so killing the keeper cannot leave a server that nobody watches.

A ``keep`` file in the data directory means the server was started to be shared deliberately (``naestro memory
start``): then it stays without users until ``naestro memory stop``.

Standard library only, run by file path with ``python -I``: it starts in milliseconds, imports nothing of
Naestro (this folder's ``operator.py`` would shadow the stdlib module if the folder were on ``sys.path``) and
cannot pick up a user's site packages.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["KEEP_FILE", "SCRIPT", "START_LOCK", "STATE_FILE", "USERS_LOCK", "command", "main", "ping", "unused",
           "watch"]

START_LOCK, USERS_LOCK, STATE_FILE, KEEP_FILE = "start.lock", "users.lock", "server.json", "keep"
SCRIPT = Path(__file__).resolve()  # what a starting process runs, by path, with ``python -I``
_PR_SET_PDEATHSIG = 1
_SHUTDOWN_S = 60.0  # SHUTDOWN SAVE writes the whole graph to disk first: generous before SIGKILL


def ping(port: int, *, host: str = "127.0.0.1", timeout_s: float = 1.0) -> bool:
    """A RESP PING on a plain socket: no client library needed to know the server answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def command(port: int, *args: str, host: str = "127.0.0.1", timeout_s: float = 10.0) -> bytes:
    """One RESP command; its raw reply (empty when the server closed the connection, as SHUTDOWN does)."""
    parts = [f"*{len(args)}\r\n".encode()] + [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args]
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(b"".join(parts))
        try:
            return sock.recv(256)
        except OSError:
            return b""


@contextlib.contextmanager
def unused(data_dir: Path, *, wait: bool) -> Iterator[bool]:
    """True while holding ``start.lock`` when no process holds ``users.lock`` and the server is not kept; the
    caller may then stop the server before anyone can join it. ``wait=False`` gives up (False) when another
    process is starting, joining or leaving right now: the keeper looks again on its next round."""
    with open(data_dir / START_LOCK, "ab") as start:
        try:
            fcntl.flock(start, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            with open(data_dir / USERS_LOCK, "ab") as users:
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False  # a user holds its shared lock
                    return
                yield not (data_dir / KEEP_FILE).exists()
        finally:
            fcntl.flock(start, fcntl.LOCK_UN)


class _Child:
    """redis-server as this process's child, watched through a pidfd so its exit wakes the keeper at once."""

    def __init__(self, argv: list[str]) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        keeper = os.getpid()

        def die_with_keeper() -> None:  # runs in the child between fork and exec (the keeper has one thread)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != keeper:  # the keeper died before prctl took effect
                os._exit(1)

        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=die_with_keeper)
        self._poll: select.poll | None = None
        with contextlib.suppress(AttributeError, OSError):  # no pidfd (not Linux >= 5.3): plain polling
            poller = select.poll()
            poller.register(os.pidfd_open(self.proc.pid), select.POLLIN)
            self._poll = poller

    def exited_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the server to exit; True (and reaped) if it did."""
        if self._poll is not None:
            self._poll.poll(max(0, int(seconds * 1000)))
            return self.proc.poll() is not None
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True


def _shutdown(child: _Child, port: int, data_dir: Path) -> None:
    """SHUTDOWN SAVE, then SIGKILL if it did not end; ``server.json`` goes when it still names this server."""
    with contextlib.suppress(OSError):
        command(port, "SHUTDOWN", "SAVE")
    deadline = time.monotonic() + _SHUTDOWN_S
    while not child.exited_within(min(1.0, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            child.proc.kill()
            child.proc.wait()
            break
    state = data_dir / STATE_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(state.read_text(encoding="utf-8")).get("pid") == child.proc.pid:
            state.unlink()


def _report(line: dict[str, object]) -> None:
    """The one line the starting process waits for; stdout is closed after it (the starter sees EOF)."""
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _start(argv: list[str], port: int, ready_s: float) -> _Child | None:
    child = _Child(argv)
    deadline = time.monotonic() + ready_s
    while not ping(port):
        if child.exited_within(0.05) or time.monotonic() > deadline:
            if child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()
            _report({"error": f"FalkorDB did not start (exit {child.proc.returncode})"})
            return None
    _report({"pid": child.proc.pid, "port": port, "keeper": os.getpid()})
    return child


def watch(data_dir: Path, child: _Child, port: int, *, poll_s: float) -> None:
    """Until the server exits (a user's ``release`` stopped it, or it died): stop it once nobody uses it."""
    while not child.exited_within(poll_s):
        with unused(data_dir, wait=False) as nobody:
            if nobody:
                _shutdown(child, port, data_dir)
                return


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--poll-s", type=float, default=0.5)
    parser.add_argument("--ready-s", type=float, default=30.0)
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- redis-server and its arguments")
    ns = parser.parse_args(args)
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    if not argv:
        parser.error("give the server's command line after --")
    # Fork once more and let the launcher exit: the starter reaps the launcher at once, and the keeper, adopted
    # by init (or the nearest subreaper), never lingers as a zombie of a long-lived Studio or worker.
    if os.fork():
        os._exit(0)
    child = _start(argv, ns.port, ns.ready_s)
    if child is None:
        return 1
    watch(ns.data_dir, child, ns.port, poll_s=ns.poll_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
