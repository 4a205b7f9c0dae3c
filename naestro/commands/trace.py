"""``naestro runs trace RUN``: the run's span tree from RUN_DIR/spans.jsonl, offline (no collector)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from naestro.commands._settings import load_settings
from naestro.errors import UsageError

__all__ = ["trace"]

out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error per line, whatever the terminal width


def trace(run_id: str, as_json: Annotated[bool, typer.Option("--json", help="the span records, one per line")] = False
          ) -> None:
    """Show a run's trace: run → phase → task → agent → model/tool calls → policy decisions, with tokens and cost."""
    # naestro.telemetry loads OpenTelemetry: only when the command runs, never for `--help` (issue 15).
    from naestro.runs import RunStore
    from naestro.telemetry import SPANS_FILE, read_spans, span_tree

    store = RunStore(load_settings().runs_dir)
    try:
        record = store.load(run_id)
    except UsageError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    spans = read_spans(store.dir(run_id))
    if as_json:
        for s in spans:
            print(json.dumps(s))
        return
    if not spans:
        err.print(f"no spans recorded for {run_id} ({store.dir(run_id) / SPANS_FILE}; NAESTRO_TRACE=off?)")
        raise typer.Exit(3)
    tokens = sum(int(str(s["attributes"].get("gen_ai.usage.input_tokens", 0)))
                 + int(str(s["attributes"].get("gen_ai.usage.output_tokens", 0)))
                 for s in spans if s["name"].startswith("chat "))
    cost = sum(float(str(s["attributes"].get("naestro.cost_usd", 0.0))) for s in spans if s["name"].startswith("chat "))
    traces = {s["trace_id"] for s in spans}
    out.print(span_tree(spans, title=f"{record.run_id} {record.display_status} — {len(spans)} spans, "
                                     f"{len(traces)} trace(s), {tokens} tokens, ${cost:.4f}"))
