"""The Studio API on a real uvicorn server, a real runtime (LangGraph, SQLite checkpointer, MCP servers, Rego
gate, sandbox) and scripted model text: start a run from plan text, follow it over SSE, answer its consent
through the same rules as `naestro approve`, read history, roll back (files restored), metrics; plus the token
gate and the LangGraph server's read-only mount."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import SecretStr

from naestro.runtime import build_runtime
from naestro.settings import Settings
from studio.api import build_app
from studio.control import StudioRuns
from tests.fakes import ScriptedProvider, all_text
from tests.mcp_http import free_port
from tests.studio.scripted import GOAL, PLAN, reply


def script(messages: list[BaseMessage]) -> dict[str, Any]:
    return reply(all_text(messages), answered=sum(isinstance(m, AIMessage) for m in messages))


@pytest.fixture
def studio(settings: Settings) -> Iterator[str]:
    """The app on uvicorn in a thread (its own event loop runs the runs), with a scripted runtime."""
    runs = StudioRuns(settings, runtime=build_runtime(settings, provider=ScriptedProvider(script)))
    server = uvicorn.Server(uvicorn.Config(build_app(settings, runs=runs, poll_s=0.05), host="127.0.0.1",
                                           port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


async def sse(http: httpx.AsyncClient, run_id: str, *, after: int = 0) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    async with http.stream("GET", f"/naestro/runs/{run_id}/events", params={"after": after}) as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        number = 0
        async for line in res.aiter_lines():
            if line.startswith("id: "):
                number = int(line[4:])
            elif line.startswith("data: "):
                yield number, json.loads(line[6:])


async def until(http: httpx.AsyncClient, run_id: str, event: str, *, after: int = 0) -> int:
    """Follow the SSE stream until ``event``; its line number."""
    async with asyncio.timeout(300):
        async for number, ev in sse(http, run_id, after=after):
            if ev["event"] == event:
                return number
    raise AssertionError(f"stream ended before {event}")


async def pending(http: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 300  # generous: CI shares the machine (load 10 seen); not a timing assertion
    while time.monotonic() < deadline:  # the interrupt is checkpointed just after the event: the drive must stop
        found: list[dict[str, Any]] = (await http.get(f"/naestro/runs/{run_id}/pending")).json()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("no pending consent")


async def test_a_run_from_plan_text_to_consent_history_and_rollback(studio: str) -> None:
    async with httpx.AsyncClient(base_url=studio, timeout=300) as http:
        started = await http.post("/naestro/runs", json={"goal": GOAL, "plan": json.dumps(PLAN)})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        waited_at = await until(http, run_id, "waiting_for_consent")

        [request] = await pending(http, run_id)
        assert (request["action"], request["task"]) == ("exec.run", "note")
        detail = (await http.get(f"/naestro/runs/{run_id}")).json()
        assert detail["status"] == "waiting" and [t["id"] for t in detail["plan"]["tasks"]] == ["greet", "note"]
        assert {"event": "task_finished", "task": "greet", "status": "passed"}.items() <= \
            next(e for e in detail["events"] if e["event"] == "task_finished").items()
        assert any(c["event"] == "model_call" for c in detail["calls"])
        assert any(c["event"] == "tool_call" and c["tool"] == "fs.write" for c in detail["calls"])
        assert any(p["event"] == "consent_requested" and p["action"] == "exec.run" for p in detail["policy"])

        wrong = await http.post(f"/naestro/runs/{run_id}/consent", json={"consent_id": "nope", "approve": True})
        assert wrong.status_code == 400 and "no pending consent nope" in wrong.json()["error"]
        answered = await http.post(f"/naestro/runs/{run_id}/consent",
                                   json={"consent_id": request["id"], "approve": True, "by": "tester"})
        assert answered.json() == {"status": "running"}
        await until(http, run_id, "run_finished", after=waited_at)  # the stream resumes past what it sent
        while (detail := (await http.get(f"/naestro/runs/{run_id}")).json())["running_here"]:
            await asyncio.sleep(0.05)  # the driver saves the outcome just after the last event
        assert detail["status"] == "passed" and detail["tasks_passed"] == 2 and detail["duration_s"] > 0
        assert "`exec.run` approved by tester (studio)" in detail["report"]
        workspace = Path(detail["workspace"])
        assert (workspace / "b.txt").read_text() == "B\n"

        history = (await http.get(f"/naestro/runs/{run_id}/history")).json()
        before_note = next(e for e in history if "task:note" in e["next"])
        back = await http.post(f"/naestro/runs/{run_id}/rollback", json={"to": before_note["checkpoint_id"]})
        assert back.status_code == 200, back.text
        assert not (workspace / "b.txt").exists() and (workspace / "a.txt").read_text() == "hello\n"
        listed = (await http.get(f"/naestro/runs/{run_id}/files")).json()
        assert listed == [{"path": "a.txt", "size": 6, "preview": "hello\n"}]
        assert (await http.get(f"/naestro/runs/{run_id}")).json()["status"] == "rolled_back"
        forked = await http.post(f"/naestro/runs/{run_id}/fork", json={"at": before_note["checkpoint_id"]})
        assert forked.status_code == 201, forked.text
        fork_files = (await http.get(f"/naestro/runs/{forked.json()['run_id']}/files")).json()
        assert [f["path"] for f in fork_files] == ["a.txt"]

        metrics = {f["name"]: f for f in (await http.get("/naestro/metrics")).json()}
        assert metrics["naestro_consent_answers"]["samples"][0]["value"] == 1
        assert any(s["labels"].get("endpoint") == "scripted" for s in metrics["naestro_model_calls"]["samples"])
        rows = {r["run_id"]: r for r in (await http.get("/naestro/runs")).json()}
        assert rows[run_id]["tokens"] > 0 and rows[run_id]["live"] is False and len(rows) == 2


async def test_an_invalid_plan_is_refused_with_every_problem_and_no_run(studio: str, settings: Settings) -> None:
    bad = {**PLAN, "tasks": [{**PLAN["tasks"][1], "deps": ["ghost"]}, {**PLAN["tasks"][0], "accept": []}]}
    async with httpx.AsyncClient(base_url=studio, timeout=300) as http:
        checked = (await http.post("/naestro/validate", json={"plan": json.dumps(bad)})).json()
        assert checked["valid"] is False
        pointers = {p["pointer"] for p in checked["problems"]}
        assert "/tasks/0/deps/0" in pointers and "/tasks/1/accept" in pointers
        refused = await http.post("/naestro/runs", json={"goal": GOAL, "plan": json.dumps(bad)})
        assert refused.status_code == 422 and refused.json()["problems"]
        assert (await http.post("/naestro/runs", json={"goal": GOAL, "plan": "{"})).status_code == 422
        assert (await http.post("/naestro/runs", json={"goal": GOAL, "mode": "yolo"})).status_code == 422
        assert (await http.get("/naestro/runs")).json() == []
        assert not settings.runs_dir.exists() or not any(settings.runs_dir.iterdir())
        ok = (await http.post("/naestro/validate", json={"plan": json.dumps(PLAN)})).json()
        assert ok == {"valid": True, "problems": [], "tasks": 2}
        preview = (await http.post("/naestro/plan", json={"goal": GOAL})).json()
        assert [t["id"] for t in preview["plan"]["tasks"]] == ["greet", "note"] and preview["source"] == "model"
        assert (await http.get("/naestro/runs/nope")).status_code == 404
        assert (await http.get("/naestro/runs/nope/events")).status_code == 404


async def test_the_token_is_required_on_every_request(settings: Settings) -> None:
    app = build_app(settings, token=SecretStr("s3cret"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://studio") as http:
        assert (await http.get("/naestro/runs")).status_code == 401
        assert (await http.get("/")).status_code == 401
        assert (await http.get("/naestro/runs", headers={"authorization": "Bearer nope"})).status_code == 401
        assert (await http.get("/naestro/runs", headers={"authorization": "Bearer s3cret"})).json() == []
        visit = await http.get("/?token=s3cret&x=1")
        assert visit.status_code == 303 and visit.headers["location"] == "/?x=1"
        assert "HttpOnly" in visit.headers["set-cookie"] and "SameSite=Strict" in visit.headers["set-cookie"]
        assert (await http.get("/naestro/runs")).status_code == 200  # the cookie the visit set
        http.cookies.clear()
        http.cookies.set("naestro_studio_token", "wrong")
        assert (await http.get("/naestro/runs")).status_code == 401


async def test_the_langgraph_mount_shows_runs_but_starts_none(settings: Settings) -> None:
    app = build_app(settings, actions=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://studio") as http:
        assert (await http.get("/naestro/info")).json()["actions"] is False
        refused = await http.post("/naestro/runs", json={"goal": GOAL})
        assert refused.status_code == 501 and "naestro studio" in refused.json()["error"]
        assert (await http.post("/naestro/plan", json={"goal": GOAL})).status_code == 501
        assert (await http.get("/naestro/runs")).json() == []
