"""``gathered``/``each``: results in order, the first failure cancels the rest and keeps its type."""

from __future__ import annotations

import asyncio

import pytest

from naestro.errors import PolicyDenied
from naestro.gathered import each, gathered


async def _after(delay: float, value: int) -> int:
    await asyncio.sleep(delay)
    return value


def test_results_in_order_of_arguments_not_of_completion() -> None:
    assert asyncio.run(gathered(_after(0.05, 1), _after(0.0, 2))) == (1, 2)
    assert asyncio.run(each([_after(0.03, 1), _after(0.0, 2), _after(0.01, 3)])) == [1, 2, 3]
    assert asyncio.run(each([])) == []


def test_they_run_at_once() -> None:
    order: list[str] = []

    async def step(name: str, delay: float) -> str:
        order.append(f"start {name}")
        await asyncio.sleep(delay)
        order.append(f"end {name}")
        return name

    asyncio.run(gathered(step("a", 0.02), step("b", 0.01)))
    assert order == ["start a", "start b", "end b", "end a"]


def test_first_failure_cancels_the_others_and_keeps_its_type() -> None:
    cancelled: list[str] = []

    async def slow() -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        return 0

    async def refused() -> int:
        await asyncio.sleep(0.01)
        raise PolicyDenied(tool="exec.run", reasons=["rule x"], rules=["x"])

    with pytest.raises(PolicyDenied, match="rule x"):
        asyncio.run(gathered(slow(), refused()))
    assert cancelled == ["slow"]
