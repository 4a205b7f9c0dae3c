"""Router rules, retries and re-routes against real sockets and real HTTP servers (no model needed)."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage

from naestro.budget import RunBudget, TaskMeter
from naestro.endpoints import Endpoint, ModelRegistry, RouterConfig
from naestro.events import EventLog, read_events
from naestro.limits import Budget
from naestro.router import HealthBoard, NoRoute, Router, RouteRequest, classify_failure, request_for
from naestro.router.model_call import remaining_usd


def ep(name: str, *, locality: str = "local", context: int = 8192, caps: tuple[str, ...] = ("json_schema",),
       price: float = 0.0, url: str = "http://127.0.0.1:9/v1", concurrency: int = 2,
       timeout_s: float = 30.0) -> Endpoint:
    return Endpoint.model_validate({"name": name, "kind": "openai", "model": name, "base_url": url,
                                    "context": context, "capabilities": caps, "locality": locality,
                                    "price_in_per_1k": price, "price_out_per_1k": price,
                                    "concurrency": concurrency, "timeout_s": timeout_s})


def registry(*eps: Endpoint, **router: Any) -> ModelRegistry:
    return ModelRegistry(default=eps[0].name, endpoints=eps, router=RouterConfig(**router))


def req(tokens: int = 100, **kw: Any) -> RouteRequest:
    return RouteRequest(kind=kw.pop("kind", "coder"), prompt_tokens=tokens, max_output_tokens=100, **kw)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- rules ----------------------------------------------------------------------------------------------------

def test_local_first_and_requested_endpoint() -> None:
    r = Router(registry(ep("cloud", locality="cloud"), ep("small"), ep("big")))
    d = r.decide(req())
    assert (d.endpoint.name, d.rule, d.spilled) == ("small", "local-first", False)
    d = r.decide(req(requested="big"))
    assert (d.endpoint.name, d.rule) == ("big", "requested")


def test_long_prompt_spills_to_long_context_endpoint() -> None:
    r = Router(registry(ep("local", context=8192), ep("long", locality="cloud", context=131072,
                                                    caps=("json_schema", "long_context"))))
    d = r.decide(req(20_000, requested="local"))
    assert d.endpoint.name == "long" and d.spilled and d.rule == "spill"
    assert d.rejected["local"].startswith("context: needs ~20100 tokens, has 8192")
    assert "local rejected (context" in d.reason


def test_capability_policy_and_budget_filters() -> None:
    r = Router(registry(ep("local", caps=("code",)), ep("pii-ok"), ep("cloud", locality="cloud", price=10.0)),
               allowed=lambda e: e.name != "pii-ok")
    with pytest.raises(NoRoute) as info:
        r.decide(req(needs=frozenset({"json_schema"}), budget_usd=0.5))
    assert info.value.rejected == {"local": "lacks capability json_schema", "pii-ok": "not allowed by policy",
                                   "cloud": "budget: ~$2.0000 > $0.5000 left"}
    assert "naestro models" in str(info.value)
    assert r.decide(req(needs=frozenset({"json_schema"}), budget_usd=5.0)).endpoint.name == "cloud"


def test_queue_depth_and_slo_spill_then_degraded() -> None:
    health = HealthBoard(window=4)
    r = Router(registry(ep("a", concurrency=1), ep("b"), slo_p95_s=10.0, min_samples=3), health=health)
    health.started("a")
    d = r.decide(req(requested="a"))
    assert d.endpoint.name == "b" and d.spilled and d.rejected["a"] == "queue: 1 in flight (limit 1)"
    health.finished("a", latency_s=1.0)
    for s in (20.0, 30.0, 25.0):
        health.finished("b", latency_s=s)
    assert r.decide(req(requested="b")).endpoint.name == "a"
    assert r.decide(req(requested="b")).rejected["b"] == "slo: p95 30.0s > 10s"
    for s in (40.0, 50.0, 60.0):  # now both breach the SLO: the requested one is used, marked degraded
        health.finished("a", latency_s=s)
    d = r.decide(req(requested="b"))
    assert (d.endpoint.name, d.rule, d.spilled) == ("b", "degraded", False)


def test_slo_needs_min_samples_and_window_slides() -> None:
    health = HealthBoard(window=3)
    r = Router(registry(ep("a"), ep("b"), slo_p95_s=5.0, min_samples=2), health=health)
    health.finished("a", latency_s=100.0)
    assert r.decide(req()).endpoint.name == "a"  # one sample is not a p95
    health.finished("a", latency_s=100.0)
    assert r.decide(req()).endpoint.name == "b"
    for _ in range(3):
        health.finished("a", latency_s=1.0)  # the slow calls leave the window
    assert r.decide(req()).endpoint.name == "a"


def test_down_endpoint_is_skipped_until_cooldown_ends() -> None:
    clock = Clock()
    r = Router(registry(ep("a"), ep("b")), health=HealthBoard(cooldown_s=30, clock=clock))
    r.health.mark_down("a", "connection: refused")
    d = r.decide(req())
    assert d.endpoint.name == "b" and d.rejected["a"] == "down: connection: refused"
    clock.now += 31
    assert r.decide(req()).endpoint.name == "a"


# -- calls: retries and re-routes over real sockets ----------------------------------------------------------

def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: connecting is refused


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[int]]]:
    """A real HTTP server answering each request with the next status in ``statuses`` (200 when empty)."""
    statuses: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = statuses.pop(0) if statuses else 200
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"ok" if code == 200 else b"overloaded")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", statuses
    server.shutdown()


async def get(e: Endpoint) -> str:
    assert e.base_url is not None
    async with httpx.AsyncClient() as client:
        r = await client.get(e.base_url)
        r.raise_for_status()
        return f"{e.name}:{r.text}"


async def test_refused_connection_reroutes_and_the_log_says_why(http_server: tuple[str, list[int]],
                                                                 tmp_path: Any) -> None:
    url, _ = http_server
    r = Router(registry(ep("dead", url=f"http://127.0.0.1:{dead_port()}"), ep("live", url=url), retries=2))
    log = EventLog(tmp_path / "events.jsonl", run_id="r1")
    result, decision = await r.call(req(), get, emit=log.emit)
    assert result == "live:ok" and decision.endpoint.name == "live"
    events = read_events(tmp_path / "events.jsonl")
    assert [e["event"] for e in events] == ["route", "reroute", "route"]  # no retries on a refused connection
    assert events[0]["endpoint"] == "dead" and events[0]["rule"] == "local-first"
    assert str(events[1]["reason"]).startswith("connection:")
    assert events[2]["rejected"] == {"dead": f"failed during this call ({events[1]['reason']})"}
    assert r.health.is_down("dead")
    assert r.decide(req()).endpoint.name == "live"  # the next call skips it without trying


async def test_5xx_is_retried_with_backoff_then_rerouted(http_server: tuple[str, list[int]]) -> None:
    url, statuses = http_server
    delays: list[float] = []

    async def sleep(s: float) -> None:
        delays.append(s)

    r = Router(registry(ep("flaky", url=url), ep("other", url=url + "/other"), retries=2, backoff_s=0.5),
               sleep=sleep)
    statuses.extend([503, 500])
    result, d = await r.call(req(), get)
    assert result == "flaky:ok" and d.endpoint.name == "flaky" and delays == [0.5, 1.0]
    statuses.extend([503, 503, 503])
    result, d = await r.call(req(), get)
    assert result == "other:ok" and delays == [0.5, 1.0, 0.5, 1.0]
    assert r.health.get("flaky").last_error is not None and r.health.is_down("flaky")


async def test_timeout_reroutes_instead_of_hanging(http_server: tuple[str, list[int]]) -> None:
    url, _ = http_server
    listener = socket.socket()  # accepts connections, never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        silent = ep("silent", url=f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=0.3)
        r = Router(registry(silent, ep("live", url=url), retries=0))
        result, _ = await r.call(req(), get)
        assert result == "live:ok"
        assert str(r.health.get("silent").last_error).startswith("timeout")
    finally:
        listener.close()


async def test_every_endpoint_failing_raises_no_route_with_each_reason() -> None:
    r = Router(registry(ep("a", url=f"http://127.0.0.1:{dead_port()}"), ep("b", url=f"http://127.0.0.1:{dead_port()}")))
    with pytest.raises(NoRoute) as info:
        await r.call(req(), get)
    assert set(info.value.rejected) == {"a", "b"}
    assert all("connection" in why for why in info.value.rejected.values())


async def test_errors_rerouting_cannot_fix_propagate(http_server: tuple[str, list[int]]) -> None:
    url, statuses = http_server
    r = Router(registry(ep("a", url=url), ep("b", url=url)))
    statuses.append(400)
    with pytest.raises(httpx.HTTPStatusError):
        await r.call(req(), get)
    assert not r.health.is_down("a")


def test_classify_failure() -> None:
    assert classify_failure(TimeoutError()) == "timeout"
    assert classify_failure(ValueError("schema")) is None
    wrapped = RuntimeError("x")
    wrapped.__cause__ = httpx.ConnectError("refused")
    assert classify_failure(wrapped) == "connection"


async def test_concurrent_calls_count_toward_queue_depth(http_server: tuple[str, list[int]]) -> None:
    url, _ = http_server
    r = Router(registry(ep("a", url=url, concurrency=1), ep("b", url=url)))
    gate = asyncio.Event()
    seen: list[str] = []

    async def slow(e: Endpoint) -> str:
        seen.append(e.name)
        await gate.wait()
        return e.name

    first = asyncio.create_task(r.call(req(), slow))
    await asyncio.sleep(0)
    second = asyncio.create_task(r.call(req(), slow))
    await asyncio.sleep(0)
    gate.set()
    assert [(await first)[0], (await second)[0]] == ["a", "b"]
    assert r.health.get("a").in_flight == 0


def test_remaining_budget_is_the_smaller_of_task_and_run_headroom() -> None:
    run = RunBudget(ceiling=Budget(usd=0.5), usd=0.2)
    meter = TaskMeter(task_id="t", budget=Budget(usd=1.0), run=run, usd=0.3)
    assert remaining_usd(meter) == pytest.approx(0.3)
    assert remaining_usd(TaskMeter(task_id="t", budget=Budget(), run=RunBudget(ceiling=Budget()))) is None
    req = request_for([HumanMessage("x" * 300)], kind="coder", requested="cloud", meter=meter)
    r = Router(registry(ep("cloud", locality="cloud", price=1.0), ep("local")))
    d = r.decide(req)  # the cloud call would cost ~$2 of the $0.30 left: spill to the free local endpoint
    assert d.endpoint.name == "local" and d.rejected["cloud"].startswith("budget: ~$2.")


async def test_decisions_are_added_to_the_current_trace_span(http_server: tuple[str, list[int]]) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    url, _ = http_server
    r = Router(registry(ep("dead", url=f"http://127.0.0.1:{dead_port()}"), ep("live", url=url)))
    with provider.get_tracer("test").start_as_current_span("chat"):
        await r.call(req(), get)
    (span,) = exporter.get_finished_spans()
    assert [e.name for e in span.events] == ["naestro.route", "naestro.reroute", "naestro.route"]
    assert span.events[2].attributes is not None and span.events[2].attributes["endpoint"] == "live"
    assert "dead" in str(span.events[2].attributes["rejected"])


@pytest.fixture
def overflow_server() -> Iterator[str]:
    """Answers every chat call the way llama-server answers a prompt longer than its context."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"error": {"code": 400, "type": "exceed_context_size_error", "message":
                               "the request exceeds the available context size, try increasing it"}}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


async def test_prompt_that_overflows_despite_the_estimate_reroutes_without_marking_down(
        overflow_server: str, http_server: tuple[str, list[int]]) -> None:
    url, _ = http_server

    async def chat(e: Endpoint) -> str:
        if e.name == "short":
            client = openai.AsyncOpenAI(base_url=overflow_server, api_key="x", max_retries=0)
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        return await get(e)

    r = Router(registry(ep("short", url=overflow_server), ep("long", url=url)))
    result, d = await r.call(req(), chat)
    assert result == "long:ok"
    assert d.rejected["short"].startswith("failed during this call (context: ")
    assert not r.health.is_down("short")  # the next (shorter) prompt may use it again


async def test_on_down_hook_runs_when_an_endpoint_is_marked_down(http_server: tuple[str, list[int]]) -> None:
    url, _ = http_server
    downs: list[str] = []
    r = Router(registry(ep("dead", url=f"http://127.0.0.1:{dead_port()}"), ep("live", url=url)))
    await r.call(req(), get, on_down=lambda e: downs.append(e.name))
    assert downs == ["dead"]
