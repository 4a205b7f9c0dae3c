"""The policy's input and output, as pydantic models: the contract between the gate and any Rego engine.

Paths and URLs are facts computed by the gate (resolved paths, parsed hosts) so that every engine sees
the same strings and no engine needs filesystem or DNS builtins.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = ["Action", "Actor", "ApprovedScope", "BudgetLine", "Context", "Decision", "Mode", "PathFact",
           "PolicyInput", "RunPolicy", "UrlFact"]

Mode = Literal["guide", "copilot", "auto"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Actor(_Model):
    run: str
    task: str
    role: str
    mode: Mode = "copilot"


class PathFact(_Model):
    arg: str
    resolved: str = Field(description="absolute, with `..` and symlinks resolved; empty when `problem` is set")
    problem: str | None = Field(default=None, description="why it cannot be resolved (a NUL byte, a symlink loop, "
                                "a glob climbing after a wildcard); the policy denies it")


class UrlFact(_Model):
    arg: str
    url: str
    scheme: str
    host: str
    ip: bool
    private: bool
    loopback: bool
    addresses: list[str] = Field(default_factory=list)


class EndpointFact(_Model):
    name: str
    locality: str


class Action(_Model):
    kind: Literal["tool", "model", "memory"]  # memory: a recall of memory slices (policies/rego/memory.rego)
    tool: str = ""
    registered: bool = False
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    paths: list[PathFact] = Field(default_factory=list)
    urls: list[UrlFact] = Field(default_factory=list)
    endpoint: EndpointFact | None = None
    estimate: dict[str, float] = Field(default_factory=dict)


class ApprovedScope(_Model):
    """A pre-approval: tools matching ``tool`` (a glob such as ``fs.*``), optionally only under a folder."""

    tool: str
    under: str | None = None

    @classmethod
    def parse(cls, text: str) -> ApprovedScope:
        """``exec.run`` or ``fs.write:/abs/folder`` (the CLI's --approve syntax)."""
        tool, sep, under = text.partition(":")
        return cls(tool=tool, under=under if sep else None)


class BudgetLine(_Model):
    spent: float
    limit: float | None


class Quarantine(_Model):
    tools: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)


class Window(_Model):
    calls: int = 0
    window_s: int = 60


class Context(_Model):
    workspace: str
    scratch: bool = True
    roots: list[str] = Field(default_factory=list)
    allowed_domains: list[str] = Field(default_factory=list)
    allowed_cidrs: list[str] = Field(default_factory=list)
    approved: list[ApprovedScope] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    data_labels: list[str] = Field(default_factory=list)
    quarantined: Quarantine = Field(default_factory=Quarantine)
    window: Window = Field(default_factory=Window)
    budget: dict[str, dict[str, BudgetLine]] = Field(default_factory=dict)
    protected: list[str] = Field(default_factory=list)
    """Resolved paths the run's goal says must not change: write-only tools may not write them."""


class PolicyInput(_Model):
    actor: Actor
    action: Action
    context: Context

    def document(self) -> dict[str, JsonValue]:
        """The JSON document every engine receives as ``input``."""
        return self.model_dump(mode="json")


class RunPolicy(_Model):
    """A run's policy settings, chosen at ``naestro run`` and kept in run.json so a resume decides alike."""

    mode: Mode = "copilot"
    approve: list[ApprovedScope] = Field(default_factory=list)
    allow_domains: list[str] = Field(default_factory=list)
    allow_cidrs: list[str] = Field(default_factory=list)
    roots: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    scratch: bool = Field(default=True, description="the workspace is Naestro's own copy (not --in-place)")


class Decision(BaseModel):
    """What the policy said. Exactly one of allow / ask / deny (neither flag) holds."""

    model_config = ConfigDict(frozen=True)
    allow: bool
    ask: bool
    reasons: list[str]
    obligations: dict[str, JsonValue] = Field(default_factory=dict)
    rules: list[str] = Field(default_factory=list)  # the ids of the rules that fired (budget, role_tools, ...)

    @property
    def verdict(self) -> Literal["allow", "ask", "deny"]:
        return "allow" if self.allow else "ask" if self.ask else "deny"

    @classmethod
    def fail_closed(cls, reason: str) -> Decision:
        """An engine error never allows: deny and say why."""
        return cls(allow=False, ask=False, reasons=[f"policy engine error (failing closed): {reason}"])
