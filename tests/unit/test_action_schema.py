"""The agent's action schema over every builtin tool: valid JSON Schema whose every $ref resolves at the root.

llama.cpp turns the schema into a grammar and rejects a reply format with a dangling ``#/$defs/...`` (seen
with db.query's JsonValue parameters: HTTP 400, the agent could not act at all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from naestro.toolbus import McpToolBus, builtin_servers
from nodes.agent import action_schema


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


async def test_every_ref_resolves_from_the_root(tmp_path: Path) -> None:
    async with McpToolBus(builtin_servers(tmp_path)) as bus:
        specs = bus.specs()
    schema = action_schema(specs, {})
    Draft202012Validator.check_schema(schema)
    found = refs(schema)
    assert found, "expected at least one tool schema with $defs (db.query)"
    for ref in found:
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"], ref
    validator = Draft202012Validator(schema)
    assert validator.is_valid({"thought": "q", "tool": "db.query", "arguments": {"sql": "select 1", "params": [1, "a"],
                                                                                 "max_rows": 5}})
