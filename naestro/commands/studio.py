"""``naestro studio``: the web UI and its JSON/SSE API (studio/api.py) on uvicorn, bound to loopback by default.

On any other interface the UI can start runs and approve tool calls for whoever reaches the port, so a token is
required there: ``NAESTRO_STUDIO_TOKEN``, or one generated now and printed inside the URL to open.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["studio"]

err = Console(stderr=True, soft_wrap=True)


def studio(host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1; any other needs the "
                                                         "token)")] = None,
           port: Annotated[int | None, typer.Option(help="TCP port (default 8780)")] = None,
           token: Annotated[bool, typer.Option("--token", help="require a token on loopback too")] = False) -> None:
    """Serve Naestro Studio: runs, live plan DAG, consent, history/rollback, metrics, new runs with plan preview."""
    # uvicorn, Starlette and the runtime load only when serving, never for `--help` (issue 15).
    import uvicorn
    from pydantic import SecretStr

    from naestro.commands._settings import load_settings
    from studio.api import STATIC, build_app
    from studio.settings import LOOPBACK, StudioSettings

    options = StudioSettings()
    host, port = host or options.host, options.port if port is None else port
    secret = options.token
    if secret is None and (token or host not in LOOPBACK):
        secret = SecretStr(secrets.token_urlsafe(24))
    settings = load_settings()
    # The socket is bound here, not by uvicorn: a taken port is one line and exit 2 (uvicorn logs and exits 1), and
    # --port 0 prints the port the system picked.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        err.print(f"error: cannot listen on {host}:{port}: {exc.strerror}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    port = sock.getsockname()[1]
    app = build_app(settings, token=secret, server_url=options.server_url)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={secret.get_secret_value()}" if secret is not None else "")
    if not (STATIC / "index.html").exists():
        err.print("warning: the UI is not built (studio/static); the API works. Build: cd studio/web && npm ci && "
                  "npm run build")
    err.print(f"Naestro Studio for {settings.home}: {url}", markup=False, highlight=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
