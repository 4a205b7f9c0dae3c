"""The scale-out HTTP API (``naestro serve``) in front of the real Redis queue, with no worker consuming it: what a
client sees when it submits, asks, is refused, and what the queue then holds (per priority, as ``/metrics`` says).
Starlette's TestClient drives the real ASGI app in-process; the run store, the queue and Redis are real.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import redis
from starlette.testclient import TestClient

import naestro.distributed
from naestro.distributed import ScaleSettings
from naestro.distributed.api import make_api
from naestro.runner import Runner
from naestro.settings import Settings
from tests.fakes import ScriptedProvider
from tests.integration.test_concurrent_runs import PLAN, script

REDIS_URL = "redis://127.0.0.1:6379/5"
QUEUE = "naestro-api-test"
TOKEN = "api-test-token-0123456789abcdef-0123456789"


@pytest.fixture
def client(settings: Settings) -> Iterator[tuple[TestClient, redis.Redis]]:
    broker = redis.Redis.from_url(REDIS_URL)
    keys = [QUEUE, *(f"{QUEUE}:{step}" for step in (3, 6, 9))]
    broker.delete(*keys)
    scale = ScaleSettings(broker_url=REDIS_URL, queue=QUEUE, max_queue_depth=3)
    runner = Runner(settings, ScriptedProvider(script))
    try:
        with TestClient(make_api(settings, scale, token=TOKEN, runner=runner),
                        headers={"Authorization": f"Bearer {TOKEN}"}) as tc:
            yield tc, broker
    finally:
        broker.delete(*keys)
        broker.close()


def _depth(tc: TestClient) -> dict[str, float]:
    lines = [ln for ln in tc.get("/metrics").text.splitlines() if ln.startswith("naestro_queue_depth{")]
    return {ln.split('"')[1]: float(ln.rsplit(" ", 1)[1]) for ln in lines}


def test_submit_status_priorities_and_back_pressure(client: tuple[TestClient, redis.Redis]) -> None:
    tc, broker = client
    first = tc.post("/runs", json={"plan": PLAN, "mode": "auto", "tenant": "acme"})
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    queued = tc.get(f"/runs/{run_id}").json()
    assert (queued["status"], queued["worker"]) == ("queued", None)  # no worker took it yet
    assert tc.post("/runs", json={"goal": "write hello.txt", "priority": "batch"}).status_code == 202
    assert _depth(tc) == {"batch": 1.0, "interactive": 1.0}

    message = json.loads(broker.lindex(QUEUE, 0) or b"{}")  # what a worker will get: the run and its given plan
    body = json.loads(base64.b64decode(message["body"]))[0][0]
    assert body["run_id"] == run_id and body["tenant"] == "acme" and body["plan"]["tasks"][0]["id"] == "a"

    assert tc.post("/runs", json={"goal": "third"}).status_code == 202
    full = tc.post("/runs", json={"goal": "fourth"})
    assert full.status_code == 503 and full.headers["Retry-After"] and full.json()["kind"] == "QueueFull"


def test_bad_requests_say_what_is_wrong(client: tuple[TestClient, redis.Redis]) -> None:
    tc, _ = client
    bad_plan = tc.post("/runs", json={"plan": {"goal": "x", "tasks": []}})
    assert bad_plan.status_code == 400 and bad_plan.json()["kind"] == "PlanInvalid" and bad_plan.json()["problems"]
    assert tc.post("/runs", json={"goal": "x", "mode": "yolo"}).status_code == 400
    assert tc.post("/runs", json={}).status_code == 400  # neither goal nor plan
    assert tc.get("/runs/20990101-000000-beef").status_code == 404
    assert tc.get("/runs/not-a-run").status_code == 404
    queued = tc.post("/runs", json={"goal": "write hello.txt"}).json()["run_id"]
    nothing = tc.post(f"/runs/{queued}/approve", json={})
    assert nothing.status_code == 409  # it waits for no consent
    assert _depth(tc)["interactive"] == 1.0  # the refused requests queued nothing


def test_every_route_but_healthz_needs_the_token(client: tuple[TestClient, redis.Redis]) -> None:
    tc, _ = client
    anonymous = {"Authorization": ""}
    refused = [tc.post("/runs", json={"goal": "write hello.txt"}, headers=anonymous),
               tc.get("/runs/20990101-000000-beef", headers=anonymous),
               tc.post("/runs/20990101-000000-beef/approve", json={}, headers=anonymous),
               tc.get("/metrics", headers={"Authorization": "Bearer not-the-token"})]
    assert [r.status_code for r in refused] == [401] * 4
    assert all(r.json()["kind"] == "Unauthorized" for r in refused)
    assert tc.get("/healthz", headers=anonymous).status_code == 200
    assert _depth(tc) == {"batch": 0.0, "interactive": 0.0}  # the refused submission queued nothing


def test_exported_names() -> None:
    assert sorted(naestro.distributed.__all__) == [
        "AdvanceOutcome", "AdvanceRequest", "FileLocks", "PostgresLocks", "QueueDepth", "QueueFull", "RemoteRun",
        "RunLocks", "ScaleSettings", "Submitter", "advance", "enqueue", "make_app", "open_locks", "queue_depth",
        "remote_run", "serve_tasks"]
