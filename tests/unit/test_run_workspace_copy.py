"""Copies of a folder that holds Naestro's own data folder (a run's workspace, the probes') copy the user's files, not
the home."""

from __future__ import annotations

from pathlib import Path

import pytest

from naestro.homes import copy_workspace, home_of, workspace_bytes, workspace_files
from naestro.runs import RunStore
from nodes.vacuity import fits_throwaway_copy


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


def test_copies_and_walks_of_an_in_place_workspace_leave_its_home_out(tmp_path: Path) -> None:
    """Probes copy the workspace (reference programs, vacuity, goal checks, the canary's seed); in an --in-place
    run that is the user's folder, holding the home: the copies, their size limit and the file lists skip it."""
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "app.py").write_text("print(1)\n")
    home = project / "sub" / ".naestro"
    record = RunStore(home / "runs").create("g", source_workspace=project, in_place=True)
    assert home_of(RunStore(home / "runs").dir(record.run_id)) == home
    with (home / "checkpoints.sqlite").open("wb") as big:
        big.truncate(60_000_000)  # sparse: the size the walk sees, without writing it
    (project / ".naestro").mkdir()  # a folder of that name that is not this runtime's home: the user's
    (project / ".naestro" / "notes.txt").write_text("x")
    copy_workspace(project, tmp_path / "copy", leave_out=(home,))
    assert sorted(str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*")) == [
        ".naestro", ".naestro/notes.txt", "app.py", "sub"]
    assert workspace_files(project, leave_out=(home,)) == [".naestro/notes.txt", "app.py"]
    assert workspace_bytes(project, leave_out=(home,)) == len("print(1)\n") + 1
    assert fits_throwaway_copy(project, leave_out=(home,)) and not fits_throwaway_copy(project)
