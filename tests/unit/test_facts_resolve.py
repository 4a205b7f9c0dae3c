"""Path facts resolve like ``os.path.realpath`` whatever the tree holds: the gate's fast path (the workspace
resolved once, only the parts below it looked at) must give the same answer as resolving the whole path, or a
symlink could carry a write out of the workspace unseen."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.facts import _resolve

PARTS = ["a", "b", "f.txt", "link_in", "link_out", "loop", "missing", ".", ".."]


def _tree(root: Path) -> Path:
    ws = root / "home" / "runs" / "r1" / "workspace"
    (ws / "a" / "b").mkdir(parents=True)
    (ws / "a" / "f.txt").write_text("x")
    (root / "outside").mkdir()
    os.symlink(ws / "a" / "b", ws / "a" / "link_in")
    os.symlink(root / "outside", ws / "a" / "link_out")
    os.symlink("loop", ws / "loop")
    os.symlink(root / "outside", ws / "link_out")
    return ws


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PARTS), min_size=1, max_size=5), st.booleans())
def test_a_relative_path_resolves_as_realpath_does(parts: list[str], through_a: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = _tree(Path(tmp))
        raw = "/".join((["a"] if through_a else []) + parts)
        try:
            got = _resolve(raw, ws)
        except RuntimeError:  # a symlink loop: the caller turns it into a problem the policy denies
            assert "loop" in parts
            return
        assert got == os.path.realpath(os.path.join(ws, *[p for p in raw.split("/") if p and p != "."]))
