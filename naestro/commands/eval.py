"""``naestro eval golden``: the golden suite on a model, Naestro vs the plain-agent baseline, with pass@k."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from naestro.commands._settings import load_settings
from naestro.errors import NaestroError, UsageError

if TYPE_CHECKING:
    from naestro.golden import Attempt
    from naestro.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Evaluation: golden suites, pass@k, baseline comparison.")
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error per line, whatever the terminal width

SUITE = Path(__file__).resolve().parents[2] / "tests" / "golden"

# naestro.baseline.BaselineKind, repeated here because typer reads parameter annotations at `--help` time and
# naestro.baseline imports the whole runtime; tests/unit/test_cli_imports.py pins the two equal.
BaselineKind = Literal["react", "ablation"]


def _results(settings: Settings) -> Path:
    return settings.home / "eval" / "golden"


@app.command()
def golden(model: Annotated[str | None, typer.Option(help="endpoint name from models.yaml (every role uses it); "
                                                    "default: the registry's default")] = None,
           k: Annotated[int, typer.Option(min=1, max=50, help="attempts per goal and system (pass@k)")] = 1,
           as_json: Annotated[bool, typer.Option("--json", help='{"naestro": {"passed", "total"}, "baseline": '
                                                 '{...}, "goals": [...]}; passed/total count attempts')] = False,
           baseline: Annotated[bool, typer.Option("--baseline", help="also run the plain-agent baseline")] = False,
           suite: Annotated[Path, typer.Option(help="folder of golden goal files")] = SUITE,
           counterexamples: Annotated[bool, typer.Option(
               "--counterexamples", help="also the active self-improved release's counter-examples (failed runs "
                                         "the improve loop turned into goals; ids ce_...)")] = False,
           only: Annotated[list[str] | None, typer.Option("--goal", help="run only these goal ids (repeatable)")]
           = None,
           attempt_timeout_s: Annotated[float | None, typer.Option(min=1, help="cap one attempt's wall time; a "
                                                                   "timed-out attempt fails")] = None,
           baseline_only: Annotated[bool, typer.Option("--baseline-only", help="run only the baseline")] = False,
           baseline_kind: Annotated[BaselineKind, typer.Option(
               help="react: the plain ReAct text loop; ablation: Naestro's constrained agent loop without plan, "
                    "checks, feedback or re-plan")] = "react",
           ) -> None:
    """Run the golden suite; print success rate, tokens, wall time and cost per goal; store the results."""
    # The suite runs the whole runtime (langchain, openai, the router): loaded now, never for `--help` (issue 15).
    import asyncio

    from naestro.endpoints import load_registry
    from naestro.golden import counterexample_goals, load_suite, run_suite
    from naestro.llm import EndpointProvider

    settings = load_settings()
    try:
        registry = load_registry(settings.models_file)
        if model is not None:
            registry.get(model)  # unknown names fail here, with the known ones
            registry = registry.model_copy(update={"default": model, "fast": model})
        goals = load_suite(suite) + (counterexample_goals(settings) if counterexamples else [])
        if only:
            unknown = set(only) - {g.id for g in goals}
            if unknown:
                raise UsageError(f"unknown goal(s) {sorted(unknown)} (known: {[g.id for g in goals]})")
            goals = [g for g in goals if g.id in only]
    except NaestroError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    provider = EndpointProvider(registry, settings)

    def progress(a: Attempt) -> None:
        if not as_json:
            out.print(escape(f"{a.goal} [{a.system} #{a.sample}]: ")
                      + ("[green]pass[/green]" if a.passed else "[red]fail[/red]")
                      + escape(f" ({a.tokens} tokens, {a.wall_s:.0f} s){' ' + a.error if a.error else ''}"))

    try:
        result, path = asyncio.run(run_suite(goals, settings=settings, provider=provider, k=k,
                                             baseline=baseline or baseline_only,
                                             model=registry.default, results_dir=_results(settings),
                                             attempt_timeout_s=attempt_timeout_s, naestro=not baseline_only,
                                             baseline_kind=baseline_kind,
                                             on_attempt=progress))
    except NaestroError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2 if isinstance(exc, UsageError) else 3) from exc
    summary = result.summary()
    if as_json:
        print(json.dumps(summary, indent=1))
        return
    table = Table("goal", "kind", "system", "passed", "pass@1", f"pass@{k}", "tokens", "wall s", "cost $",
                  title=f"golden suite on {registry.default} (k={k})")
    for g in result.goals():
        table.add_row(g.id, g.kind, g.system, f"{g.c}/{g.n}", f"{g.pass_at_1:.2f}", f"{g.pass_at_k:.2f}",
                      str(g.tokens), f"{g.wall_s:.0f}", f"{g.cost_usd:.4f}")
    out.print(table)
    for system in result.systems:
        t = result.totals(system)
        rate = t["passed"] / t["total"] if t["total"] else 0.0
        label = f"baseline ({result.baseline_kind})" if system == "baseline" else system
        out.print(f"{label}: {t['passed']}/{t['total']} attempts passed ({rate:.0%})")
    out.print(f"results: {path}")


@app.command()
def trend(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Success rates of every stored golden-suite run, oldest first (HOME/eval/golden/history.jsonl)."""
    from naestro.golden import history

    rows = history(_results(load_settings()))
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    if not rows:
        out.print("no golden-suite results yet: run `naestro eval golden`")
        return
    table = Table("started", "model", "k", "naestro", "baseline", title="golden suite trend")

    def rate(v: object) -> str:
        if not isinstance(v, dict) or not v.get("total"):
            return "-"
        return f"{v['passed']}/{v['total']} ({v['passed'] / v['total']:.0%})"
    for r in rows:
        table.add_row(str(r.get("started")), str(r.get("model")), str(r.get("k")), rate(r.get("naestro")),
                      rate(r.get("baseline")))
    out.print(table)
