"""Role definitions (roles.yaml) loaded into typed models."""

from __future__ import annotations

from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naestro.errors import ConfigError
from naestro.limits import Budget
from naestro.plan import Role

__all__ = ["RoleSpec", "load_roles"]


class RoleSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    prompt: str = Field(min_length=1)
    tools: tuple[str, ...]
    model: str = "default"
    budget: Budget = Budget()
    max_steps: int = Field(default=8, ge=1, le=40)
    verify_with: str | None = Field(default=None, description=(
        "a tool the agent must have called before its first finish is accepted (the Coder runs what it wrote)"))


def load_roles() -> dict[Role, RoleSpec]:
    text = resources.files("nodes").joinpath("roles.yaml").read_text()
    data = yaml.safe_load(text)
    try:
        roles = {Role(name): RoleSpec.model_validate(spec) for name, spec in data.items()}
    except (ValueError, ValidationError) as exc:
        raise ConfigError(str(exc), file="nodes/roles.yaml") from exc
    missing = set(Role) - set(roles)
    if missing:
        raise ConfigError(f"roles without a definition: {sorted(missing)}", file="nodes/roles.yaml")
    return roles
