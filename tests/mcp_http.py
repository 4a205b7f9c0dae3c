"""Start one of Naestro's MCP servers over streamable HTTP as a real child process, for tests and bench."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mcp_servers.workspace import ServerOptions
from naestro.childproc import terminate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def http_server(name: str, options: ServerOptions, *, log: Path | None = None,
                env: dict[str, str] | None = None) -> Iterator[str]:
    """Yields the server's URL (http://127.0.0.1:PORT/mcp) once it accepts connections."""
    port = free_port()
    out = log.open("wb") if log else subprocess.DEVNULL
    module = "naestro.frontdoor" if name == "naestro" else f"mcp_servers.{name}"  # the front door: the CLI's
    proc = subprocess.Popen([sys.executable, "-m", module, *options.argv(), "--http",
                             str(port)], stdout=out, stderr=out, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"MCP server {name} exited with {proc.returncode} before listening")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"MCP server {name} did not listen on port {port} within 30 s") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        terminate(proc)
