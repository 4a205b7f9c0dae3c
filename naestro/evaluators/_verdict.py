"""The evaluator seam: what an evaluator looks at (``Subject``), what it may use (``EvalEnv``) and what it
returns (``Verdict``).

A verdict is the reward signal for the router and the retry loop, so the type itself refuses a false
success: ``passed`` is derived from the evidence (at least one item, every item ok), never set by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from naestro.limits import SLO, Budget

__all__ = ["CommandOutcome", "Cost", "EvalEnv", "Evaluator", "Evidence", "Source", "Subject", "Usage", "Verdict"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Evidence(_Frozen):
    """One observed fact behind a verdict: what was checked, whether it held, and where."""

    check: str = Field(description="what was checked, e.g. pytest, ruff, csv.rows, claim, secret")
    ok: bool
    detail: str
    where: str = Field(default="", description="file[:line], row, or claim number")

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL'} {self.check}{f' [{self.where}]' if self.where else ''}: {self.detail}"


class Cost(_Frozen):
    """What the evaluation itself spent (model-graded evaluators spend tokens; the others only time)."""

    tokens: int = Field(default=0, ge=0)
    usd: float = Field(default=0.0, ge=0)
    wall_s: float = Field(default=0.0, ge=0)


class Verdict(_Frozen):
    evaluator: str
    passed: bool
    score: float = Field(ge=0, le=1)
    evidence: tuple[Evidence, ...] = ()
    cost: Cost = Cost()

    @model_validator(mode="after")
    def _no_false_success(self) -> Verdict:
        if self.passed and (not self.evidence or not all(e.ok for e in self.evidence)):
            raise ValueError("a verdict passes only with evidence, all of it ok")
        return self

    @classmethod
    def of(cls, evaluator: str, evidence: list[Evidence], *, score: float | None = None,
           cost: Cost | None = None) -> Verdict:
        """Passed iff there is evidence and all of it holds; score defaults to the share of evidence that holds."""
        passed = bool(evidence) and all(e.ok for e in evidence)
        if score is None:
            score = sum(e.ok for e in evidence) / len(evidence) if evidence else 0.0
        return cls(evaluator=evaluator, passed=passed, score=round(min(1.0, max(0.0, score)), 4),
                   evidence=tuple(evidence), cost=cost or Cost())

    @property
    def failures(self) -> tuple[Evidence, ...]:
        return tuple(e for e in self.evidence if not e.ok)

    def render(self, *, threshold: float | None = None, limit: int = 8) -> str:
        """Headline plus the failing evidence first: what the report shows and the next attempt is told."""
        head = f"{self.evaluator} {'passed' if self.passed else 'failed'}, score {self.score:.2f}"
        if threshold is not None:
            head += f" (threshold {threshold:.2f})"
        shown = [*self.failures, *(e for e in self.evidence if e.ok)][:limit]
        more = len(self.evidence) - len(shown)
        lines = [head, *(f"    - {e.line()}" for e in shown)]
        if more > 0:
            lines.append(f"    - ... {more} more")
        return "\n".join(lines)


class Subject(_Frozen):
    """What is being judged: a task's result (outputs, summary) with the limits it ran under."""

    task_id: str
    description: str = ""
    outputs: dict[str, JsonValue] = Field(default_factory=dict)
    summary: str = ""
    budget: Budget = Budget()
    slo: SLO = SLO()


TIMED_OUT = "timed out"
"""How evidence says a command was killed at its time limit: the Introspector reads it as "no verdict"."""


class CommandOutcome(_Frozen):
    """A command run in the sandbox. ``ok`` False: the tool call itself failed or was denied (see ``note``)."""

    ok: bool
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    note: str = ""
    timed_out: bool = False  # killed at its wall-clock limit: no verdict on what it checks


class Source(_Frozen):
    """Text the run actually read (fs.read, web.fetch, db.query, pdf.*) or observed (exec.run output)."""

    tool: str
    text: str
    about: str = ""  # the call's arguments (a path, a command) when known: what it read or ran


class Usage(_Frozen):
    """What a task spent so far, across attempts."""

    tokens: int = 0
    usd: float = 0.0
    wall_s: float = 0.0
    attempts: int = 0


class EvalEnv(Protocol):
    """What an evaluator may use. In a run: the gated, sandboxed exec tool and the run's own receipts."""

    @property
    def workspace(self) -> Path: ...

    async def run(self, command: str, *, timeout_s: float) -> CommandOutcome: ...

    def sources(self) -> list[Source]: ...

    def usage(self, task_id: str) -> Usage: ...

    def conceal(self, text: str) -> str:
        """``text`` as the run's model sees it: values the run's vault holds replaced by their handles.

        Workspace files hold real values; what an evaluator compares them with (a reference result) and what its
        evidence quotes (it becomes the next prompt) are in handle space."""
        ...


class Evaluator(Protocol):
    """An evaluator is its parameters (a frozen model, parsed from the plan's ``params``) plus ``evaluate``."""

    name: ClassVar[str]

    async def evaluate(self, subject: Subject, env: EvalEnv) -> Verdict: ...
