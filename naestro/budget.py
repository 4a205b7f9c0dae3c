"""Budget accounting for a task attempt and for the whole run; exceeding a ceiling raises BudgetExceeded.

Tokens (and money) are the budget: what a task may spend does not depend on the machine. Wall time is only an
outer guard against a hang, scaled to the endpoint's measured speed (issue 18: on a busy machine the README demo
failed with both tasks at ``wall_s`` 420 while their token budgets were intact; it passes in ~2 min on a quiet
one). The guard is the task's ``wall_s`` or, once the run has measured the model's speed, ``WALL_GUARD_FACTOR``
times the time the task's whole token budget takes at that speed, whichever is longer; before any measurement,
at least the endpoint's request timeout (its ``timeout_s``), so the first reply is not cut short either.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from naestro.errors import BudgetExceeded
from naestro.limits import Budget

__all__ = ["WALL_GUARD_FACTOR", "RunBudget", "TaskMeter", "Throughput", "effective_budget"]

WALL_GUARD_FACTOR = 2.0
"""Model time for the whole token budget, doubled for tool calls, checks and queueing behind other tasks."""

_T = TypeVar("_T")


def effective_budget(task: Budget, role_default: Budget, ceiling: Budget) -> Budget:
    """Task budget, else the role's default, never above the plan ceiling."""
    def pick(own: float | None, default: float | None, cap: float | None) -> float | None:
        value = own if own is not None else default
        if cap is not None and (value is None or value > cap):
            return cap
        return value

    tokens = pick(task.tokens, role_default.tokens, ceiling.tokens)
    return Budget(tokens=int(tokens) if tokens is not None else None,
                  usd=pick(task.usd, role_default.usd, ceiling.usd),
                  wall_s=pick(task.wall_s, role_default.wall_s, ceiling.wall_s))


@dataclass
class Throughput:
    """The model's measured speed: budget tokens (prompt + completion) per second of model time.

    Measured on the run's own calls, so it reflects the endpoint and the machine's load right now; shared by the
    phase's parallel tasks (thread-safe). A call that queued behind others counts its queueing: that is the
    speed a task gets."""

    tokens: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, tokens: int, seconds: float) -> None:
        if tokens > 0 and seconds > 0:
            with self._lock:
                self.tokens += tokens
                self.seconds += seconds

    def per_s(self) -> float | None:
        """None before the first measured call."""
        with self._lock:
            return self.tokens / self.seconds if self.tokens and self.seconds else None


@dataclass
class RunBudget:
    """Run-level totals shared by parallel tasks (thread-safe); seeded from state on resume."""

    ceiling: Budget
    tokens: int = 0
    usd: float = 0.0
    speed: Throughput = field(default_factory=Throughput)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def charge(self, *, tokens: int, usd: float) -> None:
        with self._lock:
            self.tokens += tokens
            self.usd += usd
            if self.ceiling.tokens is not None and self.tokens > self.ceiling.tokens:
                raise BudgetExceeded(scope="run", resource="tokens", limit=self.ceiling.tokens, spent=self.tokens)
            if self.ceiling.usd is not None and self.usd > self.ceiling.usd:
                raise BudgetExceeded(scope="run", resource="usd", limit=self.ceiling.usd, spent=self.usd)


@dataclass
class TaskMeter:
    """Spend of one task attempt; ``charge`` after every model call, ``check_time`` between steps."""

    task_id: str
    budget: Budget
    run: RunBudget
    tokens: int = 0
    usd: float = 0.0
    model_s: float = 0.0  # seconds spent waiting for the model (measured calls only)
    unmeasured_s: float | None = None  # the endpoint's own request timeout: the guard until a speed is measured
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def charge(self, *, tokens: int, usd: float, model_s: float = 0.0) -> None:
        """``model_s``: how long the call took, when it was made now (a replayed reply has no speed)."""
        self.tokens += tokens
        self.usd += usd
        if model_s > 0:
            self.model_s += model_s
            self.run.speed.add(tokens=tokens, seconds=model_s)
        self.run.charge(tokens=tokens, usd=usd)
        scope = f"task {self.task_id!r}"
        if self.budget.tokens is not None and self.tokens > self.budget.tokens:
            raise BudgetExceeded(scope=scope, resource="tokens", limit=self.budget.tokens, spent=self.tokens)
        if self.budget.usd is not None and self.usd > self.budget.usd:
            raise BudgetExceeded(scope=scope, resource="usd", limit=self.budget.usd, spent=self.usd)
        self.check_time()

    def wall_guard_s(self) -> float | None:
        """The wall-time guard now: ``wall_s``, stretched to the measured speed (see the module docstring)."""
        wall = self.budget.wall_s
        speed = self.run.speed.per_s()
        if wall is None or self.budget.tokens is None:
            return wall
        if speed is None:
            # Nothing measured yet: the first call may take as long as the endpoint allows a request (a busy
            # machine's first reply is the slowest to come); a hung endpoint still ends at that timeout.
            return max(wall, self.unmeasured_s or 0.0)
        return max(wall, WALL_GUARD_FACTOR * self.budget.tokens / speed)

    def _wall_exceeded(self, guard: float) -> BudgetExceeded:
        return BudgetExceeded(scope=f"task {self.task_id!r}", resource="wall_s", limit=round(guard, 1),
                              spent=round(self.elapsed_s, 1))

    def check_time(self) -> None:
        guard = self.wall_guard_s()
        if guard is not None and self.elapsed_s > guard:
            raise self._wall_exceeded(guard)

    def remaining_s(self) -> float | None:
        guard = self.wall_guard_s()
        return None if guard is None else max(0.0, guard - self.elapsed_s)

    async def guard(self, work: Awaitable[_T]) -> _T:
        """``work`` under the wall-time guard, which may grow while it runs (the speed is measured as it goes);
        past it, ``work`` is cancelled and ``BudgetExceeded`` (``wall_s``) raised."""
        running = asyncio.ensure_future(work)
        try:
            while True:
                left = self.remaining_s()
                done, _ = await asyncio.wait({running}, timeout=left)
                if done:
                    return running.result()
                guard = self.wall_guard_s()
                if guard is not None and self.elapsed_s >= guard:
                    raise self._wall_exceeded(guard)
        finally:
            if not running.done():
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await running
