"""What a compiled graph's nodes need at run time, passed as LangGraph runtime context (never checkpointed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from naestro.budget import RunBudget
from naestro.events import EventLog
from naestro.llm import ModelProvider, ModelReply
from naestro.nodes.roles import RoleSpec
from naestro.plan import Plan, Role
from naestro.toolbus import ToolBus, ToolResult


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

    def record_model_call(self, task_id: str, reply: ModelReply, *, purpose: str = "agent") -> None:
        """The one event shape for a model call, whoever made it (agent, evaluator, reporter)."""
        self.events.emit("model_call", task=task_id, endpoint=reply.endpoint, prompt_tokens=reply.prompt_tokens,
                         completion_tokens=reply.completion_tokens, latency_s=reply.latency_s,
                         cost_usd=reply.cost_usd, purpose=purpose)

    def record_tool_call(self, task_id: str, result: ToolResult) -> None:
        """The tool receipt as an event: what was called, whether it worked, hashes of what went in and out."""
        self.events.emit("tool_call", task=task_id, tool=result.tool, ok=result.ok, duration_s=result.duration_s,
                         args_sha256=result.args_sha256, result_sha256=result.result_sha256)
