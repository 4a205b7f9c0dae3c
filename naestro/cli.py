"""The ``naestro`` command line (typer + rich).

Exit codes: 0 success (every acceptance check passed), 1 the run finished but checks failed,
2 bad input (invalid plan, unknown run, bad config, broken policy file), 3 the world failed (endpoint down,
tool transport, run paused), 4 the run waits for consent (``naestro approve``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from naestro.commands import bench as bench_commands
from naestro.commands import control
from naestro.commands import eval as eval_commands
from naestro.commands import history as history_commands
from naestro.commands import improve as improve_commands
from naestro.commands import introspect as introspect_commands
from naestro.commands import mcp as mcp_commands
from naestro.commands import memory as memory_commands
from naestro.commands import metrics as metrics_commands
from naestro.commands import models as models_commands
from naestro.commands import observe as observe_commands
from naestro.commands import policy as policy_commands
from naestro.commands import router as router_commands
from naestro.commands import scale as scale_commands
from naestro.commands import studio as studio_commands
from naestro.commands import tools as tools_commands
from naestro.commands import trace as trace_commands
from naestro.commands._errors import err
from naestro.commands._errors import fail as _fail
from naestro.commands._settings import load_settings, provider
from naestro.commands.consent import current_user
from naestro.commands.drive import EXIT_WAITING, drive
from naestro.errors import NaestroError, PlanInvalid, UsageError
from naestro.view import plan_tree

if TYPE_CHECKING:
    from naestro.runs import RunStore
    from naestro.settings import Settings
    from policies.decision import RunPolicy

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Naestro: governed autonomous agents.")
runs_app = typer.Typer(no_args_is_help=True, help="Inspect runs.")
app.add_typer(runs_app, name="runs")
app.add_typer(models_commands.app, name="models")
app.add_typer(mcp_commands.app, name="mcp")
app.add_typer(memory_commands.app, name="memory")
app.add_typer(memory_commands.skills_app, name="skills")
app.add_typer(router_commands.app, name="router")
app.add_typer(bench_commands.app, name="bench")
app.add_typer(tools_commands.app, name="tools")
app.add_typer(policy_commands.app, name="policy")
app.add_typer(control.quarantine_app, name="quarantine")
app.add_typer(control.revoke_app, name="revoke")
app.add_typer(control.audit_app, name="audit")
runs_app.command("trace")(trace_commands.trace)
app.add_typer(metrics_commands.app, name="metrics")
app.add_typer(observe_commands.app, name="observe")
app.add_typer(eval_commands.app, name="eval")
app.add_typer(improve_commands.app, name="improve")
app.command()(introspect_commands.introspect)
app.command()(control.pause)
app.command()(scale_commands.worker)
app.command()(scale_commands.serve)
app.add_typer(scale_commands.queue_app, name="queue")
app.command()(studio_commands.studio)
runs_app.command("history")(history_commands.history)
runs_app.command("rollback")(history_commands.rollback)
runs_app.command("fork")(history_commands.fork)
runs_app.command("prune")(history_commands.prune)

out = Console()


def _settings() -> Settings:
    return load_settings()


def _store(settings: Settings) -> RunStore:
    # Commands import what they use in their bodies, so that `naestro --help` loads none of the runtime (issue 15).
    from naestro.runs import RunStore

    return RunStore(settings.runs_dir)


@app.command()
def validate(plan_file: Annotated[Path, typer.Argument(help="plan JSON file")]) -> None:
    """Validate a plan: one `JSON-pointer: message` line per problem, exit code 2 if any."""
    from naestro.validate import load_plan_file

    try:  # size-capped read, UTF-8, nesting, parse, validate: every failure is PlanInvalid (issue 14)
        plan = load_plan_file(plan_file)
    except PlanInvalid as exc:
        raise _fail(exc) from exc
    out.print(f"{plan_file}: valid plan, {len(plan.tasks)} task(s)")


@app.command()
def schema(path: Annotated[Path, typer.Option("--out", help="where to write")] = Path("schemas/plan.schema.json"),
           check: Annotated[bool, typer.Option(help="fail if the file differs instead of writing")] = False) -> None:
    """Generate schemas/plan.schema.json from the Plan models."""
    from naestro.schema import write_schema

    changed = write_schema(path, check=check)
    if check and changed:
        err.print(f"{path} is out of date; run `naestro schema`")
        raise typer.Exit(1)
    out.print(f"{path}: {'updated' if changed else 'up to date'}")


@app.command()
def plan(goal: str, out_file: Annotated[Path | None, typer.Option("--out", help="write the plan JSON here")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="print the plan JSON")] = False) -> None:
    """Ask the planner (local model, schema-constrained, validated, template fallback) for a plan."""
    import asyncio  # in the commands that run something: `--help` loads no event loop (issue 16)

    from nodes.planner import make_plan

    settings = _settings()
    try:
        outcome = asyncio.run(make_plan(goal, provider(settings), attempts=settings.planner_attempts))
    except NaestroError as exc:
        raise _fail(exc) from exc
    text = outcome.plan.model_dump_json(indent=2, by_alias=True, exclude_defaults=True)
    if out_file:
        out_file.write_text(text + "\n")
    if as_json:
        print(text)
        return
    for i, problems in enumerate(outcome.attempts, 1):
        err.print(f"[dim]attempt {i} rejected: {'; '.join(map(str, problems))[:300]}[/dim]")
    out.print(plan_tree(outcome.plan, source=outcome.source))
    if out_file:
        out.print(f"written to {out_file}")


def _policy(mode: str, approve: list[str] | None, allow_domain: list[str] | None, root: list[Path] | None,
            scope: list[str] | None) -> RunPolicy:
    from pydantic import ValidationError

    from policies.decision import ApprovedScope, RunPolicy

    if mode not in ("guide", "copilot", "auto"):
        raise _fail(UsageError(f"--mode {mode!r} is not one of guide, copilot, auto"))
    try:
        return RunPolicy.model_validate({
            "mode": mode, "approve": [ApprovedScope.parse(a).model_dump() for a in approve or []],
            "allow_domains": allow_domain or [], "roots": [str(r.resolve()) for r in root or []],
            "scopes": scope or []})
    except ValidationError as exc:
        raise _fail(UsageError(f"bad policy option: {exc.errors()[0]['msg']}")) from exc


@app.command()
def run(goal: Annotated[str, typer.Argument(help="what you want done")] = "",
        plan_file: Annotated[Path | None, typer.Option("--plan", help="run this plan file instead of planning")] = None,
        workspace: Annotated[Path | None, typer.Option(help="start from a copy of this folder")] = None,
        in_place: Annotated[bool, typer.Option("--in-place", help="work in --workspace itself, no copy")] = False,
        mode: Annotated[str, typer.Option(help="guide (no side effects) | copilot (sensitive actions ask) | "
                                               "auto (only pre-approved scopes run)")] = "copilot",
        approve: Annotated[list[str] | None, typer.Option(
            "--approve", help="pre-approve TOOL[:FOLDER], e.g. exec.run or fs.write:/data (repeatable)")] = None,
        allow_domain: Annotated[list[str] | None, typer.Option(
            "--allow-domain", help="network allowlist: example.com or *.example.com (repeatable)")] = None,
        root: Annotated[list[Path] | None, typer.Option(
            "--root", help="extra folder tools may touch besides the workspace (repeatable)")] = None,
        scope: Annotated[list[str] | None, typer.Option(
            "--scope", help="data scope, e.g. secret, pii_external, offprem_pii (repeatable)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable result")] = False,
        remote: Annotated[bool, typer.Option("--remote", help="queue it for `naestro worker`s (NAESTRO_BROKER_URL) "
                                             "and follow it")] = False) -> None:
    """Plan and run a goal end to end; exit 0 only when every acceptance check passed (4: waiting for consent)."""
    if not goal and plan_file is None:
        err.print("give a GOAL or --plan FILE")
        raise typer.Exit(2)
    if in_place and workspace is None:
        err.print("--in-place needs --workspace DIR")
        raise typer.Exit(2)
    if remote:  # issue 20: a worker executes it (naestro/distributed/)
        from naestro.validate import load_plan_file

        try:
            given = load_plan_file(plan_file) if plan_file else None
        except NaestroError as exc:
            raise _fail(exc) from exc
        scale_commands.run_remote(goal=goal, plan=given, workspace=workspace, in_place=in_place, as_json=as_json,
                                  policy=_policy(mode, approve, allow_domain, root, scope), settings=_settings())
    drive(goal=goal, as_json=as_json, settings=_settings(), plan_file=plan_file, workspace=workspace,
             in_place=in_place, policy=_policy(mode, approve, allow_domain, root, scope))


@app.command()
def resume(run_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Continue an interrupted, paused or crashed run from its last checkpoint (finished tasks are not redone)."""
    settings = _settings()
    try:
        record = _store(settings).load(run_id)
    except UsageError as exc:
        raise _fail(exc) from exc
    drive(goal=record.goal, as_json=as_json, settings=settings, resume_id=run_id)


@runs_app.command("replay")
def replay(run_id: str, from_: Annotated[str, typer.Option("--from", help="checkpoint id or step")],
           offline: Annotated[bool, typer.Option(help="reuse recorded model replies where the run is unchanged")]
           = False, force: history_commands.Force = False,
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Re-execute a run from a checkpoint (state and files restored first)."""
    history_commands.prepare_replay(run_id, from_, offline=offline, force=force)
    resume(run_id, as_json=as_json)  # the same driver as `naestro resume` (prompts, live view, exit codes)


@app.command()
def approve(run_id: str,
            consent_id: Annotated[str | None, typer.Argument(help="which request; default: every pending one")] = None,
            deny: Annotated[bool, typer.Option("--deny", help="refuse instead of approving")] = False,
            args: Annotated[str | None, typer.Option("--args", help="approve with these arguments (JSON)")] = None,
            remember: Annotated[bool, typer.Option("--remember", help="approve the same scope for the rest of the run")]
            = False,
            purpose: Annotated[str, typer.Option(help="why (recorded in the audit log)")] = "",
            server: Annotated[str | None, typer.Option(help="the LangGraph server of a served run (default: "
                                                       "$NAESTRO_SERVER_URL or http://127.0.0.1:2024)")] = None,
            as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Answer a waiting run's consent request(s) and resume it (a served run: through its LangGraph server)."""
    import asyncio

    from naestro.approval import choose_answers
    from naestro.runner import PendingConsent, Runner
    from naestro.runtime import build_runtime
    from naestro.served import ServedRun

    settings = _settings()
    try:
        record = _store(settings).load(run_id)
        if record.served:
            served = ServedRun(record, server or os.environ.get("NAESTRO_SERVER_URL", "http://127.0.0.1:2024"))
            pending = [PendingConsent(id=i, request=r) for i, r in served.pending()]  # type: ignore[arg-type]
        else:
            pending = asyncio.run(Runner.of(build_runtime(settings)).pending(run_id))
        edited = json.loads(args) if args is not None else None
    except json.JSONDecodeError as exc:
        raise _fail(UsageError(f"--args is not JSON: {exc.msg}")) from exc
    except NaestroError as exc:
        raise _fail(exc) from exc
    try:  # the same rules as the Studio's consent banner (naestro/approval.py)
        answers = choose_answers(run_id, pending, consent_id=consent_id, approve=not deny, arguments=edited,
                                 remember=remember, by=f"{current_user()} (naestro approve)", purpose=purpose)
    except UsageError as exc:
        raise _fail(exc) from exc
    if record.served:
        try:
            status = served.resume(answers)
        except NaestroError as exc:
            raise _fail(exc) from exc
        print(json.dumps({"run_id": run_id, "status": status}) if as_json else f"run {run_id}: {status}")
        raise typer.Exit(0 if status == "passed" else EXIT_WAITING if status == "waiting" else 1)
    from naestro.distributed.submit import remote_run

    if remote_run(settings, run_id) is not None:  # executed by workers: the continuation is queued (issue 20)
        scale_commands.approve_remote(settings, run_id, answers, as_json=as_json)
    drive(goal=record.goal, as_json=as_json, settings=settings, resume_id=run_id, answers=answers)


@runs_app.command("list")
def runs_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List runs in this NAESTRO_HOME."""
    from naestro.remote_status import remote_statuses_of

    settings = _settings()
    records = _store(settings).list()
    remote = remote_statuses_of(settings, records)
    if as_json:
        print(json.dumps([{**r.model_dump(), "status": remote[r.run_id].status if r.run_id in remote else
                           r.display_status, "worker": remote[r.run_id].worker if r.run_id in remote else None}
                          for r in records], indent=2))
        return
    table = Table("run", "status", "created", "goal")
    for r in records:
        table.add_row(r.run_id, remote[r.run_id].text if r.run_id in remote else r.display_status, r.created,
                      r.goal[:70])
    out.print(table)


@runs_app.command("show")
def runs_show(run_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a run: status, plan, task results, report path."""
    from naestro.events import read_events
    from naestro.remote_status import remote_statuses_of

    settings = _settings()
    store = _store(settings)
    try:
        record = store.load(run_id)
    except UsageError as exc:
        raise _fail(exc) from exc
    events = read_events(store.dir(run_id) / "events.jsonl")
    finished = {str(e["task"]): e for e in events if e.get("event") == "task_finished"}
    remote = remote_statuses_of(settings, [record]).get(run_id)
    if as_json:
        print(json.dumps({**record.model_dump(), "status": remote.status if remote else record.display_status,
                          "worker": remote.worker if remote else None, "tasks": finished}, indent=2))
        return
    out.print(f"[bold]{record.run_id}[/bold] {remote.text if remote else record.display_status} — {record.goal}")
    out.print(f"workspace: {record.workspace}\nplans: {record.plans}  threads: {record.threads}")
    table = Table("task", "status", "attempts", "tokens", "wall s")
    for tid, e in finished.items():
        table.add_row(tid, str(e.get("status")), str(e.get("attempts")), str(e.get("tokens")), str(e.get("wall_s")))
    out.print(table)
    report = store.dir(run_id) / "report.md"
    out.print(f"report: {report if report.exists() else '(not written yet)'}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; continue with `naestro resume RUN` (see `naestro runs list`)")
        sys.exit(130)
