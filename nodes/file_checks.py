"""Checks on workspace files (exists, regex, JSON Schema): evaluated in process, by the acceptance node after
a task and by the vacuity probe before any task (no graph, gate or tool needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from jsonschema import Draft202012Validator
from pydantic import JsonValue

from naestro.plan import FileExistsCheck, JsonSchemaCheck, RegexCheck

__all__ = ["file_check_passes", "inside", "target_text"]


def inside(workspace: Path, rel: str) -> Path | None:
    root = workspace.resolve()
    p = (root / rel).resolve()
    return p if p == root or root in p.parents else None


def target_text(check: RegexCheck | JsonSchemaCheck, outputs: dict[str, JsonValue],
                workspace: Path) -> tuple[str | None, str]:
    if check.output is not None:
        if check.output not in outputs:
            return None, f"output {check.output!r} was not produced"
        value = outputs[check.output]
        return (value if isinstance(value, str) else json.dumps(value)), f"output {check.output!r}"
    if check.file is not None:
        path = inside(workspace, check.file)
        if path is None or not path.is_file():
            return None, f"file {check.file!r} does not exist in the workspace"
        return path.read_text(errors="replace"), f"file {check.file!r}"
    return None, "check names neither an output nor a file"


def file_check_passes(check: FileExistsCheck | RegexCheck | JsonSchemaCheck, workspace: Path) -> bool:
    """Whether a check on a workspace file passes now (False for checks on task outputs: none exist yet)."""
    if isinstance(check, FileExistsCheck):
        path = inside(workspace, check.path)
        return path is not None and path.exists()
    text, _ = target_text(check, {}, workspace)
    if text is None:
        return False
    if isinstance(check, RegexCheck):
        return re.search(check.pattern, text, re.MULTILINE) is not None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return False
    return not any(Draft202012Validator(check.schema_).iter_errors(value))
