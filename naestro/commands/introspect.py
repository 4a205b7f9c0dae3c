"""``naestro introspect [RUN | --last N]``: typed findings with a proposed minimal change each."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from naestro.commands._settings import load_settings
from naestro.errors import UsageError

if TYPE_CHECKING:
    from naestro.introspect import Finding

out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error per line, whatever the terminal width


def introspect(run_id: Annotated[str | None, typer.Argument(help="a run id; default: the newest run")] = None,
               last: Annotated[int | None, typer.Option(min=1, help="the newest N runs")] = None,
               as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Turn runs' events (verdicts, denials, retries, routing) into findings with a proposed change each."""
    # The run store and the findings are pydantic models: built when the command runs, not for `--help` (issue 15).
    from naestro.introspect import introspect_run
    from naestro.runs import RunStore

    store = RunStore(load_settings().runs_dir)
    try:
        if run_id is not None:
            ids = [store.load(run_id).run_id]
        else:
            ids = [r.run_id for r in sorted(store.list(), key=lambda r: r.created, reverse=True)[:last or 1]]
    except UsageError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    findings: list[Finding] = [f for rid in ids for f in introspect_run(store.dir(rid))]
    if as_json:
        print(json.dumps([f.model_dump() for f in findings], indent=1))
        return
    table = Table("run", "task", "finding", "evidence", "proposed change", title=f"{len(ids)} run(s)")
    for f in findings:
        table.add_row(f.run, f.task, f.kind, f.evidence, f.proposal)
    out.print(table if findings else f"no findings in {len(ids)} run(s)")
