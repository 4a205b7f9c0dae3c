"""Validate: a candidate config against the current one, before any live task sees it.

1. Static checks of the candidate tree: roles.yaml loads into ``RoleSpec`` for every role, with the same tools
   as the current config (no scope escalation even if a policy slipped), prompts within a size cap; the priors
   file parses into ``Prior``; every golden file parses into ``GoldenGoal``.
2. The golden suite of the config repository (the counter-examples learned so far, plus those the proposal adds)
   run k times under both configs on the same provider, each attempt in a throwaway home and workspace, scored
   by the golden checks (not by Naestro's own verdict). No metric may regress beyond its tolerance, and the
   proposal's target counter-example must pass under the candidate at least once (else it fixes nothing).

3. Offline replay of this home's recorded runs under the candidate (``replay.py``), for candidates that keep
   every role prompt: a recorded run that passed must still pass. For a prompt delta the record says why replay
   does not apply (the recorded replies answered the old prompts) instead of pretending it ran.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import shutil
import tempfile
import time
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naestro.errors import ConfigError, UsageError
from naestro.events import Event, read_events
from naestro.golden import GoldenGoal, check_workspace, goals_of, spend_of_events
from naestro.improve.active import PRIORS, with_priors
from naestro.improve.learn import parse_learned_from, parse_priors
from naestro.llm import ModelProvider
from naestro.plan import Role
from naestro.router import Router, build_router
from naestro.runner import Runner
from naestro.runtime import Runtime, build_runtime
from naestro.settings import Settings
from naestro.tooladapter import adapters_from_tree
from nodes.roles import RoleSpec
from policies.decision import ApprovedScope, RunPolicy

__all__ = ["Metrics", "Outcome", "ReplayReport", "ReplayRun", "Tolerance", "Validation", "golden_goals", "metrics_of",
           "outcome_of_events", "regressions", "roles_of", "run_goals", "seed_workspace", "side_router", "side_runtime",
           "static_problems", "validate"]

MAX_PROMPT_CHARS = 4000
# Shadow and validation runs: exec.run in the run's own sandboxed workspace copy and nothing else sensitive
# (auto mode denies every other side-effecting tool that is not pre-approved: no network, no external tools).
SIDE_POLICY = RunPolicy(mode="auto", approve=[ApprovedScope(tool="exec.run")])


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: str
    sample: int = 1
    passed: bool
    tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    denials: int = 0
    run_id: str = ""
    error: str = ""
    rescued: bool = False  # the agreed reference program wrote a file the agent got wrong: not passed here


class Metrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int
    passed: int
    tokens: float = Field(description="mean per attempt")
    cost_usd: float = Field(description="mean per attempt")
    wall_p95_s: float
    denials: int

    @property
    def pass_rate(self) -> float:
        return self.passed / self.n if self.n else 0.0


class Tolerance(BaseModel):
    """How much worse the candidate may be than the current config, per metric (ratio and absolute slack)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pass_rate_drop: float = Field(default=0.0, ge=0, le=1)
    tokens_ratio: float = Field(default=1.25, ge=1)
    tokens_slack: float = Field(default=500, ge=0)
    cost_ratio: float = Field(default=1.25, ge=1)
    cost_slack_usd: float = Field(default=0.001, ge=0)
    wall_ratio: float = Field(default=2.0, ge=1)
    wall_slack_s: float = Field(default=30.0, ge=0)
    denials_slack: int = Field(default=0, ge=0)


def metrics_of(outcomes: list[Outcome]) -> Metrics:
    walls = sorted(o.wall_s for o in outcomes)
    p95 = walls[max(0, math.ceil(0.95 * len(walls)) - 1)] if walls else 0.0
    n = len(outcomes)
    return Metrics(n=n, passed=sum(o.passed for o in outcomes),
                   tokens=round(sum(o.tokens for o in outcomes) / n, 1) if n else 0.0,
                   cost_usd=round(sum(o.cost_usd for o in outcomes) / n, 6) if n else 0.0,
                   wall_p95_s=round(p95, 2), denials=sum(o.denials for o in outcomes))


def regressions(current: Metrics, candidate: Metrics, tol: Tolerance) -> list[str]:
    """Every metric on which the candidate is worse than the current config beyond tolerance, said plainly."""
    out = []
    if candidate.pass_rate < current.pass_rate - tol.pass_rate_drop - 1e-9:
        out.append(f"success: {candidate.passed}/{candidate.n} passed, current {current.passed}/{current.n} "
                   f"(allowed drop {tol.pass_rate_drop:.0%})")
    if candidate.tokens > current.tokens * tol.tokens_ratio + tol.tokens_slack:
        out.append(f"cost: {candidate.tokens:.0f} tokens per attempt, current {current.tokens:.0f} "
                   f"(allowed x{tol.tokens_ratio} + {tol.tokens_slack:.0f})")
    if candidate.cost_usd > current.cost_usd * tol.cost_ratio + tol.cost_slack_usd:
        out.append(f"cost: ${candidate.cost_usd:.4f} per attempt, current ${current.cost_usd:.4f}")
    if candidate.wall_p95_s > current.wall_p95_s * tol.wall_ratio + tol.wall_slack_s:
        out.append(f"latency: p95 {candidate.wall_p95_s:.1f} s, current {current.wall_p95_s:.1f} s "
                   f"(allowed x{tol.wall_ratio} + {tol.wall_slack_s:.0f} s)")
    if candidate.denials > current.denials + tol.denials_slack:
        out.append(f"safety: {candidate.denials} policy denials, current {current.denials}")
    return out


# --- the candidate tree -----------------------------------------------------------------------------------

def roles_of(roles_yaml: str) -> dict[Role, RoleSpec]:
    data = yaml.safe_load(roles_yaml)
    if not isinstance(data, dict):
        raise ValueError("roles.yaml is not a mapping of roles")
    return {Role(name): RoleSpec.model_validate(spec) for name, spec in data.items()}


def golden_goals(tree: dict[str, str]) -> list[GoldenGoal]:
    return goals_of({path: text for path, text in tree.items()
                     if path.startswith("golden/") and path.endswith(".json")})


def static_problems(current: dict[str, str], candidate: dict[str, str]) -> list[str]:
    """What is wrong with the candidate tree before anything runs (empty: fine)."""
    problems: list[str] = []
    try:
        new, old = roles_of(candidate.get("roles.yaml", "")), roles_of(current.get("roles.yaml", ""))
    except (ValueError, ValidationError, yaml.YAMLError) as exc:
        return [f"roles.yaml does not load: {str(exc).splitlines()[0]}"]
    if set(new) != set(Role):
        problems.append(f"roles.yaml: roles without a definition: {sorted(r.value for r in set(Role) - set(new))}")
    for role, spec in new.items():
        if role in old and set(spec.tools) != set(old[role].tools):
            problems.append(f"roles.yaml: {role.value} tools changed ({sorted(old[role].tools)} -> "
                            f"{sorted(spec.tools)}): a self-PR never changes what a role may call")
        if len(spec.prompt) > MAX_PROMPT_CHARS:
            problems.append(f"roles.yaml: {role.value} prompt is {len(spec.prompt)} chars (cap {MAX_PROMPT_CHARS})")
    for path, parse in (("router/priors.yaml", parse_priors), ("router/learned_from.yaml", parse_learned_from)):
        try:
            parse(candidate.get(path, "[]"))
        except (ValidationError, yaml.YAMLError) as exc:
            problems.append(f"{path} does not load: {str(exc).splitlines()[0]}")
    try:
        adapters_from_tree(candidate)
    except ConfigError as exc:
        problems.append(str(exc))  # "tools/exec.yaml: tools.run.timeout_s: ..."
    try:
        golden_goals(candidate)
    except UsageError as exc:
        problems.append(f"a golden goal does not load: {exc}")  # "golden/x.json: ('checks', 0): ..."
    return problems


# --- running goals ----------------------------------------------------------------------------------------

def side_router(provider: ModelProvider, tree: dict[str, str], home: Path) -> Router | None:
    """The router of a config tree for validation and shadow runs: the provider's endpoints with the tree's
    ``router/priors.yaml`` in place of models.yaml's for the same arms, and a bandit store of its own in ``home``
    (what these runs teach it is thrown away with the home; the live store is never written, even when
    models.yaml names a shared one). None with a single endpoint: nothing to route."""
    registry = provider.registry
    if len(registry.endpoints) < 2:
        return None
    registry = with_priors(registry, tuple(parse_priors(tree.get(PRIORS) or "[]")))
    own = registry.model_copy(update={"router": registry.router.model_copy(update={"store": None})})
    return build_router(own, home=home)


def side_runtime(settings: Settings, provider: ModelProvider, tree: dict[str, str], home: Path) -> Runtime:
    """A runtime for validation or shadow runs: its own home (runs, checkpoints, audit, keys), no memory, the
    roles, tool adapters and router priors of a config tree (``side_router``: the current and the candidate
    config route the same live calls each by its own priors), the live provider."""
    side = settings.model_copy(update={"home": home, "models_dir": settings.models_path, "memory": False})
    home.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(build_runtime(side, provider=provider, router=side_router(provider, tree, home)),
                               roles=roles_of(tree["roles.yaml"]), tool_adapters=adapters_from_tree(tree))


def outcome_of_events(events: list[Event], *, goal: str, passed: bool, run_id: str, sample: int = 1) -> Outcome:
    """Tokens (planning included), cost, wall time and policy denials of one run, from its events.

    A run whose data file the agreed reference program wrote (``nodes.reference_apply``) counts as not passed: a
    config is judged by its agents' work, and a prompt that makes the Coder write a wrong file would otherwise look
    as good as one that makes it write the right one (the improve loop merged such a proposal)."""
    rescued = any(e.get("event") == "reference_applied" and e.get("ok") is True for e in events)
    passed = passed and not rescued
    tokens, cost = spend_of_events(events)
    offsets = [t for e in events for t in [e.get("t")] if isinstance(t, int | float)]
    return Outcome(goal=goal, sample=sample, passed=passed, rescued=rescued, tokens=tokens, cost_usd=round(cost, 6),
                   wall_s=round(max(offsets, default=0.0), 2), run_id=run_id,
                   denials=sum(e.get("event") == "tool_denied" for e in events))


def seed_workspace(files: dict[str, str], into: Path) -> Path:
    into.mkdir(parents=True)
    for rel, text in files.items():
        (into / rel).parent.mkdir(parents=True, exist_ok=True)
        (into / rel).write_text(text)
    return into


async def _attempt(runner: Runner, goal: GoldenGoal, scratch: Path, sample: int, timeout_s: float | None
                   ) -> Outcome:
    seed = seed_workspace(goal.files, scratch / f"{goal.id}-{sample}-{time.monotonic_ns()}")
    try:
        result = await asyncio.wait_for(runner.start(goal.goal, workspace=seed, policy=SIDE_POLICY), timeout_s)
    except Exception as exc:  # noqa: BLE001 - a failed attempt is a data point, not the end of validation
        return Outcome(goal=goal.id, sample=sample, passed=False, error=f"{exc.__class__.__name__}: {exc}"[:300])
    verdicts = await check_workspace(goal, Path(result.record.workspace))
    events = read_events(runner.store.dir(result.record.run_id) / "events.jsonl")
    return outcome_of_events(events, goal=goal.id, passed=all(v.passed for v in verdicts),
                             run_id=result.record.run_id, sample=sample)


async def run_goals(runtime: Runtime, goals: list[GoldenGoal], *, k: int, timeout_s: float | None) -> list[Outcome]:
    runner = Runner.of(runtime)
    scratch = Path(tempfile.mkdtemp(prefix="naestro-improve-"))
    try:
        return [await _attempt(runner, g, scratch, s, timeout_s) for g in goals for s in range(1, k + 1)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class ReplayRun(BaseModel):
    """One recorded run replayed offline under the candidate (``replay.py``)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(description="the recorded run")
    recorded_passed: bool
    replay_passed: bool | None = Field(default=None, description="the replay's verdict; None: it diverged before "
                                       "its end (see detail)")
    regressed: bool = Field(default=False, description="a task attempt, or the run, that passed when recorded fails")
    replay_run: str = ""
    recorded_calls: int = Field(default=0, description="model replies the recording holds")
    unrecorded_calls: int = Field(default=0, description="calls the recording has no reply for (none was made)")
    detail: str = ""


class ReplayReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    applies: bool
    note: str
    runs: list[ReplayRun] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict, description="recorded run -> why it is not replayable")

    @property
    def verdicts(self) -> list[ReplayRun]:
        """Replays that judged something: reached their end, or showed a regression before they diverged."""
        return [r for r in self.runs if r.replay_passed is not None or r.regressed]

    @property
    def regressions(self) -> list[str]:
        broken = [r for r in self.runs if r.regressed]
        return [f"replay: {len(broken)} recorded run(s) regress under the candidate ("
                + "; ".join(f"{r.run_id}: {r.detail}" for r in broken) + ")"] if broken else []

    def summary(self) -> str:
        if not self.applies:
            return "does not apply (role prompts changed)"
        return (f"{len(self.verdicts)} recorded run(s) replayed offline to a verdict, "
                f"{sum(r.regressed for r in self.runs)} regressed; {len(self.runs) - len(self.verdicts)} diverged, "
                f"{len(self.skipped)} not replayable")


class Validation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    static: list[str]
    goals: list[str] = []
    k: int = 1
    current: Metrics | None = None
    candidate: Metrics | None = None
    outcomes: dict[str, list[Outcome]] = Field(default_factory=dict)
    target: str | None = None
    target_fixed: bool | None = None
    regressions: list[str] = []
    replay: ReplayReport | None = None

    @property
    def problems(self) -> list[str]:
        out = [*self.static, *self.regressions, *(self.replay.regressions if self.replay is not None else [])]
        replayed = self.replay is not None and bool(self.replay.verdicts)
        if not self.goals and not self.static and not replayed:
            out.append("no golden goals to validate against (the proposal adds no counter-example) and no recorded "
                       "run replayed offline")
        if self.target is not None and self.target_fixed is False:
            out.append(f"no gain: the counter-example {self.target} still fails under the candidate")
        return out

    @property
    def passed(self) -> bool:
        return not self.problems


async def validate(*, settings: Settings, provider: ModelProvider, current: dict[str, str],
                   candidate: dict[str, str], target: str | None, k: int, tolerance: Tolerance, workdir: Path,
                   timeout_s: float | None = None) -> Validation:
    """Static checks, then the candidate tree's golden suite under both configs (see the module docstring)."""
    static = static_problems(current, candidate)
    if static:
        return Validation(static=static, target=target)
    goals = golden_goals(candidate)
    result = Validation(static=[], goals=[g.id for g in goals], k=k, target=target)
    if not goals:
        return result
    outcomes: dict[str, list[Outcome]] = {}
    for side, tree in (("current", current), ("candidate", candidate)):
        runtime = side_runtime(settings, provider, tree, workdir / side)
        try:
            outcomes[side] = await run_goals(runtime, goals, k=k, timeout_s=timeout_s)
        finally:
            await runtime.aclose()
    result.outcomes = outcomes
    result.current, result.candidate = metrics_of(outcomes["current"]), metrics_of(outcomes["candidate"])
    result.regressions = regressions(result.current, result.candidate, tolerance)
    if target is not None:
        result.target_fixed = any(o.passed for o in outcomes["candidate"] if o.goal == target)
    return result
