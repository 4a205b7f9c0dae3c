"""Plain-agent baselines: the same model and the same tools as Naestro's Coder, with no plan, no acceptance
checks, no evaluators, no retries and no re-planning. They exist to measure what the orchestration adds
(``naestro eval golden --baseline``). Two kinds:

- ``react``: the classic ReAct text loop (Thought / Action / Action Input / Observation ... Final Answer), the
  prompt LangChain's ReAct agents use, parsed from free text: what a plain agent is on an endpoint without
  native tool calls (LangGraph's prebuilt tool-calling agent cannot call tools on the embedded llama.cpp).
- ``ablation``: Naestro's own role-agent loop (one json_schema-constrained action per step, the same action
  format, observation size and verification hint) without the orchestration around it: it isolates what
  plans, checks, feedback and re-planning add on top of constrained decoding.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import openai
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import JsonValue

from naestro.errors import EndpointUnavailable
from naestro.llm import ModelProvider, complete_json
from naestro.plan import Role
from naestro.toolbus import McpToolBus, ToolBus, builtin_servers
from nodes.agent import OBSERVATION_CHARS, action_schema
from nodes.roles import load_roles

__all__ = ["BaselineKind", "BaselineResult", "run_baseline", "run_baseline_in", "run_react_in"]

BaselineKind = Literal["react", "ablation"]

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
    """The ablation: Naestro's constrained one-action-per-step loop, alone."""
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


REACT = """Accomplish the following goal as best you can. All paths are relative to the workspace.
You have access to the following tools:

{tools}

Use the following format:

Thought: you should always think about what to do
Action: the action to take, should be one of [{names}]
Action Input: the input to the action, as a JSON object
Observation: the result of the action
... (this Thought/Action/Action Input/Observation can repeat N times)
Thought: I now know the final answer
Final Answer: what you did

Check your work (read the file back, run it) before the final answer. Begin!"""

_ACTION = re.compile(r"Action\s*:\s*(.+?)\s*\n+\s*Action\s*Input\s*:\s*(.*)", re.DOTALL)
_FINAL = re.compile(r"Final\s*Answer\s*:\s*(.*)", re.DOTALL)


def _parse_react(text: str) -> tuple[str, dict[str, JsonValue]] | str:
    """(tool, arguments), or the reason the text is not an action (``Final Answer`` is the tool ``finish``)."""
    action = _ACTION.search(text)
    if action is None:
        final = _FINAL.search(text)
        if final is not None:
            return "finish", {"summary": final.group(1).strip()}
        return "Invalid Format: Missing 'Action:' after 'Thought:'"
    name, raw = action.group(1).strip().strip("`'\""), action.group(2).strip()
    start, end = raw.find("{"), raw.rfind("}")
    try:
        args = json.loads(raw[start:end + 1]) if start != -1 else None
    except json.JSONDecodeError as exc:
        return f"Invalid Format: Action Input is not valid JSON ({exc.msg})"
    return (name, args) if isinstance(args, dict) else "Invalid Format: Action Input must be a JSON object"


async def run_react_in(goal: str, provider: ModelProvider, bus: ToolBus, *, endpoint: str | None = None,
                       max_steps: int | None = None) -> BaselineResult:
    """The ReAct text loop: free text in, the first Action parsed out, the Observation appended."""
    coder = load_roles()[Role.coder]
    allowed, max_steps = set(coder.tools), max_steps or coder.max_steps
    tools = [s for s in bus.specs() if s.name in allowed]
    # LangChain's render_text_description_and_args: "name - description, args: {properties}". The whole JSON
    # Schema (type/properties/required) made the 1.5B wrap its input in {"properties": ...} on every call.
    lines = "\n".join(f"{t.name} - {t.description.strip().splitlines()[0]}, "
                      f"args: {t.input_schema.get('properties', {})}" for t in tools)
    ep, model = provider.chat(endpoint)
    messages: list[BaseMessage] = [SystemMessage(REACT.format(tools=lines, names=", ".join(t.name for t in tools))),
                                   HumanMessage(f"Goal: {goal}")]
    result = BaselineResult(finished=False, steps=0, tokens=0, cost_usd=0.0, wall_s=0.0)
    start = time.monotonic()
    for step in range(1, max_steps + 1):
        try:
            msg = await model.bind(stop=["\nObservation:"]).ainvoke(messages)
        except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError) as exc:
            raise EndpointUnavailable(endpoint=ep.name, reason=str(exc)) from exc
        text = msg.content if isinstance(msg.content, str) else json.dumps(msg.content)
        usage = getattr(msg, "usage_metadata", None) or {"input_tokens": 0, "output_tokens": 0}
        pt, ct = int(usage["input_tokens"]), int(usage["output_tokens"])
        result.steps, result.tokens = step, result.tokens + pt + ct
        result.cost_usd += ep.cost_usd(pt, ct)
        messages.append(AIMessage(text))
        parsed = _parse_react(text)
        if isinstance(parsed, str):
            observation = parsed
        elif parsed[0] == "finish":
            result.finished, result.summary = True, str(parsed[1].get("summary", ""))
            break
        elif parsed[0] not in allowed:
            observation = f"{parsed[0]} is not a valid tool, try one of [{', '.join(sorted(allowed))}]."
        else:
            res = await bus.call(parsed[0], dict(parsed[1]), timeout_s=120)
            observation = f"[{'OK' if res.ok else 'ERROR'}] {res.text[:OBSERVATION_CHARS]}"
        result.transcript.append(f"{parsed if isinstance(parsed, str) else parsed[0]}: {observation[:200]}")
        messages.append(HumanMessage(f"Observation: {observation}"))
    result.wall_s = round(time.monotonic() - start, 3)
    return result


async def run_baseline(goal: str, provider: ModelProvider, *, workspace: Path, endpoint: str | None = None,
                       max_steps: int | None = None, kind: BaselineKind = "react") -> BaselineResult:
    """Run a baseline in ``workspace`` with Naestro's own fs and exec servers (the same sandbox)."""
    loop = run_react_in if kind == "react" else run_baseline_in
    async with McpToolBus(builtin_servers(workspace, names=("fs", "exec"))) as bus:
        return await loop(goal, provider, bus, endpoint=endpoint, max_steps=max_steps)
