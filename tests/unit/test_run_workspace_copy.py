"""A run started from a folder that holds Naestro's own data folder copies the user's files, not the home."""

from __future__ import annotations

from pathlib import Path

import pytest

from naestro.runs import RunStore


def test_workspace_dot_with_the_default_home_inside_copies_the_users_files_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`naestro run --workspace .` in a project with the default home ./.naestro: the copy used to recurse into
    itself (HOME/runs/RUN/workspace is inside '.') until a file name was too long, and would have put the audit
    signing key and every other run in the agent's workspace."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("print(1)\n")
    keys = Path(".naestro/keys")
    keys.mkdir(parents=True)
    (keys / "audit_ed25519").write_text("PRIVATE")
    store = RunStore(Path(".naestro/runs"))
    first = store.create("g", source_workspace=Path("."), in_place=False)
    second = store.create("g", source_workspace=Path("."), in_place=False)  # with a first run's copy in the home
    for record in (first, second):
        ws = Path(record.workspace)
        assert sorted(str(p.relative_to(ws)) for p in ws.rglob("*")) == ["data.csv", "src", "src/app.py"]


def test_a_home_outside_the_folder_changes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "project"
    (source / ".naestro").mkdir(parents=True)  # someone else's data folder: the user's files, copied
    (source / ".naestro" / "notes.txt").write_text("x")
    record = RunStore(tmp_path / "home" / "runs").create("g", source_workspace=source, in_place=False)
    assert (Path(record.workspace) / ".naestro" / "notes.txt").read_text() == "x"
