"""Naestro: a governed autonomous-agent runtime.

A goal becomes a typed Plan, the Plan compiles to a LangGraph state graph of role agents that call
models through OpenAI-compatible endpoints and tools over MCP, every step checkpointed.
"""

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
from naestro.limits import Budget
from naestro.plan import Plan, Role, Task
from naestro.settings import Settings
from naestro.validate import parse_plan, parse_plan_text, plan_problems

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
