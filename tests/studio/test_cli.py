"""`naestro studio` as a user starts it: loopback needs no token, any other address gets one (generated and
printed inside the URL, or NAESTRO_STUDIO_TOKEN), and the server refuses requests without it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.mcp_http import free_port

NAESTRO = Path(sys.executable).parent / "naestro"


@contextmanager
def studio(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Starts `naestro studio ARGS`; yields the URL it printed once the server answers."""
    log = tmp_path / f"studio-{len(list(tmp_path.glob('studio-*')))}.log"
    full = {**os.environ, "NAESTRO_HOME": str(tmp_path / "home"), **(env or {})}
    if env is None:
        full.pop("NAESTRO_STUDIO_TOKEN", None)
    with log.open("w") as out:
        proc = subprocess.Popen([str(NAESTRO), "studio", *args], env=full, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            found = re.search(r"(http://\S+)", log.read_text())
            if found:
                try:
                    httpx.get(found.group(1).split("?")[0] + "naestro/info", timeout=2)
                    yield found.group(1)
                    return
                except httpx.HTTPError:
                    pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_off_loopback_a_generated_token_is_printed_and_required(tmp_path: Path) -> None:
    port = free_port()
    with studio(tmp_path, "--host", "127.0.0.2", "--port", str(port)) as url:
        base, token = re.fullmatch(r"(http://127\.0\.0\.2:\d+/)\?token=([\w-]{20,})", url).groups()  # type: ignore[union-attr]
        assert httpx.get(base + "naestro/runs").status_code == 401
        assert httpx.get(base + "naestro/runs", headers={"Authorization": f"Bearer {token}"}).json() == []
        with httpx.Client() as browser:  # the printed URL logs the browser in (cookie), then the page loads
            page = browser.get(url, follow_redirects=True)
            assert page.status_code == 200 and "Naestro Studio" in page.text
            assert browser.get(base + "naestro/runs").status_code == 200


def test_loopback_needs_no_token_unless_asked_and_the_env_token_is_used(tmp_path: Path) -> None:
    with studio(tmp_path, "--port", str(free_port())) as url:
        assert "token" not in url
        assert httpx.get(url + "naestro/runs").status_code == 200
    with studio(tmp_path, "--port", str(free_port()), "--token",
                env={"NAESTRO_STUDIO_TOKEN": "from-env-123"}) as url:
        assert url.endswith("/?token=from-env-123")
        assert httpx.get(url.split("?")[0] + "naestro/runs").status_code == 401


def test_a_taken_port_is_a_usage_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([str(NAESTRO), "studio", "--port", str(port)], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "NAESTRO_HOME": str(tmp_path / "home")})
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


@pytest.fixture(autouse=True)
def _no_inherited_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAESTRO_STUDIO_TOKEN", raising=False)
