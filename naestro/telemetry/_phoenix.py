"""A local Arize Phoenix (trace UI) on loopback, in its own virtualenv, and the exporter pointed at it.

Phoenix is ~850 MB installed with dependencies that need not agree with Naestro's, so it gets its own venv
(``HOME/observe/venv``, or an existing one). ``up`` starts ``phoenix serve`` detached (UI and OTLP/HTTP on
one port, OTLP/gRPC on another; SQLite storage in ``HOME/observe/data``), waits until it answers, and writes
``HOME/observe/otlp_endpoint``; ``TelemetrySettings`` exports there while that file names a live server and no
``OTEL_EXPORTER_OTLP_*`` endpoint is set. Spans group under the Phoenix project ``naestro`` (the resource
attribute ``openinference.project.name``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from naestro.errors import RunError

__all__ = ["PHOENIX_VERSION", "Phoenix", "PhoenixFailed", "observe_endpoint"]

PHOENIX_VERSION = "20.26.1"
ENDPOINT_FILE = "otlp_endpoint"


class PhoenixFailed(RunError):
    def __init__(self, message: str, *, log: Path | None = None) -> None:
        self.log = log
        super().__init__(message + (f" (log: {log})" if log else ""))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, PermissionError):
        return False
    except OSError:
        return True  # no /proc: signal 0 succeeded
    return state != "Z"  # a stopped child its parent has not reaped yet


def observe_endpoint(home: Path) -> str | None:
    """The OTLP endpoint of the Phoenix ``naestro observe up`` started, while it runs."""
    d = home / "observe"
    try:
        pid = int((d / "phoenix.pid").read_text())
        endpoint = (d / ENDPOINT_FILE).read_text().strip()
    except (OSError, ValueError):
        return None
    return endpoint if _alive(pid) else None


@dataclass
class Phoenix:
    home: Path
    port: int = 6006
    grpc_port: int = 4317
    venv: Path | None = None

    @property
    def dir(self) -> Path:
        return self.home / "observe"

    @property
    def python(self) -> Path:
        return (self.venv or self.dir / "venv") / "bin" / "python"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def install(self) -> None:
        """Create the venv and install the pinned Phoenix (minutes, once)."""
        if (self.python.parent / "phoenix").exists():
            return
        if self.venv is not None:
            raise PhoenixFailed(f"{self.venv} has no phoenix executable (pip install arize-phoenix=={PHOENIX_VERSION})")
        venv = self.dir / "venv"
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"arize-phoenix=={PHOENIX_VERSION}"]]
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise PhoenixFailed(f"{' '.join(cmd[:4])} failed: {done.stderr.strip()[-800:]}")

    def pid(self) -> int | None:
        try:
            pid = int((self.dir / "phoenix.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v1/projects", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def up(self, *, timeout_s: float = 180.0) -> str:
        """Start (or find running) Phoenix; returns the OTLP/HTTP endpoint runs export to."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.pid() is None:
            self.install()
            env = {**os.environ, "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(self.port),
                   "PHOENIX_GRPC_PORT": str(self.grpc_port), "PHOENIX_TELEMETRY_ENABLED": "false",
                   "PHOENIX_WORKING_DIR": str(self.dir / "data")}
            log = (self.dir / "phoenix.log").open("ab")
            proc = subprocess.Popen([str(self.python.parent / "phoenix"), "serve"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            (self.dir / "phoenix.pid").write_text(str(proc.pid))
            deadline = time.monotonic() + timeout_s
            while not self.ready():
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.down()
                    raise PhoenixFailed("phoenix serve did not come up", log=self.dir / "phoenix.log")
                time.sleep(0.5)
        (self.dir / ENDPOINT_FILE).write_text(self.url)
        return self.url

    def down(self) -> bool:
        """Stop the Phoenix this home started; False when none was running."""
        pid = self.pid()
        (self.dir / ENDPOINT_FILE).unlink(missing_ok=True)
        (self.dir / "phoenix.pid").unlink(missing_ok=True)
        if pid is None:
            return False
        os.killpg(pid, signal.SIGTERM)  # its own session: the server and its workers
        for _ in range(40):
            if not _alive(pid):
                break
            time.sleep(0.25)
        return True
