"""Retention and redaction: what memory may keep, and for how long.

Redaction reuses ``naestro.redact`` (secret and PII patterns, plus presidio's checksummed recognizers when the
``redact`` extra is installed): every string of an episode goes through it before a store sees it, even though
run files are redacted when written, because a placeholder is idempotent and a pattern added later should not
find raw values in memory. Retention keeps the newest ``keep_runs`` runs and nothing older than
``max_age_days``; ``naestro memory forget`` removes a run (or everything older than a date) on request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from naestro.memory.records import Entity, Episode, MemoryHit
from naestro.redact import redact

__all__ = ["Retention", "redacted", "runs_to_forget"]


class Retention(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    keep_runs: int = Field(default=1000, ge=1, description="runs kept; older runs' episodes are forgotten")
    max_age_days: float | None = Field(default=180.0, gt=0, description="episodes older than this are forgotten")

    def cutoff(self, now: datetime) -> datetime | None:
        return now - timedelta(days=self.max_age_days) if self.max_age_days is not None else None


def redacted(episode: Episode) -> Episode:
    """The episode with secrets and PII replaced by stable placeholders (``[REDACTED:secret:1a2b3c4d]``)."""
    def r(text: str) -> str:
        return redact(text, depth="data")
    return episode.model_copy(update={
        "goal": r(episode.goal), "text": r(episode.text), "plan": r(episode.plan) if episode.plan else None,
        "entities": tuple(Entity(kind=e.kind, name=r(e.name)) for e in episode.entities)})


def runs_to_forget(runs: Sequence[MemoryHit], retention: Retention) -> list[str]:
    """Run ids past the count limit: the newest ``keep_runs`` run episodes stay."""
    newest = sorted({h.run_id: h for h in runs if h.kind == "run"}.values(), key=lambda h: h.valid_at, reverse=True)
    return [h.run_id for h in newest[retention.keep_runs:]]
