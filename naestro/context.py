"""What a compiled graph's nodes need at run time, passed as LangGraph runtime context (never checkpointed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from naestro.budget import RunBudget
from naestro.events import EventLog
from naestro.llm import ModelProvider
from naestro.nodes.roles import RoleSpec
from naestro.plan import Plan, Role
from naestro.toolbus import ToolBus


@dataclass
class RunContext:
    run_id: str
    plan: Plan
    run_dir: Path
    workspace: Path
    provider: ModelProvider
    bus: ToolBus
    events: EventLog
    roles: dict[Role, RoleSpec]
    run_budget: RunBudget = field(default_factory=lambda: RunBudget(ceiling=Plan.model_fields["budget"].default))

    def endpoint_for(self, role: Role, override: str | None = None) -> str:
        """Endpoint name for a role: the task's override, else the role's preference (default/fast aliases)."""
        wanted = override or self.roles[role].model
        registry = self.provider.registry
        if wanted == "default":
            return registry.default
        if wanted == "fast":
            return registry.fast or registry.default
        return wanted
