"""Learn: a merged proposal's counter-example goes to memory too, not only to the golden suite (issue 21).

The golden suite keeps every later proposal from breaking it again; memory lets the Planner of a later, similar
goal see it before planning ("COUNTER-EXAMPLE: ... failed at task T: <what failed>. Fixed by: <the change>"), in
the ``plans`` slice it recalls from (``Memory.planner_context``). One typed episode per merged counter-example,
keyed by the failed run (``forget``, retention and ``naestro memory timeline`` treat it like that run's other
episodes), redacted like every episode, written only when the home's runs use memory (``NAESTRO_MEMORY``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import ValidationError

from naestro.golden import GoldenGoal
from naestro.improve.proposal import Proposal
from naestro.memory.records import Entity, Episode
from naestro.settings import Settings

__all__ = ["counterexample_episode", "remember_counterexample"]

_TEXT = 900  # characters of the fact: what failed and what changed, not the whole evidence


def counterexample_episode(proposal: Proposal, *, version: str, when: datetime | None = None) -> Episode | None:
    """The episode of the proposal's counter-example; None when it has none (no target goal or finding)."""
    finding = proposal.finding
    path = f"golden/{proposal.target_goal}.json"
    golden = next((c.text for c in proposal.changes if c.path == path and c.text is not None), None)
    if finding is None or golden is None:
        return None
    try:
        goal = GoldenGoal.model_validate_json(golden)
    except ValidationError:
        return None  # validation refused such a proposal already; nothing to remember
    text = " ".join(f"Counter-example {goal.id} (release {version}): the goal {goal.goal!r} failed at task "
                    f"{finding.task}: {finding.evidence}. Fixed by self-improvement: {proposal.title}.".split())
    return Episode(kind="counterexample", run_id=finding.run, seq=0, slice="plans", valid_at=when or datetime.now(UTC),
                   goal=goal.goal, text=text if len(text) <= _TEXT else text[:_TEXT - 1] + "…", outcome="failed",
                   task=finding.task, entities=(Entity(kind="goal", name=goal.goal[:300] or goal.id),))


async def remember_counterexample(settings: Settings, episode: Episode) -> int:
    """Write it to the home's memory store (the embedded FalkorDB or ``NAESTRO_MEMORY_URL``); 0 when memory is off."""
    if not settings.memory:
        return 0
    from naestro.memory.embedder import MiniLM  # torch and graphiti load only when memory is on
    from naestro.memory.retention import redacted
    from naestro.memory.store import open_store

    store = open_store(data_dir=settings.home / "memory", url=settings.memory_url, model=MiniLM())
    try:
        return await store.write([redacted(episode)])
    finally:
        await store.close()
