"""A role agent: the model picks one tool per step through a json_schema-constrained reply, until ``finish``.

The embedded endpoint has no native tool calls (see FACTS.md), so the reply schema is an ``anyOf`` with
one branch per allowed tool (its MCP input schema as ``arguments``) plus ``finish`` carrying the task's
declared outputs. Grammar-constrained decoding then makes every reply a well-formed action.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import JsonValue

from naestro.context import Execution, RunContext
from naestro.journal import request_hash
from naestro.llm import CUT_OFF
from naestro.memory.hooks import task_context
from naestro.plan import OutputSpec, Task, shown_to_agent
from naestro.program_repair import Repair, repaired_code, repaired_python_command
from naestro.toolbus import ToolSpec

__all__ = ["AgentOutcome", "action_schema", "run_agent"]

OBSERVATION_CHARS = 2500
RESAMPLE_TEMPERATURE = 0.8  # the one reply after a cut-off one (the endpoint's own is 0.2)


@dataclass
class AgentOutcome:
    outputs: dict[str, JsonValue]
    summary: str
    finished: bool
    steps: int
    model: str
    transcript: list[str] = field(default_factory=list)


def _args_schema(schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
    props = schema.get("properties", {})
    clean: dict[str, JsonValue] = {"type": "object", "properties": props,
                                   "required": schema.get("required", []), "additionalProperties": False}
    return clean


def action_schema(tools: list[ToolSpec], outputs: dict[str, OutputSpec]) -> dict[str, JsonValue]:
    thought: JsonValue = {"type": "string", "maxLength": 300}
    variants: list[JsonValue] = []
    for t in tools:
        variants.append({"type": "object", "additionalProperties": False, "required": ["thought", "tool", "arguments"],
                         "properties": {"thought": thought, "tool": {"const": t.name},
                                        "arguments": _args_schema(t.input_schema)}})
    finish_outputs: dict[str, JsonValue] = {
        "type": "object", "additionalProperties": False, "required": list(outputs),
        "properties": {name: spec.schema_ for name, spec in outputs.items()}}
    variants.append({"type": "object", "additionalProperties": False, "required": ["thought", "tool", "arguments"],
                     "properties": {"thought": thought, "tool": {"const": "finish"},
                                    "arguments": {"type": "object", "additionalProperties": False,
                                                  "required": ["summary", "outputs"],
                                                  "properties": {"summary": {"type": "string", "maxLength": 600},
                                                                 "outputs": finish_outputs}}}})
    schema: dict[str, JsonValue] = {"anyOf": variants}
    # Tool schemas may point into their own "$defs" (pydantic does, e.g. for JsonValue); the arguments are
    # nested inside the action here, so the definitions must sit at the root for "#/$defs/..." to resolve.
    defs: dict[str, JsonValue] = {}
    for t in tools:
        own = t.input_schema.get("$defs")
        if isinstance(own, dict):
            for name, definition in own.items():
                defs.setdefault(name, definition)
    if defs:
        schema["$defs"] = defs
    return schema


def _task_prompt(task: Task, inputs: dict[str, JsonValue], feedback: str, goal: str, memory: str = "") -> str:
    lines = [f"Overall goal: {goal}", f"Your task ({task.id}): {task.description}"]
    if task.instructions:
        lines.append(f"Instructions: {task.instructions}")
    if inputs:
        lines.append("Inputs from earlier tasks:\n" + json.dumps(inputs, indent=1)[:3000])
    if memory:
        lines.append(memory)
    checks = "\n".join(f"- {shown_to_agent(c)}" for c in task.accept)
    lines.append(f"The task is accepted only if these checks pass afterwards:\n{checks}")
    if task.outputs:
        outs = ", ".join(f"{n} ({o.description or o.schema_.get('type', 'value')})" for n, o in task.outputs.items())
        lines.append(f"When finishing, return these outputs: {outs}.")
    if feedback:
        lines.append(f"A previous attempt FAILED. Fix this:\n{feedback}")
    lines.append("All paths are relative to the workspace. Reply with one action as JSON.")
    return "\n\n".join(lines)


def _system_prompt(role_prompt: str, tools: list[ToolSpec]) -> str:
    tool_lines = "\n".join(f"- {t.name}: {t.description.strip().splitlines()[0]}" for t in tools)
    return (f"{role_prompt}\n\nTools:\n{tool_lines}\n- finish: end the task with a summary and the outputs.\n\n"
            "Each reply is ONE action: {\"thought\": why, \"tool\": name, \"arguments\": {...}}. "
            "You see the tool's result, then choose the next action. Check your work (read the file back, run "
            "it) before you finish. Never finish before the work is done.")


async def _recall(task: Task, ctx: RunContext, ex: Execution) -> str:
    """Facts of earlier runs for this task (issue 19), through the gate, as the role doing it (the Reviewer on a
    review pass). Journalled like a model reply: a node re-run after a consent interrupt sees the same facts, so
    its prompts, and the replies journalled for them, stay the same."""
    if ctx.memory is None:
        return ""
    key = ex.next_key(ctx.thread, "memory")
    query = f"{task.description} {task.instructions or ''} {ctx.plan.goal}"
    request = request_hash([ex.role.value, query])
    entry = ctx.journal.lookup(key, "memory", request)
    if entry is not None and entry.state == "done" and isinstance(entry.value, str):
        return entry.value
    text = await task_context(ctx.memory, query, gate=ctx.gate, role=ex.role.value, task=task.id,
                              run_id=ctx.run_id, events=ctx.events)
    ctx.journal.done(key, "memory", request, text)
    return text


def _repaired(name: str, args: dict[str, Any]) -> tuple[dict[str, Any], Repair | None]:
    """The action's Python with the JSON-typing slips of small models repaired (``naestro.program_repair``):
    a ``python3 -c`` command of exec.run, a ``.py`` file's content in fs.write. Seen in the issue-22 slice: a
    correct filter program failed three times on a line break in an f-string and r['amount'] in '...'."""
    command, path, content = args.get("command"), args.get("path"), args.get("content")
    if name == "exec.run" and isinstance(command, str) and (repair := repaired_python_command(command)):
        return {**args, "command": repair.text}, repair
    if name == "fs.write" and isinstance(path, str) and path.endswith(".py") and isinstance(content, str) \
            and (repair := repaired_code(content)):
        return {**args, "content": repair.text}, repair
    return args, None


async def run_agent(task: Task, ctx: RunContext, ex: Execution, *, inputs: dict[str, JsonValue],
                    feedback: str) -> AgentOutcome:
    role = ctx.roles[task.role]
    tools = ctx.tools_for(task.role)
    meter = ex.meter
    assert meter is not None
    endpoint = ctx.endpoint_for(task.role, task.model)
    schema = action_schema(tools, task.outputs)
    memory = await _recall(task, ctx, ex)
    messages: list[BaseMessage] = [SystemMessage(_system_prompt(role.prompt, tools)),
                                   HumanMessage(_task_prompt(task, inputs, feedback, ctx.plan.goal, memory))]
    outcome = AgentOutcome(outputs={}, summary="", finished=False, steps=0, model=endpoint)
    previous: str | None = None
    # Guide mode runs nothing (its actions are proposals), so there is nothing to verify by running it.
    must_verify = role.verify_with is not None and any(t.name == role.verify_with for t in tools) \
        and ctx.gate.policy.mode != "guide"
    sampling: dict[str, float | int] | None = None
    written: set[str] = set()  # fs.write calls of this attempt (name and arguments)
    repeats = 0  # calls that repeated an earlier one (the same call again, or an fs.write of the same content)
    for step in range(1, role.max_steps + 1):
        meter.check_time()
        reply = await ctx.complete(ex, endpoint, messages, schema=schema, name="action", sampling=sampling)
        outcome.steps = step
        action = reply.value
        sampling = None
        messages.append(AIMessage(json.dumps(action)))
        if not isinstance(action, dict) or not isinstance(action.get("tool"), str):
            problem = action.get("__unparsed__") if isinstance(action, dict) else None
            if isinstance(problem, str) and problem.startswith(CUT_OFF):
                # Near-greedy decoding ran on to the token cap, and from the same context it runs on again (seen:
                # three 2,048-token replies in a row, 5-8 minutes each on the loaded 1.5B): the next reply is
                # sampled differently, once.
                sampling = {"temperature": RESAMPLE_TEMPERATURE, "seed": step}
            messages.append(HumanMessage(f"That was not a valid action ({problem or 'not an action object'}). "
                                         "Reply with one short JSON action."))
            continue
        name, args = str(action["tool"]), action.get("arguments")
        if not isinstance(args, dict):
            args = {}
        if name == role.verify_with:
            must_verify = False
        if name == "finish" and must_verify and step < role.max_steps:
            # Verify before claiming: the 1.5B typed adults.csv by hand (the child included, unsorted), looked at
            # the listing and finished; one reminder per attempt, then its finish stands.
            must_verify = False
            messages.append(HumanMessage(
                f"You have not run anything with {role.verify_with} yet. Verify the work first: run what you wrote, "
                f"or a python3 -c that checks the file against the task, then fix what is wrong or call finish."))
            continue
        if name == "finish":
            outs = args.get("outputs")
            outcome.outputs = dict(outs) if isinstance(outs, dict) else {}
            outcome.summary = str(args.get("summary", ""))
            outcome.finished = True
            return outcome
        signature = json.dumps([name, args], sort_keys=True)
        if signature == previous or (name == "fs.write" and signature in written):
            # Small models loop on the same call (seen in the issue-22 slice: the same 480-token fs.write of
            # invented rows five times in a row, 200-300 s each, until the attempt's wall guard): told once and the
            # next reply sampled differently, a further repeat ends the attempt, whose checks and feedback then go
            # to the next attempt instead of the same call again.
            repeats += 1
            if repeats > 1:
                outcome.summary = (f"stopped: repeated the same {name} call again after being told it changes "
                                   "nothing")
                outcome.transcript.append(f"{name}: repeated, attempt ended")
                return outcome
            sampling = {"temperature": RESAMPLE_TEMPERATURE, "seed": step}
        if signature == previous:
            observation = (f"You just made exactly this {name} call and saw its result. Do something else: "
                           "verify the work (e.g. exec.run a test) or call finish.")
        else:
            # Whatever the model names (even a tool it was not offered) goes to the gate: one audited decision.
            limit = ctx.tool_timeout_s(name)  # 300 s unless the active release's tool adapter says otherwise
            args, repair = _repaired(name, args)  # the gate decides on what will run, and the agent is told
            result = await ctx.call_tool(ex, name, args, timeout_s=min(limit, meter.remaining_s() or limit))
            status = "OK" if result.ok else "ERROR"
            observation = f"[{name} {status}]\n{result.text[:OBSERVATION_CHARS]}"
            if repair is not None:
                observation += "\nNaestro repaired your program before it ran: " + "; ".join(repair.notes) + "."
            if name == "fs.write" and result.ok:
                if signature not in written and isinstance(result.structured, dict) \
                        and result.structured.get("unchanged") is True:
                    # A write of what the file already held (the server says so, so a replay sees the same). Seen
                    # in the issue-22 slice at fda50b7 (tests_fix_median): the Coder read stats.py, "fixed" it by
                    # writing the same buggy text back and listed it, three times per attempt, each time saying
                    # the median was now right. Told, and counted as a repeat (a second one ends the attempt).
                    observation += (f"\n{args.get('path')} already held exactly this content: this write changed "
                                    "nothing. If the task is to change the file, write different content.")
                    repeats += 1
                    if repeats > 1:
                        outcome.summary = "stopped: wrote a file's own content back again after being told"
                        outcome.transcript.append(f"{name}: unchanged again, attempt ended")
                        return outcome
                    sampling = {"temperature": RESAMPLE_TEMPERATURE, "seed": step}
                elif signature in written:
                    # Seen in the issue-22 slice: write test_calc.py, run pytest (NameError), write the very same
                    # text again, run pytest again ... until the token budget ran out.
                    observation += (f"\nYou already wrote exactly this content to {args.get('path')} earlier in "
                                    "this attempt: writing it again changes nothing. If what you ran after it "
                                    "failed, change what the error points at; if it passed, call finish.")
                written.add(signature)
        previous = signature
        outcome.transcript.append(f"{name}: {observation[:200]}")
        messages.append(HumanMessage(observation))
    outcome.summary = f"stopped after {role.max_steps} steps without finishing"
    return outcome
