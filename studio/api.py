"""Naestro's own HTTP routes beside the LangGraph API (``langgraph.json`` → ``http.app``): runs as Naestro keeps
them (run.json, events, report), for the web Studio and any HTTP client.

The LangGraph server mounts this Starlette app next to its own routes (threads, runs, assistants), on the same
port, so one process serves the graph and these. Reads run in worker threads: the server's loop never blocks.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from naestro.errors import UnknownRun
from naestro.events import read_events
from naestro.runs import RunStore
from naestro.settings import Settings

__all__ = ["app", "build_app"]


def build_app(settings: Settings | None = None) -> Starlette:
    store = RunStore((settings or Settings()).runs_dir)

    async def runs(_: Request) -> Response:
        records = await asyncio.to_thread(store.list)
        return JSONResponse([{**r.model_dump(mode="json"), "status": r.display_status} for r in records])

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            record = await asyncio.to_thread(store.load, run_id)
        except UnknownRun as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        events = await asyncio.to_thread(read_events, store.dir(run_id) / "events.jsonl")
        return JSONResponse({**record.model_dump(mode="json"), "status": record.display_status, "events": events})

    async def report(request: Request) -> Response:
        path = store.dir(request.path_params["run_id"]) / "report.md"
        try:
            text = await asyncio.to_thread(path.read_text)
        except (FileNotFoundError, NotADirectoryError):
            return PlainTextResponse("no report (unknown run, or not finished)", status_code=404)
        return PlainTextResponse(text, media_type="text/markdown")

    return Starlette(routes=[Route("/naestro/runs", runs), Route("/naestro/runs/{run_id:str}", run),
                             Route("/naestro/runs/{run_id:str}/report", report)])


app = build_app()
