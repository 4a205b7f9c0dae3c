"""Routing items in the shapes benchmark sets ship them: the text the router sees, keyed by id.

Accepted per JSON line (the first field found wins):

* id: ``id``, ``task_id`` (HumanEval), ``question_id``, ``_id`` — a string or an integer;
* text: ``prompt`` (a string), ``question`` (a string, a list of chat turns, or a list of lists of turns as in
  BFCL's multi-turn sets), ``messages`` (chat turns), ``input`` (a string);
* tools, appended to the text as JSON since they are part of what the model reads: ``function`` (BFCL),
  ``functions``, ``tools``.

A chat turn is ``{"role", "content"}`` where content is a string or a list of ``{"type": "text", "text"}``
parts; the item's text is the turns as ``role: content`` lines. Anything else is a ``ConfigInvalid`` that names
the file, the line and the field it was looking for, and lists the keys the line has.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import JsonValue

from naestro.errors import ConfigError, ConfigInvalid

__all__ = ["ID_FIELDS", "TEXT_FIELDS", "TOOL_FIELDS", "item_text", "load_items"]

ID_FIELDS = ("id", "task_id", "question_id", "_id")
TEXT_FIELDS = ("prompt", "question", "messages", "input")
TOOL_FIELDS = ("function", "functions", "tools")


class _Shape(ValueError):
    """Internal: what is wrong, and in which field, before the file and line are known."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def _turn(turn: JsonValue, field: str) -> str:
    if not isinstance(turn, dict):
        raise _Shape(field, f"a chat turn must be an object with role and content, got {type(turn).__name__}")
    content = turn.get("content")
    if isinstance(content, list):  # OpenAI content parts
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise _Shape(f"{field}.content", "content parts must be objects with a text string")
        content = "\n".join(t for t in texts if isinstance(t, str))
    if not isinstance(content, str):
        raise _Shape(f"{field}.content", "a chat turn needs content: a string or a list of text parts")
    role = turn.get("role", "user")
    return f"{role if isinstance(role, str) else 'user'}: {content}"


def _turns(value: JsonValue, field: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise _Shape(field, "expected a string or a non-empty list of chat turns")
    lines: list[str] = []
    for n, turn in enumerate(value):
        if isinstance(turn, list):  # BFCL multi-turn: one list of turns per user turn
            lines.append(_turns(turn, f"{field}.{n}"))
        else:
            lines.append(_turn(turn, f"{field}.{n}"))
    return "\n".join(lines)


def item_text(row: dict[str, JsonValue]) -> tuple[str, str]:
    """(id, text) of one item in any accepted shape; raises ``ValueError`` naming the field otherwise."""
    ident = next((row[f] for f in ID_FIELDS if f in row), None)
    if ident is None or isinstance(ident, bool) or not isinstance(ident, str | int):
        raise _Shape(next((f for f in ID_FIELDS if f in row), "id"),
                     f"no item id: expected a string or integer in one of {', '.join(ID_FIELDS)}")
    field = next((f for f in TEXT_FIELDS if f in row), "")
    if not field:
        raise _Shape("prompt", f"no item text: expected one of {', '.join(TEXT_FIELDS)}")
    value = row[field]
    if field in ("prompt", "input") and not isinstance(value, str):
        raise _Shape(field, f"expected a string, got {type(value).__name__}")
    text = _turns(value, field)
    for tools in TOOL_FIELDS:
        if tools in row:
            if not isinstance(row[tools], list | dict):
                raise _Shape(tools, "expected a list of function definitions")
            text += f"\n\n{tools}: {json.dumps(row[tools], sort_keys=True, ensure_ascii=False)}"
            break
    return str(ident), text


def load_items(path: Path) -> dict[str, str]:
    """Items by id from a JSON-lines file; a later line with the same id replaces an earlier one."""
    try:
        raw = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(f"cannot read: {why}", file=str(path)) from exc
    items: dict[str, str] = {}
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigInvalid(f"not JSON ({exc.msg})", file=str(path), line=n) from exc
        if not isinstance(row, dict):
            raise ConfigInvalid(f"an item must be a JSON object, got {type(row).__name__}", file=str(path),
                                line=n)
        try:
            ident, text = item_text(row)
        except _Shape as exc:
            shown = sorted(row)[:12]
            keys = ", ".join(json.dumps(k) for k in shown) + (", ..." if len(row) > 12 else "") or "none"
            raise ConfigInvalid(f"{exc} (the line has keys: {keys})", file=str(path), line=n,
                                field=exc.field) from exc
        items[ident] = text
    if not items:
        raise ConfigError("no items", file=str(path))
    return items
