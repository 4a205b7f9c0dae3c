"""What memory holds: typed episodes with a valid time, the entities they mention, and what a recall returns.

Naestro writes its own structured facts (a run, a task outcome, an evaluator verdict, a policy denial, a consent)
as typed episodes. Nothing here comes from LLM extraction: with the local 1.5B model Graphiti's extraction took
~100 s per short episode and produced junk entities (FACTS.md, "Memory (Graphiti)").

Slices are Graphiti group ids: ``plans`` (goals, their plans and outcomes, skills: what the Planner reads) and
one slice per role (a task's outcome, verdicts, denials and consents go to the slice of the role that did it).
Who may read which slice is policy (``policies/rego/memory.rego``), not code.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["SLICES", "Entity", "EntityKind", "Episode", "EpisodeKind", "MemoryHit", "Outcome", "Slice",
           "derived_uuid", "group_id", "slice_of"]

EpisodeKind = Literal["run", "task", "verdict", "denial", "consent", "counterexample"]
"""``counterexample``: a failed run the self-improvement loop merged a fix for (issue 21, improve/remember.py)."""
EntityKind = Literal["goal", "file", "tool", "model", "skill"]
Outcome = Literal["passed", "failed", "denied", "approved", "refused"]
Slice = Literal["plans", "researcher", "coder", "reviewer", "runner", "dataops", "evaluator", "reporter"]
SLICES: tuple[Slice, ...] = ("plans", "researcher", "coder", "reviewer", "runner", "dataops", "evaluator",
                             "reporter")

_GROUP_PREFIX = "naestro_"  # a FalkorDB server by URL may hold other graphs: ours are named apart
_NAMESPACE = uuid.UUID("6f1d3c52-9a43-4f0e-8d0e-5b1a4e6c7d21")


def derived_uuid(*parts: str) -> str:
    """A stable id from names: writing the same fact twice merges into one node or edge."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def group_id(slice_: Slice) -> str:
    """The Graphiti group id (a graph of its own on FalkorDB) of a slice."""
    return _GROUP_PREFIX + slice_


def slice_of(group: str) -> Slice:
    name = group.removeprefix(_GROUP_PREFIX)
    for s in SLICES:
        if s == name:
            return s
    raise ValueError(f"not a memory group id: {group!r}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Entity(_Frozen):
    """A thing episodes mention; one node per (slice, kind, name), so runs that touch it meet there."""

    kind: EntityKind
    name: str = Field(min_length=1, max_length=300)

    def uuid(self, group: str) -> str:
        return derived_uuid(group, self.kind, self.name)


class Episode(_Frozen):
    """One fact Naestro knows for certain, already redacted; its identity is (run, kind, seq), so writing a run
    twice (a backfill after the live write) changes nothing."""

    kind: EpisodeKind
    run_id: str = Field(min_length=1)
    seq: int = Field(ge=0, description="order of the episode within its run")
    slice: Slice
    valid_at: AwareDatetime = Field(description="when it became true (the event's time), not when it was written")
    goal: str
    text: str = Field(min_length=1, description="the fact in one or two sentences: what search matches")
    outcome: Outcome
    role: str | None = None
    task: str | None = None
    entities: tuple[Entity, ...] = ()
    plan: str | None = Field(default=None, description="run episodes: the plan as JSON (skill reuse)")

    @property
    def key(self) -> str:
        return f"{self.run_id}/{self.kind}/{self.seq}"

    @property
    def uuid(self) -> str:
        return derived_uuid(self.key)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class MemoryHit(_Frozen):
    """One recalled episode: what a node, the CLI or the Studio timeline shows."""

    key: str
    run_id: str
    kind: EpisodeKind
    slice: Slice
    valid_at: datetime
    text: str
    outcome: Outcome
    score: float = 0.0
    plan: str | None = None
