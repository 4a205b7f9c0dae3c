"""The SLO/budget evaluator: what a task spent (tokens, USD, wall time, across attempts) against its limits.

Limits come from the task's effective budget and SLO unless the check's params override them. A task with
no limit at all fails this check: "within an unknown budget" is not evidence.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from naestro.evaluators._target import Params
from naestro.evaluators._verdict import EvalEnv, Evidence, Subject, Verdict

__all__ = ["SloEvaluator"]


class SloEvaluator(Params):
    name: ClassVar[str] = "slo"

    latency_s: float | None = Field(default=None, gt=0, description="default: the task's slo.latency_s")
    tokens: int | None = Field(default=None, ge=1, description="default: the task's budget")
    usd: float | None = Field(default=None, ge=0)
    wall_s: float | None = Field(default=None, gt=0)

    async def evaluate(self, subject: Subject, env: EvalEnv) -> Verdict:
        used = env.usage(subject.task_id)
        limits: list[tuple[str, float | None, float]] = [
            ("latency_s", self.latency_s or subject.slo.latency_s, used.wall_s),
            ("wall_s", self.wall_s or subject.budget.wall_s, used.wall_s),
            ("tokens", self.tokens or subject.budget.tokens, float(used.tokens)),
            ("usd", self.usd if self.usd is not None else subject.budget.usd, used.usd)]
        evidence: list[Evidence] = []
        ratios: list[float] = []
        for what, limit, spent in limits:
            if limit is None:
                continue
            ok = spent <= limit
            ratios.append(1.0 if ok else (limit / spent if spent else 0.0))
            evidence.append(Evidence(check=f"slo.{what}", ok=ok,
                                     detail=f"spent {spent:g} of {limit:g} over {used.attempts} attempt(s)"))
        if not evidence:
            evidence.append(Evidence(check="slo", ok=False, detail="no SLO or budget to check against"))
        return Verdict.of(self.name, evidence, score=min(ratios) if ratios else 0.0)
