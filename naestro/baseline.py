"""The plain-agent baseline: the same model and the same tools as Naestro's Coder, with no plan, no
acceptance checks, no evaluators, no retries and no re-planning. One loop: the model picks one action
per step (json_schema-constrained, since the embedded endpoint has no native tool calls) until it calls
``finish`` or runs out of steps. It exists to measure what the orchestration adds (``naestro eval golden
--baseline``), so it gets the same action format, observation size and verification hint as a role agent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from naestro.llm import ModelProvider, complete_json
from naestro.nodes.agent import OBSERVATION_CHARS, action_schema
from naestro.nodes.roles import load_roles
from naestro.plan import Role
from naestro.toolbus import McpToolBus, ToolBus, builtin_servers

__all__ = ["BaselineResult", "run_baseline", "run_baseline_in"]

SYSTEM = ("You are a capable software agent. Accomplish the user's goal by calling tools. All paths are relative "
          "to the workspace.\n\nTools:\n{tools}\n- finish: end with a summary.\n\nEach reply is ONE action: "
          "{{\"thought\": why, \"tool\": name, \"arguments\": {{...}}}}. You see the tool's result, then choose the "
          "next action. Check your work (read the file back, run it) before you finish.")


@dataclass
class BaselineResult:
    finished: bool
    steps: int
    tokens: int
    cost_usd: float
    wall_s: float
    summary: str = ""
    transcript: list[str] = field(default_factory=list)


async def run_baseline_in(goal: str, provider: ModelProvider, bus: ToolBus, *, endpoint: str | None = None,
                          max_steps: int | None = None) -> BaselineResult:
    coder = load_roles()[Role.coder]
    allowed, max_steps = set(coder.tools), max_steps or coder.max_steps
    tools = [s for s in bus.specs() if s.name in allowed]
    lines = "\n".join(f"- {t.name}: {t.description.strip().splitlines()[0]}" for t in tools)
    schema = action_schema(tools, {})
    messages: list[BaseMessage] = [SystemMessage(SYSTEM.format(tools=lines)), HumanMessage(f"Goal: {goal}")]
    result = BaselineResult(finished=False, steps=0, tokens=0, cost_usd=0.0, wall_s=0.0)
    start = time.monotonic()
    for step in range(1, max_steps + 1):
        reply = await complete_json(provider, endpoint, messages, schema=schema, name="action")
        result.steps, result.tokens = step, result.tokens + reply.prompt_tokens + reply.completion_tokens
        result.cost_usd += reply.cost_usd
        action = reply.value
        messages.append(AIMessage(json.dumps(action)))
        if not isinstance(action, dict) or not isinstance(action.get("tool"), str):
            messages.append(HumanMessage("That was not a valid action. Reply with one short JSON action."))
            continue
        name, args = str(action["tool"]), action.get("arguments")
        args = args if isinstance(args, dict) else {}
        if name == "finish":
            result.finished, result.summary = True, str(args.get("summary", ""))
            break
        if name not in allowed:
            observation = f"[{name} ERROR]\nunknown tool; use one of {sorted(allowed)}"
        else:
            res = await bus.call(name, args, timeout_s=120)
            observation = f"[{name} {'OK' if res.ok else 'ERROR'}]\n{res.text[:OBSERVATION_CHARS]}"
        result.transcript.append(f"{name}: {observation[:200]}")
        messages.append(HumanMessage(observation))
    result.wall_s = round(time.monotonic() - start, 3)
    return result


async def run_baseline(goal: str, provider: ModelProvider, *, workspace: Path, endpoint: str | None = None,
                       max_steps: int | None = None) -> BaselineResult:
    """Run the baseline in ``workspace`` with Naestro's own fs and exec servers (the same sandbox)."""
    async with McpToolBus(builtin_servers(workspace, names=("fs", "exec"))) as bus:
        return await run_baseline_in(goal, provider, bus, endpoint=endpoint, max_steps=max_steps)
