"""The router against two real llama-servers (Qwen2.5-Coder-0.5B, twice): spill on context, re-route on a kill.

Each endpoint is its own llama-server process in a private NAESTRO_HOME, stopped at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from naestro.endpoints import ModelRegistry, load_registry
from naestro.errors import ConfigError, EndpointUnavailable
from naestro.events import Event, EventLog, read_events
from naestro.llm import EndpointProvider, complete_json
from naestro.plan import Plan
from naestro.router import HealthBoard, Router, complete_json_routed, request_for
from naestro.router.tune import check_endpoint, profile_endpoint, write_prior
from naestro.runner import Runner
from naestro.settings import Settings
from policies.decision import ApprovedScope, RunPolicy
from tests.conftest import REPO

# One event loop for the module: langchain-openai caches its httpx client per base_url across tests.
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SMALL = load_registry().get("coder-0.5b").gguf
REGISTRY = f"""
default: primary
fast: primary
endpoints:
  - {{name: primary, kind: llama.cpp, model: qwen-a, context: 4096, capabilities: [json_schema, code],
     gguf: {SMALL.model_dump_json() if SMALL else "null"}}}
  - {{name: secondary, kind: llama.cpp, model: qwen-b, context: 8192,
     capabilities: [json_schema, code, long_context], gguf: {SMALL.model_dump_json() if SMALL else "null"}}}
router: {{retries: 1, backoff_s: 0.2, down_cooldown_s: 3600}}
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, ModelRegistry]]:
    path = tmp_path_factory.mktemp("router-home")
    (path / "models.yaml").write_text(REGISTRY)
    settings = Settings(home=path, models_dir=REPO / ".naestro" / "models", models_file=path / "models.yaml",
                        max_replans=0)
    registry = load_registry(settings.models_file)
    yield settings, registry
    provider = EndpointProvider(registry, settings)
    for e in registry.endpoints:
        provider.server(e).stop()


SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}


def long_prompt() -> list[BaseMessage]:
    """~5,000 real tokens: more than primary's 4,096-token context, well within secondary's 8,192."""
    code = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(400))
    return [HumanMessage(f"{code}\nWhat does f7(1) return? Reply as JSON {{\"answer\": <int>}}.")]


async def test_prompt_longer_than_local_context_spills_to_long_context_endpoint(
        home: tuple[Settings, ModelRegistry], tmp_path: Path) -> None:
    settings, registry = home
    provider = EndpointProvider(registry, settings)
    messages = long_prompt()
    with pytest.raises(openai.BadRequestError):  # without the router the call simply fails
        await complete_json(provider, "primary", messages, schema=SCHEMA, name="answer")
    log = EventLog(tmp_path / "events.jsonl", run_id="spill")
    router = Router(registry)
    reply, decision = await complete_json_routed(
        router, provider, request_for(messages, kind="coder", requested="primary", max_output_tokens=64),
        messages, schema=SCHEMA, name="answer", emit=log.emit)
    assert decision.endpoint.name == "secondary" and decision.spilled and decision.rule == "spill"
    assert reply.endpoint == "secondary" and reply.prompt_tokens > 4096 and isinstance(reply.value, dict)
    (route,) = read_events(tmp_path / "events.jsonl")
    assert route["event"] == "route" and str(route["rejected"]["primary"]).startswith("context: needs ~")  # type: ignore[index]


async def test_tune_measures_the_real_server_and_writes_the_prior(home: tuple[Settings, ModelRegistry],
                                                                 tmp_path: Path) -> None:
    settings, registry = home
    ep = registry.get("secondary")
    base_url = EndpointProvider(registry, settings).base_url(ep)
    assert check_endpoint(ep, base_url) == ["qwen-b"]
    with pytest.raises(ConfigError, match=r"model 'nope' is not served .* \(served: qwen-b\)"):
        check_endpoint(ep.model_copy(update={"model": "nope"}), base_url)
    points = await profile_endpoint(ep, base_url, concurrencies=(1, 2), prompt_tokens=(32,), requests=2,
                                    max_tokens=4)
    assert [(p.concurrency, p.requests, p.errors) for p in points] == [(1, 2, 0), (2, 2, 0)]
    assert all(0 < p.p50_s <= p.p95_s and p.output_tokens_per_s > 0 for p in points)
    models = tmp_path / "models.yaml"
    models.write_text(REGISTRY)
    p95 = write_prior(models, "secondary", points, profile_dir=tmp_path / "profiles")
    prior = load_registry(models).router.priors[0]
    assert (prior.endpoint, prior.p95_latency_s) == ("secondary", p95) and p95 == points[0].p95_s
    assert Router(load_registry(models)).health.get("secondary").p95() == p95  # seeds the SLO window
    assert json.loads((tmp_path / "profiles" / "secondary.json").read_text())[1]["concurrency"] == 2


async def test_unreachable_endpoint_is_a_clear_error() -> None:
    ep = load_registry().get("coder-0.5b")
    with pytest.raises(EndpointUnavailable, match=re.escape("GET http://127.0.0.1:9/v1/models: ConnectError")):
        check_endpoint(ep, "http://127.0.0.1:9/v1")


# The coder's tools (fs.*, exec.run) are the ones its real-model path is known to handle; exec.run is
# pre-approved so the run never waits for a human. One attempt suffices: the reporter's model call comes after
# the kill in any case.
PLAN = {
    "goal": "create a file",
    "tasks": [
        {"id": "hello", "role": "coder", "description": "Write a file named hello.txt containing the word hi.",
         "accept": [{"kind": "file_exists", "path": "hello.txt"}], "max_attempts": 1,
         "budget": {"tokens": 40000, "wall_s": 1800}},
    ],
}
POLICY = RunPolicy(approve=[ApprovedScope(tool="exec.run")])


async def test_killed_endpoint_mid_run_reroutes_and_the_run_completes(home: tuple[Settings, ModelRegistry]) -> None:
    settings, registry = home
    provider = EndpointProvider(registry, settings)
    primary = provider.server(registry.get("primary"))
    primary.ensure()
    killed: list[int] = []

    def on_event(ev: Event) -> None:
        # After the first model call answered by primary, kill its server (SIGKILL: no goodbye).
        if ev.get("event") == "model_call" and ev.get("endpoint") == "primary" and not killed:
            info = primary.status()
            assert info is not None
            os.kill(info.pid, signal.SIGKILL)
            killed.append(info.pid)

    router = Router(registry)
    result = await Runner(settings, provider, on_event=on_event, router=router).start(
        "", plan=Plan.model_validate(PLAN), policy=POLICY)
    assert killed, "primary never answered a call"
    events = read_events(Path(result.report_path).parent / "events.jsonl")
    reroutes = [e for e in events if e["event"] == "reroute"]
    assert reroutes and reroutes[0]["endpoint"] == "primary"
    assert str(reroutes[0]["reason"]).startswith("connection:")
    after = events[events.index(reroutes[0]) + 1:]
    calls_after = [e["endpoint"] for e in after if e["event"] == "model_call"]
    assert calls_after and set(calls_after) == {"secondary"}
    routes_after = [e for e in after if e["event"] == "route"]
    assert routes_after[0]["endpoint"] == "secondary"
    assert str(routes_after[0]["rejected"]["primary"]).startswith(("failed during this call", "down:"))  # type: ignore[index]
    # The run finished (passed, or failed its check if the 0.5B model fumbled the task) instead of ending
    # with an endpoint error, which is what it did before the router: a RunError leaves status "error".
    assert result.record.status in ("passed", "failed"), result.record.status


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_dead_embedded_server_is_started_again_after_the_cooldown(home: tuple[Settings, ModelRegistry],
                                                                         tmp_path: Path) -> None:
    settings, registry = home
    provider = EndpointProvider(registry, settings)
    provider.chat("primary")  # a cached client bound to the running server's port
    primary = provider.server(registry.get("primary"))
    info = primary.status()
    assert info is not None
    os.kill(info.pid, signal.SIGKILL)
    clock = Clock()
    router = Router(registry, health=HealthBoard(cooldown_s=60, clock=clock))
    messages: list[BaseMessage] = [HumanMessage('Reply with the JSON {"answer": 2}.')]
    req = request_for(messages, kind="coder", requested="primary", max_output_tokens=64)
    reply, _ = await complete_json_routed(router, provider, req, messages, schema=SCHEMA, name="answer")
    assert reply.endpoint == "secondary" and router.health.is_down("primary")
    clock.now += 61  # cooldown over: the router tries primary again, and the provider starts its server anew
    reply, decision = await complete_json_routed(router, provider, req, messages, schema=SCHEMA, name="answer")
    assert (reply.endpoint, decision.rule) == ("primary", "requested")
    restarted = primary.status()
    assert restarted is not None and restarted.pid != info.pid
