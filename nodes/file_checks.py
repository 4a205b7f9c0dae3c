"""Checks on workspace files (exists, regex, JSON Schema): evaluated in process, by the acceptance node after
a task and by the vacuity probe before any task (no graph, gate or tool needed)."""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

from jsonschema import Draft202012Validator
from pydantic import JsonValue

from naestro.plan import FileExistsCheck, JsonSchemaCheck, RegexCheck

__all__ = ["file_check", "inside", "target_text"]


def inside(workspace: Path, rel: str) -> Path | None:
    """``rel`` resolved under the workspace, or None when it leads outside (``..``, an absolute path, a symlink)."""
    root = _resolved_root(str(workspace))
    p = Path(os.path.realpath(os.path.join(root, rel)))
    return p if p == root or root in p.parents else None


@functools.lru_cache(maxsize=256)
def _resolved_root(workspace: str) -> Path:
    """A run's workspace folder resolved once: Naestro creates it and nothing inside a run can move its parents
    (tools are sandboxed into it), while resolving it per check walked every parent (issue 16)."""
    return Path(os.path.realpath(workspace))


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


def file_check(check: FileExistsCheck | RegexCheck | JsonSchemaCheck, outputs: dict[str, JsonValue],
               workspace: Path) -> tuple[bool, str]:
    """(passed, detail) for a check on a workspace file or a task output; with no outputs (the probe, before any
    task ran) a check on an output fails."""
    if isinstance(check, FileExistsCheck):
        path = inside(workspace, check.path)
        ok = path is not None and path.exists()
        return ok, f"{check.path} {'exists' if ok else 'does not exist'}"
    if isinstance(check, RegexCheck):
        text, what = target_text(check, outputs, workspace)
        ok = text is not None and re.search(check.pattern, text, re.MULTILINE) is not None
        return ok, what if text is None else f"{what} {'matches' if ok else 'does not match'} /{check.pattern}/"
    if check.output is not None and check.output in outputs:
        value: JsonValue = outputs[check.output]
        what = f"output {check.output!r}"
    else:
        text, what = target_text(check, outputs, workspace)
        if text is None:
            return False, what
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return False, f"{what} is not JSON: {exc}"
    errors = sorted(Draft202012Validator(check.schema_).iter_errors(value), key=lambda e: list(e.path))
    detail = f"{what} matches the schema" if not errors else \
        f"{what}: " + "; ".join(f"/{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:3])
    return not errors, detail
