"""Planning's model calls carry their own reply limits over the real OpenAI client and HTTP (only the model's text
is scripted): a plan or a reference program that runs on is cut at a few hundred tokens more than the longest
seen, not at the client's 2,048 (ten minutes of decoding on the embedded 1.5B under load), and a plan cut off
goes back to the model as feedback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from naestro.endpoints import load_registry
from naestro.llm import EndpointProvider
from naestro.settings import Settings
from nodes.planner import MAX_PLAN_TOKENS, make_plan
from nodes.reference import MAX_PROGRAM_TOKENS, reference_checks
from tests.sandboxed import sandboxed
from tests.scripted_openai import Cut, scripted_models

GOAL = "sales.csv has columns region,amount. Write totals.json mapping each region to the sum of its amounts."
PROGRAM = ("import csv, json\nt = {}\nfor r in csv.DictReader(open('sales.csv')):\n"
           "    t[r['region']] = t.get(r['region'], 0) + float(r['amount'])\njson.dump(t, open('totals.json', 'w'))\n")
PLAN = {"tasks": [{"id": "totals", "role": "coder", "description": "Write totals.json from sales.csv", "deps": [],
                   "accept": [{"kind": "file_exists", "path": "totals.json"}]}]}


def _reply(messages: list[dict[str, Any]]) -> Any:
    text = "\n".join(str(m.get("content")) for m in messages)
    return f"```python\n{PROGRAM}```" if "You write short, correct Python 3 programs" in text else PLAN


async def test_the_plan_and_the_reference_programs_ask_for_short_replies(settings: Settings, tmp_path: Path) -> None:
    requests: list[dict[str, Any]] = []
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "sales.csv").write_text("region,amount\neast,4\neast,3\nwest,1\n")
    with scripted_models(_reply, tmp_path, requests) as models:
        provider = EndpointProvider(load_registry(models), settings)
        outcome = await make_plan(GOAL, provider)
        refs = await reference_checks(GOAL, provider, ws, sandboxed)
    assert outcome.source == "model" and list(refs.checks) == ["totals.json"]
    limits = {("reference" if "You write short, correct Python 3 programs" in r["messages"][0]["content"] else "plan"):
              r.get("max_completion_tokens") for r in requests}
    assert limits == {"plan": MAX_PLAN_TOKENS, "reference": MAX_PROGRAM_TOKENS}
    assert MAX_PLAN_TOKENS < 2048 and MAX_PROGRAM_TOKENS < 2048


async def test_a_plan_cut_off_at_its_limit_is_fed_back_and_the_next_attempt_counts(settings: Settings,
                                                                                  tmp_path: Path) -> None:
    requests: list[dict[str, Any]] = []

    def reply(messages: list[dict[str, Any]]) -> Any:
        # the first plan runs on until the server cuts it at the request's limit
        return Cut('{"tasks": [{"id": "totals", "description": "' + "x" * 50) if len(messages) == 2 else PLAN

    with scripted_models(reply, tmp_path, requests) as models:
        outcome = await make_plan(GOAL, EndpointProvider(load_registry(models), settings))
    assert outcome.source == "model" and [t.id for t in outcome.plan.tasks] == ["totals"]
    assert len(outcome.attempts) == 1 and len(requests) == 2
    fed_back = json.dumps(requests[1]["messages"][-2:])
    assert "That plan is invalid" in fed_back and "cut off at the token limit" in fed_back
