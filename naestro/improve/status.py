"""``naestro improve status``: the active release, each proposal's latest state, the findings queue and the
proposal on live canary with its shadowed runs so far."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from naestro.improve.canary import CanaryReport
from naestro.improve.findings import FindingsQueue, QueuedFinding
from naestro.improve.ledger import ProposalRecord, improve_dir, ledger
from naestro.improve.live_canary import judge
from naestro.improve.release import releases
from naestro.improve.standing import standing
from naestro.runs import RunStore
from naestro.settings import Settings

__all__ = ["CanaryStatus", "ImproveStatus", "status"]


class CanaryStatus(BaseModel):
    proposal: str
    title: str
    since: str
    fraction: float
    min_samples: int
    report: CanaryReport  # the shadowed runs whose live run has ended, judged against the SLOs so far


def _canary(improve: Path, settings: Settings) -> CanaryStatus | None:
    canary = standing(improve)
    if canary is None:
        return None
    return CanaryStatus(proposal=canary.proposal, title=canary.title, since=canary.since, fraction=canary.fraction,
                        min_samples=canary.min_samples, report=judge(improve, canary, RunStore(settings.runs_dir)))


class ImproveStatus(BaseModel):
    active: str | None
    releases: list[str]
    proposals: list[ProposalRecord]
    findings: dict[str, int]
    open: list[QueuedFinding]
    canary: CanaryStatus | None = None


def status(settings: Settings) -> ImproveStatus:
    """What ``naestro improve status`` shows: the active release, each proposal's latest state, the findings."""
    improve = improve_dir(settings.home)
    queue = FindingsQueue(improve / "findings.json").items()
    latest: dict[str, ProposalRecord] = {}
    for r in ledger(improve):
        latest[r.id] = r.model_copy(update={"validation": None, "canary": None})
    states = sorted({i.state for i in queue})
    return ImproveStatus(active=(improve / "active").resolve().name if (improve / "active").exists() else None,
                         releases=[r.version for r in releases(improve)], proposals=list(latest.values()),
                         findings={s: sum(i.state == s for i in queue) for s in states},
                         open=[i for i in queue if i.state == "open"], canary=_canary(improve, settings))
