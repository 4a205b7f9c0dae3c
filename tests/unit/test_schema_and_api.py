from __future__ import annotations

import naestro
from naestro.schema import plan_schema_text
from tests.conftest import REPO


def test_plan_schema_file_matches_models() -> None:
    committed = (REPO / "schemas" / "plan.schema.json").read_text()
    assert committed == plan_schema_text(), "schemas/plan.schema.json drifted: run `naestro schema`"


def test_exported_names_are_pinned() -> None:
    assert sorted(naestro.__all__) == sorted([
        "Budget", "BudgetExceeded", "ConfigError", "EndpointUnavailable", "NaestroError", "Plan", "PlanInvalid",
        "PlanProblem", "Role", "RunError", "Settings", "Task", "ToolFailed", "ToolFeedback", "UnknownRun",
        "UsageError", "parse_plan", "parse_plan_text", "plan_problems"])
    for name in naestro.__all__:
        assert hasattr(naestro, name)
