"""The guarded self-improvement loop (issue 21): Collect → Propose → (allowlist) → Validate → Canary → Merge → Learn.

Each proposal ends in exactly one state (``refused``, ``rejected``, ``rolled_back``, ``merged``; ``canary`` while it
is shadowed live), recorded in HOME/improve/ledger.jsonl (``naestro.improve.ledger``) with its reasons and
measurements.

The self-PR (branch ``improve/<id>`` in the config repository, the patch and the rationale under
HOME/improve/proposals/) stays whatever the outcome, for the record.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from naestro.errors import UsageError
from naestro.improve.active import LEARNED_FROM, PRIORS
from naestro.improve.adapter_rule import tool_adapter_for
from naestro.improve.allowlist import check_proposal, normalised_path
from naestro.improve.canary import CanaryReport, default_slo, run_canary
from naestro.improve.counterexample import counterexample_of
from naestro.improve.findings import FindingsQueue, QueuedFinding
from naestro.improve.learn import learned_from_yaml, priors_from, priors_yaml
from naestro.improve.ledger import ProposalRecord, ProposalState, append, improve_dir, ledger
from naestro.improve.live_canary import judge, roll_back
from naestro.improve.model_proposer import model_prompt_delta
from naestro.improve.proposal import Change, Proposal, patch_of, prompt_delta_for
from naestro.improve.release import Release, bump, publish, releases
from naestro.improve.remember import counterexample_episode, remember_counterexample
from naestro.improve.replay import replay_recorded
from naestro.improve.repo import MAIN, ConfigRepo
from naestro.improve.standing import Standing, stand, standing, withdraw
from naestro.improve.validate import Metrics, Tolerance, Validation, side_runtime, validate
from naestro.llm import ModelProvider
from naestro.router import Router
from naestro.router.bandit import ArmStats
from naestro.runs import RunStore
from naestro.settings import Settings
from naestro.tooladapter import adapter_path
from policies.engines import PolicyEngine

__all__ = ["ImproveLoop", "LoopOptions", "changelog_entry"]

class LoopOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    last: int = Field(default=20, ge=1, description="collect findings from, and shadow, the newest N finished runs")
    k: int = Field(default=1, ge=1, description="attempts per golden goal and config in validation")
    fraction: float = Field(default=0.5, gt=0, le=1, description="share of live runs the canary shadows")
    min_samples: int = Field(default=1, ge=0, description="fewer shadowed runs than this: inconclusive, not merged")
    tolerance: Tolerance = Tolerance()
    slo: Tolerance = Field(default_factory=default_slo)
    attempt_timeout_s: float | None = Field(default=900.0, gt=0)
    model_proposals: bool = Field(default=False, description="ask a model for a prompt sentence when no rule applies")
    replays: int = Field(default=3, ge=0, description="recorded runs (of the newest `last`) replayed offline under a "
                         "candidate that keeps the role prompts")
    live_canary: bool = Field(default=False, description="put a validated proposal on live canary (shadowing the "
                              "runs users start from now on) instead of shadowing the newest finished runs")


def _fmt(m: Metrics | None) -> str:
    if m is None:
        return "-"
    return f"{m.passed}/{m.n} passed, {m.tokens:.0f} tokens, p95 {m.wall_p95_s:.1f} s, {m.denials} denials"


def changelog_entry(*, version: str, proposal: Proposal, patch: str, validation: Validation, canary: CanaryReport,
                    priors: str | None) -> str:
    """Generated from the diff and the measured deltas (nothing here is written by a model)."""
    added: dict[str, int] = {}
    removed: dict[str, int] = {}
    current = ""
    for line in patch.splitlines():
        if line.startswith("+++ "):
            current = line[6:] if line.startswith("+++ b/") else line[4:]
            added.setdefault(current, 0)
            removed.setdefault(current, 0)
        elif line.startswith("--- ") and line[4:] != "/dev/null":
            current = line[6:]
        elif line.startswith("+") and not line.startswith("+++"):
            added[current] = added.get(current, 0) + 1
        elif line.startswith("-") and not line.startswith("---"):
            removed[current] = removed.get(current, 0) + 1
    files = ", ".join(f"{p} (+{added[p]} -{removed.get(p, 0)})" for p in added)
    lines = [f"## {version}", "", f"- {proposal.kind} {proposal.id}: {proposal.title}", f"- files: {files}",
             f"- validation ({len(validation.goals)} golden goal(s) x k={validation.k}): current "
             f"{_fmt(validation.current)} -> candidate {_fmt(validation.candidate)}",
             *([f"- replay: {validation.replay.summary()}"] if validation.replay is not None else []),
             f"- canary ({len(canary.pairs)} of {canary.considered} live run(s) shadowed, fraction "
             f"{canary.fraction}): live {_fmt(canary.live)} -> shadow {_fmt(canary.shadow)}",
             f"- why: {proposal.rationale.splitlines()[0]}"]
    if priors is not None:
        lines.append(f"- router priors from win-rates: {priors.strip() or '[]'}".replace("\n", " "))
    return "\n".join(lines) + "\n"


@dataclass
class ImproveLoop:
    """One home's loop. ``provider`` runs validation and shadow attempts (the live endpoints, or scripted text in
    tests); ``engine`` decides the allowlist (the home's policy engine); ``key`` signs releases."""

    settings: Settings
    provider: ModelProvider
    engine: PolicyEngine
    key: Ed25519PrivateKey
    options: LoopOptions = field(default_factory=LoopOptions)
    arms: Callable[[], dict[tuple[str, str], ArmStats]] | None = None  # the router's observations, for Learn
    router: Router | None = None  # model proposals go through it when there is one
    say: Callable[[str], None] = lambda _msg: None

    def __post_init__(self) -> None:
        self.dir = improve_dir(self.settings.home)
        self.repo = ConfigRepo.open(self.dir / "config.git")
        self.queue = FindingsQueue(self.dir / "findings.json")
        self.store = RunStore(self.settings.runs_dir)

    # --- Collect and Propose ----------------------------------------------------------------------------------

    def collect(self) -> list[QueuedFinding]:
        return self.queue.collect(self.store, last=self.options.last)

    async def propose(self, item: QueuedFinding) -> Proposal | None:
        """A rule's tool adapter delta for a tool finding; else a rule's prompt delta for the finding (else, with
        ``model_proposals``, a model's); with the failed run as a new counter-example test."""
        finding = item.finding
        if finding.tool is not None:  # tool_timeout, tool_error: the tool's adapter, whoever called it
            delta = tool_adapter_for(finding, self.repo.show(MAIN, adapter_path(finding.tool)))
            return None if delta is None else self._with_counterexample(delta)
        roles_yaml = self.repo.show(MAIN, "roles.yaml") or ""
        if item.role is None:
            return None
        delta = prompt_delta_for(item.finding, role=item.role, roles_yaml=roles_yaml)
        if delta is None and self.options.model_proposals:
            delta = await model_prompt_delta(item.finding, role=item.role, roles_yaml=roles_yaml,
                                             provider=self.provider, router=self.router)
        return None if delta is None else self._with_counterexample(delta)

    def _with_counterexample(self, delta: Proposal) -> Proposal:
        """The proposal with its finding's failed run as a new golden goal it must fix (when the run has one)."""
        assert delta.finding is not None
        goal = counterexample_of(self.store, delta.finding.run, delta.finding.task)
        if goal is None:
            return delta
        test = Change(path=f"golden/{goal.id}.json", text=goal.model_dump_json(indent=1, by_alias=True) + "\n")
        return delta.model_copy(update={"changes": (*delta.changes, test), "target_goal": goal.id}).identified()

    async def run(self) -> list[ProposalRecord]:
        """Settle the proposal on live canary, if one stands; collect new findings, then (with no canary standing)
        propose and process one self-PR per open finding a rule answers."""
        settled = await self.settle()
        done: list[ProposalRecord] = [settled] if settled is not None else []
        new = self.collect()
        self.say(f"collected {len(new)} new finding(s) from the newest {self.options.last} run(s)")
        if standing(self.dir) is not None:
            return done  # one candidate at a time: new proposals wait until the standing one is settled
        for item in [i for i in self.queue.items() if i.state == "open"]:
            proposal = await self.propose(item)
            if proposal is None:
                self.queue.mark(item.key, "no_rule", note=f"no rule proposes a change for {item.finding.kind} "
                                "(left for a human)")
                continue
            earlier = next((r for r in ledger(self.dir) if r.id == proposal.id), None)
            if earlier is not None:  # the same change was decided before: answer the finding with that outcome
                self.queue.mark(item.key, earlier.state, proposal=proposal.id)
                continue
            self.queue.mark(item.key, "proposed", proposal=proposal.id)
            record = await self.process(proposal)
            self.queue.mark_proposal(proposal.id, record.state, note="; ".join(record.reasons)[:500])
            done.append(record)
        return done

    # --- one proposal through the guards ----------------------------------------------------------------------

    def _refuse(self, proposal: Proposal, state: ProposalState, reasons: list[str], *, branch: str | None = None,
                validation: Validation | None = None, canary: CanaryReport | None = None,
                seconds: dict[str, float]) -> ProposalRecord:
        self.say(f"{proposal.id} {state}: " + "; ".join(reasons))
        return append(self.dir, ProposalRecord(id=proposal.id, kind=proposal.kind, title=proposal.title,
                                                state=state, reasons=reasons, branch=branch, validation=validation,
                                                canary=canary, seconds=seconds))

    async def process(self, proposal: Proposal) -> ProposalRecord:
        proposal = proposal.identified()
        base_commit = self.repo.rev(MAIN)
        assert base_commit is not None
        base = self.repo.files(base_commit)
        seconds: dict[str, float] = {}
        started = time.monotonic()

        def lap(phase: str) -> None:
            nonlocal started
            seconds[phase] = round(time.monotonic() - started, 3)
            started = time.monotonic()

        decision = check_proposal(proposal, base, self.engine)  # before anything is written
        lap("allowlist")
        if not decision.allow:
            return self._refuse(proposal, "refused", decision.reasons, seconds=seconds)
        # The self-PR: a branch off main with the change, its patch and rationale kept beside it.
        branch = f"improve/{proposal.id}"
        patch = patch_of(base, proposal.changes)
        commit = self.repo.commit(base_commit, {normalised_path(c.path)[0]: c.text for c in proposal.changes},
                                  f"{proposal.title}\n\n{proposal.rationale}\n\nProposal: {proposal.id}\n")
        if self.repo.rev(f"refs/heads/{branch}") is None:
            self.repo.update_ref(f"refs/heads/{branch}", commit, None)
        folder = self.dir / "proposals"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{proposal.id}.patch").write_text(patch)
        (folder / f"{proposal.id}.json").write_text(proposal.model_dump_json(indent=1))
        branch_tree = self.repo.files(commit)
        learned = self._learned(proposal, branch_tree)
        candidate = {**branch_tree, **learned}  # what main will hold: validated and canaried as such
        self.say(f"{proposal.id}: self-PR on {branch} ({len(proposal.changes)} file(s)); validating")

        work = self.dir / "work" / proposal.id  # the throwaway homes of validation and shadow runs
        try:
            return await self._guard(proposal, base=base, base_commit=base_commit, branch=branch, commit=commit,
                                     candidate=candidate, learned=learned, patch=patch, work=work, seconds=seconds,
                                     lap=lap)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    async def _guard(self, proposal: Proposal, *, base: dict[str, str], base_commit: str, branch: str, commit: str,
                     candidate: dict[str, str], learned: dict[str, str], patch: str, work: Path,
                     seconds: dict[str, float], lap: Callable[[str], None]) -> ProposalRecord:
        """Validate, canary, merge: the self-PR exists already."""
        validation = await validate(settings=self.settings, provider=self.provider, current=base,
                                    candidate=candidate, target=proposal.target_goal, k=self.options.k,
                                    tolerance=self.options.tolerance, workdir=work / "validate",
                                    timeout_s=self.options.attempt_timeout_s)
        if not validation.static and self.options.replays:
            validation.replay = await replay_recorded(
                self.store, settings=self.settings, provider=self.provider, current=base, candidate=candidate,
                last=self.options.last, count=self.options.replays, workdir=work / "replay",
                timeout_s=self.options.attempt_timeout_s)
        lap("validate")
        if not validation.passed:
            return self._refuse(proposal, "rejected", validation.problems, branch=branch, validation=validation,
                                seconds=seconds)
        self.say(f"{proposal.id}: validated ({_fmt(validation.current)} -> {_fmt(validation.candidate)}); canary")

        if self.options.live_canary:
            return self._stand(proposal, branch=branch, commit=commit, base_commit=base_commit, candidate=candidate,
                               learned=learned, patch=patch, validation=validation, seconds=seconds)
        shadow = side_runtime(self.settings, self.provider, candidate, work / "shadow")
        try:
            history = releases(self.dir)
            canary = await run_canary(self.store, shadow, salt=proposal.id, fraction=self.options.fraction,
                                      last=self.options.last, slo=self.options.slo,
                                      since=history[-1].created if history else None,
                                      min_samples=self.options.min_samples, timeout_s=self.options.attempt_timeout_s)
        finally:
            await shadow.aclose()
        lap("canary")
        if not canary.passed:
            reasons = canary.breaches or [f"inconclusive: {len(canary.pairs)} live run(s) shadowed, "
                                          f"{canary.min_samples} needed"]
            return self._refuse(proposal, "rolled_back", ["canary: " + r for r in reasons], branch=branch,
                                validation=validation, canary=canary, seconds=seconds)
        return await self._merged(proposal, branch=branch, commit=commit, base_commit=base_commit, patch=patch,
                                  validation=validation, canary=canary, learned=learned, seconds=seconds, lap=lap)

    async def _merged(self, proposal: Proposal, *, branch: str, commit: str, base_commit: str, patch: str,
                      validation: Validation, canary: CanaryReport, learned: dict[str, str],
                      seconds: dict[str, float], lap: Callable[[str], None]) -> ProposalRecord:
        """Merge (signed, active), remember the counter-example, record it."""
        release = self._merge(proposal, branch=branch, branch_commit=commit, base_commit=base_commit, patch=patch,
                              validation=validation, canary=canary, learned=learned)
        lap("merge")
        self.say(f"{proposal.id}: merged as {release.version} (signed, active)")
        episode = counterexample_episode(proposal, version=release.version)
        if episode is not None:
            try:  # the release stands whatever memory says: a store that is down costs the recall, not the merge
                if await remember_counterexample(self.settings, episode):
                    self.say(f"{proposal.id}: counter-example {proposal.target_goal} remembered for the Planner")
            except Exception as exc:  # noqa: BLE001 - any store failure (driver errors included) is reported, not raised
                self.say(f"{proposal.id}: counter-example not written to memory: {type(exc).__name__}: {exc}")
            lap("remember")
        return append(self.dir, ProposalRecord(id=proposal.id, kind=proposal.kind, title=proposal.title,
                                               state="merged", branch=branch, version=release.version,
                                               validation=validation, canary=canary, seconds=seconds))

    # --- Live canary -----------------------------------------------------------------------------------------

    def _stand(self, proposal: Proposal, *, branch: str, commit: str, base_commit: str, candidate: dict[str, str],
               learned: dict[str, str], patch: str, validation: Validation,
               seconds: dict[str, float]) -> ProposalRecord:
        stand(self.dir, Standing(
            proposal=proposal.id, kind=proposal.kind, title=proposal.title, branch=branch, commit=commit,
            base=base_commit, candidate=candidate, learned=learned, patch=patch, validation=validation,
            fraction=self.options.fraction, min_samples=max(1, self.options.min_samples), slo=self.options.slo,
            timeout_s=self.options.attempt_timeout_s))
        self.say(f"{proposal.id}: on live canary: {self.options.fraction:.0%} of the runs started from now on are "
                 f"shadowed; `naestro improve run` merges it after {max(1, self.options.min_samples)} without a "
                 "breach, a breach rolls it back at once")
        return append(self.dir, ProposalRecord(id=proposal.id, kind=proposal.kind, title=proposal.title,
                                               state="canary", branch=branch, validation=validation,
                                               seconds=seconds))

    async def settle(self) -> ProposalRecord | None:
        """Judge the proposal on live canary: merged after ``min_samples`` paired runs without a breach, rolled back
        on one; None while it waits for more shadowed runs (or when none stands)."""
        canary = standing(self.dir)
        if canary is None:
            return None
        report = judge(self.dir, canary, self.store)
        if report.breaches:
            record = roll_back(self.dir, canary, report)
            self.say(f"{canary.proposal} rolled_back: " + "; ".join(report.breaches))
            return record
        if report.inconclusive:
            self.say(f"{canary.proposal}: on live canary, {len(report.pairs)} of {canary.min_samples} shadowed "
                     f"run(s) paired; waiting for more live runs")
            return None
        proposal = Proposal.model_validate_json((self.dir / "proposals" / f"{canary.proposal}.json").read_text())
        if not withdraw(self.dir, canary.proposal):
            return None  # another process settled it
        seconds: dict[str, float] = {}
        started = time.monotonic()

        def lap(phase: str) -> None:
            seconds[phase] = round(time.monotonic() - started, 3)

        try:
            return await self._merged(proposal, branch=canary.branch, commit=canary.commit, base_commit=canary.base,
                                      patch=canary.patch, validation=canary.validation, canary=report,
                                      learned=canary.learned, seconds=seconds, lap=lap)
        except UsageError as exc:  # main moved (a rollback) while it stood: what was validated is not main's base
            return self._refuse(proposal, "rolled_back", [f"canary: {exc}"], branch=canary.branch,
                                validation=canary.validation, canary=report, seconds=seconds)

    # --- Merge and Learn -------------------------------------------------------------------------------------

    def _learned(self, proposal: Proposal, tree: dict[str, str]) -> dict[str, str]:
        """Learn, before validation: router priors from the bandit's win-rates (with the observations they summarise)
        as files of the candidate tree, so the golden suite and the canary route by them and a merge releases
        exactly what was validated. Unless the proposal itself sets the priors: what it validates stands, nothing
        in them was learned from the store, and no observation is subtracted."""
        if any(normalised_path(c.path)[0] == PRIORS for c in proposal.changes):
            return {LEARNED_FROM: "[]\n"} if tree.get(LEARNED_FROM, "[]\n") != "[]\n" else {}
        arms = self.arms() if self.arms is not None else None
        learned = priors_from(arms) if arms is not None else None
        if arms is None or learned is None:
            return {}
        priors = priors_yaml(learned)
        return {} if priors == tree.get(PRIORS) else {PRIORS: priors, LEARNED_FROM: learned_from_yaml(arms, learned)}

    def _merge(self, proposal: Proposal, *, branch: str, branch_commit: str, base_commit: str, patch: str,
               validation: Validation, canary: CanaryReport, learned: dict[str, str]) -> Release:
        tree = self.repo.files(branch_commit)
        version = bump(tree["VERSION"])
        entry = changelog_entry(version=version, proposal=proposal, patch=patch, validation=validation,
                                canary=canary, priors=learned.get(PRIORS))
        log = tree["CHANGELOG.md"]
        head, sep, rest = log.partition("\n## ")
        changes: dict[str, str | None] = {
            "VERSION": version + "\n", "CHANGELOG.md": f"{head.rstrip()}\n\n{entry}\n" + (f"## {rest}" if sep else ""),
            **learned}
        merge = self.repo.commit(branch_commit, changes, f"Merge {branch}: {proposal.title} ({version})\n\n{entry}",
                                 parents=(base_commit, branch_commit))
        try:
            self.repo.update_ref(MAIN, merge, base_commit)  # fails if main moved since the proposal was made
        except UsageError as exc:
            raise UsageError(f"main moved while {proposal.id} was validated; run `naestro improve run` again "
                             "to propose on the new main") from exc
        self.repo.tag(f"v{version}", merge)
        return publish(self.repo, self.dir, self.key, proposal=proposal.id)
