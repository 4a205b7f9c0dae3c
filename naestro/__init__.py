"""Naestro: a governed autonomous-agent runtime.

A goal becomes a typed Plan, the Plan compiles to a LangGraph state graph of role agents that call
models through OpenAI-compatible endpoints and tools over MCP, every step checkpointed.
"""

from typing import TYPE_CHECKING, Any

from naestro.errors import (
    BudgetExceeded,
    ConfigError,
    EndpointUnavailable,
    NaestroError,
    PlanInvalid,
    PlanProblem,
    RunError,
    ToolFailed,
    ToolFeedback,
    UnknownRun,
    UsageError,
)

if TYPE_CHECKING:
    from naestro.limits import Budget
    from naestro.plan import Plan, Role, Task
    from naestro.settings import Settings
    from naestro.validate import parse_plan, parse_plan_text, plan_problems

# Loaded on first use (PEP 562): `import naestro` (every CLI command, every MCP server) stays cheap, and the
# plan contract, settings and validator come in only for code that uses them.
_LAZY = {"Budget": "naestro.limits", "Plan": "naestro.plan", "Role": "naestro.plan", "Task": "naestro.plan",
         "Settings": "naestro.settings", "parse_plan": "naestro.validate", "parse_plan_text": "naestro.validate",
         "plan_problems": "naestro.validate"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'naestro' has no attribute {name!r}")

__all__ = [
    "Budget",
    "BudgetExceeded",
    "ConfigError",
    "EndpointUnavailable",
    "NaestroError",
    "Plan",
    "PlanInvalid",
    "PlanProblem",
    "Role",
    "RunError",
    "Settings",
    "Task",
    "ToolFailed",
    "ToolFeedback",
    "UnknownRun",
    "UsageError",
    "parse_plan",
    "parse_plan_text",
    "plan_problems",
]
