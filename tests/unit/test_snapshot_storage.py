"""Snapshot storage: packed contents and the manifest log (issue 16: a step appends, it creates no file),
torn lines after a crash, another process's appends, and stores written before packs existed."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoints.manifestlog import ManifestLog
from checkpoints.objectpack import PACK_MAX, ObjectPack
from checkpoints.snapshots import SnapshotStore


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def test_a_step_after_the_first_creates_no_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a")
    store = SnapshotStore(tmp_path / "snaps")
    store.take(ws)
    before = _files(tmp_path / "snaps")
    for i in range(5):
        (ws / f"f{i}.txt").write_text(str(i))
        store.note_written([f"f{i}.txt"])
        store.take(ws)
    assert _files(tmp_path / "snaps") == before  # contents and manifests were appended to open files


def test_another_store_sees_appends_and_restores_them(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    writer = SnapshotStore(tmp_path / "snaps")
    (ws / "a.txt").write_text("one")
    first = writer.take(ws)
    reader = SnapshotStore(tmp_path / "snaps")  # opened before the next append, as another process would be
    assert reader.latest() == first
    (ws / "a.txt").write_text("two")
    writer.note_written(["a.txt"])
    second = writer.take(ws)
    assert reader.latest() == second
    reader.restore(first, ws)
    assert (ws / "a.txt").read_text() == "one"
    assert writer.latest() == first  # the restore moved the log's latest for every store


def test_torn_lines_are_skipped_and_the_next_append_stays_whole(tmp_path: Path) -> None:
    pack = ObjectPack(tmp_path)
    first = pack.put_bytes(b"first")
    log = ManifestLog(tmp_path)
    log.append_full("s1", {"a": {"sha256": first}})
    pack.close()
    log.close()
    with (tmp_path / "objects.idx").open("ab") as fh:  # a crash in the middle of both writes
        fh.write(b"deadbeef 99")
    with (tmp_path / "manifests.jsonl").open("ab") as fh:
        fh.write(b'{"id": "s2", "full": {')
    pack, log = ObjectPack(tmp_path), ManifestLog(tmp_path)
    second = pack.put_bytes(b"second")
    log.append_full("s3", {"b": {"sha256": second}})
    fresh_pack, fresh_log = ObjectPack(tmp_path), ManifestLog(tmp_path)
    assert fresh_pack.read(first) == b"first" and fresh_pack.read(second) == b"second"
    assert not fresh_pack.has("deadbeef")
    assert fresh_log.latest() == "s3" and fresh_log.body("s2") is None and fresh_log.kind("s1") == "full"


def test_an_index_line_past_the_packs_end_is_not_an_object(tmp_path: Path) -> None:
    (tmp_path / "objects.pack").write_bytes(b"abc")
    (tmp_path / "objects.idx").write_bytes(b"x1 0 3\nx2 2 9\n")
    pack = ObjectPack(tmp_path)
    assert pack.read("x1") == b"abc" and not pack.has("x2")


def test_a_store_written_before_packs_is_still_read(tmp_path: Path) -> None:
    root = tmp_path / "snaps"
    content = b"legacy bytes"
    sha = hashlib.sha256(content).hexdigest()
    (root / "objects").mkdir(parents=True)
    (root / "objects" / sha).write_bytes(content)
    (root / "manifests").mkdir()
    entry = {"sha256": sha, "mode": 0o644, "size": len(content), "mtime_ns": 1, "link": None}
    (root / "manifests" / "old1.json").write_text(json.dumps({"f.txt": entry}))
    (root / "latest").write_text("old1")
    store = SnapshotStore(root)
    assert store.latest() == "old1"
    ws = tmp_path / "ws"
    ws.mkdir()
    store.restore("old1", ws)
    assert (ws / "f.txt").read_bytes() == content
    fork = SnapshotStore(tmp_path / "fork")
    store.copy_into(fork)
    assert fork.manifest("old1")["f.txt"].sha256 == sha and fork.objects.read(sha) == content


def test_large_contents_stay_loose_files(tmp_path: Path) -> None:
    pack = ObjectPack(tmp_path)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (PACK_MAX + 1))
    sha = pack.put_file(big)
    assert (tmp_path / "objects" / sha).stat().st_size == PACK_MAX + 1
    assert ObjectPack(tmp_path).read(sha) == big.read_bytes()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=12))
def test_every_content_put_reads_back_from_a_fresh_pack(blobs: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pack = ObjectPack(Path(tmp))
        shas = [pack.put_bytes(b) for b in blobs]
        fresh = ObjectPack(Path(tmp))
        assert [fresh.read(s) for s in shas] == blobs
        assert fresh.names() == {hashlib.sha256(b).hexdigest() for b in blobs}
