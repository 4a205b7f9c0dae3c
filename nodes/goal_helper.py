"""The model as a helper for the goal's requirements (issue 22): it may point out what the patterns of
``nodes.goal_requirements`` missed ("the output must list the fields id and total"), never decide alone.

Every proposal is parsed into a ``GoalRequirement`` and kept only when ``validated`` finds the goal's own words
behind it (a file the goal names and the run does not start with; columns, keys, texts spelled in the goal). So a
model that invents ``summary.json`` or a column adds nothing. Off by default (``Settings.goal_helper``): one more
model call per run, and the deterministic extraction covers the goal shapes measured so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import JsonValue, ValidationError

from naestro.llm import ModelProvider, complete_json
from nodes.goal_requirements import GoalRequirement, validated

__all__ = ["HelperOutcome", "helper_requirements"]

_KINDS: list[JsonValue] = ["file", "tests", "columns", "keys", "states"]
_SCHEMA: dict[str, JsonValue] = {
    "type": "object", "additionalProperties": False, "required": ["requirements"],
    "properties": {"requirements": {"type": "array", "maxItems": 12, "items": {
        "type": "object", "additionalProperties": False, "required": ["kind", "file", "items"],
        "properties": {"kind": {"enum": _KINDS}, "file": {"type": "string", "maxLength": 200},
                       "items": {"type": "array", "maxItems": 20,
                                 "items": {"type": "string", "maxLength": 80}}}}}}}

_SYSTEM = """You list what a user's goal explicitly asks for, so it can be checked afterwards.
Kinds: "file" (a file the goal asks to create, by its exact name), "tests" (the goal asks for tests that pass;
items: the test files it names), "columns" (a CSV file the goal names must have these columns), "keys" (a JSON file
it names must have these keys), "states" (a report file it names must contain these exact texts).
Use only names and words that appear in the goal. Do not add anything the goal does not say.
Reply as JSON: {"requirements": [{"kind": ..., "file": ..., "items": [...]}]}."""


@dataclass
class HelperOutcome:
    kept: list[GoalRequirement] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    tokens: int = 0


async def helper_requirements(goal: str, provider: ModelProvider, *, exists: Callable[[str], bool],
                              endpoint: str | None = None,
                              guard: Callable[[str, str], None] | None = None) -> HelperOutcome:
    """The model's proposals that the goal's words back; ``guard(endpoint, prompt)`` is the run's policy gate."""
    messages = [SystemMessage(_SYSTEM), HumanMessage(f"Goal: {goal}")]
    if guard is not None:
        guard(provider.registry.get(endpoint).name, "\n".join(str(m.content) for m in messages))
    reply = await complete_json(provider, endpoint, messages, schema=_SCHEMA, name="goal_requirements")
    outcome = HelperOutcome(tokens=reply.prompt_tokens + reply.completion_tokens)
    raw = reply.value.get("requirements") if isinstance(reply.value, dict) else None
    proposed: list[GoalRequirement] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            proposed.append(GoalRequirement.model_validate({**item, "words": "(proposed by the model)"}
                                                           if isinstance(item, dict) else item))
        except ValidationError as exc:
            outcome.refused.append(f"not a requirement: {exc.errors()[0]['msg']}")
    outcome.kept, refused = validated(goal, proposed, exists=exists)
    outcome.refused += refused
    return outcome
