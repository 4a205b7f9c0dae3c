"""The plan's cross-field checks on the raw document: the task graph (unknown or self deps, duplicate ids, cycles),
IO contracts that must connect (declared outputs, typed inputs from upstream tasks, their JSON Schemas), budgets
above the plan's ceiling, and direct actions' arguments against the tool's input schema.

They run on the raw data beside pydantic's shape errors (naestro/validate.py), so one bad field does not hide the
rest; each returns ``PlanProblem``s with RFC 6901 pointers into the document. Nothing here recurses on the input.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import JsonValue

from naestro.errors import PlanProblem

__all__ = ["MAX_PROBLEMS", "MAX_SCHEMA_OBJECTS", "action_problems", "graph_problems", "pointer"]

MAX_SCHEMA_OBJECTS = 1_000
"""Objects in all of a plan's distinct JSON Schemas together. Checking a schema against the 2020-12 metaschema costs
milliseconds per object in Python: 500 schemas nested 55 deep took 70 s (issue 14)."""
MAX_PROBLEMS = 100
"""Problems listed; the rest are counted. A hostile file can hold a million problems, and nobody reads past 100."""
_MAX_NAMES = 20


def pointer(*parts: str | int) -> str:
    """RFC 6901 pointer; the empty string is the whole document."""
    return "".join([f"/{p}" if isinstance(p, int) or ("~" not in p and "/" not in p)
                    else "/" + p.replace("~", "~0").replace("/", "~1") for p in parts])


def _names(names: Collection[str]) -> str:
    shown = sorted(names)
    more = f", … ({len(shown) - _MAX_NAMES} more)" if len(shown) > _MAX_NAMES else ""
    return ", ".join(shown[:_MAX_NAMES]) + more or "none"


def _tasks(raw: Mapping[str, JsonValue]) -> list[tuple[int, Mapping[str, JsonValue]]]:
    tasks = raw.get("tasks")
    if not isinstance(tasks, Sequence) or isinstance(tasks, str):
        return []
    return [(i, t) for i, t in enumerate(tasks) if isinstance(t, Mapping)]


def _str_list(value: JsonValue) -> list[str]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [v for v in value if isinstance(v, str)]
    return []


def graph_problems(raw: Mapping[str, JsonValue]) -> list[PlanProblem]:
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
    problems.extend(_target_problems(tasks))
    return problems


def _target_problems(tasks: list[tuple[int, Mapping[str, JsonValue]]]) -> list[PlanProblem]:
    """A regex or json_schema check that names neither a file nor an output has nothing to read: it could only
    fail at run time (issue-22 slice: ``{"kind": "regex", "pattern": ".* PASS.*"}`` failed a Runner task whose
    tests passed). A plan problem instead, so the planner is told, or the salvage drops the check."""
    problems: list[PlanProblem] = []
    for i, t in tasks:
        checks = t.get("accept", [])
        if not isinstance(checks, Sequence) or isinstance(checks, str):
            continue
        for j, check in enumerate(checks):
            if not isinstance(check, Mapping) or check.get("kind") not in ("regex", "json_schema"):
                continue
            body = "pattern" if check.get("kind") == "regex" else "schema"  # missing: its own problem says so
            if check.get(body) is not None and check.get("file") is None and check.get("output") is None:
                problems.append(PlanProblem(pointer("tasks", i, "accept", j), (
                    f"a {check.get('kind')} check needs `file` (a workspace file it reads) or `output` (one of the "
                    "task's outputs); to check a command's output, use a command check")))
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


def action_problems(raw: Mapping[str, JsonValue], external_servers: Collection[str] | None) -> list[PlanProblem]:
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


@functools.cache
def _builtin_validator(tool: str) -> Draft202012Validator:
    """One validator per builtin tool for the life of the process (the schemas are ``builtin_input_schemas``,
    cached too): building it per action was most of a given plan's validation time (issue 16)."""
    from naestro.tools import builtin_input_schemas

    return Draft202012Validator(dict(builtin_input_schemas()[tool]))


def _argument_problems(tool: str, schema: Mapping[str, JsonValue], args: Mapping[str, JsonValue],
                       where: str) -> list[PlanProblem]:
    props = schema.get("properties")
    names = list(props) if isinstance(props, Mapping) else []
    required = schema.get("required")
    problems = [PlanProblem(where + pointer(name), f"unknown argument {name!r} ({tool} takes: {_names(names)})")
                for name in args if name not in names]
    problems += [PlanProblem(where, f"missing required argument {name!r}")
                 for name in (required if isinstance(required, list) else []) if name not in args]
    for err in _builtin_validator(tool).iter_errors(dict(args)):
        if not err.absolute_path and err.validator in ("required", "additionalProperties"):
            continue  # reported above, by name
        problems.append(PlanProblem(where + pointer(*err.absolute_path), err.message))
    return problems
