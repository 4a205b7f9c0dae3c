"""Drive one run in this terminal: start or resume it, show it live, prompt when a gate asks, print the verdict.

Shared by ``naestro run``, ``resume``, ``runs replay`` and ``approve`` (one driver, so the prompts, the live view and
the exit codes are the same whichever command started the run). Exit codes as in ``naestro.cli``: 0 passed, 1
finished with failed checks, 4 waiting for consent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from naestro.commands._errors import fail
from naestro.commands.consent import describe, prompt_answers
from naestro.errors import NaestroError
from naestro.view import LiveRun

if TYPE_CHECKING:
    from naestro.events import Event
    from naestro.runner import RunResult
    from naestro.settings import Settings
    from policies.decision import RunPolicy
    from policies.gate import ConsentAnswer

__all__ = ["EXIT_WAITING", "drive", "pending_json", "summary_json"]

EXIT_WAITING = 4  # a gate asked; answer with `naestro approve`

out = Console()


def summary_json(result: RunResult) -> str:
    return json.dumps({
        "run_id": result.record.run_id, "status": result.record.status, "passed": result.passed,
        "plan_source": result.record.plan_source, "report": str(result.report_path),
        "workspace": result.record.workspace,
        "tasks": {tid: {"status": r["status"], "attempts": r["attempts"], "tokens": r["tokens"],
                        "wall_s": r["wall_s"], "checks": r["checks"]} for tid, r in result.tasks.items()},
    }, indent=2)


def pending_json(result: RunResult) -> list[dict[str, object]]:
    return [{"id": p.id, **p.request} for p in result.pending]


def drive(*, goal: str, as_json: bool, settings: Settings, resume_id: str | None = None,
             plan_file: Path | None = None, workspace: Path | None = None, in_place: bool = False,
             policy: RunPolicy | None = None, answers: dict[str, ConsentAnswer] | None = None) -> None:
    """Start or resume a run; when a gate asks, prompt (interactive terminal) or print how to answer."""
    import asyncio

    from rich.live import Live

    from naestro.events import read_events
    from naestro.runner import Runner
    from naestro.runs import RunStore
    from naestro.runtime import build_runtime

    live_state = LiveRun(goal=goal)
    store = RunStore(settings.runs_dir)

    def on_event(ev: Event) -> None:
        if ev.get("event") in ("planned", "replanned", "run_resumed"):
            rec = store.load(str(ev["run"]))
            live_state.set_plan(runner.plan_of(rec, len(rec.plans) - 1))
            if ev.get("event") == "run_resumed":
                for e in read_events(store.dir(rec.run_id) / "events.jsonl"):
                    live_state.apply(e)
        live_state.apply(ev)

    try:  # every input is read and checked here, before the run directory exists
        runner = Runner.of(build_runtime(settings), on_event=None if as_json else on_event)
        from naestro.validate import load_plan_file

        given = load_plan_file(plan_file) if plan_file else None
    except NaestroError as exc:
        raise fail(exc) from exc

    async def go() -> RunResult:
        if resume_id:
            return await runner.resume(resume_id, answers)
        from naestro.improve.live_canary import beside_live  # a candidate on live canary shadows new runs

        return await beside_live(runner.start(goal, plan=given, workspace=workspace, in_place=in_place, policy=policy),
                                 settings=settings, provider=runner.runtime.provider, goal=goal, plan=given,
                                 workspace=workspace, mode=policy.mode if policy is not None else "copilot")

    interactive = not as_json and sys.stdin.isatty()
    while True:
        try:
            if as_json:
                result = asyncio.run(go())
            else:
                with Live(live_state.render(), console=out, refresh_per_second=4, get_renderable=live_state.render):
                    result = asyncio.run(go())
        except NaestroError as exc:
            raise fail(exc) from exc
        if not result.pending or not interactive:
            break
        resume_id, answers = result.record.run_id, prompt_answers(result.pending, out)
    if as_json:
        print(summary_json(result) if not result.pending else
              json.dumps({"run_id": result.record.run_id, "status": "waiting",
                          "pending": pending_json(result)}, indent=2))
    elif result.pending:
        out.print(f"\nrun [bold]{result.record.run_id}[/bold] is [yellow]waiting for consent[/yellow]:")
        for p in result.pending:
            out.print(f"  {p.id}: {describe(p)}")
        out.print(f"answer with `naestro approve {result.record.run_id} [ID] [--deny] [--remember] [--args JSON]`")
    else:
        verdict = ("[green]PASSED[/green]" if result.passed else "[yellow]PROPOSED[/yellow] (guide mode: nothing ran)"
                   if result.record.policy.mode == "guide" else "[red]FAILED[/red]")
        out.print(f"\nrun [bold]{result.record.run_id}[/bold]: {verdict}  report: {result.report_path}")
    raise typer.Exit(EXIT_WAITING if result.pending else 0 if result.passed else 1)
