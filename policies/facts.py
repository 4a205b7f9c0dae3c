"""Facts the gate computes before asking the policy: resolved paths and parsed URLs from tool arguments.

Resolution happens here, in Python, once: ``..`` and symlinks are followed (``Path.resolve``) relative to
the run workspace, so ``../../etc/passwd`` or a symlink pointing out of the workspace reaches the policy
as the absolute path it really is. Hosts are classified (IP literal, loopback, private) including what a
name resolves to, so a domain pointing at 127.0.0.1 is not mistaken for a public site.
"""

from __future__ import annotations

import concurrent.futures
import errno
import functools
import ipaddress
import os
import re
import socket
import stat
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import JsonValue

from mcp_servers.sandbox_path import unaliased
from policies.decision import PathFact, UrlFact

__all__ = ["diff_strip", "diff_targets", "path_facts", "url_facts"]

_PATH_KEYS = re.compile(r"^(path|paths|file|files|dir|directory|cwd|root|src|dst|source|target|dest|destination)$"
                        r"|_(path|file|dir)$")
_GLOB_KEYS = re.compile(r"^glob$|_glob$")
_WILDCARD = re.compile(r"[*?\[]")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DNS_TIMEOUT_S = 2.0
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="gate-dns")

# The header lines through which `git apply` learns a file name: ---/+++ (traditional and git diffs), the
# `diff --git` line (the only name a binary or mode-only patch has) and the extended rename/copy headers.
_FILE_HEADER = re.compile(r"^(?:---|\+\+\+) (.+)$", re.M)
_GIT_HEADER = re.compile(r"^diff --git (.+)$", re.M)
_MOVE_HEADER = re.compile(r"^(?:rename|copy) (?:from|to|old|new) (.+)$", re.M)
_C_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, '"': 34, "\\": 92}


def _strings(value: JsonValue) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _unquote(text: str) -> tuple[str, str]:
    """A C-quoted name at the start of ``text`` (git quotes names with special characters) and what follows."""
    out = bytearray()
    i = 1
    while i < len(text) and text[i] != '"':
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                i += 2
                continue
            if text[i + 1:i + 4].isdigit():
                out.append(int(text[i + 1:i + 4], 8) & 0xFF)
                i += 4
                continue
        out += ch.encode()
        i += 1
    return out.decode(errors="replace"), text[i + 1:]


def _closed(text: str) -> bool:
    """Whether the C-quoted name at the start of ``text`` has its closing quote."""
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return True
        else:
            i += 1
    return False


def _name(text: str) -> str:
    """A ---/+++ or rename/copy header's file name: unquoted, without a trailing tab and timestamp. A quote that
    is never closed is part of the name, as git reads it (``+++ "`` writes a file named ``"``: found by the
    containment fuzz test)."""
    text = text.rstrip("\n")
    return _unquote(text)[0] if text.startswith('"') and _closed(text) else text.split("\t")[0].rstrip()


def _strip(name: str, level: int) -> str:
    """``name`` without its first ``level`` components, as ``git apply -p<level>`` strips them."""
    for _ in range(level):
        _, sep, rest = name.partition("/")
        if not sep:
            return name  # nothing to strip: git refuses the name, the caller sees it unstripped
        name = rest  # git keeps a leading "/" after the stripped part: b//etc/x is /etc/x, not etc/x
    return name


def _git_header_names(rest: str) -> list[str]:
    """Both names of a ``diff --git A B`` line. Unquoted names may contain spaces: git splits where the two
    halves name the same file; a line with no such split (a rename) gives every half of every split, so that
    what is checked covers whatever git may take."""
    if rest.startswith('"'):
        first, tail = _unquote(rest)
        tail = tail.lstrip(" ")
        return [first, _unquote(tail)[0] if tail.startswith('"') else tail]
    if rest.endswith('"') and ' "' in rest:
        head, _, tail = rest.partition(' "')
        return [head, _unquote('"' + tail)[0]]
    splits = [(rest[:i], rest[i + 1:]) for i, ch in enumerate(rest) if ch == " "]
    for a, b in splits:
        if _strip(a, 1) == _strip(b, 1):
            return [a, b]
    return [half for split in splits for half in split] or [rest]


def diff_strip(diff: str) -> int:
    """The ``-p`` level for ``git apply``: 1 when the diff's names carry ``a/``/``b/`` prefixes, else 0."""
    names = [_name(m.group(1)) for m in _FILE_HEADER.finditer(diff)]
    names += [n for m in _GIT_HEADER.finditer(diff) for n in _git_header_names(m.group(1).rstrip())]
    return 1 if any(n.startswith(("a/", "b/")) for n in names) else 0


def diff_targets(diff: str) -> list[str]:
    """Every file a unified or git diff can touch, named as ``git apply -p<diff_strip>`` will use it.

    Includes the ``diff --git`` names and the rename/copy headers (``copy from /etc/x`` copies a file from
    anywhere, ``rename from`` deletes it there), not only ``---``/``+++``: the fs server confines, and the
    gate resolves, this one list. ``/dev/null`` is skipped.
    """
    level = diff_strip(diff)
    names = [(_name(m.group(1)), level) for m in _FILE_HEADER.finditer(diff)]
    names += [(n, level) for m in _GIT_HEADER.finditer(diff) for n in _git_header_names(m.group(1).rstrip())]
    # git strips one component less from the rename/copy lines: they carry no a/ b/ prefix.
    names += [(_name(m.group(1)), max(level - 1, 0)) for m in _MOVE_HEADER.finditer(diff)]
    targets: list[str] = []
    for name, strip in names:
        target = _strip(name, strip) if name != "/dev/null" else ""
        if target and target not in targets:
            targets.append(target)
    return targets


def _resolve(raw: str, base: Path) -> str:
    """What ``(base / Path(raw).expanduser()).resolve()`` gives, on strings: the pathlib objects cost as much as
    the lstat walk (issue 16). Kept from pathlib: its normalisation (``.`` and empty parts dropped, so
    ``./~user`` expands too and a trailing ``/`` is no part), and that an unknown ``~user`` and a symlink loop
    raise (the caller turns them into a problem the policy denies) instead of leaving ``loop/..`` unresolved."""
    parts = [p for p in raw.split("/") if p and p != "."]
    if raw.startswith("/"):
        path = "/" + "/".join(parts)
    elif parts and parts[0].startswith("~"):
        home = os.path.expanduser(parts[0])
        if home.startswith("~"):
            raise RuntimeError(f"Could not determine home directory of {parts[0]!r}")
        path = os.path.join(home, *parts[1:])
    elif ".." not in parts and (under := _under_real_base(str(base), parts)) is not None:
        return under
    else:
        path = os.path.join(base, *parts)
    resolved = os.path.realpath(path)
    try:
        os.stat(resolved)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RuntimeError(f"Symlink loop from {exc.filename!r}") from exc
    return resolved


@functools.lru_cache(maxsize=256)
def _real_base(base: str) -> str:
    """A workspace (or a glob's base folder) resolved once per process: Naestro creates the run's workspace and
    nothing a run executes can move its parents (tools are sandboxed into it)."""
    return os.path.realpath(base)


def _under_real_base(base: str, parts: list[str]) -> str | None:
    """``realpath(base/parts)`` for parts without ``..`` by looking only at the parts below ``base`` (an lstat
    each); None when one of them is a symlink (the caller then resolves the whole path as before). Resolving the
    workspace's own parents on every call was most of a path fact's cost (issue 16: the gate per tool call)."""
    current = _real_base(base)
    for i, part in enumerate(parts):
        nxt = os.path.join(current, part)
        try:
            st = os.lstat(nxt)
        except OSError:
            return os.path.join(nxt, *parts[i + 1:])  # missing from here on: realpath keeps the rest as written
        if stat.S_ISLNK(st.st_mode):
            return None
        current = nxt
    return current


def _fact(key: str, raw: str, base: Path) -> PathFact:
    # What makes resolving raise (ValueError on a NUL byte, RuntimeError on a symlink loop before Python
    # 3.13) is bad input for the policy to deny, not a crash of the caller.
    if "\0" in raw:
        return PathFact(arg=key, resolved="", problem="path contains a NUL byte")
    try:
        return PathFact(arg=key, resolved=_resolve(unaliased(raw), base))
    except (OSError, RuntimeError) as exc:
        return PathFact(arg=key, resolved="", problem=f"path cannot be resolved ({exc})")


def _glob_fact(key: str, pattern: str, base: Path) -> PathFact:
    """Where a glob reaches: its parts up to the first wildcard, resolved under ``base``. A ``..`` after a
    wildcard climbs from every matched folder (``rglob`` even puts ``**`` in front), so its reach is unknown."""
    if "\0" in pattern:
        return _fact(key, pattern, base)
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if _WILDCARD.search(part)), len(parts))
    if ".." in parts[fixed:]:
        return PathFact(arg=key, resolved="", problem="glob has a '..' part after a wildcard, so where it "
                        "reaches cannot be known; use a glob without '..'")
    return _fact(key, str(Path(*parts[:fixed])) if fixed else ".", base)


def path_facts(arguments: dict[str, JsonValue], workspace: Path) -> list[PathFact]:
    """Every path-like argument (and every file a ``diff`` argument patches), resolved against the workspace.

    A glob is resolved under the call's ``path`` argument (fs.search), as the server will expand it; a path
    that cannot be resolved (a NUL byte) becomes a fact with a ``problem``, which the policy denies.
    """
    path = arguments.get("path")
    where = _fact("path", path, workspace) if isinstance(path, str) else None
    base = Path(where.resolved) if where is not None and where.problem is None else workspace
    facts = []
    for key, value in arguments.items():
        if key == "diff" and isinstance(value, str):
            found = [_fact(key, raw, workspace) for raw in diff_targets(value)]
        elif _GLOB_KEYS.search(key):
            found = [_glob_fact(key, raw, base) for raw in _strings(value)]
        elif key == "path" and where is not None and isinstance(path, str) and not _URL.match(path):
            found = [where]  # resolved once, above
        elif _PATH_KEYS.search(key):
            found = [_fact(key, raw, workspace) for raw in _strings(value) if not _URL.match(raw)]
        else:
            continue
        for fact in found:
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
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:  # `http://[`: no scheme the policy knows, so the network-scheme rule denies it
        return UrlFact(arg=arg, url=url, scheme="", host="", ip=False, private=False, loopback=False, addresses=[])
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
