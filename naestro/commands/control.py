"""Kill switches and the audit trail: ``naestro pause | quarantine | revoke | audit``.

Switches land in the durable store every gate reads (NAESTRO_HOME/control.sqlite), so they take effect at
the next gate of every live run; each is itself audited (a run's log for pause/revoke, the installation's
control log for quarantines, which apply to every run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

from naestro.commands._settings import load_settings
from naestro.commands.consent import current_user
from naestro.errors import AuditError, UsageError
from policies.switches import KillSwitches, SwitchKind

if TYPE_CHECKING:
    from naestro.settings import Settings
    from policies.audit import AuditLog

quarantine_app = typer.Typer(no_args_is_help=True, help="Deny a tool or model endpoint in every run.")
revoke_app = typer.Typer(no_args_is_help=True, help="Withdraw a run's remembered consents or lift a quarantine.")
audit_app = typer.Typer(no_args_is_help=True, help="The signed, hash-chained audit log of a run.")
out = Console()
err = Console(stderr=True)

Target = Literal["tool", "model"]


def _run_dir(settings: Settings, run_id: str) -> Path:
    # Even the run store's models and the audit log's cryptography load only when a command runs (issue 15).
    from naestro.runs import RunStore

    try:
        RunStore(settings.runs_dir).load(run_id)
    except UsageError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from exc
    return RunStore(settings.runs_dir).dir(run_id)


def _log(settings: Settings, run_id: str | None) -> AuditLog:
    from policies.audit import AuditLog, anchors_dir, load_signing_key

    key, anchors = load_signing_key(settings.keys_dir), anchors_dir(settings.home)
    if run_id is None:
        return AuditLog(settings.home / "audit" / "control.jsonl", run_id="control", key=key, anchors=anchors)
    return AuditLog(_run_dir(settings, run_id) / "audit.jsonl", run_id=run_id, key=key, anchors=anchors)


def _record(log: AuditLog, done: str, **data: object) -> None:
    """Audit a switch that is already set. A damaged log must not undo or hide it: the switch stays in force
    and the refusal to append is one line (exit 1) pointing at `audit verify`, not a traceback."""
    try:
        log.append("switch", **data)
    except AuditError as exc:
        err.print(f"error: {done}, but it could not be audited: {exc}", markup=False, highlight=False,
                  soft_wrap=True)
        raise typer.Exit(1) from exc


def pause(run_id: str, reason: Annotated[str, typer.Option(help="why (audited)")] = "") -> None:
    """Stop a run at its next gate; `naestro resume RUN` continues it."""
    settings = load_settings()
    log = _log(settings, run_id)
    switch = KillSwitches(settings.control_db).set("pause", run_id, reason=reason, by=current_user())
    _record(log, f"run {run_id} is paused (switch #{switch.id})", action="pause", switch=switch.id, by=switch.by,
            reason=reason)
    out.print(f"run {run_id}: paused at its next gate (switch #{switch.id})")


def _quarantine(kind: Target, name: str, reason: str) -> None:
    settings = load_settings()
    switch_kind: SwitchKind = "quarantine_tool" if kind == "tool" else "quarantine_model"
    switch = KillSwitches(settings.control_db).set(switch_kind, name, reason=reason, by=current_user())
    _record(_log(settings, None), f"{kind} {name} is quarantined (switch #{switch.id})",
            action=f"quarantine_{kind}", target=name, switch=switch.id, by=switch.by, reason=reason)
    out.print(f"{kind} {name}: quarantined in every run (switch #{switch.id}); lift with "
              f"`naestro revoke quarantine {kind} {name}`")


@quarantine_app.command("tool")
def quarantine_tool(name: str, reason: Annotated[str, typer.Option(help="why (audited)")] = "") -> None:
    """Deny a tool (server.tool) at every gate."""
    _quarantine("tool", name, reason)


@quarantine_app.command("model")
def quarantine_model(name: str, reason: Annotated[str, typer.Option(help="why (audited)")] = "") -> None:
    """Deny a model endpoint (models.yaml name) at every gate."""
    _quarantine("model", name, reason)


@revoke_app.command("consents")
def revoke_consents(run_id: str) -> None:
    """Forget the approvals a run remembered ("approve all ..."); its next sensitive action asks again."""
    settings = load_settings()
    log = _log(settings, run_id)
    switch = KillSwitches(settings.control_db).set("revoke_consents", run_id, by=current_user())
    _record(log, f"run {run_id}'s remembered consents are revoked (switch #{switch.id})",
            action="revoke_consents", switch=switch.id, by=switch.by)
    out.print(f"run {run_id}: remembered consents revoked (switch #{switch.id})")


@revoke_app.command("quarantine")
def revoke_quarantine(kind: Annotated[str, typer.Argument(help="tool | model")], name: str) -> None:
    """Lift a quarantine."""
    if kind not in ("tool", "model"):
        err.print(f"error: {kind!r} is not tool or model")
        raise typer.Exit(2)
    settings = load_settings()
    lifted = KillSwitches(settings.control_db).lift("quarantine_tool" if kind == "tool" else "quarantine_model", name)
    _record(_log(settings, None), f"{kind} {name}: quarantine {'lifted' if lifted else 'was not set'}",
            action=f"lift_quarantine_{kind}", target=name, lifted=lifted, by=current_user())
    out.print(f"{kind} {name}: {'quarantine lifted' if lifted else 'was not quarantined'}")


@audit_app.command("verify")
def audit_verify(run_id: Annotated[str, typer.Argument(help="a run id, or `control` for the switch log")],
                 as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check hashes, signatures, chain, order, run id, head and the anchor in NAESTRO_HOME; name every tampered
    record, a replaced or rolled-back log, and garbage in any of them. Exit 1 if any; 2 if a file cannot be read."""
    from policies.audit import anchors_dir, load_public_key, verify_log

    settings = load_settings()
    path = settings.home / "audit" / "control.jsonl" if run_id == "control" else \
        _run_dir(settings, run_id) / "audit.jsonl"
    try:
        problems = verify_log(path, load_public_key(settings.keys_dir), run_id=run_id,
                              anchors=anchors_dir(settings.home))
        records = sum(1 for ln in path.read_bytes().split(b"\n") if ln.strip()) if path.exists() else 0
    except AuditError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps({"log": str(path), "records": records, "intact": not problems,
                          "problems": [p.__dict__ for p in problems]}, indent=2))
    elif problems:
        for p in problems:  # one line each (soft_wrap): `file: problem`
            err.print(f"{p.file or path}: {p}", markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(f"{path}: {records} records, chain and signatures intact")
    raise typer.Exit(1 if problems else 0)


@audit_app.command("show")
def audit_show(run_id: str, kind: Annotated[str | None, typer.Option(help="only records of this kind")] = None) -> None:
    """Print a run's audit records (arguments already redacted when written)."""
    path = _run_dir(load_settings(), run_id) / "audit.jsonl"
    # Records are split at b"\n" only: U+2028 / U+2029 / U+0085 inside a record are text, not line ends.
    unreadable = 0
    for number, line in enumerate(path.read_bytes().split(b"\n") if path.exists() else [], start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
            shown = {k: rec[k] for k in ("seq", "ts", "kind", "data")}
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError):  # garbage: the writer never wrote it
            err.print(f"{path}:{number}: not an audit record, skipped", markup=False, highlight=False,
                      soft_wrap=True)
            unreadable += 1
            continue
        if kind is None or shown["kind"] == kind:
            print(json.dumps(shown))
    if unreadable:
        err.print(f"{unreadable} line(s) are not audit records: run `naestro audit verify {run_id}`",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
