"""Live canary: a validated candidate config runs beside the current one on a share of the runs users start.

``naestro improve run --live-canary`` puts a validated proposal on canary instead of shadowing finished runs after
the fact (``naestro.improve.canary``): its candidate tree is kept in HOME/improve/canary/<id>.json (one standing
canary at a time: two candidates would share the traffic and neither would be measured). While it stands, each
``naestro run`` of a new goal is shadowed with probability ``fraction``: the candidate runtime starts the same goal
(or plan) at the same time, from a copy of the same starting files taken before the live run touched them, in a
throwaway home under the side policy (auto mode, exec.run in the copy only: no network, no writes outside it, no
router or memory updates). The shadow's outcome is appended to <id>.pairs.jsonl under the live run's id; the live
run's own outcome is read from its events when the canary is judged, so a live run that paused for consent still
pairs once it ends.

Judged after every shadow and by the next ``naestro improve run``: a breach of the SLOs (a live run that passed
whose shadow failed, or success, cost, latency or safety beyond tolerance) rolls the candidate back at once, from
whichever process saw it; ``min_samples`` paired runs without a breach let the loop merge it (signed, as always).
A shadow never changes what the user's run does or reports: its errors are recorded as a failed shadow.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path

from naestro.errors import UsageError
from naestro.gathered import gathered
from naestro.homes import copy_workspace
from naestro.improve.canary import CanaryReport, ShadowPair, judged, live_outcome, shadow_outcome
from naestro.improve.findings import FindingsQueue
from naestro.improve.ledger import ProposalRecord, append, improve_dir
from naestro.improve.standing import ShadowLine, Standing, record_shadow, shadow_lines, standing, withdraw
from naestro.improve.validate import Outcome, side_runtime
from naestro.llm import ModelProvider
from naestro.plan import Plan
from naestro.runner import Runner, RunResult
from naestro.runs import RunStore
from naestro.settings import Settings

__all__ = ["beside_live", "judge", "roll_back"]

_log = logging.getLogger(__name__)


def judge(improve: Path, canary: Standing, live: RunStore) -> CanaryReport:
    """The canary so far: each shadow paired with its live run once that run has ended, against the SLOs (a lost
    paired run at once; the totals once there are ``min_samples`` pairs)."""
    lines = shadow_lines(improve, canary.proposal)
    report = CanaryReport(fraction=canary.fraction, considered=len(lines), min_samples=canary.min_samples)
    for line in lines:
        try:
            record = live.load(line.live_run)
        except UsageError:
            continue  # the live run was deleted: nothing to compare with
        if record.status in ("passed", "failed"):  # else still running or waiting for consent: paired when it ends
            report.pairs.append(ShadowPair(live=live_outcome(live, record), shadow=line.shadow))
    return judged(report, canary.slo, totals=len(report.pairs) >= canary.min_samples)


async def _shadow(settings: Settings, provider: ModelProvider, canary: Standing, *, goal: str, plan: Plan | None,
                  seed: Path, scratch: Path) -> Outcome:
    runtime = side_runtime(settings, provider, canary.candidate, scratch / "home")
    try:
        return await shadow_outcome(Runner.of(runtime), goal, plan=plan, seed=seed, label=goal[:80],
                                    timeout_s=canary.timeout_s)
    finally:
        await runtime.aclose()


async def beside_live(live: Awaitable[RunResult], *, settings: Settings, provider: ModelProvider, goal: str,
                      plan: Plan | None, workspace: Path | None, mode: str = "copilot",
                      draw: float | None = None) -> RunResult:
    """Await the live run; when a candidate stands and the draw (default: random) falls under its fraction, shadow
    it at the same time, record the pair and roll the candidate back on a breach. The live result is returned as
    the live run made it, whatever the shadow did. A guide-mode run is not shadowed: it proposes and runs nothing,
    so there is no outcome to compare with."""
    if mode == "guide":
        return await live
    improve = improve_dir(settings.home)
    try:
        canary = standing(improve)
    except (OSError, ValueError):  # unreadable: the user's run goes ahead unshadowed
        canary = None
    if canary is None or (random.random() if draw is None else draw) >= canary.fraction:
        return await live
    scratch = Path(tempfile.mkdtemp(prefix="naestro-live-shadow-"))
    try:
        seed = scratch / "seed"  # copied before the live run starts: --in-place changes the source itself
        if workspace is not None:
            copy_workspace(workspace, seed, leave_out=(settings.home,))
        else:
            seed.mkdir()
        result, shadow = await gathered(live, _shadow(settings, provider, canary, goal=goal, plan=plan, seed=seed,
                                                      scratch=scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    line = ShadowLine(live_run=result.record.run_id, shadow=shadow, at=datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        record_shadow(improve, canary.proposal, line)
        report = judge(improve, canary, RunStore(settings.runs_dir))
        if report.breaches:
            roll_back(improve, canary, report)
    except (OSError, ValueError) as exc:  # the canary's files: a failure costs this pair, never the user's result
        _log.warning("live canary %s: the shadow of %s was not recorded: %s", canary.proposal,
                     result.record.run_id, exc)
    return result


def roll_back(improve: Path, canary: Standing, report: CanaryReport) -> ProposalRecord | None:
    """The automatic rollback: off canary, ``rolled_back`` in the ledger and the findings queue; ``main`` and the
    active release were never touched. None when another process withdrew it first (recorded once)."""
    if not withdraw(improve, canary.proposal):
        return None
    reasons = ["canary: " + r for r in report.breaches]
    queue = FindingsQueue(improve / "findings.json")
    queue.mark_proposal(canary.proposal, "rolled_back", note="; ".join(reasons)[:500])
    return append(improve, ProposalRecord(id=canary.proposal, kind=canary.kind, title=canary.title,
                                          state="rolled_back", reasons=reasons, branch=canary.branch,
                                          validation=canary.validation, canary=report))
