"""The span tree of a run, rendered in the terminal from spans.jsonl (no collector needed)."""

from __future__ import annotations

from collections import defaultdict

from rich.text import Text
from rich.tree import Tree

from naestro.telemetry._tracing import SpanRecord

__all__ = ["span_tree", "summarize"]

# What each kind of span shows after its name, in order; absent attributes are skipped.
_SHOWN = ("naestro.task.id", "naestro.attempt", "gen_ai.request.model", "gen_ai.usage.input_tokens",
          "gen_ai.usage.output_tokens", "naestro.cost_usd", "naestro.tool.ok", "naestro.policy.verdict",
          "naestro.policy.latency_us", "naestro.task.status", "naestro.interrupted", "naestro.replayed")
_SHORT = {"naestro.task.id": "task", "naestro.attempt": "attempt", "gen_ai.request.model": "model",
          "gen_ai.usage.input_tokens": "in", "gen_ai.usage.output_tokens": "out", "naestro.cost_usd": "$",
          "naestro.tool.ok": "ok", "naestro.policy.verdict": "verdict", "naestro.policy.latency_us": "µs",
          "naestro.task.status": "status", "naestro.interrupted": "interrupted", "naestro.replayed": "replayed"}


def summarize(s: SpanRecord) -> Text:
    ms = (s["end_ns"] - s["start_ns"]) / 1e6
    text = Text(s["name"], style="bold red" if s["status"] == "ERROR" else "bold")
    text.append(f"  {ms:,.1f} ms", style="cyan")
    attrs = s["attributes"]
    parts = []
    for key in _SHOWN:
        value = attrs.get(key)
        if value is None or (value is False and key == "naestro.replayed"):
            continue
        parts.append(f"{_SHORT[key]}={value}")
    if parts:
        text.append("  " + " ".join(parts), style="dim")
    if s["status_message"]:
        text.append(f"  {s['status_message']}", style="red")
    return text


def span_tree(spans: list[SpanRecord], *, title: str = "trace") -> Tree:
    """Children under parents, siblings by start time; spans whose parent is missing hang off the root."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for s in spans:
        parent = s["parent_id"] if s["parent_id"] in ids else None
        children[parent].append(s)
    tree = Tree(Text(title, style="bold"))

    def add(node: Tree, parent: str | None) -> None:
        for s in sorted(children.get(parent, []), key=lambda s: s["start_ns"]):
            add(node.add(summarize(s)), s["span_id"])

    add(tree, None)
    return tree
