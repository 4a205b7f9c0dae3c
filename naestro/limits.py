"""Budgets and SLOs: the ceilings a plan, a task or a role sets, shared by the plan contract and the evaluators.

Their own module so that the evaluators (which the plan's validation calls to check evaluator params) do not
import the plan, and the plan contract stays free of import cycles.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SLO", "Budget"]


class _Frozen(BaseModel):
    # allow_inf_nan=False: `1e999` parses as inf and would make every budget check pass (issue 14).
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False)


class Budget(_Frozen):
    """Ceilings; ``None`` means "inherit" (task) or "unlimited" (plan)."""

    tokens: int | None = Field(default=None, ge=1, description="prompt + completion tokens")
    usd: float | None = Field(default=None, ge=0)
    wall_s: float | None = Field(default=None, gt=0, description="wall-clock seconds")


class SLO(_Frozen):
    latency_s: float | None = Field(default=None, gt=0, description="target wall time for the task")
