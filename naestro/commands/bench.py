"""``naestro bench``: benchmarks that need no setup beyond recorded files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from naestro.errors import NaestroError

app = typer.Typer(no_args_is_help=True, help="Benchmarks (routing replay).")
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error per line, whatever the terminal width

# The recorded HumanEval files live in the source tree (bench/routing/), next to the recorder.
RECORDED = Path(__file__).resolve().parents[2] / "bench" / "routing"


def _price(text: str) -> tuple[str, tuple[float, float]]:
    try:
        model, prices = text.split("=", 1)
        p_in, p_out = (float(v) for v in prices.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: expected MODEL=IN,OUT (USD per 1K tokens)") from exc
    return model, (p_in, p_out)


@app.command()
def routing(items: Annotated[Path, typer.Option(help="items JSONL: {id, prompt}, or BFCL-style {id, question "
                                                "(chat turns), function}, {task_id, prompt}, {id, messages}")]
            = RECORDED / "humaneval_items.jsonl",
            outcomes: Annotated[Path, typer.Option(help="outcomes JSONL: {id, model, passed, prompt_tokens, "
                                                   "completion_tokens, latency_s[, signals]}")] = RECORDED /
            "humaneval_outcomes.jsonl",
            as_json: Annotated[bool, typer.Option("--json", help="a list of rows {name, quality, cost, "
                                                  "large_share}")] = False,
            test_share: Annotated[float, typer.Option(min=0.05, max=0.95, help="held-out share")] = 0.5,
            latency_weight: Annotated[float, typer.Option(min=0, help="bandit reward: pass - w * cost / "
                                                          "mean large cost")] = 0.5,
            seeds: Annotated[int, typer.Option(min=1, help="runs averaged for random and bandit")] = 50,
            price: Annotated[list[str] | None, typer.Option(help="MODEL=IN,OUT USD per 1K tokens; cost = "
                                                            "latency without it")] = None,
            signalled_only: Annotated[bool, typer.Option(help="only items whose small-model row has signals "
                                                         "(a partial re-recording)")] = False) -> None:
    """Replay routers over recorded outcomes of two models: quality, mean cost and share sent to the large one."""
    # The router pulls in langchain and openai: loaded when the command runs, never for `--help` (issue 15).
    from naestro.router.replay import load_items, load_outcomes, replay, result_json

    try:
        result = replay(load_items(items), load_outcomes(outcomes), test_share=test_share,
                        latency_weight=latency_weight, seeds=seeds,
                        prices=dict(_price(p) for p in price) if price else None, signalled_only=signalled_only)
    except NaestroError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    if as_json:
        print(result_json(result))
        return
    large_q = result.row("always-large").quality
    unit = "USD" if price else "s"
    table = Table("router", "quality (pass rate)", "% of large quality", f"mean cost ({unit})", "large share",
                  title=f"routing replay: small={result.small}, large={result.large}, "
                        f"train {result.train} / test {result.test} items")
    for r in result.rows:
        table.add_row(r.name, f"{r.quality:.3f}", f"{100 * r.quality / large_q:.1f}%" if large_q else "—",
                      f"{r.cost:.2f}", f"{100 * r.large_share:.1f}%")
    out.print(table)
    out.print(result.note, markup=False, highlight=False)
    if result.cascade_cv is not None and result.cv_large is not None:
        cv, anchor = result.cascade_cv, result.cv_large.quality
        share = f"{100 * cv.quality / anchor:.1f}%" if anchor else "—"
        out.print(f"cascade, 2-fold cross-validated over all {result.train + result.test} items: quality "
                  f"{cv.quality:.3f} ({share} of always-large {anchor:.3f}), large share "
                  f"{100 * cv.large_share:.1f}%, mean cost {cv.cost:.2f} {unit}")
    for name in ("bandit", "cascade"):
        if any(r.name == name for r in result.rows):
            r = result.row(name)
            met = large_q > 0 and r.quality >= 0.95 * large_q and r.large_share <= 0.40
            out.print(f"goal ({name} ≥95% of large quality with ≤40% large calls): {'met' if met else 'NOT met'}")
