"""Propose: tool adapter deltas from tool findings (issue 21). A ``tool_timeout`` finding doubles the tool's
``timeout_s`` in ``tools/<server>.yaml`` (up to the adapter's 600 s cap); a ``tool_error`` finding whose error is
of a known kind adds the usage hint that kind calls for. One field of one tool per proposal, so the diff says
exactly what changed and a rollback takes exactly that back.

Hints come from the fixed table below, never from the error text: an error can carry what a tool read or a model
wrote, and a hint is shown to every agent of every later run. A timeout that was not the adapter's (the task's
remaining budget or a policy obligation cut the call shorter) is left alone: a longer adapter timeout would not
change it, and budgets are not the loop's to raise.
"""

from __future__ import annotations

from typing import Any

import yaml

from naestro.improve.proposal import Change, Proposal
from naestro.introspect import Finding
from naestro.tooladapter import adapter_path, parse_server_adapter, timeout_for

__all__ = ["MAX_TIMEOUT_S", "hint_for_error", "tool_adapter_for"]

MAX_TIMEOUT_S = 600.0
"""The adapter's own cap (naestro/tooladapter.py): the loop never proposes more."""

# (substrings of the error, lowercase; the tool it applies to or None for any; the hint)
_HINTS: tuple[tuple[tuple[str, ...], str | None, str], ...] = (
    (("patch does not apply", "no ---/+++ file headers"), "fs.patch",
     "read the file with fs.read first and build the diff from its exact current lines; for a short file, write "
     "the whole new text with fs.write instead"),
    (("validation error", "field required", "missing required", "unexpected keyword"), None,
     "pass exactly the arguments its schema names, with their types, and no others"),
    (("does not exist", "is not a file", "no such file", "not found"), None,
     "call fs.list first and use a path it shows (relative to the workspace)"),
    (("is a directory",), None, "give a file path, not a folder"),
)


def hint_for_error(tool: str, error: str) -> str | None:
    low = error.lower()
    for needles, only, hint in _HINTS:
        if (only is None or only == tool) and any(n in low for n in needles):
            return hint
    return None


def _with(text: str | None, path: str, name: str, field: str, value: object) -> str:
    data: Any = yaml.safe_load(text) if text else None
    data = data if isinstance(data, dict) else {}
    tools = data.setdefault("tools", {})
    tools.setdefault(name, {})[field] = value
    head = "" if text else f"# {path}: tool adapters (naestro/tooladapter.py), proposed by the self-improvement loop\n"
    out = head + yaml.safe_dump(data, sort_keys=False, width=110, allow_unicode=True)
    parse_server_adapter(path, out)  # a proposal the loop writes loads, or this is a bug: say so here
    return out


def tool_adapter_for(finding: Finding, current: str | None) -> Proposal | None:
    """The proposal for a tool finding given the tool's server file on main (None: no file yet); None when no rule
    applies or the change is there already."""
    tool = finding.tool
    if tool is None or "." not in tool or finding.kind not in ("tool_timeout", "tool_error"):
        return None
    path, name = adapter_path(tool), tool.partition(".")[2]
    adapters = parse_server_adapter(path, current) if current else {}
    origin = f"Introspector finding {finding.kind} in run {finding.run}, task {finding.task}: {finding.evidence}"
    if finding.kind == "tool_timeout":
        limit = timeout_for(adapters, tool)
        if finding.limit_s is None or finding.limit_s < limit - 1 or limit >= MAX_TIMEOUT_S:
            return None  # the budget or a policy cut it (not the adapter's limit), or the cap is reached
        new = min(MAX_TIMEOUT_S, round(limit * 2))
        return Proposal(kind="tool_adapter", title=f"{tool} timeout {limit:g} -> {new:g} s ({finding.run}/"
                        f"{finding.task})", rationale=f"{origin}\nProposed by rule `timeout`: double the call's "
                        f"time limit (cap {MAX_TIMEOUT_S:g} s); the task budget still caps every call.",
                        changes=(Change(path=path, text=_with(current, path, name, "timeout_s", new)),),
                        finding=finding).identified()
    hint = hint_for_error(tool, finding.evidence.split(": ", 1)[-1])
    present = adapters.get(tool)
    if hint is None or (present is not None and present.hint == hint):
        return None
    text = _with(current, path, name, "hint", hint)
    return Proposal(kind="tool_adapter", title=f"{tool} usage hint ({finding.run}/{finding.task})",
                    rationale=f"{origin}\nProposed by rule `hint`: show with {tool} in every agent's tool list: "
                              f"\"{hint}\"", changes=(Change(path=path, text=text),), finding=finding).identified()
