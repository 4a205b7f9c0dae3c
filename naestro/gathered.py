"""Run independent awaitables at once; the first failure cancels the rest and is raised as itself.

``asyncio.gather`` leaves the other awaitables running when one fails (a planning step that was refused would
keep the model busy for minutes), and ``asyncio.TaskGroup`` raises an ``ExceptionGroup``, which would hide the
typed errors (``PlanInvalid``, ``PolicyDenied``) callers catch by type.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar, overload

__all__ = ["each", "gathered"]

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


async def _all(aws: Sequence[Awaitable[Any]]) -> list[Any]:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@overload
async def gathered(a: Awaitable[A], b: Awaitable[B], /) -> tuple[A, B]: ...
@overload
async def gathered(a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], /) -> tuple[A, B, C]: ...
async def gathered(*aws: Awaitable[Any]) -> tuple[Any, ...]:
    """The results in order; on the first exception the others are cancelled (and awaited), then it propagates
    unchanged. Cancelling the caller cancels them all."""
    return tuple(await _all(aws))


async def each(aws: Sequence[Awaitable[A]]) -> list[A]:
    """``gathered`` for any number of awaitables of one type."""
    return await _all(aws)
