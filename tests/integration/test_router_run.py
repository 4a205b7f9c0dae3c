"""A routed run on real LangGraph + SQLite + MCP servers (scripted model text): decisions land in the run's
event log and the acceptance verdicts update the bandit's SQLite store."""

from __future__ import annotations

import random

from naestro.events import read_events
from naestro.plan import Plan
from naestro.router import Router, SqliteBanditStore, ThompsonBandit
from naestro.runner import Runner
from naestro.settings import Settings
from tests.fakes import ScriptedProvider
from tests.integration.test_run_graph import coder_script, regex_task


async def test_routed_run_logs_decisions_and_teaches_the_bandit(settings: Settings) -> None:
    provider = ScriptedProvider(coder_script({"a": "ok", "b": "wrong"}))
    store = SqliteBanditStore(settings.home / "router.sqlite")
    router = Router(provider.registry, bandit=ThompsonBandit(store, rng=random.Random(0)))
    plan = Plan.model_validate({"goal": "g", "tasks": [regex_task("a", "ok"),
                                                       {**regex_task("b", "ok"), "max_attempts": 2}]})
    result = await Runner(settings, provider, router=router).start("g", plan=plan)
    events = read_events(result.report_path.parent / "events.jsonl")
    routes = [e for e in events if e["event"] == "route"]
    assert {e["task"] for e in routes} == {"a", "b", "report"}  # the reporter is routed too
    assert all(e["endpoint"] == "scripted" and e["rule"] == "requested" for e in routes)
    arm = SqliteBanditStore(settings.home / "router.sqlite").load()[("coder", "scripted")]
    # a: one attempt of 3 calls (write, finish refused until something ran, finish), passed; b: two attempts of
    # 3 calls each, both failed their check.
    assert (arm.pulls, arm.successes, arm.routed) == (9, 3, 9)
