"""Retention: drop the checkpoints, snapshots and journal of old finished runs; keep what a person reads.

A pruned run keeps run.json, its plans, events.jsonl, report.md, the audit log and its workspace; it loses
time travel (no checkpoints, no snapshots) and cannot be resumed. Runs that can still continue (running,
waiting, paused, rolled back, errored) are never pruned.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from checkpoints import open_saver
from naestro.runs import RunStore
from naestro.settings import Settings

__all__ = ["PruneReport", "prune_runs"]

FINISHED = ("passed", "failed")


@dataclass
class PruneReport:
    pruned: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    bytes_freed: int = 0


def _size(path: Path) -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def prune_runs(settings: Settings, *, keep: int, older_than_days: float, dry_run: bool = False) -> PruneReport:
    """Prune finished runs beyond the newest ``keep`` that are older than ``older_than_days``."""
    store = RunStore(settings.runs_dir)
    records = sorted(store.list(), key=lambda r: r.created, reverse=True)
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    report = PruneReport()
    victims = []
    for i, r in enumerate(records):
        old = datetime.fromisoformat(r.updated) < cutoff
        if i >= keep and old and r.status in FINISHED and not r.pruned:
            victims.append(r)
        else:
            report.kept.append(r.run_id)
    if not victims or dry_run:
        report.pruned = [r.run_id for r in victims]
        return report
    async with open_saver(settings.checkpoint_url, settings.checkpoint_db) as saver:
        for r in victims:
            shared = {t for other in records if other.run_id != r.run_id and not other.pruned for t in other.threads}
            for thread in r.threads:
                if thread not in shared:  # a fork may still use the thread
                    await saver.adelete_thread(thread)
            run_dir = store.dir(r.run_id)
            for name in ("snapshots", "journal.jsonl"):
                report.bytes_freed += _size(run_dir / name)
                target = run_dir / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
            r.pruned = True
            store.save(r)
            report.pruned.append(r.run_id)
    if settings.checkpoint_url is None and settings.checkpoint_db.exists():
        import sqlite3

        before = _size(settings.checkpoint_db)
        with sqlite3.connect(settings.checkpoint_db) as db:
            db.execute("VACUUM")
        report.bytes_freed += max(0, before - _size(settings.checkpoint_db))
    return report
