"""Naestro's data folder (the home) is never part of a workspace, even when it lies inside one.

``naestro run --in-place`` (or ``--workspace .``) in a project with the default home ``./.naestro`` makes the
user's folder the workspace, with the home inside it. The exec sandbox always hid the home at its path, but every
other way into the workspace did not: the fs tools read and wrote ``.naestro/`` (the audit signing key, ``tools.yaml``
that grants external servers to roles), git saw it, the probes' throwaway copies (reference programs, vacuity, goal
checks, the canary's seed) carried it where the model's programs run, and the step snapshots recorded it, so a
rollback rewrote the open checkpoint database.

The home is known from the run's own layout (``HOME/runs/RUN``), not from anything in the workspace a program
could forge; the tool servers are told it (``ServerOptions.hidden``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

__all__ = ["copy_workspace", "home_of", "left_out", "walk", "workspace_bytes", "workspace_files"]


def home_of(run_dir: Path) -> Path | None:
    """The home a run directory lives in (``HOME/runs/RUN`` → ``HOME``; see ``naestro.runs``), else None."""
    return run_dir.parent.parent if run_dir.parent.name == "runs" else None


def left_out(source: Path, folders: Collection[Path | None]) -> set[Path]:
    """Those of ``folders`` (resolved) that lie strictly inside ``source``: what a copy or walk of it skips."""
    src = source.resolve()
    return {r for f in folders if f is not None and (r := f.resolve()) != src and src in r.parents}


def _filter(source: Path, folders: Collection[Path | None]) -> Callable[[str, list[str]], list[str]]:
    skipped = left_out(source, folders)

    def ignore(folder: str, names: list[str]) -> list[str]:
        here = Path(folder).resolve()
        return [n for n in names if here / n in skipped]
    return ignore


def copy_workspace(source: Path, dest: Path, *, leave_out: Collection[Path | None],
                   ignore: Callable[[str, list[str]], Collection[str]] | None = None) -> None:
    """``shutil.copytree(source, dest, symlinks=True)`` without the ``leave_out`` folders inside it (the home)
    and what ``ignore`` (a ``copytree`` filter) names. Blocking."""
    homes = _filter(source, leave_out)

    def both(folder: str, names: list[str]) -> list[str]:
        return sorted({*homes(folder, names), *(ignore(folder, names) if ignore is not None else ())})
    shutil.copytree(source, dest, symlinks=True, ignore=both)


def walk(root: Path, leave_out: Collection[Path | None]) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(root)`` that does not descend into the ``leave_out`` folders inside it."""
    skipped = left_out(root, leave_out)
    for top, dirs, files in os.walk(root):
        if skipped:
            here = Path(top).resolve()
            dirs[:] = [d for d in dirs if here / d not in skipped]
        yield top, dirs, files


def workspace_bytes(root: Path, *, leave_out: Collection[Path | None]) -> int:
    """What ``copy_workspace(root, ...)`` copies, in bytes of regular files. Blocking: walks the tree."""
    total = 0
    for top, _dirs, files in walk(root, leave_out):
        for name in files:
            path = Path(top) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def workspace_files(root: Path, *, leave_out: Collection[Path | None]) -> list[str]:
    """The workspace's files (paths relative to it, sorted) without those in the ``leave_out`` folders: what the
    model and reports are shown of it. Blocking."""
    return sorted(str((Path(top) / n).relative_to(root)) for top, _dirs, files in walk(root, leave_out)
                  for n in files if (Path(top) / n).is_file())
