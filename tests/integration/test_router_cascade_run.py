"""The cascade strategy in a real run (real LangGraph, SQLite, MCP servers; scripted model text): a task's first
attempt goes to the small endpoint, a failed acceptance check escalates its next attempt to the large one."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from naestro.endpoints import Endpoint, ModelRegistry, RouterConfig
from naestro.events import read_events
from naestro.plan import Plan
from naestro.router import Router
from naestro.runner import Runner
from naestro.settings import Settings
from tests.fakes import ScriptedChatModel
from tests.integration.test_run_graph import coder_script, regex_task


class TwoTierProvider:
    """Two scripted endpoints: the small one writes the wrong file contents, the large one the right ones."""

    def __init__(self, *, strategy: str) -> None:
        def ep(name: str) -> Endpoint:
            return Endpoint(name=name, kind="openai", model=name, base_url="http://127.0.0.1:9/v1", context=8192,
                            capabilities=("json_schema",))
        self.registry = ModelRegistry(default="large", fast="small", endpoints=(ep("large"), ep("small")),
                                      router=RouterConfig.model_validate({"strategy": strategy}))
        self.models: dict[str, BaseChatModel] = {
            "small": ScriptedChatModel(script=coder_script({"a": "wrong", "b": "wrong"})),
            "large": ScriptedChatModel(script=coder_script({"a": "ok", "b": "ok"}))}
        self.calls: list[str] = []

    def chat(self, endpoint: str | None) -> tuple[Endpoint, BaseChatModel]:
        ep = self.registry.get(endpoint)
        self.calls.append(ep.name)
        return ep, self.models[ep.name]


def plan() -> Plan:
    return Plan.model_validate({"goal": "g", "tasks": [{**regex_task("a", "ok"), "max_attempts": 2},
                                                       {**regex_task("b", "ok"), "max_attempts": 2}]})


def routes(result: Any) -> list[dict[str, Any]]:
    events = read_events(result.report_path.parent / "events.jsonl")
    return [e for e in events if e["event"] == "route" and e["task"] in ("a", "b")]


async def test_cascade_escalates_a_task_after_its_check_failed_on_the_small_model(settings: Settings) -> None:
    provider = TwoTierProvider(strategy="cascade")
    result = await Runner(settings, provider, router=Router(provider.registry)).start("g", plan=plan())
    by_task: dict[str, list[tuple[str, str]]] = {}
    for e in routes(result):
        by_task.setdefault(e["task"], []).append((e["endpoint"], e["rule"]))
    for task in ("a", "b"):
        endpoints = [ep for ep, _ in by_task[task]]
        # attempt 1 on small (wrong contents, check fails), attempt 2 escalated to large (passes)
        assert endpoints[0] == "small" and endpoints[-1] == "large", by_task
        assert endpoints == sorted(endpoints, key=lambda n: n == "large")  # never back to small
        assert {rule for _, rule in by_task[task]} == {"cascade"}
    escalated = [e for e in routes(result) if e["endpoint"] == "large"]
    assert all("escalated task" in e["reason"] for e in escalated)
    assert result.passed


async def test_rules_strategy_keeps_the_requested_large_endpoint(settings: Settings) -> None:
    provider = TwoTierProvider(strategy="rules")
    result = await Runner(settings, provider, router=Router(provider.registry)).start("g", plan=plan())
    assert {e["endpoint"] for e in routes(result)} == {"large"} and result.passed
