"""Plan validation: every problem reported at once, each as ``JSON-pointer: message`` on one line.

Shape errors come from pydantic; graph errors (unknown deps, cycles, IO contracts that do not connect,
budgets above the plan ceiling) and direct-action arguments (against the tool's input schema) are checked on the
raw data too (naestro/plan_checks.py), so one bad field does not hide the rest.

Plans come from people, models and files nobody vetted, so the text is contained before it is parsed (issue 14):
at most ``MAX_PLAN_BYTES`` of UTF-8, nested at most ``MAX_DEPTH`` deep, at most ``MAX_TASKS`` tasks, numbers finite
and integers convertible. Every failure is a ``PlanInvalid`` whose pointers resolve in the document; nothing here
recurses on the input, so no RecursionError, and nothing is written.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pydantic import JsonValue, ValidationError

from naestro.errors import PlanInvalid, PlanProblem
from naestro.plan import MAX_TASKS, Plan
from naestro.plan_checks import MAX_PROBLEMS, MAX_SCHEMA_OBJECTS, action_problems, graph_problems, pointer

__all__ = ["MAX_DEPTH", "MAX_PLAN_BYTES", "MAX_PROBLEMS", "MAX_SCHEMA_OBJECTS", "load_plan_file", "parse_plan",
           "parse_plan_bytes", "parse_plan_text", "plan_problems"]

MAX_PLAN_BYTES = 1_000_000
"""Hand-written and planner plans are a few kB; a 10 MB file took minutes and gigabytes to reject (issue 14)."""
MAX_DEPTH = 64
"""Arrays/objects nested deeper than this are refused before parsing (json.loads recurses: RecursionError)."""
_MAX_MESSAGE = 500


def _problem(where: str, message: str, *, source: str) -> PlanInvalid:
    return PlanInvalid([PlanProblem(where, _one_line(message))], source=source)  # a file name can hold a newline


def load_plan_file(path: Path, *, max_bytes: int = MAX_PLAN_BYTES,
                   external_servers: Collection[str] | None = None) -> Plan:
    """Read, contain and validate a plan file; every failure (unreadable too) is a ``PlanInvalid``.

    Reads at most ``max_bytes + 1`` bytes, so ``/dev/zero`` or a 10 GB file costs nothing."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise _problem("", f"cannot read {path}: {exc.strerror or exc}", source=str(path)) from exc
    return parse_plan_bytes(data, source=str(path), max_bytes=max_bytes, external_servers=external_servers)


def parse_plan_bytes(data: bytes, *, source: str = "plan", max_bytes: int = MAX_PLAN_BYTES,
                     external_servers: Collection[str] | None = None) -> Plan:
    """Plan JSON as bytes (a file, an HTTP body): must be UTF-8 (a leading BOM is dropped)."""
    if len(data) > max_bytes:
        raise _too_big(source, max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _problem("", f"{source} is not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
                           f"(line {line}, byte {column} of the line: {exc.reason}); save the plan as UTF-8",
                       source=source) from exc
    return parse_plan_text(text.removeprefix("\ufeff"), source=source, max_bytes=max_bytes,
                           external_servers=external_servers)


def parse_plan_text(text: str, *, source: str = "plan", max_bytes: int = MAX_PLAN_BYTES,
                    external_servers: Collection[str] | None = None) -> Plan:
    """Parse JSON text into a valid Plan or raise PlanInvalid with every problem."""
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise _too_big(source, max_bytes)
    deep = _too_deep(text)
    if deep is not None:
        raise _problem("", deep, source=source)
    try:
        raw = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise _problem("", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                       source=source) from exc
    return parse_plan(cast(JsonValue, raw), source=source, external_servers=external_servers)


def parse_plan(raw: JsonValue, *, source: str = "plan", external_servers: Collection[str] | None = None) -> Plan:
    problems = plan_problems(raw, external_servers=external_servers)
    if problems:
        raise PlanInvalid(problems, source=source)
    return Plan.model_validate(raw)


def plan_problems(raw: JsonValue, *, external_servers: Collection[str] | None = None) -> list[PlanProblem]:
    """All problems in a candidate plan (at most ``MAX_PROBLEMS`` and a count of the rest); empty means valid.

    ``external_servers``: the servers tools.yaml declares. Direct actions on builtin servers are always checked
    against the tool's input schema; with ``None`` (not known here) a tool on any other server is left to the run,
    where the tool bus knows it; with a collection, a tool on an undeclared server is a problem.

    Problems with the document itself (non-finite numbers, integers past the int-str limit, lone surrogates,
    control characters in keys, nesting) and too many tasks are reported alone: the rest would be noise about them.
    """
    problems, unlisted = _document_problems(raw), 0
    if not problems and isinstance(raw, Mapping):
        tasks = raw.get("tasks")
        if isinstance(tasks, Sequence) and not isinstance(tasks, str) and len(tasks) > MAX_TASKS:
            problems = [PlanProblem("/tasks", f"{len(tasks)} tasks; a plan has at most {MAX_TASKS} "
                                              f"(split the goal into several plans)")]
    if not problems:
        problems, unlisted = _model_problems(raw)
        if isinstance(raw, Mapping):
            problems.extend(graph_problems(raw))
            problems.extend(action_problems(raw, external_servers))
    return _presentable(problems, raw, unlisted=unlisted)


def _too_big(source: str, max_bytes: int) -> PlanInvalid:
    return _problem("", f"{source} is larger than the {max_bytes:,}-byte limit for a plan; a plan that big is not "
                        f"one run's work: split the goal into several plans", source=source)


# JSON text outside strings: a string (skipped whole) or a bracket. Strings are matched from their opening quote.
_TOKEN = re.compile(r'["\[\]{}]')
_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)


def _too_deep(text: str) -> str | None:
    """Nesting past MAX_DEPTH, found by counting brackets outside strings before json.loads recurses into them.

    Linear: an unterminated string ends the scan (json.loads reports it)."""
    depth, pos = 0, 0
    while (found := _TOKEN.search(text, pos)) is not None:
        char, pos = found.group(), found.end()
        if char == '"':
            end = _STRING_REST.match(text, pos)
            if end is None:
                return None
            pos = end.end()
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, found.start()) + 1
                return (f"arrays and objects nested more than {MAX_DEPTH} deep (line {line}); a plan needs a "
                        f"handful of levels: at most {MAX_DEPTH} are read")
        else:
            depth = max(depth - 1, 0)
    return None


@dataclass(frozen=True)
class _Unreadable:
    """A JSON number Python cannot hold faithfully; kept in the parsed tree so the problem gets its pointer."""

    problem: str


def _int(digits: str) -> int | _Unreadable:
    limit = sys.get_int_max_str_digits()
    count = len(digits.lstrip("-"))
    if limit and count > limit:
        return _Unreadable(f"integer with {count} digits; at most {limit} can be read")
    return int(digits)


def _not_finite(literal: str) -> _Unreadable:
    return _Unreadable(f"not a finite number ({literal}); give a finite value or leave the field out")


def _float(literal: str) -> float | _Unreadable:
    value = float(literal)
    return value if math.isfinite(value) else _not_finite(literal)


def _constant(literal: str) -> _Unreadable:
    """NaN, Infinity, -Infinity: not JSON, though Python's json reads them."""
    return _not_finite(literal)


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _document_problems(raw: object) -> list[PlanProblem]:
    """What no schema can say: unreadable numbers, broken Unicode, keys that cannot be printed, runaway nesting.

    Iterative, and stops at MAX_DEPTH: a Python caller's deep (or cyclic) structure is reported, not recursed into."""
    problems: list[PlanProblem] = []
    todo: list[tuple[object, tuple[str | int, ...]]] = [(raw, ())]
    while todo:
        value, at = todo.pop()
        # Exact types before the ABC check (``isinstance(x, Mapping)`` is slow): this walk cost ~1 ms per 20-task
        # plan, paid by every run given its plan (issue 16: per-run overhead).
        kind = type(value)
        if kind is int or kind is bool or value is None:
            continue
        if isinstance(value, str):
            if found := _SURROGATE.search(value):
                problems.append(PlanProblem(pointer(*at), f"lone surrogate U+{ord(found.group()):04X} at offset "
                                                          f"{found.start()}: not valid Unicode text"))
        elif isinstance(value, dict | list | tuple | Mapping):  # in this order: the exact types are cheap
            if len(at) >= MAX_DEPTH:
                problems.append(PlanProblem(pointer(*at), f"nested more than {MAX_DEPTH} deep"))
                continue
            items = enumerate(value) if isinstance(value, list | tuple) else value.items()
            children: list[tuple[object, tuple[str | int, ...]]] = []
            for key, item in items:
                if isinstance(key, str) and (bad := _UNPRINTABLE.search(key)):
                    problems.append(PlanProblem(pointer(*at), f"key {key!r} contains U+{ord(bad.group()):04X}; "
                                                              f"names cannot hold control characters"))
                elif isinstance(key, str | int):
                    children.append((item, (*at, key)))
            todo.extend(reversed(children))  # popped in document order
        elif isinstance(value, _Unreadable):
            problems.append(PlanProblem(pointer(*at), value.problem))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(PlanProblem(pointer(*at), _not_finite(repr(value)).problem))
    return problems


def _model_problems(raw: JsonValue) -> tuple[list[PlanProblem], int]:
    """pydantic's problems, the first MAX_PROBLEMS of them formatted, and how many more there are."""
    problems: list[PlanProblem] = []
    try:
        Plan.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        found = [(_document_loc(e["loc"]), e) for e in errors]
        # A list whose only item is invalid also reports "too short": noise that hides the real error.
        short = {loc for loc, e in found if e["type"] == "too_short"}
        hiding = {loc[:k] for loc, _ in found for k in range(len(loc)) if loc[:k] in short} if short else set()
        kept = [(loc, err) for loc, err in found if not (err["type"] == "too_short" and loc in hiding)]
        for loc, err in kept[:MAX_PROBLEMS]:
            if err["type"] == "missing" and loc:  # the pointer must resolve: name the field at its parent
                problems.append(PlanProblem(pointer(*loc[:-1]), f"missing required field {loc[-1]!r}"))
            else:
                problems.append(PlanProblem(pointer(*loc), err["msg"]))
        return problems, max(len(kept) - MAX_PROBLEMS, 0)
    return problems, 0


# pydantic puts the discriminator tag into error locations; it is not part of the document.
_UNION_TAGS = {"command", "file_exists", "json_schema", "regex", "evaluator"}


def _document_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The error location without the union tag (it follows a list index; `command` is also a field name)."""
    if _UNION_TAGS.isdisjoint(loc):
        return loc
    return tuple(p for i, p in enumerate(loc)
                 if not (isinstance(p, str) and p in _UNION_TAGS and i > 0 and isinstance(loc[i - 1], int)))


def _one_line(message: str) -> str:
    """Control characters escaped (one problem, one line) and the length capped (messages quote the input)."""
    message = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode(), message)
    return message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE - 1] + "…"


def _resolving(raw: object, where: str) -> tuple[str, str]:
    """The longest prefix of ``where`` that resolves in ``raw``, and the unresolved rest ("" when it resolves)."""
    parts = where.split("/")[1:] if where else []
    node, good = raw, 0
    for part in parts:
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif (isinstance(node, Sequence) and not isinstance(node, str) and re.fullmatch(r"0|[1-9][0-9]*", key)
              and int(key) < len(node)):
            node = node[int(key)]
        else:
            break
        good += 1
    return "".join("/" + p for p in parts[:good]), "/".join(parts[good:])


def _presentable(problems: list[PlanProblem], raw: object, *, unlisted: int = 0) -> list[PlanProblem]:
    """Deduplicated, one line each, at pointers that resolve in the document, at most MAX_PROBLEMS of them.

    Only the listed ones are formatted: a hostile megabyte holds 100,000 problems."""
    out: list[PlanProblem] = []
    seen: set[tuple[str, str]] = set()
    more = unlisted
    for p in problems:
        if (p.pointer, p.message) in seen:
            continue
        seen.add((p.pointer, p.message))
        if len(out) == MAX_PROBLEMS:
            more += 1
            continue
        where, rest = _resolving(raw, p.pointer)
        out.append(PlanProblem(where, _one_line(f"{rest}: {p.message}" if rest else p.message)))
    if more:
        out.append(PlanProblem("", f"{more} more problem(s) not listed; fix these first"))
    return out
