"""Terminal rendering: the plan as a tree, and the live run view fed by run events."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text
from rich.tree import Tree

if TYPE_CHECKING:
    from naestro.events import Event
    from naestro.plan import Plan

_ICONS = {"pending": "·", "running": "▶", "checking": "?", "retry": "↻", "review": "🔍", "passed": "✔", "failed": "✘",
          "skipped": "⏭"}
_STYLES = {"passed": "green", "failed": "red", "retry": "yellow", "review": "magenta", "running": "cyan",
           "skipped": "dim"}


def _check_text(check: object) -> str:
    data = check.model_dump(by_alias=True, exclude_defaults=True) if hasattr(check, "model_dump") else {}
    kind = data.pop("kind", "?")
    return f"{kind}: " + ", ".join(f"{k}={v}" for k, v in data.items())


def plan_tree(plan: Plan, *, source: str = "") -> Tree:
    tree = Tree(Text.assemble(("Plan", "bold"), f" ({source})" if source else "", ": ", plan.goal))
    for t in plan.tasks:
        head = Text.assemble((t.id, "bold"), f" [{t.role.value}]",
                             (f" ← {', '.join(t.deps)}" if t.deps else "", "dim"), f"  {t.description}")
        node = tree.add(head)
        if t.action is not None:
            node.add(Text(f"action: {t.action.tool} {t.action.arguments}", style="dim"))
        for c in t.accept:
            node.add(Text(f"accept {_check_text(c)}", style="dim"))
    return tree


@dataclass
class TaskView:
    status: str = "pending"
    model: str = ""
    tokens: int = 0
    attempt: int = 0
    started: float | None = None
    elapsed: float = 0.0


@dataclass
class LiveRun:
    """Folds run events into per-task status for the live tree."""

    goal: str = ""
    plan: Plan | None = None
    phase: str = "planning"
    tasks: dict[str, TaskView] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def set_plan(self, plan: Plan) -> None:
        self.plan = plan
        self.tasks = {t.id: TaskView() for t in plan.tasks}

    def apply(self, ev: Event) -> None:
        kind, tid = ev.get("event"), ev.get("task")
        view = self.tasks.get(tid) if isinstance(tid, str) else None
        if kind == "planned":
            self.phase = f"running (plan from {ev.get('source')})"
        elif kind == "replanning":
            self.phase = "re-planning the unfinished part"
        elif kind == "report_written":
            self.phase = "report written"
        if view is None:
            return
        if kind == "task_started":
            view.status, view.model = "running", str(ev.get("model") or "direct")
            view.attempt, view.started = int(str(ev.get("attempt", 1))), time.monotonic()
        elif kind == "model_call":
            view.tokens += int(str(ev.get("prompt_tokens", 0))) + int(str(ev.get("completion_tokens", 0)))
        elif kind == "task_ran":
            view.status = "checking"
        elif kind in ("task_checked", "task_skipped"):
            view.status = str(ev.get("status", "skipped"))
            if view.started is not None:
                view.elapsed += time.monotonic() - view.started
                view.started = None

    def render(self) -> Group:
        if self.plan is None:
            return Group(Text(f"⏳ {self.phase}: {self.goal}  ({time.monotonic() - self.started:.0f}s)"))
        tree = Tree(Text.assemble(("Naestro", "bold"), f" — {self.phase} — ", self.plan.goal))
        for t in self.plan.tasks:
            v = self.tasks.get(t.id, TaskView())
            elapsed = v.elapsed + (time.monotonic() - v.started if v.started else 0)
            tree.add(Text.assemble(
                (f"{_ICONS.get(v.status, '·')} {t.id}", _STYLES.get(v.status, "")),
                f" [{t.role.value}] {v.status}",
                (f"  attempt {v.attempt}  {v.model}  {v.tokens} tok  {elapsed:.1f}s" if v.attempt else "", "dim")))
        return Group(tree)
