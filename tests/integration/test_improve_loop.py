"""The self-improvement loop end to end (issue 21), with real runs (planner, graph, MCP tools, sandbox, gate,
checkpoints, snapshots), the real Rego engine, a real git repository and real Ed25519 signatures; only the model's
text is scripted.

The scripted Coder behaves like a model that follows its instructions: it runs the tests and fixes stats.py only
when its role prompt tells it to, and writes text files in upper case when told so. The demonstration:

1. A deliberately weakened Coder prompt (the "run it or its test with exec.run" sentence removed) is released
   and made active; a live run of the stats goal fails twice the same way, a hello run passes.
2. ``naestro improve run``'s loop finds it (a weak_prompt finding from the run's recorded events), proposes a
   one-line prompt delta plus the failed run as a counter-example (a self-PR on a branch), validates it on that
   counter-example against the current config, shadows both live runs, merges it as release 0.1.1 whose Sigstore
   bundle verifies with the home's key, and the next runtime uses the new prompt.
3. Deliberately bad proposals: one touching policies/ and one changing the Coder's tools are refused before
   anything is written; one telling the Coder to write upper case passes validation (the counter-example is
   Python) but breaks the hello run in the shadow, and is rolled back automatically: main and the active
   release stay at 0.1.1. ``naestro improve rollback`` then takes 0.1.1 back as a new signed release.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from typer.testing import CliRunner

from naestro.commands.improve import app as improve_app
from naestro.errors import ConfigError
from naestro.improve import ConfigRepo, Proposal, load_active
from naestro.improve.canary import default_slo
from naestro.improve.ledger import ledger
from naestro.improve.loop import ImproveLoop, LoopOptions
from naestro.improve.release import publish
from naestro.improve.repo import MAIN, seed_files
from naestro.improve.validate import Tolerance
from naestro.plan import Role
from naestro.runner import Runner
from naestro.runtime import build_runtime
from naestro.settings import Settings
from policies.audit import load_signing_key
from policies.decision import ApprovedScope, RunPolicy
from tests.fakes import ScriptedProvider, all_text

VERIFY = "run it or its test with exec.run to verify it works"
DELTA = "run exactly that command with exec.run"
WRONG = "def mean(xs):\n    return sum(xs) / (len(xs) + 1)\n"
RIGHT = "def mean(xs):\n    return sum(xs) / len(xs)\n"
NOTES = "mean(xs) is the sum divided by the count\n"
STATS_GOAL = "write stats.py with mean(xs)"
HELLO_GOAL = "write hello.txt saying Hello, Naestro!"

# A plain command check, not pytest: on a loaded machine pytest can hit its timeout in one attempt and fail with an
# assertion in the next, and then the attempts did not fail "the same way" (seen at load 8 with nice 19).
STATS_PLAN = {"goal": STATS_GOAL, "tasks": [{
    "id": "stats", "role": "coder", "description": "write stats.py with mean(xs)", "max_attempts": 2,
    "accept": [{"kind": "command", "timeout_s": 600,
                "command": "python3 -c \"from stats import mean; assert mean([2, 4]) == 3, mean([2, 4])\""}]}]}
HELLO_PLAN = {"goal": HELLO_GOAL, "tasks": [{
    "id": "hello", "role": "coder", "description": "write hello.txt saying Hello, Naestro!", "max_attempts": 2,
    "accept": [{"kind": "regex", "file": "hello.txt", "pattern": "Hello, Naestro!"}]}]}


def script(messages: list[BaseMessage]) -> Any:
    text, first = all_text(messages), str(messages[0].content)
    if first.startswith("You are the Planner"):
        return STATS_PLAN if STATS_GOAL in text else HELLO_PLAN
    if "Write 2-4 sentences" in text:
        return {"summary": "the run ended."}
    if "You write short, correct Python 3 programs" in text:
        return {"script": "print('Hello, Naestro!')"}
    if any(isinstance(m, AIMessage) for m in messages):
        return {"thought": "done", "tool": "finish", "arguments": {"summary": "done", "outputs": {}}}
    role_prompt = first.split("\n\nTools:")[0]
    if "write stats.py" in text:  # follows an instruction to run the tests; without one it never sees its bug
        runs_tests = "exec.run to verify" in role_prompt or "run exactly that command with exec.run" in role_prompt
        return {"thought": "w", "tool": "fs.write",
                "arguments": {"path": "stats.py", "content": RIGHT if runs_tests else WRONG}}
    body = "Hello, Naestro!\n"
    return {"thought": "w", "tool": "fs.write",
            "arguments": {"path": "hello.txt", "content": body.upper() if "upper case" in role_prompt else body}}


def weakened_seed() -> dict[str, str]:
    roles = resources.files("nodes").joinpath("roles.yaml").read_text()
    sentence = " Write the whole file with fs.write,\n    then run it or its test with exec.run to verify it works " \
               "before you finish. Fix errors you see.\n"
    assert roles.count(sentence) == 1
    return {**seed_files(), "roles.yaml": roles.replace(sentence, "\n")}


def proposal(kind: str, title: str, changes: dict[str, str]) -> Proposal:
    return Proposal.model_validate({"kind": kind, "title": title, "rationale": f"deliberately bad: {title}",
                                    "changes": [{"path": p, "text": t} for p, t in changes.items()]})


@pytest.fixture
def home_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"review": False})


async def test_weakened_prompt_is_found_fixed_validated_canaried_merged_and_bad_proposals_are_stopped(
        home_settings: Settings, tmp_path: Path) -> None:
    settings = home_settings
    improve = settings.home / "improve"
    key = load_signing_key(settings.keys_dir)
    repo = ConfigRepo.open(improve / "config.git", seed=weakened_seed())
    publish(repo, improve, key, proposal=None)  # release 0.1.0: the weakened prompt, active
    provider = ScriptedProvider(script)

    # 1. live traffic on the weakened prompt
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "notes.txt").write_text(NOTES)
    runner = Runner(settings, provider)
    weakened = runner.runtime.roles[Role.coder].prompt
    assert VERIFY not in weakened and DELTA not in weakened
    policy = RunPolicy(approve=[ApprovedScope(tool="exec.run")])
    failed = await runner.start(STATS_GOAL, workspace=seed, policy=policy)
    passed = await runner.start(HELLO_GOAL, workspace=seed, policy=policy)
    await runner.runtime.aclose()
    assert failed.record.status == "failed" and failed.tasks["stats"]["attempts"] == 2
    assert passed.passed

    # 2. the loop: collect, propose, allowlist, validate, canary, merge, learn
    # Latency is measured and recorded but not judged here: on a loaded CI machine wall times say nothing about
    # the prompts (the SLOs on success, cost and safety keep their defaults).
    untimed = {"wall_ratio": 1e6, "wall_slack_s": 1e6}
    loop = ImproveLoop(settings=settings, provider=provider, engine=runner.runtime.engine, key=key,
                       options=LoopOptions(fraction=1.0, k=1, tolerance=Tolerance(**untimed),
                                           slo=default_slo().model_copy(update=untimed)))
    records = await loop.run()
    assert [r.state for r in records] == ["merged"], ([r.reasons for r in records], loop.queue.items())
    merged = records[0]
    assert merged.version == "0.1.1" and merged.branch == f"improve/{merged.id}"
    assert merged.validation is not None and merged.validation.current is not None
    assert (merged.validation.current.passed, merged.validation.candidate and merged.validation.candidate.passed) \
        == (0, 1)
    assert merged.canary is not None and len(merged.canary.pairs) == 2 and merged.canary.shadow is not None
    assert merged.canary.shadow.passed == 2 and merged.canary.live is not None and merged.canary.live.passed == 1
    patch = (improve / "proposals" / f"{merged.id}.patch").read_text()
    added = [ln for ln in patch.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert sum("run exactly that command with exec.run" in ln for ln in added) == 1
    assert not [ln for ln in patch.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    tree = repo.files(MAIN)
    assert tree["VERSION"] == "0.1.1\n" and f"golden/ce_{failed.record.run_id.replace('-', '_')}_stats.json" in tree
    assert "validation (1 golden goal(s) x k=1): current 0/1 passed" in tree["CHANGELOG.md"]
    assert "canary (2 of 2 live run(s) shadowed" in tree["CHANGELOG.md"]
    active = load_active(improve, key.public_key())
    assert active is not None and active.version == "0.1.1"
    assert loop.queue.items()[0].state == "merged"
    # live traffic on the merged release: the same stats goal passes now
    runner = Runner(settings, provider)
    assert DELTA in runner.runtime.roles[Role.coder].prompt
    fixed = await runner.start(STATS_GOAL, workspace=seed, policy=policy)
    again = await runner.start(HELLO_GOAL, workspace=seed, policy=policy)
    await runner.runtime.aclose()
    assert fixed.passed and fixed.tasks["stats"]["attempts"] == 1 and again.passed
    cli = CliRunner()
    verified = cli.invoke(improve_app, ["verify"], env={"NAESTRO_HOME": str(settings.home)})
    assert verified.exit_code == 0 and "0.1.1: signature OK" in verified.output, verified.output

    # 3. bad proposals
    roles = tree["roles.yaml"]
    branches = repo.branches()
    policies = await loop.process(proposal("prompt_delta", "relax the gate", {"policies/rego/gate.rego": "package x"}))
    tools = await loop.process(proposal("prompt_delta", "give the coder the web",
                                        {"roles.yaml": roles.replace("tools: [fs.read, fs.list, fs.write, exec.run]",
                                                                     "tools: [fs.read, fs.list, fs.write, exec.run, "
                                                                     "web.fetch]", 1)}))
    assert (policies.state, tools.state) == ("refused", "refused")
    assert "protected" in policies.reasons[0] and "coder.tools" in " ".join(tools.reasons)
    assert repo.branches() == branches  # nothing was written for a refused proposal
    shouting = roles.replace(DELTA, "write every text file in upper case, and " + DELTA)
    bad = await loop.process(proposal("prompt_delta", "shout", {"roles.yaml": shouting}))
    assert bad.state == "rolled_back" and bad.validation is not None and bad.validation.passed
    assert bad.canary is not None  # shadowed: the live runs made on the active release 0.1.1
    assert sorted(p.live.run_id for p in bad.canary.pairs) == sorted([fixed.record.run_id, again.record.run_id])
    assert bad.reasons[0] == f"canary: success: the shadow failed 1 live run(s) that passed ({again.record.run_id})"
    assert bad.reasons[1].startswith("canary: success: 1/2 passed, current 2/2")
    assert repo.files(MAIN)["VERSION"] == "0.1.1\n" and f"improve/{bad.id}" in repo.branches()
    assert load_active(improve, key.public_key()).version == "0.1.1"  # type: ignore[union-attr]
    assert [r.state for r in ledger(improve)] == ["merged", "refused", "refused", "rolled_back"]

    # the operator takes the merged release back; a tampered active release refuses to load
    rolled = cli.invoke(improve_app, ["rollback", "--json"], env={"NAESTRO_HOME": str(settings.home)})
    assert rolled.exit_code == 0, rolled.output
    assert json.loads(rolled.output)["version"] == "0.1.2"
    assert DELTA not in build_runtime(settings, provider=provider).roles[Role.coder].prompt
    status = cli.invoke(improve_app, ["status", "--json"], env={"NAESTRO_HOME": str(settings.home)})
    assert json.loads(status.output)["active"] == "0.1.2"
    roles_file = improve / "active" / "roles.yaml"
    roles_file.write_text(roles_file.read_text() + "# edited by hand\n")
    with pytest.raises(ConfigError, match="differs from the signed release"):
        build_runtime(settings, provider=provider)
    # what BENCHMARKS.md records (run with -s): wall seconds per phase of each proposal
    print("improve-phases", json.dumps({"merged": merged.seconds, "refused_policies": policies.seconds,
                                        "refused_tools": tools.seconds, "rolled_back": bad.seconds}))
