"""Bearer-token authentication of the HTTP API (``naestro serve``).

Anyone who can reach the API can queue runs that execute tools on the workers, so every route but ``/healthz``
asks for ``Authorization: Bearer <token>``. The token is ``NAESTRO_API_TOKEN`` or, when that is unset, the file
``HOME/api-token``, created at the first start with 256 random bits and mode 0600 (refused later if anyone else
may read it, as ssh refuses a readable key). Every machine mounting the same NAESTRO_HOME serves the same token.

Comparison is constant-time (``hmac.compare_digest``). The token travels in clear over plain HTTP: off loopback,
put TLS in front (``--ssl-certfile``/``--ssl-keyfile``, or a reverse proxy; README "Scale-out").
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import secrets
import stat
import tempfile
from pathlib import Path

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from naestro.errors import ConfigError

__all__ = ["MIN_TOKEN_CHARS", "OPEN_PATHS", "TOKEN_FILE", "BearerAuth", "api_token", "is_loopback"]

TOKEN_FILE = "api-token"
MIN_TOKEN_CHARS = 32
"""A shorter token is refused: the file's is 43 characters (32 random bytes, URL-safe base64)."""
OPEN_PATHS = frozenset({"/healthz"})
"""Liveness for load balancers and orchestrators: says nothing about runs."""


def is_loopback(host: str) -> bool:
    """Only this machine can connect: ``localhost`` or a loopback address (a host name or ``0.0.0.0`` is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def api_token(home: Path, configured: str | None) -> tuple[str, str]:
    """The token and where it came from: ``configured`` (NAESTRO_API_TOKEN) or ``HOME/api-token``, created now
    if missing. Raises ConfigError for a token too short or a file others may read."""
    if configured is not None:
        token, source = configured.strip(), "NAESTRO_API_TOKEN"
    else:
        path = home / TOKEN_FILE
        if not path.exists():
            _create(path)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"the API token file may be read by others (mode {mode:04o}); `chmod 600 {path}`",
                              file=str(path))
        token, source = path.read_text(encoding="utf-8").strip(), str(path)
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the API token from {source} has {len(token)} characters, fewer than {MIN_TOKEN_CHARS}; "
                          "use e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return token, source


def _create(path: Path) -> None:
    """Write a fresh token to a private temporary file, then link it into place: two API processes starting at
    once on a shared home both end up with the one complete file (the second link fails, its token is dropped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{TOKEN_FILE}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):  # another process linked its token first: that one counts
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


class BearerAuth:
    """ASGI middleware: 401 with ``WWW-Authenticate: Bearer`` unless the request carries the token."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app, self._token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        scheme, _, credential = (given or b"").partition(b" ")
        if given is None or scheme.lower() != b"bearer":
            problem = "missing bearer token"
        elif not hmac.compare_digest(credential.strip(), self._token):
            problem = "wrong bearer token"
        else:
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"error": f"{problem}: send 'Authorization: Bearer <token>' (NAESTRO_API_TOKEN of the API, or the "
                      f"file {TOKEN_FILE} in its NAESTRO_HOME)", "kind": "Unauthorized"},
            status_code=401, headers={"WWW-Authenticate": 'Bearer realm="naestro"'})
        await response(scope, receive, send)
