"""One checkpoint connection per database per process, shared by every run the process drives (issue 16).

A connection per run made 50 concurrent runs open 50 SQLite writers on one file (32 of them then failed with
``database is locked``) and would open 200 Postgres connections for 200 runs (the server's default limit is 100).
Here the first ``use`` in an event loop opens the resource, later ones share it, and the last one to leave closes
it, so nothing outlives its users (an open aiosqlite connection is a non-daemon thread that keeps a process from
exiting). Entries are per event loop because asyncio locks and aiosqlite futures belong to the loop that made them.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Shared"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    value: T
    close: Callable[[], Awaitable[None]]
    users: int = 0


@dataclass
class _Slots(Generic[K, T]):
    entries: dict[K, _Entry[T]] = field(default_factory=dict)
    opening: dict[K, asyncio.Lock] = field(default_factory=dict)


class Shared(Generic[K, T]):
    """``opener(key)`` returns the resource and how to close it; ``use(key)`` lends it out, refcounted."""

    def __init__(self, opener: Callable[[K], Awaitable[tuple[T, Callable[[], Awaitable[None]]]]]) -> None:
        self._opener = opener
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slots[K, T]] = weakref.WeakKeyDictionary()

    @asynccontextmanager
    async def use(self, key: K) -> AsyncIterator[T]:
        slots = self._loops.setdefault(asyncio.get_running_loop(), _Slots())
        async with slots.opening.setdefault(key, asyncio.Lock()):  # two first users must not open two
            entry = slots.entries.get(key)
            if entry is None:
                value, close = await self._opener(key)
                entry = slots.entries[key] = _Entry(value, close)
            entry.users += 1
        try:
            yield entry.value
        finally:
            entry.users -= 1
            if entry.users == 0 and slots.entries.get(key) is entry:
                del slots.entries[key]
                # Shielded: a cancelled last user still closes the connection (else its thread leaks).
                await asyncio.shield(entry.close())

    def open_count(self) -> int:
        """Resources open in the running loop (tests pin that runs share one)."""
        slots = self._loops.get(asyncio.get_running_loop())
        return len(slots.entries) if slots is not None else 0
