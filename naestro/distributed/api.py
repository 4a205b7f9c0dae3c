"""``naestro serve``: the HTTP API in front of the queue (Starlette). Nothing runs here; workers execute.

    POST /runs                  {"goal": ..., "plan": {...}?, "mode": ..., "approve": [...], "tenant": ...,
                                 "priority": "interactive"|"batch"}          -> 202 {"run_id", "status"}
    GET  /runs/{run}            -> {"run_id", "status", "worker", "error", "pending": [{"id", ...consent request}],
                                    "report"}   status: queued | planning | running | waiting | passed | ...
                                    (naestro/distributed/status.py); worker: HOST:PID driving it now, or null
    POST /runs/{run}/approve    {"consent_id"?, "approve": true, "arguments"?, "remember"?, "by"?, "purpose"?} -> 202
    GET  /metrics               queue depth per priority and in-flight messages (Prometheus text)
    GET  /healthz               (the one route open without the bearer token)

Every other route needs ``Authorization: Bearer <token>`` (naestro/distributed/auth.py): 401 without it.
Errors are JSON ``{"error": ..., "kind": ...}``: 400 bad input (the message says what to change), 404 unknown
run, 409 nothing to approve, 503 queue full (``Retry-After``). Blocking work (files, Redis) runs in threads.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from naestro.distributed.advance import RUN_ID
from naestro.distributed.auth import BearerAuth
from naestro.distributed.config import Priority, ScaleSettings
from naestro.distributed.queue import make_app, queue_depth
from naestro.distributed.status import remote_statuses
from naestro.distributed.submit import QueueFull, Submitter, remote_run
from naestro.errors import NaestroError, PlanInvalid, UnknownRun, UsageError
from policies.decision import ApprovedScope, RunPolicy
from policies.gate import ConsentAnswer

if TYPE_CHECKING:
    from naestro.runner import Runner
    from naestro.settings import Settings

__all__ = ["ApproveBody", "SubmitBody", "make_api"]


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: str = ""
    plan: dict[str, JsonValue] | None = None
    mode: Literal["guide", "copilot", "auto"] = "copilot"
    approve: list[str] = Field(default_factory=list, description="TOOL[:FOLDER], as naestro run --approve")
    allow_domains: list[str] = Field(default_factory=list)
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    priority: Priority = "interactive"


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consent_id: str | None = None
    approve: bool = True
    arguments: dict[str, JsonValue] | None = None
    remember: bool = False
    by: str = "api"
    purpose: str = ""


def _error(status: int, exc: Exception | str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = type(exc).__name__ if isinstance(exc, Exception) else "UsageError"
    body: dict[str, Any] = {"error": str(exc), "kind": kind}
    if isinstance(exc, PlanInvalid):
        body["problems"] = [str(p) for p in exc.problems]
    return JSONResponse(body, status_code=status, headers=headers)


def make_api(settings: Settings, scale: ScaleSettings, *, token: str | None,
             runner: Runner | None = None) -> Starlette:
    """``token``: the bearer token every route but /healthz requires (None: no authentication, which ``naestro
    serve`` allows on loopback only). ``runner`` reads consents from checkpoints (built from ``settings`` if None)."""
    from naestro.runner import Runner
    from naestro.runtime import build_runtime
    from naestro.validate import parse_plan_text

    celery = make_app(scale)
    submitter = Submitter(settings, scale, celery)
    reader = runner or Runner.of(build_runtime(settings))

    async def submit(request: Request) -> Response:
        try:
            body = SubmitBody.model_validate_json(await request.body())
            policy = RunPolicy(mode=body.mode, approve=[ApprovedScope.parse(a) for a in body.approve],
                               allow_domains=body.allow_domains)
            plan = parse_plan_text(json.dumps(body.plan), source="plan") if body.plan is not None else None
            marker = await asyncio.to_thread(submitter.submit, body.goal, plan=plan, policy=policy,
                                             tenant=body.tenant, priority=body.priority)
        except ValidationError as exc:
            return _error(400, f"bad request: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
        except QueueFull as exc:
            return _error(503, exc, headers={"Retry-After": "5"})
        except UsageError as exc:
            return _error(400, exc)
        return JSONResponse({"run_id": marker.run_id, "status": "queued"}, status_code=202)

    def unknown(run_id: str) -> JSONResponse | None:
        """A path parameter is not a run id (``..``, a name): 404 before it touches the filesystem."""
        return None if re.fullmatch(RUN_ID, run_id) else _error(404, UnknownRun(run_id, home=str(settings.home)))

    async def status(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if (bad := unknown(run_id)) is not None:
            return bad
        try:
            record = await asyncio.to_thread(submitter.store.load, run_id)
            pending = await reader.pending(run_id) if record.status == "waiting" else []
        except UnknownRun as exc:
            return _error(404, exc)
        except NaestroError as exc:
            return _error(400, exc)
        now = (await asyncio.to_thread(remote_statuses, settings, [record])).get(run_id)
        report = submitter.store.dir(run_id) / "report.md"
        return JSONResponse({"run_id": run_id, "status": now.status if now else record.display_status,
                             "worker": now.worker if now else None, "error": record.error,
                             "pending": [{"id": p.id, **p.request} for p in pending],
                             "report": await asyncio.to_thread(report.read_text) if report.exists() else None})

    async def approve(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if (bad := unknown(run_id)) is not None:
            return bad
        try:
            body = ApproveBody.model_validate_json(await request.body() or b"{}")
            if await asyncio.to_thread(remote_run, settings, run_id) is None:
                return _error(404, UnknownRun(run_id, home=str(settings.home)))
            pending = await reader.pending(run_id)
        except ValidationError as exc:
            return _error(400, f"bad request: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
        except NaestroError as exc:
            return _error(400, exc)
        chosen = [p for p in pending if body.consent_id in (None, p.id)]
        if not chosen:
            return _error(409, f"run {run_id} has no pending consent {body.consent_id or ''}".rstrip())
        answers = {p.id: ConsentAnswer(approve=body.approve, arguments=body.arguments, remember=body.remember,
                                       by=body.by, purpose=body.purpose) for p in chosen}
        await asyncio.to_thread(submitter.answer, run_id, answers)
        return JSONResponse({"run_id": run_id, "status": "queued", "answered": sorted(answers)}, status_code=202)

    async def metrics(request: Request) -> Response:
        depth = await asyncio.to_thread(queue_depth, celery, scale)
        lines = ["# HELP naestro_queue_depth Runs waiting in the queue, by priority.",
                 "# TYPE naestro_queue_depth gauge"]
        lines += [f'naestro_queue_depth{{priority="{p}"}} {n}' for p, n in sorted(depth.waiting.items())]
        lines += ["# HELP naestro_queue_in_flight Messages delivered to workers and not yet acknowledged.",
                  "# TYPE naestro_queue_in_flight gauge", f"naestro_queue_in_flight {depth.in_flight}"]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/runs", submit, methods=["POST"]),
        Route("/runs/{run_id}", status, methods=["GET"]),
        Route("/runs/{run_id}/approve", approve, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ], middleware=[Middleware(BearerAuth, token=token)] if token is not None else [])
