"""web.fetch against a real local HTTP server on 127.0.0.1 (allowlisted explicitly), over the real MCP transport."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mcp_servers.web import host_allowed
from naestro.toolbus import McpToolBus, builtin_servers

PAGE = (b"<!doctype html><html><head><title>Naestro  test</title></head><body><h1>Hello</h1>"
        b"<p>Readable <b>text</b> and a <a href='/next'>link</a>.</p><script>ignored()</script></body></html>")


class Site(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        routes: dict[str, tuple[int, dict[str, str], bytes]] = {
            "/robots.txt": (200, {"content-type": "text/plain"}, b"User-agent: *\nDisallow: /private\n"),
            "/page": (200, {"content-type": "text/html; charset=utf-8"}, PAGE),
            "/data.json": (200, {"content-type": "application/json"}, b'{"a": 1}'),
            "/hop": (302, {"location": "/page"}, b""),
            "/to-private": (302, {"location": "/private/x"}, b""),
            "/away": (302, {"location": f"http://localhost:{port}/page"}, b""),
            "/loop": (302, {"location": "/loop"}, b""),
            "/image": (200, {"content-type": "image/png"}, b"\x89PNG...."),
            "/big": (200, {"content-type": "text/plain"}, b"x" * 3_000_000),
            "/search": (200, {"content-type": "application/json"}, json.dumps({"results": [
                {"title": "Naestro", "url": f"http://127.0.0.1:{port}/page", "content": "runtime"}]}).encode()),
        }
        if self.path == "/slow":
            time.sleep(3)
        status, headers, body = routes.get(self.path.split("?")[0], (404, {}, b"not found"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client stopped reading (max_bytes)
            self.wfile.write(body)


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_host_allowlist_matching() -> None:
    # the policy's patterns (policies/rego/gate.rego domain_ok): exact host, or *. for subdomains
    allow = ("example.com", "*.python.org", "127.0.0.1")
    assert host_allowed("example.com", allow) and host_allowed("Example.COM.", allow)
    assert not host_allowed("docs.example.com", allow)
    assert host_allowed("docs.python.org", allow) and host_allowed("a.b.python.org", allow)
    assert not host_allowed("python.org", allow) and not host_allowed("evilpython.org", allow)
    assert host_allowed("127.0.0.1", allow)
    assert not host_allowed("badexample.com", allow) and not host_allowed("example.com.evil.org", allow)
    assert not host_allowed("localhost", allow) and not host_allowed("anything", ())


async def test_fetch_rules(site: str, tmp_path: Path) -> None:
    servers = builtin_servers(tmp_path, names=["web"], allow_domains=["127.0.0.1"])
    async with McpToolBus(servers) as bus:
        page = await bus.call("web.fetch", {"url": f"{site}/page"})
        assert page.ok and isinstance(page.structured, dict), page.text
        assert page.structured["title"] == "Naestro test" and page.structured["status"] == 200
        text = str(page.structured["text"])
        assert "# Hello" in text and "Readable **text**" in text and "<p>" not in text

        hop = await bus.call("web.fetch", {"url": f"{site}/hop"})
        assert hop.ok and isinstance(hop.structured, dict)
        assert hop.structured["final_url"] == f"{site}/page" and hop.structured["redirects"] == [f"{site}/page"]

        data = await bus.call("web.fetch", {"url": f"{site}/data.json"})
        assert isinstance(data.structured, dict) and data.structured["text"] == '{"a": 1}'

        async def refused(url: str, *expect: str) -> None:
            res = await bus.call("web.fetch", {"url": url})
            assert not res.ok and all(e in res.text for e in expect), res.text

        await refused("http://example.org/", "not in this server's domain allowlist", "--allow-domain example.org")
        await refused(f"{site}/private/secret", "disallowed by", "robots.txt")
        await refused(f"{site}/to-private", "robots.txt")  # the redirect target is re-checked against robots
        await refused(f"{site}/away", "localhost is not in this server's domain allowlist")  # and the allowlist
        await refused(f"{site}/loop", "more than 5 redirects")
        await refused(f"{site}/image", "image/png, not text")
        await refused("file:///etc/passwd", "only http and https")

        big = await bus.call("web.fetch", {"url": f"{site}/big", "max_bytes": 100_000})
        assert isinstance(big.structured, dict) and big.structured["truncated"] is True
        assert big.structured["bytes"] == 100_000
        slow = await bus.call("web.fetch", {"url": f"{site}/slow", "timeout_s": 0.5})
        assert not slow.ok and "longer than 0.5s" in slow.text


async def test_names_resolving_to_private_addresses_are_refused(site: str, tmp_path: Path) -> None:
    by_name = site.replace("127.0.0.1", "localhost")
    async with McpToolBus(builtin_servers(tmp_path, names=["web"], allow_domains=["localhost"])) as bus:
        res = await bus.call("web.fetch", {"url": f"{by_name}/page"})
        assert not res.ok and "resolves to the non-public address" in res.text
    both = ["localhost", "127.0.0.1", "::1"]  # localhost may also resolve to ::1
    async with McpToolBus(builtin_servers(tmp_path, names=["web"], allow_domains=both)) as bus:
        assert (await bus.call("web.fetch", {"url": f"{by_name}/page"})).ok


async def test_search_tool_only_with_a_backend(site: str, tmp_path: Path) -> None:
    async with McpToolBus(builtin_servers(tmp_path, names=["web"], allow_domains=["127.0.0.1"])) as bus:
        assert "web.search" not in {s.name for s in bus.specs()}
    servers = builtin_servers(tmp_path, names=["web"], allow_domains=["127.0.0.1"])
    servers["web"]["args"] += ["--search-url", site]  # type: ignore[operator,typeddict-item]
    async with McpToolBus(servers) as bus:
        res = await bus.call("web.search", {"query": "naestro"})
        assert res.ok and isinstance(res.structured, dict)
        assert res.structured["hits"] == [{"title": "Naestro", "url": f"{site}/page", "snippet": "runtime"}]
