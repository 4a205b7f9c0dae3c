"""``naestro studio``: the web UI and its JSON/SSE API (studio/api.py) on uvicorn, bound to loopback by default.

On any other interface the UI can start runs and approve tool calls for whoever reaches the port, so a token is
required there: ``NAESTRO_STUDIO_TOKEN``, or one generated now and printed inside the URL to open.
"""

from __future__ import annotations

import contextlib
import secrets
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
    app = build_app(settings, token=secret, server_url=options.server_url)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={secret.get_secret_value()}" if secret is not None else "")
    if not (STATIC / "index.html").exists():
        err.print("warning: the UI is not built (studio/static); the API works. Build: cd studio/web && npm ci && "
                  "npm run build")
    err.print(f"Naestro Studio for {settings.home}: {url}", markup=False, highlight=False)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        err.print(f"error: cannot listen on {host}:{port} (in use, or not an address of this machine)")
        raise typer.Exit(2)
