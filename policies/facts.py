"""Facts the gate computes before asking the policy: resolved paths and parsed URLs from tool arguments.

Resolution happens here, in Python, once: ``..`` and symlinks are followed (``Path.resolve``) relative to
the run workspace, so ``../../etc/passwd`` or a symlink pointing out of the workspace reaches the policy
as the absolute path it really is. Hosts are classified (IP literal, loopback, private) including what a
name resolves to, so a domain pointing at 127.0.0.1 is not mistaken for a public site.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import JsonValue

from naestro.policies.decision import PathFact, UrlFact

__all__ = ["path_facts", "url_facts"]

_PATH_KEYS = re.compile(r"^(path|paths|file|files|dir|directory|cwd|root|src|dst|source|target|dest|destination)$"
                        r"|_(path|file|dir)$")
_DIFF_HEADER = re.compile(r"^(?:---|\+\+\+) (.+)$", re.M)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DNS_TIMEOUT_S = 2.0
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="gate-dns")


def _strings(value: JsonValue) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _diff_targets(diff: str) -> list[str]:
    """Files a unified diff touches (its ``---``/``+++`` headers, ``a/``/``b/`` prefixes dropped)."""
    targets = []
    for m in _DIFF_HEADER.finditer(diff):
        name = m.group(1).split("\t")[0].strip()
        if name != "/dev/null":
            targets.append(name[2:] if name[:2] in ("a/", "b/") else name)
    return targets


def path_facts(arguments: dict[str, JsonValue], workspace: Path) -> list[PathFact]:
    """Every path-like argument (and every file a ``diff`` argument patches), resolved against the workspace."""
    facts = []
    for key, value in arguments.items():
        if key == "diff" and isinstance(value, str):
            candidates = _diff_targets(value)
        elif _PATH_KEYS.search(key):
            candidates = _strings(value)
        else:
            continue
        for raw in candidates:
            if _URL.match(raw):
                continue
            candidate = Path(raw).expanduser()
            resolved = (candidate if candidate.is_absolute() else workspace / candidate).resolve(strict=False)
            fact = PathFact(arg=key, resolved=str(resolved))
            if fact not in facts:
                facts.append(fact)
    return facts


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    future = _resolver.submit(socket.getaddrinfo, host, None)
    try:
        infos = future.result(timeout=_DNS_TIMEOUT_S)
    except (OSError, concurrent.futures.TimeoutError):
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except ValueError:
            continue
    return out


def _host_fact(arg: str, url: str) -> UrlFact:
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if addr is not None:
        addresses = [addr]
    elif host == "localhost" or host.endswith(".localhost"):
        addresses = [ipaddress.ip_address("127.0.0.1")]
    else:
        addresses = _addresses(host) if host else []
    loopback = any(a.is_loopback for a in addresses)
    private = loopback or any(a.is_private or a.is_link_local or a.is_reserved for a in addresses)
    return UrlFact(arg=arg, url=url, scheme=parts.scheme.lower(), host=host, ip=addr is not None,
                   private=private, loopback=loopback, addresses=sorted({str(a) for a in addresses}))


def url_facts(arguments: dict[str, JsonValue]) -> list[UrlFact]:
    """Every argument that is a URL (any scheme), classified."""
    return [_host_fact(key, raw) for key, value in arguments.items() for raw in _strings(value) if _URL.match(raw)]
