"""Counter-examples: a failed run turned into a golden goal (its goal, the files its workspace started with, the
failing task's acceptance checks), so the failure becomes a test every later proposal is validated against.

The starting files are read from the run's first workspace snapshot (read only: ``SnapshotStore.restore``
would move the run's ``latest`` marker). Checks that need a model (``llm_judge``) are left out: a golden check
runs without one.
"""

from __future__ import annotations

import json
import re

from naestro.golden import GoldenGoal
from naestro.plan import AcceptanceCheck, EvaluatorCheck
from naestro.runs import RunStore
from naestro.validate import parse_plan_text

__all__ = ["counterexample_of", "goal_id_of", "starting_files"]

_MAX_FILE = 64_000


def goal_id_of(run_id: str, task: str) -> str:
    return "ce_" + re.sub(r"[^a-z0-9_]", "_", f"{run_id}_{task}".lower())


def starting_files(store: RunStore, run_id: str) -> dict[str, str] | None:
    from checkpoints.snapshots import SnapshotStore

    root = store.dir(run_id) / "snapshots"
    index = root / "index.jsonl"
    if not index.exists():
        return None  # pruned, or never snapshotted
    first = next((json.loads(line) for line in index.read_text().splitlines() if line.strip()), None)
    if first is None:
        return None
    snaps = SnapshotStore(root)
    files: dict[str, str] = {}
    try:
        for rel, entry in snaps.manifest(str(first["snapshot"])).items():
            if entry.link is not None or entry.size > _MAX_FILE:
                continue
            try:
                files[rel] = snaps.objects.read(entry.sha256).decode("utf-8")
            except (OSError, KeyError, UnicodeDecodeError):
                continue  # binary or missing: a golden goal holds text files only
    finally:
        snaps.close()
    return files


def counterexample_of(store: RunStore, run_id: str, task: str) -> GoldenGoal | None:
    """The golden goal that fails the way ``run_id`` failed at ``task``; None without a plan, snapshot or checks."""
    record = store.load(run_id)
    spec = None
    for name in reversed(record.plans):  # a re-planned run: the newest plan that has the task
        path = store.dir(run_id) / name
        spec = next((t for t in parse_plan_text(path.read_text(), source=str(path)).tasks if t.id == task), None)
        if spec is not None:
            break
    files = starting_files(store, run_id)
    if spec is None or files is None:
        return None
    checks: list[AcceptanceCheck] = [c for c in spec.accept
                                     if not (isinstance(c, EvaluatorCheck) and c.evaluator == "llm_judge")]
    if not checks:
        return None
    code = any(c.kind == "command" or (isinstance(c, EvaluatorCheck) and c.evaluator == "code") for c in checks)
    return GoldenGoal(id=goal_id_of(run_id, task), kind="code" if code else "file", goal=record.goal, files=files,
                      check=tuple(checks))
