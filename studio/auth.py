"""The Studio's access token: on any interface but loopback the UI can start runs and approve tool calls, so
every request must carry the token (``Authorization: Bearer`` for scripts, a cookie for the browser).

A visit to any page with ``?token=...`` sets the cookie (HttpOnly, SameSite=Strict) and redirects to the same
page without the token, so it does not stay in the address bar or the browser history.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["COOKIE", "TokenGate"]

COOKIE = "naestro_studio_token"


class TokenGate:
    """ASGI middleware: 401 unless the request carries ``token``; ``?token=`` visits set the cookie."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app, self._token = app, token.encode()

    def _ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # the Studio speaks HTTP and SSE only: nothing else gets through
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = dict(query).get("token")
        if given is not None and self._ok(given):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
            await self._respond(send, 303, b"", [(b"location", location.encode()), (
                b"set-cookie", f"{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/".encode())])
            return
        auth = headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        jar: SimpleCookie = SimpleCookie()
        jar.load(headers.get("cookie", ""))
        cookie = jar[COOKIE].value if COOKIE in jar else None
        if self._ok(bearer) or self._ok(cookie):
            await self.app(scope, receive, send)
            return
        await self._respond(send, 401, b'{"error": "this Studio needs its token: open the URL `naestro studio` '
                                       b'printed (it ends in ?token=...), or send Authorization: Bearer TOKEN"}',
                            [(b"content-type", b"application/json")])

    @staticmethod
    async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
