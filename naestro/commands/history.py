"""``naestro runs history | rollback | replay | fork``: time travel over checkpoints and workspace snapshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from naestro.commands._errors import fail as _fail
from naestro.commands._settings import load_settings
from naestro.errors import NaestroError, UsageError

if TYPE_CHECKING:
    from naestro.timetravel import TimeTravel

__all__ = ["fork", "history", "prepare_replay", "prune", "rollback"]

out = Console()


def _travel() -> TimeTravel:
    # Time travel needs the Runner and its graph (langgraph, langchain): loaded now, never for `--help` (issue 15).
    from naestro.runner import Runner
    from naestro.runtime import build_runtime
    from naestro.timetravel import TimeTravel

    settings = load_settings()
    return TimeTravel(Runner.of(build_runtime(settings)))


def history(run_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every checkpoint of a run: step, node, time, tokens, cost, workspace snapshot (oldest first)."""
    import asyncio  # here, like every runtime import: `--help` loads none (issue 16)

    try:
        entries = asyncio.run(_travel().history(run_id))
    except NaestroError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps([e.as_json() for e in entries], indent=2))
        return
    table = Table("", "checkpoint", "phase", "step", "node", "next", "tokens", "cost $", "snapshot", "created")
    for e in entries:
        table.add_row("▶" if e.head else "", e.checkpoint_id, str(e.phase), str(e.step), e.node, ",".join(e.next),
                      str(e.tokens), f"{e.cost_usd:.4f}", e.snapshot or "", e.created[11:19])
    out.print(table)


Ref = Annotated[str, typer.Option("--to", help="checkpoint id (or unique prefix/suffix) or step number")]
Force = Annotated[bool, typer.Option("--force", help="discard workspace changes made outside Naestro")]


def rollback(run_id: str, to: Ref, force: Force = False) -> None:
    """Restore state AND workspace files to a checkpoint; `naestro resume RUN` continues from there."""
    import asyncio

    try:
        target = asyncio.run(_travel().rollback(run_id, to, force=force))
    except NaestroError as exc:
        raise _fail(exc) from exc
    out.print(f"run {run_id}: rolled back to step {target.step} ({target.checkpoint_id}), workspace = snapshot "
              f"{target.snapshot}; continue with `naestro resume {run_id}` (undo: rollback to the previous head, "
              "see `naestro runs history`)")


def prepare_replay(run_id: str, from_: str, *, offline: bool, force: bool) -> None:
    """Roll back to ``from_`` as a replay (a new journal epoch; offline: recorded replies reused)."""
    import asyncio

    try:
        travel = _travel()  # a bad models.yaml or policy folder fails here, with exit 2
        record = travel.store.load(run_id)
        previous_epoch = record.epoch
        asyncio.run(travel.rollback(run_id, from_, force=force, action="replay"))
        if offline:
            record = travel.store.load(run_id)
            record.replay_epoch = previous_epoch
            travel.store.save(record)
    except NaestroError as exc:
        raise _fail(exc) from exc



def fork(run_id: str, at: Annotated[str, typer.Option("--at", help="checkpoint id or step")],
         edit: Annotated[Path | None, typer.Option("--edit", help="JSON object merged into the state")] = None,
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A new run from a checkpoint of this one (its own workspace copy); the original keeps its history."""
    import asyncio

    try:
        changes: dict[str, Any] | None = json.loads(edit.read_text()) if edit else None
    except (OSError, json.JSONDecodeError) as exc:
        raise _fail(UsageError(f"--edit {edit}: {exc}")) from exc
    if changes is not None and not isinstance(changes, dict):
        raise _fail(UsageError(f"--edit {edit}: must be a JSON object of state keys"))
    try:
        new = asyncio.run(_travel().fork(run_id, at, edit=changes))
    except NaestroError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps({"run_id": new.run_id, "forked_from": run_id, "head": new.head,
                          "workspace": new.workspace}))
    else:
        out.print(f"forked {run_id} at {at} → run [bold]{new.run_id}[/bold]; run it with `naestro resume {new.run_id}`")


def prune(keep: Annotated[int, typer.Option(help="always keep the newest N runs")] = 20,
          older_than_days: Annotated[float, typer.Option("--older-than-days", help="only runs idle this long")] = 7,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be pruned")] = False,
          as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Drop checkpoints, snapshots and journals of old finished runs (reports, events, audit logs stay)."""
    import asyncio

    from naestro.prune import prune_runs

    report = asyncio.run(prune_runs(load_settings(), keep=keep, older_than_days=older_than_days, dry_run=dry_run))
    if as_json:
        print(json.dumps({"pruned": report.pruned, "kept": len(report.kept), "bytes_freed": report.bytes_freed,
                          "dry_run": dry_run}))
    else:
        verb = "would prune" if dry_run else "pruned"
        out.print(f"{verb} {len(report.pruned)} run(s), kept {len(report.kept)}, freed {report.bytes_freed} bytes")
