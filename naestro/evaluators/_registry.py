"""Evaluator names → parameter models. ``llm_judge`` stays in ``nodes/judge.py`` (it needs the run's model)."""

from __future__ import annotations

from pydantic import JsonValue, ValidationError

from naestro.errors import UsageError
from naestro.evaluators._code import CodeEvaluator
from naestro.evaluators._contract import ContractEvaluator
from naestro.evaluators._factuality import FactualityEvaluator
from naestro.evaluators._reference import ReferenceEvaluator
from naestro.evaluators._safety import SafetyEvaluator
from naestro.evaluators._slo import SloEvaluator
from naestro.evaluators._verdict import Evaluator

__all__ = ["EVALUATORS", "build_evaluator"]

_Kind = (CodeEvaluator | ContractEvaluator | FactualityEvaluator | ReferenceEvaluator | SafetyEvaluator
         | SloEvaluator)
EVALUATORS: dict[str, type[_Kind]] = {
    cls.name: cls for cls in (CodeEvaluator, ContractEvaluator, FactualityEvaluator, ReferenceEvaluator,
                              SafetyEvaluator, SloEvaluator)}


def build_evaluator(name: str, params: dict[str, JsonValue]) -> Evaluator:
    """Parse a check's params once, at the edge; bad params are the plan author's mistake (``UsageError``)."""
    cls = EVALUATORS.get(name)
    if cls is None:
        raise UsageError(f"unknown evaluator {name!r} (known: llm_judge, {', '.join(EVALUATORS)})")
    try:
        return cls.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors()[:4])
        raise UsageError(f"evaluator {name!r}: bad params: {problems}") from exc
