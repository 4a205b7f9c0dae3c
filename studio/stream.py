"""Server-sent events of a run: the lines events.jsonl gains, as they are written.

The writer appends one complete JSON line per ``write`` (naestro/events.py), so the reader keeps a byte offset
and sends only complete lines; a partial last line waits for the next check. Between checks the generator
sleeps (``interval``): a tail costs one ``stat`` per interval, not a busy loop. Each event's SSE id is its
line number, so a browser that reconnects with ``Last-Event-ID`` misses nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

__all__ = ["sse_events"]

KEEPALIVE_S = 15.0  # a comment line now and then, so proxies and the browser keep the connection open


def _read_from(path: Path, offset: int) -> tuple[list[str], int]:
    """Complete lines after ``offset`` and the offset after the last complete one."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return [ln for ln in data[:end].decode("utf-8", "replace").splitlines() if ln.strip()], offset + end


async def sse_events(path: Path, *, skip: int, interval: float,
                     stopped: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    """Every event line past the first ``skip`` in the SSE wire format, until ``stopped()`` says so; a line that is
    not JSON (never written whole) is skipped but keeps its number."""
    yield b"retry: 2000\n\n"
    offset, seen, idle = 0, 0, 0.0
    while not await stopped():
        lines, offset = await asyncio.to_thread(_read_from, path, offset)
        for line in lines:
            seen += 1
            if seen <= skip:
                continue
            try:
                json.loads(line)
            except ValueError:
                continue
            yield f"id: {seen}\nevent: event\ndata: {line}\n\n".encode()
        if lines:
            idle = 0.0
            continue
        idle += interval
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield b": keepalive\n\n"
        await asyncio.sleep(interval)
