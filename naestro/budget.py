"""Budget accounting for a task attempt and for the whole run; exceeding a ceiling raises BudgetExceeded."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from naestro.errors import BudgetExceeded
from naestro.limits import Budget


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
class RunBudget:
    """Run-level totals shared by parallel tasks (thread-safe); seeded from state on resume."""

    ceiling: Budget
    tokens: int = 0
    usd: float = 0.0
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
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def charge(self, *, tokens: int, usd: float) -> None:
        self.tokens += tokens
        self.usd += usd
        self.run.charge(tokens=tokens, usd=usd)
        scope = f"task {self.task_id!r}"
        if self.budget.tokens is not None and self.tokens > self.budget.tokens:
            raise BudgetExceeded(scope=scope, resource="tokens", limit=self.budget.tokens, spent=self.tokens)
        if self.budget.usd is not None and self.usd > self.budget.usd:
            raise BudgetExceeded(scope=scope, resource="usd", limit=self.budget.usd, spent=self.usd)
        self.check_time()

    def check_time(self) -> None:
        if self.budget.wall_s is not None and self.elapsed_s > self.budget.wall_s:
            raise BudgetExceeded(scope=f"task {self.task_id!r}", resource="wall_s", limit=self.budget.wall_s,
                                 spent=round(self.elapsed_s, 1))

    def remaining_s(self) -> float | None:
        return None if self.budget.wall_s is None else max(0.0, self.budget.wall_s - self.elapsed_s)
