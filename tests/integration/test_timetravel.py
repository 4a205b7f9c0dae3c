"""History, rollback (state + exact workspace bytes), reversibility, fork and offline replay on real runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from checkpoints.snapshots import WorkspaceChanged
from naestro.events import read_events
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from naestro.timetravel import HistoryEntry, TimeTravel
from tests.fakes import ScriptedProvider, all_text

PLAN = Plan.model_validate({"goal": "g", "tasks": [
    {"id": "a", "role": "coder", "description": "write a.txt",
     "accept": [{"kind": "regex", "file": "a.txt", "pattern": "^A"}]},
    {"id": "b", "role": "coder", "description": "write b.txt and change a.txt", "deps": ["a"],
     "accept": [{"kind": "file_exists", "path": "b.txt"}]}]})


def script(messages: list[BaseMessage]) -> dict[str, Any]:
    text = all_text(messages)
    if "Write 2-4 sentences" in text:
        return {"summary": "wrote the files"}
    steps = sum(isinstance(m, AIMessage) for m in messages)
    if "Your task (a)" in text:
        actions = [{"tool": "fs.write", "arguments": {"path": "a.txt", "content": "A from a\n"}}]
    else:
        actions = [{"tool": "fs.write", "arguments": {"path": "b.txt", "content": "B\n"}},
                   {"tool": "fs.write", "arguments": {"path": "a.txt", "content": "A changed by b\n"}}]
    if steps < len(actions):
        return {"thought": "go", **actions[steps]}
    return {"thought": "done", "tool": "finish", "arguments": {"summary": "ok", "outputs": {}}}


def before_b(entries: list[HistoryEntry]) -> HistoryEntry:
    return next(e for e in entries if "task:b" in e.next)


async def test_history_rollback_restores_state_and_bytes_and_is_reversible(settings: Settings) -> None:
    provider = ScriptedProvider(script)
    runner = Runner(settings, provider)
    first = await runner.start("g", plan=PLAN)
    assert first.passed
    ws = Path(first.record.workspace)
    travel = TimeTravel(runner)
    entries = await travel.history(first.record.run_id)
    assert entries[0].node == "input" and entries[-1].head and all(e.snapshot for e in entries)
    assert [e.step for e in entries] == sorted(e.step for e in entries)
    old_head = entries[-1].checkpoint_id

    target = before_b(entries)
    await travel.rollback(first.record.run_id, target.checkpoint_id)
    assert (ws / "a.txt").read_bytes() == b"A from a\n" and not (ws / "b.txt").exists()
    record = runner.store.load(first.record.run_id)
    assert record.head == target.checkpoint_id and record.status == "rolled_back"
    state = {e.checkpoint_id: e for e in await travel.history(first.record.run_id)}[target.checkpoint_id]
    assert state.head

    # Undo: roll forward to the old head restores b's files.
    await travel.rollback(first.record.run_id, old_head)
    assert (ws / "a.txt").read_bytes() == b"A changed by b\n" and (ws / "b.txt").read_bytes() == b"B\n"
    kinds = [r for r in runner.audit_log(first.record.run_id).path.read_text().splitlines() if '"rollback"' in r]
    assert len(kinds) == 2

    # Roll back again and resume: b really runs again (new journal epoch), the run passes on a new branch.
    await travel.rollback(first.record.run_id, target.checkpoint_id)
    calls = provider.model.calls
    again = await runner.resume(first.record.run_id)
    assert again.passed and (ws / "b.txt").exists()
    assert provider.model.calls > calls
    history = await travel.history(first.record.run_id)
    assert sum(1 for e in history if "task:b" in e.next) >= 1 and len(history) > len(entries)  # both branches


async def test_rollback_refuses_to_overwrite_outside_changes(settings: Settings) -> None:
    runner = Runner(settings, ScriptedProvider(script))
    done = await runner.start("g", plan=PLAN)
    ws = Path(done.record.workspace)
    (ws / "notes.txt").write_text("mine, written by hand")
    travel = TimeTravel(runner)
    target = before_b(await travel.history(done.record.run_id))
    with pytest.raises(WorkspaceChanged, match=r"notes\.txt"):
        await travel.rollback(done.record.run_id, target.checkpoint_id)
    assert (ws / "b.txt").exists()  # nothing was touched
    await travel.rollback(done.record.run_id, target.checkpoint_id, force=True)
    assert not (ws / "notes.txt").exists() and not (ws / "b.txt").exists()


async def test_fork_is_a_new_run_and_history_keeps_both(settings: Settings) -> None:
    runner = Runner(settings, ScriptedProvider(script))
    done = await runner.start("g", plan=PLAN)
    travel = TimeTravel(runner)
    target = before_b(await travel.history(done.record.run_id))
    fork = await travel.fork(done.record.run_id, target.checkpoint_id)
    assert fork.run_id != done.record.run_id and fork.workspace != done.record.workspace
    assert not (Path(fork.workspace) / "b.txt").exists() and (Path(done.record.workspace) / "b.txt").exists()
    finished = await runner.resume(fork.run_id)
    assert finished.passed and (Path(fork.workspace) / "b.txt").exists()
    source = await travel.history(done.record.run_id)
    forked = await travel.history(fork.run_id)
    # one thread, two branches: the source still ends at its own head, the fork at its own
    assert next(e for e in source if e.head).checkpoint_id != next(e for e in forked if e.head).checkpoint_id
    again = await runner.resume(done.record.run_id)
    assert again.passed  # the source was pinned to its own head; the fork's checkpoints did not leak into it


async def test_offline_replay_uses_recorded_model_replies(settings: Settings) -> None:
    runner = Runner(settings, ScriptedProvider(script))
    done = await runner.start("g", plan=PLAN)
    travel = TimeTravel(runner)
    entries = await travel.history(done.record.run_id)

    def no_model(messages: list[BaseMessage]) -> Any:
        raise AssertionError("offline replay called the model")

    await travel.rollback(done.record.run_id, entries[0].checkpoint_id, action="replay")
    record = runner.store.load(done.record.run_id)
    record.replay_epoch = 0
    runner.store.save(record)
    replayed = await Runner(settings, ScriptedProvider(no_model)).resume(done.record.run_id)
    assert replayed.passed
    events = read_events(replayed.report_path.parent / "events.jsonl")
    assert [e["tool"] for e in events if e["event"] == "tool_call"].count("fs.write") == 6  # 3 + 3 re-executed


async def test_prune_drops_time_travel_data_of_old_finished_runs(settings: Settings) -> None:
    from naestro.prune import prune_runs

    runner = Runner(settings, ScriptedProvider(script))
    old, new = [await runner.start("g", plan=PLAN) for _ in range(2)]
    dry = await prune_runs(settings, keep=1, older_than_days=0, dry_run=True)
    assert dry.pruned == [old.record.run_id] and (runner.store.dir(old.record.run_id) / "snapshots").exists()
    report = await prune_runs(settings, keep=1, older_than_days=0)
    assert report.pruned == [old.record.run_id] and report.bytes_freed > 0
    assert not (runner.store.dir(old.record.run_id) / "snapshots").exists()
    assert (runner.store.dir(old.record.run_id) / "report.md").exists()  # what people read stays
    assert await TimeTravel(runner).history(old.record.run_id) == []
    assert len(await TimeTravel(runner).history(new.record.run_id)) > 5  # the newest run keeps everything


def test_cli_history_json_and_bad_references(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import json

    from typer.testing import CliRunner

    from naestro.cli import app

    done = asyncio.run(Runner(settings, ScriptedProvider(script)).start("g", plan=PLAN))
    monkeypatch.setenv("NAESTRO_HOME", str(settings.home))
    monkeypatch.setenv("NAESTRO_MODELS_DIR", str(settings.models_dir))
    cli = CliRunner()
    listed = cli.invoke(app, ["runs", "history", done.record.run_id, "--json"])
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.stdout)
    assert {"checkpoint_id", "step", "node", "snapshot"} <= set(entries[0]) and entries[-1]["head"]
    assert cli.invoke(app, ["runs", "rollback", done.record.run_id, "--to", "no-such-checkpoint"]).exit_code == 2
    assert cli.invoke(app, ["runs", "history", "no-such-run"]).exit_code == 2
    target = next(e for e in entries if "task:b" in e["next"])
    rolled = cli.invoke(app, ["runs", "rollback", done.record.run_id, "--to", target["checkpoint_id"]])
    assert rolled.exit_code == 0, rolled.output
    assert not (Path(done.record.workspace) / "b.txt").exists()
