"""MCP server ``web``: fetch a URL as readable text, within a domain allowlist; search through an adapter.

Defence in depth: the policy gate decides which domains a run may reach, and this server still refuses any
host outside its own ``--allow-domain`` list. Every hop is checked: redirects are followed by hand and each
target is re-checked against the allowlist and its site's robots.txt (RFC 9309: 4xx → allowed, 5xx or
unreachable → disallowed). Responses are streamed and cut at ``max_bytes``; the whole fetch has a deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import urllib.robotparser
from typing import Annotated, Protocol
from urllib.parse import urljoin, urlsplit

import httpx
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_servers.workspace import ServerOptions, new_server, serve

__all__ = ["SearchBackend", "SearchHit", "SearxngSearch", "build", "host_allowed", "main"]

USER_AGENT = "NaestroBot/0.1 (+https://github.com/naestro; MCP web server)"
ROBOTS_AGENT = "NaestroBot"
MAX_REDIRECTS = 5
DISALLOW_ALL = ["User-agent: *", "Disallow: /"]
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml")


class Fetched(BaseModel):
    url: str
    final_url: str
    status: int
    content_type: str
    title: str | None
    text: str = Field(description="HTML converted to readable Markdown-like text; other text types as is")
    bytes: int = Field(description="body bytes read")
    truncated: bool = Field(description="the body was longer than max_bytes")
    redirects: list[str]


class SearchHit(BaseModel):
    title: str
    url: str
    snippet: str


class SearchResults(BaseModel):
    query: str
    hits: list[SearchHit]


class SearchBackend(Protocol):
    """The seam for web search engines; results are only links, fetched (and allowlist-checked) separately."""

    async def search(self, query: str, *, max_results: int) -> list[SearchHit]: ...


class SearxngSearch:
    """A SearXNG instance's JSON API (``/search?q=...&format=json``), self-hostable and key-free."""

    def __init__(self, base_url: str, *, timeout_s: float = 15.0) -> None:
        self.base_url, self.timeout_s = base_url.rstrip("/"), timeout_s

    async def search(self, query: str, *, max_results: int) -> list[SearchHit]:
        async with httpx.AsyncClient(timeout=self.timeout_s, headers={"User-Agent": USER_AGENT}) as client:
            resp = await client.get(f"{self.base_url}/search", params={"q": query, "format": "json"})
        resp.raise_for_status()
        results = resp.json().get("results", [])
        return [SearchHit(title=str(r.get("title", "")), url=str(r.get("url", "")), snippet=str(r.get("content", "")))
                for r in results[:max_results] if isinstance(r, dict)]


def host_allowed(host: str, allow: tuple[str, ...]) -> bool:
    """The policy's domain patterns: ``example.com`` is that host only, ``*.example.com`` any subdomain of it."""
    host = host.lower().rstrip(".")
    for pattern in (a.lower().rstrip(".") for a in allow):
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


class _Fetcher:
    def __init__(self, allow: tuple[str, ...]) -> None:
        self.allow = allow
        self.robots: dict[str, urllib.robotparser.RobotFileParser] = {}

    def check_host(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            parts.hostname  # noqa: B018  (parses the host: `http://[` raises here)
        except ValueError as exc:
            raise ToolError(f"{url!r} is not a URL ({exc})") from exc
        if parts.scheme not in ("http", "https"):
            raise ToolError(f"{url!r}: only http and https URLs can be fetched")
        if not parts.hostname:
            raise ToolError(f"{url!r} has no host")
        if not host_allowed(parts.hostname, self.allow):
            allowed = ", ".join(self.allow) or "none configured"
            raise ToolError(f"{parts.hostname} is not in this server's domain allowlist ({allowed}); ask the "
                            f"operator to start the web server with --allow-domain {parts.hostname}")

    async def check_addresses(self, url: str) -> None:
        """An allowed *name* must not lead to a private, loopback or link-local address (DNS rebinding, SSRF)
        unless that address itself is allowlisted."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            ipaddress.ip_address(host)
            return  # an IP literal was allowlisted as such
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ToolError(f"cannot resolve {host}: {exc}") from exc
        for info in infos:
            addr = ipaddress.ip_address(info[4][0])
            if not addr.is_global and not host_allowed(str(addr), self.allow):
                raise ToolError(f"{host} resolves to the non-public address {addr}; refusing (allowlist the "
                                f"address itself with --allow-domain {addr} if this is intended)")

    async def check_robots(self, client: httpx.AsyncClient, url: str) -> None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        parser = self.robots.get(origin)
        if parser is None:
            parser = urllib.robotparser.RobotFileParser()
            try:
                resp = await client.get(f"{origin}/robots.txt")
                if resp.status_code >= 500:
                    parser.parse(DISALLOW_ALL)
                elif resp.status_code >= 400 or resp.is_redirect:
                    parser.parse([])  # "unavailable": crawl freely (RFC 9309 2.3.1.3)
                else:
                    parser.parse(resp.text.splitlines())
            except httpx.HTTPError:
                parser.parse(DISALLOW_ALL)  # unreachable: assume complete disallow (RFC 9309 2.3.1.4)
            self.robots[origin] = parser
        if not parser.can_fetch(ROBOTS_AGENT, url):
            raise ToolError(f"{url} is disallowed by {origin}/robots.txt for {ROBOTS_AGENT}; choose another page")

    async def fetch(self, url: str, *, max_bytes: int, timeout_s: float) -> Fetched:
        self.check_host(url)
        hops: list[str] = []
        current = url
        try:
            async with asyncio.timeout(timeout_s), httpx.AsyncClient(
                    follow_redirects=False, timeout=timeout_s, headers={"User-Agent": USER_AGENT}) as client:
                while True:
                    await self.check_addresses(current)
                    await self.check_robots(client, current)
                    async with client.stream("GET", current) as resp:
                        if resp.is_redirect:
                            target = urljoin(current, resp.headers.get("location", ""))
                            hops.append(target)
                            if len(hops) > MAX_REDIRECTS:
                                raise ToolError(f"more than {MAX_REDIRECTS} redirects from {url}")
                            self.check_host(target)  # a redirect may not leave the allowlist
                            current = target
                            continue
                        body, truncated = await _read_capped(resp, max_bytes)
                        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                        status = resp.status_code
                        encoding = resp.encoding or "utf-8"
                    break
        except TimeoutError:
            raise ToolError(f"fetching {url} took longer than {timeout_s:g}s; try again or raise timeout_s") from None
        except httpx.HTTPError as exc:
            raise ToolError(f"fetching {current} failed: {exc!r}") from exc
        if ctype and not ctype.startswith(TEXT_TYPES):
            raise ToolError(f"{current} is {ctype}, not text; this tool returns text only")
        raw = body.decode(encoding, errors="replace")
        is_html = "html" in ctype or (not ctype and raw.lstrip()[:15].lower().startswith(("<!doctype", "<html")))
        return Fetched(url=url, final_url=current, status=status, content_type=ctype or "unknown",
                       title=_title(raw) if is_html else None, text=_html_to_text(raw) if is_html else raw,
                       bytes=len(body), truncated=truncated, redirects=hops)


async def _read_capped(resp: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    buf = bytearray()
    async for chunk in resp.aiter_bytes():
        buf += chunk
        if len(buf) > max_bytes:
            return bytes(buf[:max_bytes]), True
    return bytes(buf), False


def _title(html: str) -> str | None:
    m = re.search(r"<title[^>]*>(.*?)</title>", html, re.IGNORECASE | re.DOTALL)
    return " ".join(m.group(1).split()) if m else None


def _html_to_text(html: str) -> str:
    import html2text

    conv = html2text.HTML2Text()
    conv.ignore_images = True
    conv.body_width = 0
    conv.unicode_snob = True
    return conv.handle(html).strip()


def build(options: ServerOptions) -> FastMCP:
    fetcher = _Fetcher(options.allow_domains)
    allowed = ", ".join(options.allow_domains) or "none"
    mcp = new_server("web", instructions=f"Fetch web pages as text from allowed domains ({allowed}).")

    @mcp.tool(annotations=ToolAnnotations(title="Fetch URL", readOnlyHint=True, idempotentHint=True,
                                          openWorldHint=True))
    async def fetch(url: str,
                    max_bytes: Annotated[int, Field(ge=1024, le=10_000_000)] = 2_000_000,
                    timeout_s: Annotated[float, Field(gt=0, le=120)] = 20.0) -> Fetched:
        """Fetch an http(s) URL from an allowed domain (robots.txt honoured) and return it as readable text."""
        return await fetcher.fetch(url, max_bytes=max_bytes, timeout_s=timeout_s)

    if options.search_url:
        backend: SearchBackend = SearxngSearch(options.search_url)

        @mcp.tool(annotations=ToolAnnotations(title="Web search", readOnlyHint=True, openWorldHint=True))
        async def search(query: str, max_results: Annotated[int, Field(ge=1, le=50)] = 10) -> SearchResults:
            """Search the web; returns titles, URLs and snippets (fetch a URL with web.fetch to read it)."""
            try:
                hits = await backend.search(query, max_results=max_results)
            except (httpx.HTTPError, ValueError) as exc:
                raise ToolError(f"search backend failed: {exc!r}; try again later") from exc
            return SearchResults(query=query, hits=hits)

    return mcp


def main(argv: list[str] | None = None) -> None:
    serve(build, prog="naestro-mcp-web", description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
