"""Plan validation: every problem reported at once, each as ``JSON-pointer: message``.

Shape errors come from pydantic; graph errors (unknown deps, cycles, IO contracts that do not connect,
budgets above the plan ceiling) are checked on the raw data too, so one bad field does not hide the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import JsonValue, ValidationError

from naestro.errors import PlanInvalid, PlanProblem
from naestro.plan import Plan

__all__ = ["parse_plan", "parse_plan_text", "plan_problems"]


def _escape(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(*parts: str | int) -> str:
    """RFC 6901 pointer; the empty string is the whole document."""
    return "".join("/" + _escape(p) for p in parts)


def parse_plan_text(text: str, *, source: str = "plan") -> Plan:
    """Parse JSON text into a valid Plan or raise PlanInvalid with every problem."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = PlanProblem("", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        raise PlanInvalid([problem], source=source) from exc
    return parse_plan(cast(JsonValue, raw), source=source)


def parse_plan(raw: JsonValue, *, source: str = "plan") -> Plan:
    problems = plan_problems(raw)
    if problems:
        raise PlanInvalid(problems, source=source)
    return Plan.model_validate(raw)


def plan_problems(raw: JsonValue) -> list[PlanProblem]:
    """All problems in a candidate plan; empty means valid."""
    problems: list[PlanProblem] = []
    try:
        Plan.model_validate(raw)
    except ValidationError as exc:
        found = [(pointer(*_document_loc(e["loc"])), e) for e in exc.errors()]
        for where, err in found:
            # A list whose only item is invalid also reports "too short": noise that hides the real error.
            if err["type"] == "too_short" and any(w.startswith(where + "/") for w, _ in found):
                continue
            problems.append(PlanProblem(where, err["msg"]))
    if isinstance(raw, Mapping):
        problems.extend(_graph_problems(raw))
    return _dedupe(problems)


# pydantic puts the discriminator tag into error locations; it is not part of the document.
_UNION_TAGS = {"command", "file_exists", "json_schema", "regex", "evaluator"}


def _document_loc(loc: tuple[str | int, ...]) -> list[str | int]:
    """The error location without the union tag (it follows a list index; `command` is also a field name)."""
    return [p for i, p in enumerate(loc)
            if not (isinstance(p, str) and p in _UNION_TAGS and i > 0 and isinstance(loc[i - 1], int))]


def _dedupe(problems: list[PlanProblem]) -> list[PlanProblem]:
    seen: set[tuple[str, str]] = set()
    out: list[PlanProblem] = []
    for p in problems:
        if (p.pointer, p.message) not in seen:
            seen.add((p.pointer, p.message))
            out.append(p)
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
    deps: dict[str, list[str]] = {}
    for i, t in tasks:
        tid = t.get("id")
        own = _str_list(t.get("deps", []))
        for j, d in enumerate(own):
            if d == tid:
                problems.append(PlanProblem(pointer("tasks", i, "deps", j), f"task {d!r} depends on itself"))
            elif d not in index:
                known = ", ".join(sorted(index)) or "none"
                problems.append(PlanProblem(pointer("tasks", i, "deps", j),
                                            f"unknown task {d!r} (known: {known})"))
        if isinstance(tid, str) and index.get(tid) == i:
            deps[tid] = [d for d in own if d in index and d != tid]
    problems.extend(_cycle_problems(deps, index))
    problems.extend(_io_problems(tasks, deps, index))
    problems.extend(_budget_problems(raw, tasks))
    return problems


def _cycle_problems(deps: dict[str, list[str]], index: dict[str, int]) -> list[PlanProblem]:
    """Report each elementary cycle found by DFS once, naming its members in order."""
    problems: list[PlanProblem] = []
    color: dict[str, int] = {}
    stack: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        color[node] = 1
        stack.append(node)
        for dep in deps.get(node, []):
            if color.get(dep, 0) == 0:
                visit(dep)
            elif color.get(dep) == 1:
                cycle = stack[stack.index(dep):]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    # deps point upstream; print in execution order: dep → ... → node → dep
                    names = " → ".join([*reversed(cycle), cycle[-1]])
                    problems.append(PlanProblem(pointer("tasks", index[node], "deps"), f"cycle: {names}"))
        stack.pop()
        color[node] = 2

    for node in sorted(deps):
        if color.get(node, 0) == 0:
            visit(node)
    return problems


def _ancestors(task: str, deps: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(deps.get(task, []))
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo.extend(deps.get(d, []))
    return seen


def _schema_problem(schema: JsonValue, where: str) -> PlanProblem | None:
    if not isinstance(schema, Mapping):
        return None  # pydantic reports the type error
    try:
        Draft202012Validator.check_schema(dict(schema))
    except SchemaError as exc:
        return PlanProblem(where, f"not a valid JSON Schema: {exc.message}")
    return None


def _io_problems(tasks: list[tuple[int, Mapping[str, JsonValue]]], deps: dict[str, list[str]],
                 index: dict[str, int]) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    outputs: dict[str, Mapping[str, JsonValue]] = {}
    for i, t in tasks:
        tid, outs = t.get("id"), t.get("outputs", {})
        if isinstance(tid, str) and isinstance(outs, Mapping):
            outputs[tid] = outs
            for name, spec in outs.items():
                if isinstance(spec, Mapping) and "schema" in spec:
                    p = _schema_problem(spec["schema"], pointer("tasks", i, "outputs", name, "schema"))
                    if p:
                        problems.append(p)
    for i, t in tasks:
        tid, ins = t.get("id"), t.get("inputs", {})
        if not isinstance(tid, str) or not isinstance(ins, Mapping):
            continue
        upstream = _ancestors(tid, deps)
        for name, spec in ins.items():
            if not isinstance(spec, Mapping) or not isinstance(spec.get("from"), str):
                continue
            where = pointer("tasks", i, "inputs", name, "from")
            src = cast(str, spec["from"])
            src_task, _, src_out = src.partition(".")
            if src_task not in index:
                problems.append(PlanProblem(where, f"{src!r}: no task {src_task!r} produces it"))
            elif src_task not in upstream:
                problems.append(PlanProblem(where, f"{src!r}: task {src_task!r} is not a dependency of {tid!r}; "
                                                   f"add it to deps"))
            elif src_out not in outputs.get(src_task, {}):
                declared = ", ".join(sorted(outputs.get(src_task, {}))) or "none"
                problems.append(PlanProblem(where, f"{src!r}: task {src_task!r} declares no output {src_out!r} "
                                                   f"(declared: {declared})"))
            else:
                problems.extend(_type_mismatch(spec, outputs[src_task][src_out], pointer("tasks", i, "inputs", name)))
    return problems


def _type_mismatch(spec: Mapping[str, JsonValue], out: JsonValue, where: str) -> list[PlanProblem]:
    want = spec.get("schema")
    if not isinstance(want, Mapping):
        return []
    p = _schema_problem(want, where + "/schema")
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
                    and not isinstance(own, bool) and own > limit):
                problems.append(PlanProblem(pointer("tasks", i, "budget", res),
                                            f"{own:g} exceeds the plan ceiling budget.{res} = {limit:g}"))
    return problems
