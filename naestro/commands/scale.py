"""``naestro worker``, ``naestro serve`` and the ``--remote`` side of ``naestro run`` / ``naestro approve`` (issue 20).

Imports of Celery, Starlette and the runtime happen inside the commands: ``naestro --help`` loads none of them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from naestro.commands._errors import fail as _fail
from naestro.commands._settings import load_settings
from naestro.errors import NaestroError, UsageError

if TYPE_CHECKING:
    from naestro.distributed import ScaleSettings, Submitter
    from naestro.plan import Plan
    from naestro.settings import Settings
    from policies.decision import RunPolicy
    from policies.gate import ConsentAnswer

__all__ = ["approve_remote", "queue_app", "run_remote", "serve", "worker"]

queue_app = typer.Typer(no_args_is_help=True, help="The run queue of `naestro worker`s: depth, kick a run.")
out = Console()
err = Console(stderr=True, soft_wrap=True)
ENDED = ("passed", "failed", "error", "paused")
EXIT = {"passed": 0, "failed": 1, "waiting": 4}  # anything else (error, paused): 3, as `naestro run`


def _scale() -> ScaleSettings:
    from naestro.distributed import ScaleSettings

    return ScaleSettings()


def _submitter(settings: Settings) -> Submitter:
    from naestro.distributed import Submitter, make_app

    scale = _scale()
    return Submitter(settings, scale, make_app(scale))


def worker(concurrency: Annotated[int, typer.Option(help="runs this worker executes at once (processes)")] = 1,
           loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO") -> None:
    """Execute queued runs (NAESTRO_BROKER_URL, shared NAESTRO_CHECKPOINT_URL and NAESTRO_HOME); any worker
    advances any run; kill it at any time: its runs continue on another worker."""
    from naestro.distributed import make_app, serve_tasks

    settings, scale = load_settings(), _scale()
    if concurrency < 1:
        raise _fail(UsageError("--concurrency must be at least 1"))
    app = make_app(scale)
    try:
        serve_tasks(app, settings, scale, warm=concurrency == 1)
    except NaestroError as exc:
        raise _fail(exc) from exc
    for chatty in ("httpx", "mcp"):  # a line per HTTP request / MCP stream would drown the run lines
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # solo: the worker process itself executes the run (kill it and the run is lost with it, then recovered);
    # prefork: one child per run, each with its own runtime (MCP server pool) built on its first run.
    pool = "solo" if concurrency == 1 else "prefork"
    code = 0
    try:
        app.worker_main(["worker", f"--concurrency={concurrency}", f"--pool={pool}", f"--queues={scale.queue}",
                         f"--loglevel={loglevel}", f"--hostname=naestro-{os.getpid()}@{socket.gethostname()}",
                         "--without-gossip", "--without-mingle", "--without-heartbeat"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    # Celery's warm shutdown has let the current run step finish. Tearing the interpreter down after a runtime was
    # built took minutes here (the process sat in exit after "Warm shutdown"), and nothing needs it: a run left
    # mid-way is delivered again and continues from its checkpoint, exactly as after a kill.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve(host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port")] = 8600,
          no_auth: Annotated[bool, typer.Option("--no-auth", help="no bearer token (loopback addresses only)")] = False,
          ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM) to serve HTTPS")] = None,
          ssl_keyfile: Annotated[Path | None, typer.Option(help="its private key (PEM)")] = None) -> None:
    """The HTTP API: POST /runs, GET /runs/RUN, POST /runs/RUN/approve, GET /metrics (queue depth). Clients send
    `Authorization: Bearer <token>`: NAESTRO_API_TOKEN, else the file api-token in NAESTRO_HOME (made at first
    start, mode 0600)."""
    from naestro.distributed.auth import api_token, is_loopback

    settings, scale = load_settings(), _scale()
    token: str | None = None
    source = ""
    try:
        if no_auth and not is_loopback(host):
            raise UsageError(f"--no-auth on {host}: anyone who reaches it could run tools on the workers; without "
                             "a token listen on 127.0.0.1 only (or drop --no-auth)")
        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise UsageError("give both --ssl-certfile and --ssl-keyfile, or neither")
        if ssl_certfile is not None and ssl_keyfile is not None:
            from naestro.distributed.tls import check_tls

            check_tls(ssl_certfile, ssl_keyfile)
        if not no_auth:
            secret = scale.api_token.get_secret_value() if scale.api_token is not None else None
            token, source = api_token(settings.home, secret)
    except NaestroError as exc:
        raise _fail(exc) from exc
    import threading

    import uvicorn

    from naestro.distributed.api import make_api
    from naestro.redact import warm_prose

    # Every submitted goal is redacted with spaCy NER; loading it takes seconds, so it loads now, beside the
    # server starting, not in the first submission (which a SIGTERM would then wait for: graceful shutdown lets
    # in-flight requests finish). Daemon: a SIGTERM during the load does not wait for it.
    threading.Thread(target=warm_prose, name="warm-redactor", daemon=True).start()

    scheme = "https" if ssl_certfile else "http"
    auth = "no authentication (loopback only)" if token is None else f"bearer token from {source}"
    err.print(f"naestro API on {scheme}://{host}:{port} ({auth})"
              + ("" if ssl_certfile or is_loopback(host) else "; plain HTTP: put TLS in front (README)"),
              markup=False, highlight=False)
    uvicorn.run(make_api(settings, scale, token=token), host=host, port=port, log_level="warning",
                ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None)


@queue_app.command("depth")
def depth(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Runs waiting per priority and messages in flight (delivered, not yet acknowledged)."""
    from naestro.distributed import make_app, queue_depth

    scale = _scale()
    found = queue_depth(make_app(scale), scale)
    if as_json:
        print(json.dumps({"waiting": found.waiting, "in_flight": found.in_flight}))
        return
    waiting = ", ".join(f"{p} {n}" for p, n in sorted(found.waiting.items()))
    out.print(f"queue {scale.queue}: waiting {found.total} ({waiting}), in flight {found.in_flight}")


@queue_app.command("kick")
def kick(run_id: str) -> None:
    """Queue "advance RUN" again (a run whose message was lost, e.g. after its attempts ran out); harmless for a
    run that is fine: the worker finds it finished, waiting or held, and does nothing more."""
    try:
        _submitter(load_settings()).kick(run_id)
    except NaestroError as exc:
        raise _fail(exc) from exc
    out.print(f"run {run_id}: queued")


def run_remote(*, goal: str, plan: Plan | None, workspace: Path | None, in_place: bool, policy: RunPolicy,
               as_json: bool, settings: Settings) -> None:
    """``naestro run --remote``: queue the run, then follow it until it ends or waits (exit codes as a local run;
    Ctrl-C stops following, not the run)."""
    scale = _scale()
    try:
        marker = _submitter(settings).submit(goal, plan=plan, workspace=workspace, in_place=in_place, policy=policy,
                                             tenant=scale.tenant, priority=scale.priority)
    except NaestroError as exc:
        raise _fail(exc) from exc
    if not as_json:
        out.print(f"run [bold]{marker.run_id}[/bold] queued ({marker.priority}, tenant {marker.tenant})")
    _follow(settings, marker.run_id, as_json=as_json)


def approve_remote(settings: Settings, run_id: str, answers: dict[str, ConsentAnswer], *, as_json: bool) -> None:
    try:
        _submitter(settings).answer(run_id, answers)
    except NaestroError as exc:
        raise _fail(exc) from exc
    if not as_json:
        out.print(f"run [bold]{run_id}[/bold]: answer queued; a worker continues it")
    _follow(settings, run_id, as_json=as_json, after=time.time())


def _follow(settings: Settings, run_id: str, *, as_json: bool, after: float = 0.0) -> None:
    """Poll run.json until the run ended or waits for consent (a state a worker wrote after ``after``)."""
    from naestro.runs import RunStore

    store = RunStore(settings.runs_dir)
    path = store.dir(run_id) / "run.json"
    try:
        while True:
            record = store.load(run_id)
            fresh = path.stat().st_mtime > after
            if fresh and (record.status in ENDED or record.status == "waiting"):
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        err.print(f"stopped following; run {run_id} continues on the workers (`naestro runs show {run_id}`)")
        raise typer.Exit(130) from None
    report = store.dir(run_id) / "report.md"
    if as_json:
        print(json.dumps({"run_id": run_id, "status": record.status, "error": record.error,
                          "report": str(report) if report.exists() else None}))
    else:
        hint = f"  answer with `naestro approve {run_id}`" if record.status == "waiting" else ""
        out.print(f"run [bold]{run_id}[/bold]: {record.status}{hint}"
                  + (f"  report: {report}" if report.exists() else "") + (f"  {record.error}" if record.error else ""))
    raise typer.Exit(EXIT.get(record.status, 3))
