"""Live canary (issue 21): a validated candidate shadows the runs users start, beside them, and is rolled back on
the first breach or merged after enough clean pairs. Real runs (planner, graph, MCP tools, sandbox, gate,
checkpoints), the real Rego engine, git and Ed25519 signatures; only the model's text is scripted (the scripted
Coder of test_improve_loop: it writes hello.txt in upper case when its role prompt says so)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from graphs.app import make_graph
from naestro.cli import app
from naestro.commands.improve import app as improve_app
from naestro.distributed.advance import AdvanceRequest, advance
from naestro.distributed.config import ScaleSettings
from naestro.distributed.locks import open_locks
from naestro.improve import ConfigRepo, Proposal, load_active
from naestro.improve.canary import default_slo
from naestro.improve.ledger import ledger
from naestro.improve.live_canary import beside_live, settled_shadows
from naestro.improve.loop import ImproveLoop, LoopOptions
from naestro.improve.release import publish
from naestro.improve.repo import MAIN, seed_files
from naestro.improve.standing import Standing, shadow_lines, stand, standing
from naestro.improve.validate import Tolerance, Validation
from naestro.runner import Runner, RunResult
from naestro.runs import RunStore
from naestro.settings import Settings
from policies.audit import load_signing_key
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider
from tests.integration.test_improve_loop import HELLO_GOAL, HELLO_PLAN, STATS_GOAL, script
from tests.scripted_openai import scripted_models

POLICY = RunPolicy(approve=[ApprovedScope(tool="exec.run")])
UNTIMED = {"wall_ratio": 1e6, "wall_slack_s": 1e6}  # wall time is recorded, not judged, on a shared CI machine


# What validation runs both configs on: both pass it (the scripted Coder writes a correct stats.py with the
# packaged prompt), so a candidate that breaks hello.txt is only found by the canary.
STATS_CHECK = "python3 -c \"from stats import mean; assert mean([2, 4]) == 3\""
GOLDEN = json.dumps({"id": "stats_mean", "kind": "code", "goal": STATS_GOAL,
                     "check": [{"kind": "command", "command": STATS_CHECK}]})


def _prompt_delta(title: str, old: str, new: str, roles: str) -> Proposal:
    assert roles.count(old) >= 1
    return Proposal.model_validate({"kind": "prompt_delta", "title": title, "rationale": title,
                                    "changes": [{"path": "roles.yaml", "text": roles.replace(old, new, 1)},
                                                {"path": "golden/stats_mean.json", "text": GOLDEN}]})


async def _live(settings: Settings, provider: ScriptedProvider, seed: Path, *, draw: float,
                policy: RunPolicy = POLICY) -> RunResult:
    runner = Runner(settings, provider)
    try:
        return await beside_live(runner.start(HELLO_GOAL, workspace=seed, policy=policy), settings=settings,
                                 provider=provider, goal=HELLO_GOAL, plan=None, workspace=seed, mode=policy.mode,
                                 draw=draw)
    finally:
        await runner.runtime.aclose()


async def test_a_breaking_candidate_is_rolled_back_by_the_live_run_it_shadowed_and_a_good_one_merges(
        settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"review": False})
    improve = settings.home / "improve"
    key = load_signing_key(settings.keys_dir)
    repo = ConfigRepo.open(improve / "config.git", seed=seed_files())
    publish(repo, improve, key, proposal=None)  # 0.1.0
    provider = ScriptedProvider(script)
    loop = ImproveLoop(settings=settings, provider=provider, engine=Runner(settings, provider).runtime.engine,
                       key=key, options=LoopOptions(live_canary=True, fraction=0.5, min_samples=2,
                                                    tolerance=Tolerance(**UNTIMED),
                                                    slo=default_slo().model_copy(update=UNTIMED)))
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "notes.txt").write_text("hello\n")
    roles = repo.files(MAIN)["roles.yaml"]
    store = RunStore(settings.runs_dir)

    # 1. a candidate that breaks hello.txt goes on canary; the next live run it shadows rolls it back
    shout = await loop.process(_prompt_delta("shout", "Write the whole file with fs.write",
                                             "Write every text file in upper case. Write the whole file with "
                                             "fs.write", roles))
    assert shout.state == "canary" and standing(improve) is not None
    assert standing(improve).fraction == 0.5  # type: ignore[union-attr]
    unshadowed = await _live(settings, provider, seed, draw=0.9)  # above the fraction: not shadowed
    assert unshadowed.passed and shadow_lines(improve, shout.id) == []
    proposed = await _live(settings, provider, seed, draw=0.0, policy=RunPolicy(mode="guide"))
    assert not proposed.passed and shadow_lines(improve, shout.id) == []  # guide mode runs nothing to compare
    live = await _live(settings, provider, seed, draw=0.1)
    assert live.passed  # the user's run is the live config's, whatever the shadow did
    assert (Path(live.record.workspace) / "hello.txt").read_text() == "Hello, Naestro!\n"
    lines = shadow_lines(improve, shout.id)
    assert [(ln.live_run, ln.shadow.passed) for ln in lines] == [(live.record.run_id, False)]
    assert standing(improve) is None  # rolled back at once, by the live run's process
    last = ledger(improve)[-1]
    assert (last.id, last.state) == (shout.id, "rolled_back")
    assert last.reasons == [f"canary: success: the shadow failed 1 live run(s) that passed ({live.record.run_id})"]
    assert repo.files(MAIN)["VERSION"] == "0.1.0\n"
    assert load_active(improve, key.public_key()).version == "0.1.0"  # type: ignore[union-attr]
    # the shadow ran in a throwaway home: the live store holds the user's runs only
    assert sorted(r.run_id for r in store.list()) == sorted(
        [unshadowed.record.run_id, proposed.record.run_id, live.record.run_id])

    # 2. a harmless candidate: waits for its samples (and holds new proposals back), then merges
    brief = await loop.process(_prompt_delta("brief", "Write the whole file with fs.write",
                                             "Be brief. Write the whole file with fs.write", roles))
    assert brief.state == "canary"
    assert await loop.run() == []  # 0 of 2 paired: waiting
    cli = CliRunner()
    shown = cli.invoke(improve_app, ["status", "--json"], env={"NAESTRO_HOME": str(settings.home)})
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output)["canary"]
    assert info["proposal"] == brief.id and info["min_samples"] == 2 and info["report"]["pairs"] == []
    first = await _live(settings, provider, seed, draw=0.0)
    second = await _live(settings, provider, seed, draw=0.0)
    assert first.passed and second.passed
    assert [ln.shadow.passed for ln in shadow_lines(improve, brief.id)] == [True, True]
    assert standing(improve) is not None  # clean pairs do not merge by themselves: the loop does, signed
    records = await loop.run()
    assert [(r.id, r.state, r.version) for r in records] == [(brief.id, "merged", "0.1.1")]
    assert records[0].canary is not None and len(records[0].canary.pairs) == 2
    assert standing(improve) is None
    tree = repo.files(MAIN)
    assert tree["VERSION"] == "0.1.1\n" and "Be brief." in tree["roles.yaml"]
    assert "canary (2 of 2 live run(s) shadowed, fraction 0.5)" in tree["CHANGELOG.md"]
    assert load_active(improve, key.public_key()).version == "0.1.1"  # type: ignore[union-attr]
    assert [r.state for r in ledger(improve)] == ["canary", "rolled_back", "canary", "merged"]


def _http_script(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The Coder of HELLO_PLAN over HTTP: writes hello.txt (in upper case when its role prompt says so)."""
    text, first = "\n".join(str(m.get("content")) for m in messages), str(messages[0].get("content"))
    if "Write 2-4 sentences" in text:
        return {"summary": "done"}
    if any(m.get("role") == "assistant" for m in messages) or first.startswith("You are the Reviewer"):
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}
    body = "Hello, Naestro!\n"
    return {"thought": "w", "tool": "fs.write", "arguments": {
        "path": "hello.txt", "content": body.upper() if "upper case" in first.split("\n\nTools:")[0] else body}}


def _stand_shouting(improve: Path) -> None:
    """A candidate on canary for every run (fraction 1) whose Coder writes hello.txt in upper case: it fails."""
    tree = seed_files()
    shouting = tree["roles.yaml"].replace("Write the whole file with fs.write",
                                          "Write every text file in upper case. Write the whole file with fs.write", 1)
    stand(improve, Standing(proposal="p_shout", kind="prompt_delta", title="shout", branch="improve/p_shout",
                            commit="0" * 40, base="0" * 40, candidate={**tree, "roles.yaml": shouting}, patch="",
                            validation=Validation(static=[]), fraction=1.0, min_samples=1,
                            slo=default_slo().model_copy(update=UNTIMED), timeout_s=600))


def _rolled_back_by(improve: Path, run_id: str) -> None:
    assert [(ln.live_run, ln.shadow.passed) for ln in shadow_lines(improve, "p_shout")] == [(run_id, False)]
    assert standing(improve) is None and [(r.id, r.state) for r in ledger(improve)] == [("p_shout", "rolled_back")]


def test_naestro_run_is_shadowed_by_the_standing_candidate(settings: Settings, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's live runs are the canary's traffic: `naestro run` with a candidate standing (fraction 1) runs its
    shadow beside it, and the breach it finds rolls the candidate back from the user's process."""
    improve = settings.home / "improve"
    _stand_shouting(improve)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(HELLO_PLAN))
    with scripted_models(_http_script, tmp_path) as models:
        monkeypatch.setenv("NAESTRO_HOME", str(settings.home))
        monkeypatch.setenv("NAESTRO_MODELS_FILE", str(models))
        out = CliRunner().invoke(app, ["run", "--plan", str(plan_file), "--mode", "auto", "--json"])
    assert out.exit_code == 0, out.output
    _rolled_back_by(improve, json.loads(out.stdout)["run_id"])


async def test_runs_the_served_graph_creates_are_shadowed_in_the_background(settings: Settings,
                                                                           tmp_path: Path) -> None:
    """The LangGraph server's runs (Studio, the SDK) are the canary's traffic too: the graph ``langgraph.json``
    serves starts the shadow when it creates the run and does not wait for it; the pair is recorded when it ends."""
    improve = settings.home / "improve"
    _stand_shouting(improve)
    with scripted_models(_http_script, tmp_path) as models:
        graph = make_graph(settings.model_copy(update={"models_file": models}))
        out = await graph.ainvoke({"goal": HELLO_GOAL, "plan": HELLO_PLAN, "mode": "auto"},
                                  {"configurable": {"thread_id": "served-1"}})
        await settled_shadows()
    assert out["status"] == "passed"  # the user's run is the live config's
    _rolled_back_by(improve, out["run_id"])


async def test_runs_a_worker_starts_are_shadowed(settings: Settings, tmp_path: Path) -> None:
    """`naestro run --remote` / the HTTP API: the worker that starts the run runs its shadow beside it."""
    improve = settings.home / "improve"
    _stand_shouting(improve)
    with scripted_models(_http_script, tmp_path) as models:
        runner = Runner(settings.model_copy(update={"models_file": models}))
        try:
            record = runner.store.create(HELLO_GOAL, source_workspace=None, in_place=False,
                                         policy=RunPolicy(mode="auto"))
            done = await advance(runner, open_locks(None, settings.home),
                                 AdvanceRequest(run_id=record.run_id, plan=HELLO_PLAN), scale=ScaleSettings())
        finally:
            await runner.runtime.aclose()
    assert (done.action, done.status) == ("started", "passed")
    _rolled_back_by(improve, record.run_id)
