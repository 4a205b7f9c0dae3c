"""Golden suites: small goals with machine-checkable expected results, run by Naestro and by the plain-agent
baseline on the same model, scored by the same evaluators, with pass@k.

A goal file (``tests/golden/*.json``) holds the goal text, the files the workspace starts with, optional
reference ``facts`` (the oracle a factuality check may use besides those files) and ``check``: acceptance
checks in the Plan's own vocabulary (command, file_exists, regex, json_schema, evaluator). Neither system
sees the checks; they are applied to the workspace afterwards.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naestro.baseline import BaselineKind, run_baseline
from naestro.errors import UsageError
from naestro.evaluators import (
    CodeEvaluator,
    ContractEvaluator,
    Evidence,
    SandboxEvalEnv,
    Source,
    Subject,
    Verdict,
    build_evaluator,
)
from naestro.events import Event, read_events
from naestro.llm import ModelProvider
from naestro.passk import pass_at_k
from naestro.plan import (
    AcceptanceCheck,
    CommandCheck,
    EvaluatorCheck,
    FileExistsCheck,
    JsonSchemaCheck,
    RegexCheck,
)
from naestro.runner import Runner
from naestro.settings import Settings
from policies.decision import ApprovedScope, RunPolicy

__all__ = ["Attempt", "GoalResult", "GoldenGoal", "SuiteResult", "check_workspace", "counterexample_goals", "goals_of",
           "history", "load_suite", "run_suite"]

System = Literal["naestro", "baseline"]


class GoldenGoal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["file", "data", "code", "report"]
    goal: str = Field(min_length=1)
    files: dict[str, str] = Field(default_factory=dict, description="the workspace's starting files")
    facts: str = Field(default="", description="reference facts a factuality check may rely on")
    check: tuple[AcceptanceCheck, ...] = Field(min_length=1)


def goals_of(texts: dict[str, str]) -> list[GoldenGoal]:
    """Golden goals from JSON texts by source (a file path, or a release tree's ``golden/x.json``), in source order.

    The one parser of the suite folder, the active release's counter-examples and a self-PR's candidate tree:
    a goal that does not load is a ``UsageError`` naming its source, the field and what is wrong."""
    goals = []
    for source, text in sorted(texts.items()):
        try:
            goals.append(GoldenGoal.model_validate_json(text))
        except ValidationError as exc:
            raise UsageError(f"{source}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    return goals


def counterexample_goals(settings: Settings) -> list[GoldenGoal]:
    """The active self-improved release's counter-examples (issue 21: failed runs the loop turned into golden goals,
    ``golden/*.json`` of its signed tree), each checked against the release's signature like its prompts."""
    from naestro.improve.active import active_release

    active = active_release(settings)
    if active is None or not active.counterexamples:
        raise UsageError("no counter-examples: the active self-improved release has none (`naestro improve run` "
                         "turns failed runs into counter-examples and merges them with a proposal)")
    active_dir = settings.home / "improve" / "active"
    return goals_of({str(active_dir / path): text for path, text in active.counterexamples.items()})


def load_suite(folder: Path) -> list[GoldenGoal]:
    goals = goals_of({str(path): path.read_text() for path in folder.glob("*.json")})
    if not goals:
        raise UsageError(f"no golden goals (*.json) in {folder}")
    return goals


async def _verdict(check: AcceptanceCheck, env: SandboxEvalEnv) -> Verdict:
    subject = Subject(task_id="golden")
    match check:
        case CommandCheck():
            return await CodeEvaluator(command=check.command, lint=False, timeout_s=check.timeout_s).evaluate(
                subject, env)
        case FileExistsCheck():
            ok = (env.workspace / check.path).exists()
            return Verdict.of("file_exists", [Evidence(check="file_exists", ok=ok, detail=check.path)])
        case RegexCheck():
            return await ContractEvaluator(file=check.file, output=check.output, regex=check.pattern).evaluate(
                subject, env)
        case JsonSchemaCheck():
            return await ContractEvaluator(file=check.file, output=check.output, json_schema=check.schema_).evaluate(
                subject, env)
        case EvaluatorCheck():
            return await build_evaluator(check.evaluator, dict(check.params)).evaluate(subject, env)


async def check_workspace(goal: GoldenGoal, workspace: Path) -> list[Verdict]:
    """The goal's machine checks on a finished workspace; sources are its starting files and reference facts."""
    sources = [Source(tool="fs.read", text=t) for t in goal.files.values()] + [Source(tool="goal", text=goal.goal)]
    if goal.facts:
        sources.append(Source(tool="reference", text=goal.facts))
    env = SandboxEvalEnv(workspace, sources=sources)
    return [await _verdict(c, env) for c in goal.check]


class Attempt(BaseModel):
    goal: str
    system: System
    sample: int
    passed: bool
    claimed: bool = Field(description="Naestro: its own checks passed; baseline: it called finish")
    tokens: int
    cost_usd: float
    wall_s: float
    evidence: list[str]
    error: str = ""
    run_id: str = ""


class GoalResult(BaseModel):
    id: str
    kind: str
    system: System
    n: int
    c: int
    pass_at_1: float
    pass_at_k: float
    tokens: int
    wall_s: float
    cost_usd: float


class SuiteResult(BaseModel):
    started: str
    model: str
    k: int
    systems: list[System]
    attempts: list[Attempt]

    kinds: dict[str, str] = Field(default_factory=dict)
    baseline_kind: BaselineKind | None = None

    def goals(self) -> list[GoalResult]:
        out = []
        keys = sorted({(a.goal, a.system) for a in self.attempts}, key=lambda g: (g[1], g[0]))
        for goal, system in keys:
            mine = [a for a in self.attempts if a.goal == goal and a.system == system]
            n, c = len(mine), sum(a.passed for a in mine)
            out.append(GoalResult(id=goal, kind=self.kinds.get(goal, ""), system=system, n=n, c=c,
                                  pass_at_1=pass_at_k(n, c, 1),
                                  pass_at_k=pass_at_k(n, c, min(self.k, n)), tokens=sum(a.tokens for a in mine),
                                  wall_s=round(sum(a.wall_s for a in mine), 1),
                                  cost_usd=round(sum(a.cost_usd for a in mine), 6)))
        return out

    def totals(self, system: System) -> dict[str, int]:
        mine = [a for a in self.attempts if a.system == system]
        return {"passed": sum(a.passed for a in mine), "total": len(mine)}

    def summary(self) -> dict[str, object]:
        """The ``--json`` shape: passed/total count attempts (goals × k), so passed/total is pass@1."""
        out: dict[str, object] = {"naestro": self.totals("naestro") if "naestro" in self.systems else
                                  {"passed": 0, "total": 0}}
        out["baseline"] = self.totals("baseline") if "baseline" in self.systems else {"passed": 0, "total": 0}
        out["goals"] = [g.model_dump() for g in self.goals()]
        out.update({"model": self.model, "k": self.k, "started": self.started, "baseline_kind": self.baseline_kind})
        return out


def _why(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return "attempt timed out (--attempt-timeout-s)"
    return f"{exc.__class__.__name__}: {exc}"[:500]


def history(results_dir: Path) -> list[dict[str, object]]:
    """One line per finished suite, oldest first (``history.jsonl``)."""
    path = results_dir / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _seed(goal: GoldenGoal, into: Path) -> Path:
    into.mkdir(parents=True)
    for rel, text in goal.files.items():
        (into / rel).parent.mkdir(parents=True, exist_ok=True)
        (into / rel).write_text(text)
    return into


def spend_of_events(events: list[Event]) -> tuple[int, float]:
    """(tokens, USD) a run spent, from its events: planning and re-planning tokens plus every model call's."""
    planning = sum(t for e in events if e.get("event") in ("planned", "replanned")
                   for t in [e.get("tokens")] if isinstance(t, int))
    calls = [e for e in events if e.get("event") == "model_call"]
    tokens = sum(v for e in calls for k in ("prompt_tokens", "completion_tokens") for v in [e.get(k)]
                 if isinstance(v, int))
    cost = sum(v for e in calls for v in [e.get("cost_usd")] if isinstance(v, int | float))
    return planning + tokens, cost


async def _naestro(goal: GoldenGoal, runner: Runner, scratch: Path, sample: int, timeout_s: float | None) -> Attempt:
    start = time.monotonic()
    seed = _seed(goal, scratch / f"{goal.id}-{sample}-seed")
    policy = RunPolicy(approve=[ApprovedScope(tool="exec.run")])
    try:
        result = await asyncio.wait_for(runner.start(goal.goal, workspace=seed, policy=policy), timeout_s)
    except Exception as exc:  # noqa: BLE001 - one failed attempt is a data point, not the end of the suite
        return Attempt(goal=goal.id, system="naestro", sample=sample, passed=False, claimed=False, tokens=0,
                       cost_usd=0.0, wall_s=round(time.monotonic() - start, 1), evidence=[],
                       error=_why(exc))
    verdicts = await check_workspace(goal, Path(result.record.workspace))
    # From events, not the final state: a re-planned run's earlier phases and the reporter/judge calls count too.
    events = read_events(runner.store.dir(result.record.run_id) / "events.jsonl")
    tokens, cost = spend_of_events(events)
    return Attempt(goal=goal.id, system="naestro", sample=sample, passed=all(v.passed for v in verdicts),
                   claimed=result.passed, tokens=tokens, cost_usd=round(cost, 6),
                   wall_s=round(time.monotonic() - start, 1), evidence=[v.render(limit=4) for v in verdicts],
                   run_id=result.record.run_id)


async def _baseline(goal: GoldenGoal, provider: ModelProvider, endpoint: str | None, scratch: Path,
                    sample: int, timeout_s: float | None, kind: BaselineKind) -> Attempt:
    start = time.monotonic()
    workspace = _seed(goal, scratch / f"{goal.id}-{sample}-baseline")
    try:
        res = await asyncio.wait_for(run_baseline(goal.goal, provider, workspace=workspace, endpoint=endpoint,
                                                  kind=kind), timeout_s)
    except Exception as exc:  # noqa: BLE001 - as above
        return Attempt(goal=goal.id, system="baseline", sample=sample, passed=False, claimed=False, tokens=0,
                       cost_usd=0.0, wall_s=round(time.monotonic() - start, 1), evidence=[],
                       error=_why(exc))
    verdicts = await check_workspace(goal, workspace)
    return Attempt(goal=goal.id, system="baseline", sample=sample, passed=all(v.passed for v in verdicts),
                   claimed=res.finished, tokens=res.tokens, cost_usd=round(res.cost_usd, 6), wall_s=res.wall_s,
                   evidence=[v.render(limit=4) for v in verdicts])


async def run_suite(goals: list[GoldenGoal], *, settings: Settings, provider: ModelProvider, k: int,
                    baseline: bool, model: str, results_dir: Path, attempt_timeout_s: float | None = None,
                    naestro: bool = True, baseline_kind: BaselineKind = "react",
                    on_attempt: Callable[[Attempt], None] | None = None) -> tuple[SuiteResult, Path]:
    """Run every goal k times per system, goal by goal (so a stopped suite has comparable partial results).

    ``attempt_timeout_s`` caps one attempt's wall time (a timed-out attempt fails, with the error recorded).

    Each attempt is appended to ``<results_dir>/<stamp>.jsonl`` as it finishes; the summary goes to
    ``<stamp>.json`` and one line per suite to ``history.jsonl`` (trends).
    """
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results_dir.mkdir(parents=True, exist_ok=True)
    partial = results_dir / f"{started}.jsonl"
    wanted: tuple[tuple[System, bool], ...] = (("naestro", naestro), ("baseline", baseline))
    systems: list[System] = [s for s, on in wanted if on]
    if not systems:
        raise UsageError("nothing to run: neither Naestro nor the baseline")
    suite = SuiteResult(started=started, model=model, k=k, systems=systems, attempts=[],
                        kinds={g.id: g.kind for g in goals}, baseline_kind=baseline_kind if baseline else None)
    runner = Runner(settings, provider)
    scratch = Path(tempfile.mkdtemp(prefix="naestro-golden-"))
    try:
        for goal in goals:
            for sample in range(1, k + 1):
                attempts = [await _naestro(goal, runner, scratch, sample, attempt_timeout_s)] if naestro else []
                if baseline:
                    attempts.append(await _baseline(goal, provider, model, scratch, sample, attempt_timeout_s,
                                                    baseline_kind))
                for a in attempts:
                    suite.attempts.append(a)
                    with partial.open("a") as fh:
                        fh.write(a.model_dump_json() + "\n")
                    if on_attempt:
                        on_attempt(a)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = suite.summary()
    final = results_dir / f"{started}.json"
    final.write_text(json.dumps({**summary, "attempts": [a.model_dump() for a in suite.attempts]}, indent=1))
    with (results_dir / "history.jsonl").open("a") as fh:
        fh.write(json.dumps({"started": started, "model": model, "k": k, "naestro": summary["naestro"],
                             "baseline": summary["baseline"], "baseline_kind": suite.baseline_kind}) + "\n")
    return suite, final

