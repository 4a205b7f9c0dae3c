"""Naestro Studio's HTTP API and web UI: one Starlette app, served by ``naestro studio`` (uvicorn) or mounted by
the LangGraph server beside its own API (``langgraph.json`` → ``http.app`` → ``studio/api.py:app``).

Routes (JSON unless noted; errors are ``{"error": ..., "problems"?: [...]}``):

  GET  /                                  the UI (studio/static, built from studio/web)
  GET  /naestro/runs                      runs, newest first: status, cost, tokens, duration, live (a run workers
                                          execute: its status from its lock, ``status_text``, ``worker``)
  POST /naestro/runs                      start a run from a goal and/or plan text (202, ``{"run_id"}``)
  GET  /naestro/runs/{id}                 run view: plan DAG, events, calls, policy decisions, verdicts, report
  GET  /naestro/runs/{id}/report          report.md (text/markdown)
  GET  /naestro/runs/{id}/events          SSE: the run's events as they are written (``?after=N``/Last-Event-ID)
  GET  /naestro/runs/{id}/files           the workspace's files (path, size, text of small files)
  GET  /naestro/runs/{id}/pending         consent requests the run waits on
  POST /naestro/runs/{id}/consent         approve / deny / edited arguments, then the run resumes (queued for
                                          the workers when they execute it)
  POST /naestro/runs/{id}/resume          continue from the head (after a rollback)
  GET  /naestro/runs/{id}/history         every checkpoint (``naestro runs history``)
  POST /naestro/runs/{id}/rollback        state and files back to a checkpoint (``naestro runs rollback``)
  POST /naestro/runs/{id}/fork            a new run from a checkpoint (``naestro runs fork``), 201 ``{"run_id"}``
  POST /naestro/plan                      plan a goal without running it
  POST /naestro/validate                  problems of a plan text (empty: valid)
  GET  /naestro/metrics                   the Prometheus series of ``naestro metrics``, as JSON
  GET  /naestro/metrics/router           the router's win-rates per (kind, endpoint) (``naestro router stats``)
  GET  /naestro/info                      what this server can do (``actions``: runs start in this process)
  GET  /naestro/memory/timeline           remembered episodes newest first (``?run=&kind=&limit=``), skills
  GET  /naestro/memory/search             memory search as the operator, through the gate (``?q=&limit=``)

Inside the LangGraph server (``actions=False``) runs execute as the server's threads: the Studio shows them and
answers their consent through the server's API, but does not start runs, plan or roll back in that process
(its event loop forbids the blocking file work those need; ``naestro studio`` does them).
Reads run in worker threads, so the serving event loop never blocks on files.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from naestro.errors import NaestroError, PlanInvalid, PolicyDenied, UnknownRun, UsageError
from naestro.runs import RunStore
from naestro.settings import Settings
from studio.auth import TokenGate
from studio.control import ConsentBody, ForkBody, RollbackBody, StartBody, StudioRuns
from studio.memoryview import StudioMemory
from studio.runview import run_detail, summaries, workspace_files
from studio.settings import StudioSettings
from studio.stream import sse_events

if TYPE_CHECKING:
    from naestro.distributed import ScaleSettings

__all__ = ["STATIC", "app", "build_app"]

STATIC = Path(__file__).resolve().parent / "static"
M = TypeVar("M", bound=BaseModel)


class _PlanBody(BaseModel):
    goal: str


class _ValidateBody(BaseModel):
    plan: str


def _error(exc: Exception) -> JSONResponse:
    if isinstance(exc, PlanInvalid):
        return JSONResponse({"error": f"{exc.source} is invalid", "problems": [
            {"pointer": p.pointer, "message": p.message} for p in exc.problems]}, status_code=422)
    if isinstance(exc, UnknownRun):
        return JSONResponse({"error": str(exc)}, status_code=404)
    if isinstance(exc, ValidationError):
        return JSONResponse({"error": "bad request body", "problems": [
            {"pointer": "/" + "/".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]},
            status_code=422)
    return JSONResponse({"error": str(exc)}, status_code=400 if isinstance(exc, UsageError) else 502)


async def _body(request: Request, model: type[M]) -> M:
    return model.model_validate_json(await request.body() or b"{}")


def build_app(settings: Settings | None = None, *, runs: StudioRuns | None = None, actions: bool = True,
              server_url: str | None = None, token: SecretStr | None = None, poll_s: float = 0.25,
              scale: ScaleSettings | None = None) -> Starlette:
    """The app over ``settings``' NAESTRO_HOME. ``runs``: a ``StudioRuns`` to share (tests give one around a
    scripted model); ``actions=False``: read and consent only (the LangGraph server's mount); ``token``: required
    on every request (studio/auth.py); ``scale``: the queue of runs workers execute (default: from the
    environment, when first needed)."""
    settings = settings or Settings()
    store = RunStore(settings.runs_dir)
    studio_runs = runs or StudioRuns(settings, server_url=server_url or "http://127.0.0.1:2024", scale=scale)
    collector: list[object] = []  # the EventsCollector, built on the first metrics request (it loads OpenTelemetry)
    memory = StudioMemory(settings)  # opens the home's memory on the first memory request (issue 19)

    async def guarded(work: Callable[[], Awaitable[Response]], *, action: bool = False) -> Response:
        if action and not actions:
            return JSONResponse({"error": "this Studio is mounted in the LangGraph server: start, plan and roll "
                                          "back runs with `naestro studio` or the CLI"}, status_code=501)
        try:
            return await work()
        except (NaestroError, ValidationError) as exc:
            return _error(exc)

    def served_url(request: Request) -> None:
        """A served run's server is this one when mounted in it."""
        if not actions and server_url is None:
            studio_runs.server_url = str(request.base_url).rstrip("/")

    async def index(_: Request) -> Response:
        page = STATIC / "index.html"
        if not page.exists():
            return PlainTextResponse("the Studio UI is not built: `npm ci && npm run build` in studio/web "
                                     "(scripts/setup.sh does it when npm is installed)", status_code=404)
        return FileResponse(page, headers={"cache-control": "no-cache"})

    async def info(_: Request) -> Response:
        return JSONResponse({"actions": actions, "home": str(settings.home)})

    async def list_runs(request: Request) -> Response:
        if request.method == "POST":
            async def start() -> Response:
                run_id = await studio_runs.start(await _body(request, StartBody))
                return JSONResponse({"run_id": run_id}, status_code=202)
            return await guarded(start, action=True)
        return JSONResponse(await asyncio.to_thread(summaries, settings))

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]

        async def detail() -> Response:
            body = await asyncio.to_thread(run_detail, settings, run_id)
            body["running_here"] = studio_runs.running(run_id)
            return JSONResponse(body)
        return await guarded(detail)

    async def files(request: Request) -> Response:
        async def go() -> Response:
            return JSONResponse(await asyncio.to_thread(workspace_files, store, request.path_params["run_id"]))
        return await guarded(go)

    async def report(request: Request) -> Response:
        path = store.dir(request.path_params["run_id"]) / "report.md"
        try:
            text = await asyncio.to_thread(path.read_text)
        except (FileNotFoundError, NotADirectoryError):
            return PlainTextResponse("no report (unknown run, or not finished)", status_code=404)
        return PlainTextResponse(text, media_type="text/markdown")

    async def events(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if not await asyncio.to_thread((store.dir(run_id) / "run.json").exists):
            return _error(UnknownRun(run_id, home=str(settings.home)))
        after = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        skip = int(after) if after.isdigit() else 0
        stream: AsyncIterator[bytes] = sse_events(store.dir(run_id) / "events.jsonl", skip=skip, interval=poll_s,
                                                  stopped=request.is_disconnected)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def pending(request: Request) -> Response:
        served_url(request)

        async def go() -> Response:
            found = await studio_runs.pending(request.path_params["run_id"])
            return JSONResponse([{"id": p.id, **p.request} for p in found])
        return await guarded(go)

    async def consent(request: Request) -> Response:
        served_url(request)

        async def go() -> Response:
            status = await studio_runs.answer(request.path_params["run_id"], await _body(request, ConsentBody))
            return JSONResponse({"status": status})
        return await guarded(go)

    async def resume(request: Request) -> Response:
        async def go() -> Response:
            return JSONResponse({"status": await studio_runs.resume(request.path_params["run_id"])})
        return await guarded(go, action=True)

    async def history(request: Request) -> Response:
        async def go() -> Response:
            return JSONResponse(await studio_runs.history(request.path_params["run_id"]))
        return await guarded(go, action=True)

    async def rollback(request: Request) -> Response:
        async def go() -> Response:
            target = await studio_runs.rollback(request.path_params["run_id"], await _body(request, RollbackBody))
            return JSONResponse(target)
        return await guarded(go, action=True)

    async def fork(request: Request) -> Response:
        async def go() -> Response:
            new = await studio_runs.fork(request.path_params["run_id"], await _body(request, ForkBody))
            return JSONResponse({"run_id": new}, status_code=201)
        return await guarded(go, action=True)

    async def plan(request: Request) -> Response:
        async def go() -> Response:
            return JSONResponse(await studio_runs.plan((await _body(request, _PlanBody)).goal))
        return await guarded(go, action=True)

    async def validate(request: Request) -> Response:
        from naestro.validate import parse_plan_text

        async def go() -> Response:
            text = (await _body(request, _ValidateBody)).plan
            try:
                parsed = await asyncio.to_thread(parse_plan_text, text)
            except PlanInvalid as exc:
                return JSONResponse({"valid": False, "problems": [
                    {"pointer": p.pointer, "message": p.message} for p in exc.problems]})
            return JSONResponse({"valid": True, "problems": [], "tasks": len(parsed.tasks)})
        return await guarded(go)

    async def metrics(_: Request) -> Response:
        from naestro.telemetry import EventsCollector
        from studio.metrics import metrics_json

        if not collector:
            collector.append(EventsCollector(settings.runs_dir))
        found = collector[0]
        assert isinstance(found, EventsCollector)
        return JSONResponse(await asyncio.to_thread(metrics_json, found))

    async def router(_: Request) -> Response:
        from naestro.commands.router import stats_rows  # the rows `naestro router stats --json` prints

        async def go() -> Response:
            return JSONResponse(await asyncio.to_thread(stats_rows, settings))
        return await guarded(go)

    async def memory_timeline(request: Request) -> Response:
        params = request.query_params

        async def go() -> Response:
            try:
                limit = int(params.get("limit") or 200)
                data = await memory.timeline(run_id=params.get("run") or None, kinds=params.getlist("kind"),
                                             limit=max(1, min(limit, 5000)))
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse(data)
        return await guarded(go)

    async def memory_search(request: Request) -> Response:
        params = request.query_params
        query, limit = (params.get("q") or "").strip(), params.get("limit") or "10"
        if not query or not limit.isdigit():
            return JSONResponse({"error": "say what to search for (?q=...) and at most how many (?limit=N)"},
                                status_code=400)

        async def go() -> Response:
            try:
                hits = await memory.search(query, limit=max(1, min(int(limit), 50)))
            except PolicyDenied as exc:
                return JSONResponse({"error": str(exc)}, status_code=403)
            return JSONResponse(hits)
        return await guarded(go)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await studio_runs.aclose()
        await memory.aclose()

    routes = [
        Route("/", index), Route("/naestro/info", info),
        Route("/naestro/runs", list_runs, methods=["GET", "POST"]),
        Route("/naestro/runs/{run_id:str}", run), Route("/naestro/runs/{run_id:str}/report", report),
        Route("/naestro/runs/{run_id:str}/events", events), Route("/naestro/runs/{run_id:str}/files", files),
        Route("/naestro/runs/{run_id:str}/pending", pending),
        Route("/naestro/runs/{run_id:str}/consent", consent, methods=["POST"]),
        Route("/naestro/runs/{run_id:str}/resume", resume, methods=["POST"]),
        Route("/naestro/runs/{run_id:str}/history", history),
        Route("/naestro/runs/{run_id:str}/rollback", rollback, methods=["POST"]),
        Route("/naestro/runs/{run_id:str}/fork", fork, methods=["POST"]),
        Route("/naestro/plan", plan, methods=["POST"]), Route("/naestro/validate", validate, methods=["POST"]),
        Route("/naestro/metrics", metrics), Route("/naestro/metrics/router", router),
        Route("/naestro/memory/timeline", memory_timeline), Route("/naestro/memory/search", memory_search),
        Mount("/assets", app=StaticFiles(directory=STATIC / "assets", check_dir=False), name="assets"),
    ]
    middleware = [Middleware(TokenGate, token=token.get_secret_value())] if token is not None else []
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)


# The LangGraph server's mount (langgraph.json): shows runs and answers consent through the server's own API.
app = build_app(actions=False, token=StudioSettings().token)
