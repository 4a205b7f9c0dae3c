"""The HTTP API's bearer token (issue 20): where it comes from, how it is kept, when `naestro serve` refuses to
start, and what a request without it gets. The token file is a real file with real permissions; the middleware
wraps a real Starlette app driven by Starlette's TestClient."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from naestro.cli import app
from naestro.distributed.auth import MIN_TOKEN_CHARS, TOKEN_FILE, BearerAuth, api_token, is_loopback
from naestro.errors import ConfigError

TOKEN = "t" * MIN_TOKEN_CHARS


def test_the_token_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    token, source = api_token(home, None)
    path = home / TOKEN_FILE
    assert source == str(path) and len(token) >= MIN_TOKEN_CHARS
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert api_token(home, None) == (token, source)  # the second start (or another machine on the home) reuses it
    assert [p.name for p in home.iterdir()] == [TOKEN_FILE]  # no temporary file left behind


def test_a_configured_token_wins_and_weak_or_exposed_tokens_are_refused(tmp_path: Path) -> None:
    assert api_token(tmp_path, f" {TOKEN}\n") == (TOKEN, "NAESTRO_API_TOKEN")
    assert not (tmp_path / TOKEN_FILE).exists()  # nothing written when the token is configured
    with pytest.raises(ConfigError, match="fewer than 32"):
        api_token(tmp_path, "hunter2")
    path = tmp_path / TOKEN_FILE
    path.write_text(TOKEN)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        api_token(tmp_path, None)
    os.chmod(path, 0o600)
    assert api_token(tmp_path, None)[0] == TOKEN


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.7", False), ("api.internal", False)])
def test_loopback_is_only_what_no_other_machine_can_reach(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _app() -> Starlette:
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/runs", hello), Route("/healthz", hello)],
                     middleware=[Middleware(BearerAuth, token=TOKEN)])


@pytest.mark.parametrize(("header", "problem"), [
    (None, "missing bearer token"), (f"Basic {TOKEN}", "missing bearer token"), ("Bearer ", "wrong bearer token"),
    (f"Bearer {TOKEN}x", "wrong bearer token"), (f"Bearer {TOKEN[:-1]}", "wrong bearer token")])
def test_requests_without_the_token_get_401_saying_what_to_send(header: str | None, problem: str) -> None:
    with TestClient(_app()) as tc:
        got = tc.get("/runs", headers={"Authorization": header} if header else {})
    assert got.status_code == 401 and got.headers["WWW-Authenticate"].startswith("Bearer")
    assert got.json()["kind"] == "Unauthorized" and got.json()["error"].startswith(problem)
    assert "Authorization: Bearer <token>" in got.json()["error"] and TOKEN not in got.text


def test_the_token_opens_every_route_and_healthz_needs_none() -> None:
    with TestClient(_app()) as tc:
        assert tc.get("/runs", headers={"Authorization": f"Bearer {TOKEN}"}).text == "hello"
        assert tc.get("/runs", headers={"Authorization": f"bearer {TOKEN}"}).text == "hello"  # scheme: any case
        assert tc.get("/healthz").text == "hello"


def test_serve_refuses_to_listen_beyond_loopback_without_a_token(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAESTRO_HOME", str(tmp_path / "home"))
    cli = CliRunner()
    refused = cli.invoke(app, ["serve", "--host", "0.0.0.0", "--no-auth"])
    assert refused.exit_code == 2 and "--no-auth on 0.0.0.0" in refused.output
    half_tls = cli.invoke(app, ["serve", "--ssl-certfile", str(tmp_path / "cert.pem")])
    assert half_tls.exit_code == 2 and "--ssl-keyfile" in half_tls.output
    monkeypatch.setenv("NAESTRO_API_TOKEN", "short")
    weak = cli.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert weak.exit_code == 2 and "fewer than 32" in weak.output
    assert not (tmp_path / "home" / TOKEN_FILE).exists()  # refused before anything was written or bound
