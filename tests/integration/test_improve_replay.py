"""Validate by offline replay, and Learn reaching the live router (issue 21), with real runs (planner, graph, MCP
tools, sandbox, gate, checkpoints, snapshots), the real composition root, router and Rego engine, a real git
repository and real Ed25519 signatures; only the model's text is scripted (the same script as the loop's
demonstration, tests/integration/test_improve_loop.py).

1. Replay judges a candidate on recorded runs with their recorded replies and no model: a candidate that keeps
   the prompts carries the recorded hello run to the same outcome; one that starves the Coder's token budget
   (prompts unchanged, so the recorded replies still answer) fails the attempt that passed when recorded: a
   regression. A prompt delta is not replayed; the record says why.
2. A router_prior self-PR is validated by replaying the recorded run, canaried, merged; the next runtime's router
   samples from the merged priors and routes the Coder to the endpoint they favour in a new run; `naestro improve
   rollback` restores models.yaml's priors.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from langchain_core.language_models import BaseChatModel
from typer.testing import CliRunner

from naestro.commands.improve import app as improve_app
from naestro.endpoints import Endpoint, ModelRegistry
from naestro.events import read_events
from naestro.improve import Change, ConfigRepo, Proposal
from naestro.improve.canary import default_slo
from naestro.improve.loop import ImproveLoop, LoopOptions
from naestro.improve.release import publish
from naestro.improve.replay import replay_recorded
from naestro.improve.repo import seed_files
from naestro.improve.validate import ReplayReport, Tolerance
from naestro.runner import Runner
from naestro.runs import RunStore
from naestro.runtime import Runtime, build_runtime
from naestro.settings import Settings
from policies.audit import load_signing_key
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import Script, ScriptedProvider
from tests.integration.test_improve_loop import HELLO_GOAL, script

POLICY = RunPolicy(approve=[ApprovedScope(tool="exec.run")])
CODER_BUDGET = "budget: {tokens: 16000, wall_s: 420}"
# Two endpoints no request reaches (the text is scripted in process); the router chooses between them by bandit.
MODELS = """default: small
fast: small
endpoints:
  - {name: small, kind: openai, model: small, base_url: "http://127.0.0.1:18601/v1", context: 8192,
     capabilities: [json_schema]}
  - {name: big, kind: openai, model: big, base_url: "http://127.0.0.1:18602/v1", context: 8192,
     capabilities: [json_schema]}
router:
  strategy: bandit
"""
FAVOUR_BIG = "- {endpoint: big, kind: coder, alpha: 50.0, beta: 1.0}\n- {endpoint: small, kind: coder, alpha: 1.0, " \
             "beta: 50.0}\n"
UNTIMED = {"wall_ratio": 1e6, "wall_slack_s": 1e6}  # latency is not judged on a loaded test machine


class ScriptedEndpoints(ScriptedProvider):
    """The scripted text behind every endpoint of ``registry``, answering as the endpoint the router chose."""

    def __init__(self, script: Script, registry: ModelRegistry) -> None:
        super().__init__(script)
        self.registry = registry

    def chat(self, endpoint: str | None) -> tuple[Endpoint, BaseChatModel]:
        return self.registry.get(endpoint), self.model


def live_runtime(settings: Settings) -> Runtime:
    """The composition root's runtime (models.yaml, the active release, the router it builds) with scripted text
    behind its endpoints."""
    runtime = build_runtime(settings)
    return dataclasses.replace(runtime, provider=ScriptedEndpoints(script, runtime.provider.registry))


def seed_folder(tmp_path: Path) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "notes.txt").write_text("hello\n")
    return seed


async def test_replay_keeps_recorded_outcomes_and_counts_a_regression(settings: Settings, tmp_path: Path) -> None:
    provider = ScriptedProvider(script)
    runner = Runner(settings, provider)
    recorded = await runner.start(HELLO_GOAL, workspace=seed_folder(tmp_path), policy=POLICY)
    await runner.runtime.aclose()
    assert recorded.passed and recorded.tasks["hello"]["attempts"] == 1
    live = RunStore(settings.runs_dir)
    current = seed_files()

    async def replay(candidate: dict[str, str], name: str) -> ReplayReport:
        return await replay_recorded(live, settings=settings, provider=provider, current=current,
                                     candidate=candidate, last=5, count=3, workdir=tmp_path / name)

    kept = await replay({**current, "router/priors.yaml": FAVOUR_BIG.replace("big", "scripted")}, "kept")
    assert kept.applies and [r.run_id for r in kept.runs] == [recorded.record.run_id]
    run = kept.runs[0]
    # the coder's write, its refused finish, its finish, the reporter: every reply came from the recording
    assert run.recorded_calls >= 4 and run.unrecorded_calls == 0, run
    assert (run.replay_passed, run.regressed) == (True, False) and not kept.regressions
    replayed = RunStore(tmp_path / "kept" / "runs").load(run.replay_run)
    assert (replayed.epoch, replayed.replay_epoch) == (1, 0)  # `naestro runs replay --offline`'s mechanism
    assert not [e for e in read_events(tmp_path / "kept" / "runs" / run.replay_run / "events.jsonl")
                if e["event"] == "model_call"]  # no model was called

    roles = current["roles.yaml"]
    assert roles.count(CODER_BUDGET) == 1
    # Fewer tokens than the Coder's first reply (15): the budget stops it before its write, and the check fails.
    # (With 20 the write lands and the budget ends the task after it: judged by its checks, it passes; 9fa3add.)
    starved = await replay({**current, "roles.yaml": roles.replace(CODER_BUDGET, "budget: {tokens: 10, wall_s: 420}")},
                           "starved")
    run = starved.runs[0]
    assert run.regressed and "task hello attempt 1 passed when recorded" in run.detail, run
    assert starved.regressions and recorded.record.run_id in starved.regressions[0]

    reworded = await replay({**current, "roles.yaml": roles.replace("You are the Coder.", "You are the Coder!")},
                            "reworded")
    assert not reworded.applies and not reworded.runs
    assert "coder" in reworded.note and "produced for the old prompts" in reworded.note


async def test_a_router_prior_self_pr_is_replayed_merged_and_routes_the_next_run(settings: Settings,
                                                                                 tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(MODELS)
    settings = settings.model_copy(update={"models_file": models, "review": False})
    improve = settings.home / "improve"
    key = load_signing_key(settings.keys_dir)
    repo = ConfigRepo.open(improve / "config.git")
    publish(repo, improve, key, proposal=None)  # 0.1.0: the packaged config, the priors of models.yaml
    seed = seed_folder(tmp_path)

    runtime = live_runtime(settings)
    assert runtime.router is not None and runtime.router.bandit is not None
    assert runtime.router.bandit.prior("coder", "big") == (1.0, 1.0)
    recorded = await Runner.of(runtime).start(HELLO_GOAL, workspace=seed, policy=POLICY)
    await runtime.aclose()
    assert recorded.passed

    loop = ImproveLoop(settings=settings, provider=runtime.provider, engine=runtime.engine, key=key,
                       options=LoopOptions(fraction=1.0, tolerance=Tolerance(wall_ratio=1e6, wall_slack_s=1e6),
                                           slo=default_slo().model_copy(update=UNTIMED)))
    record = await loop.process(Proposal(kind="router_prior", title="route the coder to big",
                                         rationale="big passes the coder's tasks",
                                         changes=(Change(path="router/priors.yaml", text=FAVOUR_BIG),)))
    assert record.state == "merged" and record.version == "0.1.1", record.reasons
    assert record.validation is not None and not record.validation.goals  # no golden goal: judged by the replay
    replay = record.validation.replay
    assert replay is not None and replay.applies and [r.run_id for r in replay.verdicts] == [recorded.record.run_id]
    assert replay.runs[0].replay_passed and replay.runs[0].unrecorded_calls == 0
    assert "replay: 1 recorded run(s) replayed offline to a verdict, 0 regressed" in repo.files("refs/heads/main")[
        "CHANGELOG.md"]

    runtime = live_runtime(settings)  # a new process's runtime: the merged release is active
    assert runtime.router is not None and runtime.router.bandit is not None
    assert runtime.router.bandit.prior("coder", "big") == (50.0, 1.0)
    routed = await Runner.of(runtime).start(HELLO_GOAL, workspace=seed, policy=POLICY)
    await runtime.aclose()
    assert routed.passed
    routes = [e for e in read_events(routed.report_path.parent / "events.jsonl")
              if e["event"] == "route" and e["task"] == "hello"]
    assert routes and all(e["endpoint"] == "big" and e["rule"] == "bandit" for e in routes), routes

    rolled = CliRunner().invoke(improve_app, ["rollback", "--json"], env={"NAESTRO_HOME": str(settings.home)})
    assert rolled.exit_code == 0 and json.loads(rolled.output)["version"] == "0.1.2", rolled.output
    runtime = live_runtime(settings)
    assert runtime.router is not None and runtime.router.bandit is not None
    assert runtime.router.bandit.prior("coder", "big") == (1.0, 1.0)
    await runtime.aclose()
