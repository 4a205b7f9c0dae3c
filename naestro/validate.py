"""Plan validation: every problem reported at once, each as ``JSON-pointer: message`` on one line.

Shape errors come from pydantic; graph errors (unknown deps, cycles, IO contracts that do not connect,
budgets above the plan ceiling) and direct-action arguments (against the tool's input schema) are checked on the
raw data too, so one bad field does not hide the rest.

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

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import JsonValue, ValidationError

from naestro.errors import PlanInvalid, PlanProblem
from naestro.plan import MAX_TASKS, Plan

__all__ = ["MAX_DEPTH", "MAX_PLAN_BYTES", "MAX_PROBLEMS", "MAX_SCHEMA_OBJECTS", "load_plan_file", "parse_plan",
           "parse_plan_bytes", "parse_plan_text", "plan_problems"]

MAX_PLAN_BYTES = 1_000_000
"""Hand-written and planner plans are a few kB; a 10 MB file took minutes and gigabytes to reject (issue 14)."""
MAX_DEPTH = 64
"""Arrays/objects nested deeper than this are refused before parsing (json.loads recurses: RecursionError)."""
MAX_SCHEMA_OBJECTS = 1_000
"""Objects in all of a plan's distinct JSON Schemas together. Checking a schema against the 2020-12 metaschema costs
milliseconds per object in Python: 500 schemas nested 55 deep took 70 s (issue 14)."""
MAX_PROBLEMS = 100
"""Problems listed; the rest are counted. A hostile file can hold a million problems, and nobody reads past 100."""
_MAX_MESSAGE = 500
_MAX_NAMES = 20


def pointer(*parts: str | int) -> str:
    """RFC 6901 pointer; the empty string is the whole document."""
    return "".join([f"/{p}" if isinstance(p, int) or ("~" not in p and "/" not in p)
                    else "/" + p.replace("~", "~0").replace("/", "~1") for p in parts])


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
            problems.extend(_graph_problems(raw))
            problems.extend(_action_problems(raw, external_servers))
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
        if isinstance(value, _Unreadable):
            problems.append(PlanProblem(pointer(*at), value.problem))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(PlanProblem(pointer(*at), _not_finite(repr(value)).problem))
        elif isinstance(value, str):
            if found := _SURROGATE.search(value):
                problems.append(PlanProblem(pointer(*at), f"lone surrogate U+{ord(found.group()):04X} at offset "
                                                          f"{found.start()}: not valid Unicode text"))
        elif isinstance(value, Mapping | list | tuple):
            if len(at) >= MAX_DEPTH:
                problems.append(PlanProblem(pointer(*at), f"nested more than {MAX_DEPTH} deep"))
                continue
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            children: list[tuple[object, tuple[str | int, ...]]] = []
            for key, item in items:
                if isinstance(key, str) and (bad := _UNPRINTABLE.search(key)):
                    problems.append(PlanProblem(pointer(*at), f"key {key!r} contains U+{ord(bad.group()):04X}; "
                                                              f"names cannot hold control characters"))
                elif isinstance(key, str | int):
                    children.append((item, (*at, key)))
            todo.extend(reversed(children))  # popped in document order
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


def _names(names: Collection[str]) -> str:
    shown = sorted(names)
    more = f", … ({len(shown) - _MAX_NAMES} more)" if len(shown) > _MAX_NAMES else ""
    return ", ".join(shown[:_MAX_NAMES]) + more or "none"


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


def _tasks(raw: Mapping[str, JsonValue]) -> list[tuple[int, Mapping[str, JsonValue]]]:
    tasks = raw.get("tasks")
    if not isinstance(tasks, Sequence) or isinstance(tasks, str):
        return []
    return [(i, t) for i, t in enumerate(tasks) if isinstance(t, Mapping)]


def _str_list(value: JsonValue) -> list[str]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [v for v in value if isinstance(v, str)]
    return []


def _graph_problems(raw: Mapping[str, JsonValue]) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    tasks = _tasks(raw)
    index: dict[str, int] = {}
    for i, t in tasks:
        tid = t.get("id")
        if not isinstance(tid, str):
            continue
        if tid in index:
            problems.append(PlanProblem(pointer("tasks", i, "id"),
                                        f"duplicate task id {tid!r} (first at /tasks/{index[tid]})"))
        else:
            index[tid] = i
    known = _names(index)
    deps: dict[str, list[str]] = {}
    for i, t in tasks:
        tid = t.get("id")
        own = _str_list(t.get("deps", []))
        for j, d in enumerate(own):
            if d == tid:
                problems.append(PlanProblem(pointer("tasks", i, "deps", j), f"task {d!r} depends on itself"))
            elif d not in index:
                problems.append(PlanProblem(pointer("tasks", i, "deps", j), f"unknown task {d!r} (known: {known})"))
        if isinstance(tid, str) and index.get(tid) == i:
            deps[tid] = list(dict.fromkeys(d for d in own if d in index and d != tid))
    problems.extend(_cycle_problems(deps, index))
    problems.extend(_io_problems(tasks, deps, index))
    problems.extend(_budget_problems(raw, tasks))
    return problems


def _cycle_problems(deps: dict[str, list[str]], index: dict[str, int]) -> list[PlanProblem]:
    """Report each elementary cycle found by DFS once, naming its members in order.

    An explicit stack, not recursion: a 5,000-task chain overflowed Python's stack (issue 14). Stops at
    MAX_PROBLEMS cycles: a dense hostile graph has more than anyone reads, each costing its length to name."""
    problems: list[PlanProblem] = []
    color: dict[str, int] = {}
    path: list[str] = []  # the DFS path: gray nodes, in order
    at: dict[str, int] = {}  # gray node → its position in path
    reported: set[frozenset[str]] = set()
    for root in sorted(deps):
        if color.get(root, 0):
            continue
        color[root], at[root] = 1, 0
        path.append(root)
        todo = [iter(deps.get(root, []))]
        while todo:
            node = path[-1]
            dep = next(todo[-1], None)
            if dep is None:
                todo.pop()
                path.pop()
                del at[node]
                color[node] = 2
            elif color.get(dep, 0) == 0:
                color[dep], at[dep] = 1, len(path)
                path.append(dep)
                todo.append(iter(deps.get(dep, [])))
            elif color[dep] == 1:
                cycle = path[at[dep]:]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    problems.append(PlanProblem(pointer("tasks", index[node], "deps"), _cycle_message(cycle)))
                    if len(problems) >= MAX_PROBLEMS:
                        return problems
    return problems


def _cycle_message(cycle: list[str]) -> str:
    # deps point upstream; print in execution order: dep → ... → node → dep
    names = [*reversed(cycle), cycle[-1]]
    if len(names) > 12:  # a 500-task cycle is named by its ends, and counted
        names = [*names[:5], f"… {len(names) - 8} more …", *names[-3:]]
    return f"cycle: {' → '.join(names)}" + (f" ({len(cycle)} tasks)" if len(cycle) > 11 else "")


class _Upstream:
    """Which tasks are upstream of which, for all tasks at once: ancestor sets as int bit sets, computed deps
    first and repeated until nothing changes (a cycle takes another pass). Iterative; a walk per task was
    quadratic (5 s for 500 densely connected tasks)."""

    def __init__(self, deps: dict[str, list[str]]) -> None:
        self._bit = {name: 1 << k for k, name in enumerate(deps)}
        order = _deps_first(deps)
        self._anc = dict.fromkeys(deps, 0)
        changed = True
        while changed:
            changed = False
            for task in order:
                anc = 0
                for d in deps[task]:
                    anc |= self._bit[d] | self._anc[d]
                if anc != self._anc[task]:
                    self._anc[task], changed = anc, True

    def has(self, task: str, ancestor: str) -> bool:
        return bool(self._anc.get(task, 0) & self._bit.get(ancestor, 0))


def _deps_first(deps: dict[str, list[str]]) -> list[str]:
    """DFS post-order without recursion: each task after its deps (except along a cycle)."""
    order: list[str] = []
    seen: set[str] = set()
    for root in deps:
        if root in seen:
            continue
        seen.add(root)
        todo = [(root, iter(deps[root]))]
        while todo:
            node, rest = todo[-1]
            dep = next(rest, None)
            if dep is None:
                todo.pop()
                order.append(node)
            elif dep not in seen:
                seen.add(dep)
                todo.append((dep, iter(deps[dep])))
    return order


class _SchemaCheck:
    """Each distinct schema checked once, within the MAX_SCHEMA_OBJECTS budget (past it: one problem, no checks)."""

    def __init__(self) -> None:
        self._done: dict[str, str | None] = {}
        self._left = MAX_SCHEMA_OBJECTS

    def problem(self, schema: JsonValue, where: str) -> PlanProblem | None:
        if not isinstance(schema, Mapping):
            return None  # pydantic reports the type error
        key = repr(schema)
        if key not in self._done:
            if self._left < 0:
                return None
            self._left -= _objects(schema)
            if self._left < 0:
                return PlanProblem(where, f"the plan's JSON Schemas hold more than {MAX_SCHEMA_OBJECTS:,} objects in "
                                          f"all: too many to check; simplify them or reuse one schema")
            try:
                Draft202012Validator.check_schema(dict(schema))
                self._done[key] = None
            except SchemaError as exc:
                self._done[key] = exc.message
        message = self._done[key]
        return None if message is None else PlanProblem(where, f"not a valid JSON Schema: {message}")


def _objects(value: JsonValue) -> int:
    count, todo = 0, [value]
    while todo:
        v = todo.pop()
        if isinstance(v, Mapping):
            count += 1
            todo.extend(v.values())
        elif isinstance(v, list | tuple):
            todo.extend(v)
    return count


def _io_problems(tasks: list[tuple[int, Mapping[str, JsonValue]]], deps: dict[str, list[str]],
                 index: dict[str, int]) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    schemas = _SchemaCheck()
    outputs: dict[str, Mapping[str, JsonValue]] = {}
    for i, t in tasks:
        tid, outs = t.get("id"), t.get("outputs", {})
        if isinstance(tid, str) and isinstance(outs, Mapping):
            outputs[tid] = outs
            for name, spec in outs.items():
                if isinstance(spec, Mapping) and "schema" in spec:
                    p = schemas.problem(spec["schema"], pointer("tasks", i, "outputs", name, "schema"))
                    if p:
                        problems.append(p)
    upstream: _Upstream | None = None  # built only when an input comes from further up than a direct dep
    for i, t in tasks:
        tid, ins = t.get("id"), t.get("inputs", {})
        if not isinstance(tid, str) or not isinstance(ins, Mapping):
            continue
        for name, spec in ins.items():
            if not isinstance(spec, Mapping) or not isinstance(spec.get("from"), str):
                continue
            where = pointer("tasks", i, "inputs", name, "from")
            src = cast(str, spec["from"])
            src_task, _, src_out = src.partition(".")
            if src_task not in index:
                problems.append(PlanProblem(where, f"{src!r}: no task {src_task!r} produces it"))
                continue
            reachable = src_task in deps.get(tid, [])
            if not reachable:
                upstream = _Upstream(deps) if upstream is None else upstream
                reachable = upstream.has(tid, src_task)
            if not reachable:
                problems.append(PlanProblem(where, f"{src!r}: task {src_task!r} is not a dependency of {tid!r}; "
                                                   f"add it to deps"))
            elif src_out not in outputs.get(src_task, {}):
                declared = _names(list(outputs.get(src_task, {})))
                problems.append(PlanProblem(where, f"{src!r}: task {src_task!r} declares no output {src_out!r} "
                                                   f"(declared: {declared})"))
            else:
                problems.extend(_type_mismatch(spec, outputs[src_task][src_out], pointer("tasks", i, "inputs", name),
                                               schemas))
    return problems


def _type_mismatch(spec: Mapping[str, JsonValue], out: JsonValue, where: str,
                   schemas: _SchemaCheck) -> list[PlanProblem]:
    want = spec.get("schema")
    if not isinstance(want, Mapping):
        return []
    p = schemas.problem(want, where + "/schema")
    if p:
        return [p]
    have = out.get("schema", {"type": "string"}) if isinstance(out, Mapping) else None
    if isinstance(have, Mapping) and "type" in want and "type" in have and want["type"] != have["type"]:
        return [PlanProblem(where + "/schema/type",
                            f"expects type {want['type']!r} but the output has type {have['type']!r}")]
    return []


_RESOURCES = ("tokens", "usd", "wall_s")


def _budget_problems(raw: Mapping[str, JsonValue],
                     tasks: list[tuple[int, Mapping[str, JsonValue]]]) -> list[PlanProblem]:
    ceiling = raw.get("budget")
    if not isinstance(ceiling, Mapping):
        return []
    problems: list[PlanProblem] = []
    for i, t in tasks:
        budget = t.get("budget")
        if not isinstance(budget, Mapping):
            continue
        for res in _RESOURCES:
            limit, own = ceiling.get(res), budget.get(res)
            if (isinstance(limit, int | float) and isinstance(own, int | float)
                    and not isinstance(own, bool) and not isinstance(limit, bool) and own > limit):
                problems.append(PlanProblem(pointer("tasks", i, "budget", res),
                                            f"{_number(own)} exceeds the plan ceiling budget.{res} = {_number(limit)}"))
    return problems


def _number(value: int | float) -> str:
    """``:g`` for floats; ints as they are (a 400-digit int overflows a float: OverflowError, issue 14)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 20 else f"{text[:8]}…({len(text)} digits)"


def _action_problems(raw: Mapping[str, JsonValue], external_servers: Collection[str] | None) -> list[PlanProblem]:
    """Direct actions run without a model, so nobody would correct bad arguments: check them against the tool's
    input schema here, where the plan author sees the pointer, not mid-run (issue 14)."""
    actions = [(i, t["action"]) for i, t in _tasks(raw) if isinstance(t.get("action"), Mapping)]
    if not actions:
        return []
    from mcp_servers.workspace import BUILTIN_SERVERS  # imported late: only plans with direct actions
    from naestro.tools import builtin_input_schemas

    schemas = builtin_input_schemas()
    problems: list[PlanProblem] = []
    for i, action in actions:
        assert isinstance(action, Mapping)
        tool, args = action.get("tool"), action.get("arguments", {})
        if not isinstance(tool, str) or "." not in tool:
            continue  # pydantic reports the shape
        server = tool.split(".", 1)[0]
        where = pointer("tasks", i, "action")
        if server not in BUILTIN_SERVERS:
            if external_servers is not None and server not in external_servers:
                problems.append(PlanProblem(where + "/tool", f"unknown tool {tool!r}: {server!r} is neither a builtin "
                                                             f"server nor declared in tools.yaml (builtin tools: "
                                                             f"{_names(schemas)})"))
            continue  # an external server's schemas are known once it runs; the tool bus checks them then
        if tool not in schemas:
            own = [name for name in schemas if name.startswith(server + ".")]
            problems.append(PlanProblem(where + "/tool", f"unknown tool {tool!r} ({server} tools: {_names(own)})"))
        elif isinstance(args, Mapping):
            problems.extend(_argument_problems(tool, schemas[tool], args, where + "/arguments"))
    return problems


def _argument_problems(tool: str, schema: Mapping[str, JsonValue], args: Mapping[str, JsonValue],
                       where: str) -> list[PlanProblem]:
    props = schema.get("properties")
    names = list(props) if isinstance(props, Mapping) else []
    required = schema.get("required")
    problems = [PlanProblem(where + pointer(name), f"unknown argument {name!r} ({tool} takes: {_names(names)})")
                for name in args if name not in names]
    problems += [PlanProblem(where, f"missing required argument {name!r}")
                 for name in (required if isinstance(required, list) else []) if name not in args]
    for err in Draft202012Validator(dict(schema)).iter_errors(dict(args)):
        if not err.absolute_path and err.validator in ("required", "additionalProperties"):
            continue  # reported above, by name
        problems.append(PlanProblem(where + pointer(*err.absolute_path), err.message))
    return problems
