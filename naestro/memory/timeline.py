"""The data behind the Studio's memory timeline (and ``naestro memory timeline --json``): plain JSON, newest first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import JsonValue

from naestro.memory.records import SLICES, EpisodeKind, Slice

if TYPE_CHECKING:
    from naestro.memory.fabric import Memory

__all__ = ["timeline_json"]


async def timeline_json(memory: Memory, *, run_id: str | None = None, slices: Sequence[Slice] = SLICES,
                        kinds: Sequence[EpisodeKind] | None = None, limit: int = 200) -> dict[str, JsonValue]:
    """Episodes newest first (by valid time), counts per kind and outcome, the runs in order, and the skills."""
    hits = await memory.timeline(slices=slices, run_id=run_id, kinds=kinds, limit=limit)
    counts = Counter(f"{h.kind}:{h.outcome}" for h in hits)
    skills = memory.skills.load()
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "episodes": [{"key": h.key, "run_id": h.run_id, "kind": h.kind, "slice": h.slice, "outcome": h.outcome,
                      "valid_at": h.valid_at.isoformat(), "text": h.text} for h in hits],
        "counts": dict(counts),
        "runs": list(dict.fromkeys(h.run_id for h in hits)),
        "skills": [{"id": s.id, "name": s.name, "support": s.support, "success_rate": s.success_rate,
                    "keywords": list(s.keywords)} for s in skills],
    }
