"""Evaluators: typed verdicts (pass, score, evidence, cost) on a task's result.

One protocol (``Evaluator.evaluate(subject, env) -> Verdict``), one module per concern: code (tests in the
sandbox, ruff), output contract (JSON Schema, regex, CSV shape), factuality (claims vs sources the run
read), reference (equal to what a program computed from the inputs), safety (secrets/PII),
SLO/budget. Plans use them as ``{"kind": "evaluator", "evaluator": NAME,
"threshold": T, "params": {...}}``; the acceptance node runs them (``nodes/evaluation.py``: the run-bound
environment lives with the nodes, so that validating a plan, which parses evaluator params, needs no runtime).
"""

from naestro.evaluators._code import CodeEvaluator
from naestro.evaluators._contract import ContractEvaluator, CsvShape, GroupTotals
from naestro.evaluators._factuality import FactualityEvaluator
from naestro.evaluators._localenv import SandboxEvalEnv
from naestro.evaluators._reference import ReferenceEvaluator, comparison_for, differences
from naestro.evaluators._registry import EVALUATORS, build_evaluator
from naestro.evaluators._safety import SafetyEvaluator
from naestro.evaluators._slo import SloEvaluator
from naestro.evaluators._verdict import (
    TIMED_OUT,
    CommandOutcome,
    Cost,
    EvalEnv,
    Evaluator,
    Evidence,
    Source,
    Subject,
    Usage,
    Verdict,
)

__all__ = [
    "EVALUATORS",
    "TIMED_OUT",
    "CodeEvaluator",
    "CommandOutcome",
    "ContractEvaluator",
    "Cost",
    "CsvShape",
    "EvalEnv",
    "Evaluator",
    "Evidence",
    "FactualityEvaluator",
    "GroupTotals",
    "ReferenceEvaluator",
    "SafetyEvaluator",
    "SandboxEvalEnv",
    "SloEvaluator",
    "Source",
    "Subject",
    "Usage",
    "Verdict",
    "build_evaluator",
    "comparison_for",
    "differences",
]
