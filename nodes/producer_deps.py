"""Missing producer dependencies, added mechanically: a task whose checks read a file another task writes runs
after that task.

The planner is told "a task that reads a file another task writes MUST list that task in deps"; the 1.5B does not
always do it. Seen in the issue-22 golden slice: ``run_tests`` (``python3 -m pytest test_calc.py``) had no deps,
ran beside ``write_calc`` and ``write_test_calc``, and failed before either had written anything. A missing
dependency is a fact the plan itself shows, so it is repaired like a ``; with`` in a ``python -c`` check (recorded
in the ``planned`` event's ``repaired_checks``), not sent back to a model that would repeat it.

A task *writes* a file its description names after a verb of making ("Write calc.py", "create report.md"); a
task *reads* the files its checks name, the modules a check imports (``m.py``; ``nodes.vacuity`` reads both),
and for a test file ``test_m.py`` also ``m.py``. A dependency is added only where it closes no cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import JsonValue

from nodes.vacuity import files_named, imported_modules

__all__ = ["with_producer_deps"]

_MAKES = re.compile(r"(?i)\b(?:write|writes|create|creates|generate|generates|produce|produces|save|saves|make|"
                    r"makes|implement|implements|add)\b[^.;\n]*?\b([\w./-]*\w\.(?:py|txt|csv|tsv|json|jsonl|md|yaml|"
                    r"yml|toml|html|sh|sql))\b")
_TEST = re.compile(r"(?:^|/)test_(\w+)\.py$")


def _writes(task: Mapping[str, JsonValue]) -> set[str]:
    description = task.get("description")
    return {m.group(1) for m in _MAKES.finditer(description)} if isinstance(description, str) else set()


def _reads(task: Mapping[str, JsonValue]) -> set[str]:
    names: set[str] = set()
    checks = task.get("accept")
    for check in checks if isinstance(checks, list) else []:
        if not isinstance(check, dict):
            continue
        for key in ("path", "file"):
            if isinstance(check.get(key), str):
                names.add(str(check[key]))
        command = check.get("command")
        if isinstance(command, str):
            names |= files_named(command) | {f"{m}.py" for m in imported_modules(command)}
    names |= {f"{m.group(1)}.py" for n in list(names) if (m := _TEST.search(n))}
    return names


def with_producer_deps(candidate: dict[str, JsonValue]) -> tuple[dict[str, JsonValue], list[str]]:
    """``candidate`` with the missing deps added, and the pointers of the deps lists it changed."""
    tasks = candidate.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and isinstance(t.get("id"), str) for t in tasks):
        return candidate, []
    ids = [str(t["id"]) for t in tasks if isinstance(t, dict)]
    if len(set(ids)) != len(ids):
        return candidate, []  # the validator names duplicate ids; nothing to repair on top of that
    deps: dict[str, set[str]] = {}
    for t in tasks:
        assert isinstance(t, dict)
        own = t.get("deps", [])
        deps[str(t["id"])] = {str(d) for d in own if isinstance(d, str)} if isinstance(own, list) else set()

    def after(task: str, other: str) -> bool:
        """Whether ``task`` already runs after ``other`` (directly or through others)."""
        seen, todo = set(), [task]
        while todo:
            current = todo.pop()
            for d in deps.get(current, set()):
                if d == other:
                    return True
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return False

    writers: dict[str, list[str]] = {}
    for t in tasks:
        assert isinstance(t, dict)
        for name in _writes(t):
            writers.setdefault(name, []).append(str(t["id"]))
    changed: list[str] = []
    new_tasks: list[JsonValue] = []
    for i, t in enumerate(tasks):
        assert isinstance(t, dict)
        tid = str(t["id"])
        wanted = [w for name in sorted(_reads(t)) for w in writers.get(name, []) if w != tid]
        added = [w for w in dict.fromkeys(wanted) if not after(tid, w) and not after(w, tid)]
        added = [w for w in added if not any(after(x, w) for x in added if x != w)]  # implied by another: left out
        for w in added:
            deps[tid].add(w)
        if added:
            changed.append(f"/tasks/{i}/deps")
            own = t.get("deps")
            t = {**t, "deps": [*(own if isinstance(own, list) else []), *added]}
        new_tasks.append(t)
    return ({**candidate, "tasks": new_tasks}, changed) if changed else (candidate, [])
