"""Workspace snapshots: manifests written as deltas (O(change) bytes per step), takes that look only at reported
files, and restores that stay byte-identical whichever way a manifest was stored (issue 16)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from checkpoints import snapshots as snapshots_module
from checkpoints.snapshots import SnapshotStore


def _workspace(root: Path, files: int) -> Path:
    ws = root / "ws"
    (ws / "src").mkdir(parents=True)
    for i in range(files):
        (ws / "src" / f"f{i}.py").write_bytes(os.urandom(64))
    return ws


def _manifest_bytes(store: SnapshotStore, snap: str) -> int:
    return store.manifests.stored_bytes(snap)


def _tree(ws: Path) -> dict[str, bytes]:
    return {str(p.relative_to(ws)): p.read_bytes() for p in sorted(ws.rglob("*")) if p.is_file()}


def test_a_one_file_step_writes_a_constant_size_manifest(tmp_path: Path) -> None:
    sizes = {}
    for files in (20, 400):
        ws = _workspace(tmp_path / str(files), files)
        store = SnapshotStore(tmp_path / str(files) / "snaps")
        first = store.take(ws)
        (ws / "src" / "f0.py").write_text("changed")
        store.note_written(["src/f0.py"])
        second = store.take(ws)
        assert store.manifests.kind(second) == "delta"
        sizes[files] = (_manifest_bytes(store, first), _manifest_bytes(store, second))
    (full_small, delta_small), (full_big, delta_big) = sizes[20], sizes[400]
    assert full_big > 15 * full_small  # the first manifest lists every file...
    assert delta_big == delta_small < 400  # ...a step that changed one file writes the same few bytes


def test_restores_are_byte_identical_from_deltas_in_a_new_store(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, 30)
    store = SnapshotStore(tmp_path / "snaps")
    states, snaps = [], []
    for step in range(6):
        if step:
            victim = ws / "src" / f"f{step}.py"
            if step % 3 == 0:
                victim.unlink()
            else:
                victim.write_text(f"step {step}")
            (ws / f"new{step}.txt").write_text(str(step))
            store.note_written([f"src/f{step}.py", f"new{step}.txt"])
        snaps.append(store.take(ws))
        states.append(_tree(ws))
    fresh = SnapshotStore(tmp_path / "snaps")  # a new process: reads the delta chains from disk
    for snap, state in zip(reversed(snaps), reversed(states), strict=True):
        fresh.restore(snap, ws)
        assert _tree(ws) == state
        assert fresh.changed(snap, ws) == []


def test_known_changes_skip_the_walk_until_something_unknown_ran(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, 5)
    store = SnapshotStore(tmp_path / "snaps")
    base = store.take(ws)
    (ws / "src" / "f1.py").write_text("written by exec.run, not reported")
    assert store.take(ws) == base  # known mode, nothing reported: the unreported file is not looked at
    store.note_tool(read_only=False, paths=None)  # exec.run: may have changed anything
    walked = store.take(ws)
    assert walked != base and store.manifest(walked)["src/f1.py"].size == len("written by exec.run, not reported")
    store.note_tool(read_only=True, paths=None)  # a read-only tool keeps the known mode
    (ws / "src" / "f2.py").write_text("x")
    store.note_tool(read_only=False, paths=["src/f2.py"])
    assert store.manifest(store.take(ws))["src/f2.py"].size == 1
    store.note_tool(read_only=False, paths=["../outside"])  # a path the store cannot trust: walk
    assert store._changed is None


def test_a_rollback_by_another_store_makes_the_next_take_walk(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, 5)
    live = SnapshotStore(tmp_path / "snaps")
    first = live.take(ws)
    (ws / "src" / "f0.py").write_text("v2")
    live.note_written(["src/f0.py"])
    live.take(ws)
    SnapshotStore(tmp_path / "snaps").restore(first, ws)  # `naestro rollback` in the same process
    (ws / "src" / "f3.py").write_text("after the rollback")
    assert live.manifest(live.take(ws))["src/f3.py"].size == len("after the rollback")


def test_a_long_chain_is_cut_by_a_full_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots_module, "CHAIN_LIMIT", 3)
    ws = _workspace(tmp_path, 3)
    store = SnapshotStore(tmp_path / "snaps")
    kinds = []
    for step in range(7):
        (ws / "src" / "f0.py").write_text(str(step))
        store.note_written(["src/f0.py"])
        snap = store.take(ws)
        kinds.append(store.manifests.kind(snap))
    assert kinds == ["full", "delta", "delta", "full", "delta", "delta", "full"]
    assert SnapshotStore(tmp_path / "snaps").manifest(snap)["src/f0.py"].size == 1
