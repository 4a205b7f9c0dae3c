"""Proposals from a model, for weak_prompt findings the rules have answered already (their sentence is in the
prompt and the failure came back): the model, through the router when there is one, writes ONE sentence to
append to the role's prompt. What it writes gets no trust: it is one line of prose in one prompt, and it goes
through the same allowlist, validation and canary as a rule's sentence.
"""

from __future__ import annotations

import yaml
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import JsonValue

from naestro.improve.proposal import Proposal, prompt_delta
from naestro.introspect import Finding
from naestro.llm import ModelProvider, complete_json
from naestro.router import Router, complete_json_routed, request_for

__all__ = ["MAX_SENTENCE", "model_prompt_delta"]

MAX_SENTENCE = 300
SCHEMA: dict[str, JsonValue] = {
    "type": "object", "additionalProperties": False, "required": ["sentence"],
    "properties": {"sentence": {"type": "string", "minLength": 10, "maxLength": MAX_SENTENCE}}}
_SYSTEM = ("You improve the instructions of an AI agent that works on files in a workspace. You are shown its role "
           "prompt and a failure that repeated although the agent was told what failed. Reply with ONE short "
           "imperative sentence to append to the prompt so the next attempt avoids that failure. Do not repeat "
           "what the prompt says already; do not grant tools, permissions or budgets.")


async def model_prompt_delta(finding: Finding, *, role: str, roles_yaml: str, provider: ModelProvider,
                             router: Router | None = None) -> Proposal | None:
    """None when the finding is not a weak prompt, the role has no prompt, or the model's sentence adds nothing."""
    if finding.kind != "weak_prompt":
        return None
    data = yaml.safe_load(roles_yaml)
    spec = data.get(role) if isinstance(data, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("prompt"), str):
        return None
    messages = [SystemMessage(_SYSTEM),
                HumanMessage(f"Role: {role}\nIts prompt now:\n{spec['prompt']}\n\nThe failure, from the run's events "
                             f"(run {finding.run}, task {finding.task}):\n{finding.evidence}")]
    if router is not None:
        reply, _ = await complete_json_routed(router, provider, request_for(messages, kind="improve"), messages,
                                              schema=SCHEMA, name="prompt_delta")
    else:
        reply = await complete_json(provider, None, messages, schema=SCHEMA, name="prompt_delta")
    value = reply.value if isinstance(reply.value, dict) else {}
    sentence = " ".join(str(value.get("sentence", "")).split())[:MAX_SENTENCE]  # one line, whatever was sent
    if len(sentence) < 10 or sentence in spec["prompt"]:
        return None
    return prompt_delta(roles_yaml, role, sentence, finding, label="model", by=f"a model ({reply.endpoint})")
