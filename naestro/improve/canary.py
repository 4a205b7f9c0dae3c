"""Canary: shadow traffic. The candidate config runs beside the current one on a fraction of live tasks (the
newest finished runs of this home made under the active release), and the results are compared against SLOs for
success, latency, cost and safety. A breach rolls the candidate back automatically: it never reaches ``main`` and
the active release.

No side effects from the shadow: each shadow run starts from a copy of the live run's starting files (its first
workspace snapshot, read only) in a throwaway home of its own (runs, checkpoints, audit), with no router (no
bandit update), no memory, and a policy that allows exec.run in that copy and denies every other side-effecting
tool (auto mode, nothing else pre-approved): no network, no external tools, no writes outside the copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from naestro.events import read_events
from naestro.improve.counterexample import starting_files
from naestro.improve.validate import (
    SIDE_POLICY,
    Metrics,
    Outcome,
    Tolerance,
    metrics_of,
    outcome_of_events,
    regressions,
    seed_workspace,
)
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.runs import RunRecord, RunStore
from naestro.runtime import Runtime

__all__ = ["CanaryReport", "ShadowPair", "default_slo", "judged", "live_outcome", "paired_breaches", "run_canary",
           "sampled", "shadow_outcome"]


def default_slo() -> Tolerance:
    """Live traffic is noisier than a suite: success may not drop, latency and cost get wider margins."""
    return Tolerance(pass_rate_drop=0.0, tokens_ratio=1.5, tokens_slack=500, cost_ratio=1.5, wall_ratio=2.0,
                     wall_slack_s=60.0, denials_slack=0)


class ShadowPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    live: Outcome
    shadow: Outcome


class CanaryReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fraction: float
    considered: int
    pairs: list[ShadowPair] = Field(default_factory=list)
    live: Metrics | None = None
    shadow: Metrics | None = None
    breaches: list[str] = Field(default_factory=list)
    min_samples: int = 1

    @property
    def inconclusive(self) -> bool:
        return len(self.pairs) < self.min_samples

    @property
    def passed(self) -> bool:
        return not self.breaches and not self.inconclusive


def sampled(run_id: str, salt: str, fraction: float) -> bool:
    """A stable draw: the same run is shadowed (or not) for the same proposal every time."""
    digest = hashlib.sha256(f"{salt}\0{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def live_outcome(store: RunStore, record: RunRecord) -> Outcome:
    """A finished live run's outcome, from its events (the live side of a pair)."""
    events = read_events(store.dir(record.run_id) / "events.jsonl")
    return outcome_of_events(events, goal=record.run_id, passed=record.status == "passed", run_id=record.run_id)


async def shadow_outcome(runner: Runner, goal: str, *, seed: Path, label: str, timeout_s: float | None,
                         plan: Plan | None = None) -> Outcome:
    """The candidate's run of ``goal`` (or ``plan``) from ``seed`` under the side policy; one that crashes or
    times out is a failed shadow, recorded with why. ``label`` names the pair (the live run it shadows)."""
    try:
        result = await asyncio.wait_for(runner.start(goal, plan=plan, workspace=seed, policy=SIDE_POLICY), timeout_s)
        events = read_events(runner.store.dir(result.record.run_id) / "events.jsonl")
    except Exception as exc:  # noqa: BLE001 - a shadow that crashes is a failed shadow, recorded with why
        return Outcome(goal=label, passed=False, error=f"{exc.__class__.__name__}: {exc}"[:300])
    return outcome_of_events(events, goal=label, passed=result.passed, run_id=result.record.run_id)


def judged(report: CanaryReport, slo: Tolerance, *, totals: bool = True) -> CanaryReport:
    """``report`` with its metrics and breaches: a lost paired run always, the totals when ``totals``."""
    if report.pairs:
        report.live = metrics_of([p.live for p in report.pairs])
        report.shadow = metrics_of([p.shadow for p in report.pairs])
        report.breaches = paired_breaches(report.pairs)
        if totals:
            report.breaches += regressions(report.live, report.shadow, slo)
    return report


def paired_breaches(pairs: list[ShadowPair]) -> list[str]:
    """A live run that passed and whose shadow failed is a breach on its own, whatever the totals say: a candidate
    that fixes one task and breaks another must not average out."""
    broken = [p.live.run_id for p in pairs if p.live.passed and not p.shadow.passed]
    return [f"success: the shadow failed {len(broken)} live run(s) that passed ({', '.join(broken)})"] if broken else []


async def run_canary(live: RunStore, candidate: Runtime, *, salt: str, fraction: float, last: int, slo: Tolerance,
                     since: str | None = None, min_samples: int = 1, timeout_s: float | None = None) -> CanaryReport:
    """Shadow the sampled live runs with ``candidate`` and compare to SLOs. Live runs: the newest ``last`` finished
    ones created ``since`` the active release (ISO time), so the live side ran on the current config."""
    finished = [r for r in live.list() if r.status in ("passed", "failed")
                and (since is None or r.created >= since)][-last:]
    report = CanaryReport(fraction=fraction, considered=len(finished), min_samples=min_samples)
    runner = Runner.of(candidate)
    scratch = Path(tempfile.mkdtemp(prefix="naestro-shadow-"))
    try:
        for record in finished:
            if not sampled(record.run_id, salt, fraction):
                continue
            files = starting_files(live, record.run_id)
            if files is None:
                continue  # pruned: nothing to start the shadow from
            seed = seed_workspace(files, scratch / record.run_id)
            report.pairs.append(ShadowPair(live=live_outcome(live, record), shadow=await shadow_outcome(
                runner, record.goal, seed=seed, label=record.run_id, timeout_s=timeout_s)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return judged(report, slo)
