"""The router against two real llama-servers (Qwen2.5-Coder-0.5B, twice): spill on context, re-route on a kill.

Each endpoint is its own llama-server process in a private NAESTRO_HOME, stopped at the end.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from naestro.endpoints import ModelRegistry, load_registry
from naestro.events import Event, EventLog, read_events
from naestro.llm import EndpointProvider, complete_json
from naestro.plan import Plan
from naestro.router import Router, complete_json_routed, request_for
from naestro.runner import Runner
from naestro.settings import Settings
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
router: {{retries: 1, backoff_s: 0.2, down_cooldown_s: 600}}
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


PLAN = {
    "goal": "create a file",
    "tasks": [
        {"id": "touch", "role": "runner", "description": "Create out.txt by running the command: echo hi > out.txt",
         "accept": [{"kind": "file_exists", "path": "out.txt"}], "max_attempts": 2,
         "budget": {"tokens": 40000, "wall_s": 1800}},
    ],
}


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
        "", plan=Plan.model_validate(PLAN))
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
