"""schemas/plan.schema.json is generated from the Plan models, never edited by hand."""

from __future__ import annotations

import json
from pathlib import Path

from naestro.plan import Plan


def plan_schema_text() -> str:
    schema = Plan.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://naestro.dev/schemas/plan.schema.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schema(path: Path, *, check: bool = False) -> bool:
    """Write the schema; returns True when the file was (or, with check, would be) changed."""
    text = plan_schema_text()
    changed = not path.exists() or path.read_text() != text
    if changed and not check:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return changed
