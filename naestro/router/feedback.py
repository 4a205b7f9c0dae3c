"""Evaluator verdicts → bandit updates, read off a run's event stream.

A task attempt's acceptance checks (``task_checked``: passed, or retry / failed) are the outcome of every
model call that attempt made (``model_call`` events since its ``task_started``); each call updates the arm
(role, endpoint) with that verdict, its latency and cost. Listening to events keeps the router out of the
graph nodes: the runner subscribes one feed per run.

The same verdicts drive the cascade strategy: a failed check on the small endpoint escalates the task
(``run/task``) to the large one for its next attempt.
"""

from __future__ import annotations

from naestro.events import Event
from naestro.router.route import Router

__all__ = ["OutcomeFeed"]


class OutcomeFeed:
    def __init__(self, router: Router) -> None:
        self.router = router
        self._role: dict[str, str] = {}
        self._calls: dict[str, list[tuple[str, float, float]]] = {}

    def __call__(self, ev: Event) -> None:
        task, kind = ev.get("task"), ev.get("event")
        if not isinstance(task, str):
            return
        if kind == "task_started" and isinstance(ev.get("role"), str):
            self._role[task] = str(ev["role"])
            self._calls[task] = []
        elif kind == "model_call" and ev.get("purpose", "agent") == "agent" and task in self._calls:
            latency, cost = ev.get("latency_s"), ev.get("cost_usd")
            self._calls[task].append((str(ev.get("endpoint")), float(latency) if isinstance(latency, int | float)
                                      else 0.0, float(cost) if isinstance(cost, int | float) else 0.0))
        elif kind == "task_checked" and task in self._calls:
            success = ev.get("status") == "passed"
            for endpoint, latency, cost in self._calls.pop(task):
                self.router.record_outcome(self._role[task], endpoint, success=success, cost_usd=cost,
                                           latency_s=latency)
                self.router.record_verdict(f"{ev.get('run')}/{task}", endpoint, passed=success)
