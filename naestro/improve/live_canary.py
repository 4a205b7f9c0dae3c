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

The traffic is every run a user starts, whoever drives it: ``naestro run`` (``beside_live``: the CLI process runs
the shadow beside the live run), the LangGraph server's graph (``shadow_served_runs``: started in the server's
event loop when the graph creates the run, not awaited by it) and a worker starting a run submitted by ``naestro
run --remote`` or the HTTP API (``naestro.distributed.advance``: beside it, as the CLI does).

Judged after every shadow and by the next ``naestro improve run``: a breach of the SLOs (a live run that passed
whose shadow failed, or success, cost, latency or safety beyond tolerance) rolls the candidate back at once, from
whichever process saw it; ``min_samples`` paired runs without a breach let the loop merge it (signed, as always).
A shadow never changes what the user's run does or reports: its errors are recorded as a failed shadow.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
from naestro.runs import RunRecord, RunStore
from naestro.runtime import Runtime
from naestro.settings import Settings

__all__ = ["PendingShadow", "beside_live", "judge", "pending_shadow", "roll_back", "settled_shadows",
           "shadow_of_record", "shadow_served_runs", "shadowed"]

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


@dataclass
class PendingShadow:
    """A shadow decided for a live run about to start: the seed is already copied (before the live run touches
    the workspace: --in-place changes the source itself); ``run`` runs it, ``record`` pairs it with the live run."""

    settings: Settings
    provider: ModelProvider
    canary: Standing
    goal: str
    plan: Plan | None
    scratch: Path

    async def run(self) -> Outcome:
        try:
            return await _shadow(self.settings, self.provider, self.canary, goal=self.goal, plan=self.plan,
                                 seed=self.scratch / "seed", scratch=self.scratch)
        finally:
            await asyncio.to_thread(shutil.rmtree, self.scratch, True)

    def record(self, live_run: str, shadow: Outcome) -> None:
        """Append the pair's shadow half and judge the canary (a breach rolls it back). Blocking."""
        improve = improve_dir(self.settings.home)
        line = ShadowLine(live_run=live_run, shadow=shadow, at=datetime.now(UTC).isoformat(timespec="seconds"))
        try:
            record_shadow(improve, self.canary.proposal, line)
            report = judge(improve, self.canary, RunStore(self.settings.runs_dir))
            if report.breaches:
                roll_back(improve, self.canary, report)
        except (OSError, ValueError) as exc:  # the canary's files: a failure costs this pair, never the user's run
            _log.warning("live canary %s: the shadow of %s was not recorded: %s", self.canary.proposal, live_run,
                         exc)


def pending_shadow(settings: Settings, provider: ModelProvider, *, goal: str, plan: Plan | None,
                   workspace: Path | None, mode: str, draw: float | None = None) -> PendingShadow | None:
    """A shadow for the run about to start when a candidate stands and the draw (default: random) falls under its
    fraction, with the starting files copied; else None. A guide-mode run is not shadowed: it proposes and runs
    nothing, so there is no outcome to compare with. Blocking (copies the workspace)."""
    if mode == "guide":
        return None
    try:
        canary = standing(improve_dir(settings.home))
    except (OSError, ValueError):  # unreadable: the user's run goes ahead unshadowed
        return None
    if canary is None or (random.random() if draw is None else draw) >= canary.fraction:
        return None
    scratch = Path(tempfile.mkdtemp(prefix="naestro-live-shadow-"))
    try:
        if workspace is not None:
            copy_workspace(workspace, scratch / "seed", leave_out=(settings.home,))
        else:
            (scratch / "seed").mkdir()
    except OSError as exc:  # an unreadable file in the user's folder: no shadow, the run goes ahead
        shutil.rmtree(scratch, ignore_errors=True)
        _log.warning("live canary %s: no shadow, the starting files could not be copied: %s", canary.proposal, exc)
        return None
    return PendingShadow(settings, provider, canary, goal, plan, scratch)


async def shadowed(live: Awaitable[RunResult], pending: PendingShadow | None) -> RunResult:
    """Await the live run beside its shadow (if any) and record the pair. The live result is returned as the live
    run made it, whatever the shadow did."""
    if pending is None:
        return await live
    result, shadow = await gathered(live, pending.run())
    await asyncio.to_thread(pending.record, result.record.run_id, shadow)
    return result


async def beside_live(live: Awaitable[RunResult], *, settings: Settings, provider: ModelProvider, goal: str,
                      plan: Plan | None, workspace: Path | None, mode: str = "copilot",
                      draw: float | None = None) -> RunResult:
    """``naestro run``: the live run with its shadow when one is drawn (``pending_shadow``)."""
    pending = await asyncio.to_thread(functools.partial(pending_shadow, settings, provider, goal=goal, plan=plan,
                                                        workspace=workspace, mode=mode, draw=draw))
    return await shadowed(live, pending)


async def shadow_of_record(settings: Settings, provider: ModelProvider, record: RunRecord,
                           plan: Plan | None) -> PendingShadow | None:
    """``pending_shadow`` for a run whose record exists (served and worker-started runs), off the event loop."""
    return await asyncio.to_thread(functools.partial(
        pending_shadow, settings, provider, goal=record.goal, plan=plan, workspace=Path(record.workspace),
        mode=record.policy.mode))


_BACKGROUND: set[asyncio.Task[None]] = set()  # shadows of served runs: referenced until done


def shadow_served_runs(runtime: Runtime) -> Callable[[RunRecord, Plan | None], Awaitable[None]]:
    """For the LangGraph server's graph (``graphs.app``): a run the graph creates is shadowed in the background of
    the server's event loop. The live run's node does not wait for it (the run may wait for consent for hours);
    the shadow's half is recorded when it ends, and the pair is judged once the live run has ended too
    (``judge``). A server stopped first loses that pair, never the user's run."""
    async def on_created(record: RunRecord, plan: Plan | None) -> None:
        pending = await shadow_of_record(runtime.settings, runtime.provider, record, plan)
        if pending is None:
            return

        async def shadow() -> None:
            await asyncio.to_thread(pending.record, record.run_id, await pending.run())
        task = asyncio.get_running_loop().create_task(shadow(), name=f"shadow of {record.run_id}")
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
    return on_created


async def settled_shadows() -> None:
    """Wait for the background shadows this process started (tests use it; nothing calls it at server shutdown)."""
    while _BACKGROUND:
        await asyncio.gather(*list(_BACKGROUND), return_exceptions=True)


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
