"""Prometheus metrics computed from the runs' event logs (RUN_DIR/events.jsonl).

Runs happen in their own processes (``naestro run``, resumes, workers), so the metrics server does not count
in-process: it tails every run's events.jsonl (new complete lines only, from a byte offset per file) and
folds them into counters and histograms on each scrape. The events already carry everything needed: model
calls (endpoint, tokens, latency, cost), tool calls, policy decisions, consents, router choices, task and
run outcomes. Restarting the server re-reads the logs, so the series are totals over the runs on disk.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from naestro.events import Event

__all__ = ["EventsCollector"]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
POLICY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)
WAIT_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)

Labels = tuple[str, ...]


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: dict[Labels, list[int]] = field(default_factory=dict)
    sums: dict[Labels, float] = field(default_factory=lambda: defaultdict(float))

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.counts.setdefault(labels, [0] * (len(self.buckets) + 1))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        counts[-1] += 1
        self.sums[labels] += value

    def family(self, name: str, doc: str, label_names: list[str]) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(name, doc, labels=label_names)
        for labels, counts in sorted(self.counts.items()):
            bounds = [*(str(b) for b in self.buckets), "+Inf"]
            fam.add_metric(list(labels), list(zip(bounds, map(float, counts), strict=True)), self.sums[labels])
        return fam


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _ts(event: Event) -> float | None:
    ts = event.get("ts")
    return datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else None


class _Totals:
    """Everything the events have said so far; ``fold`` takes one event."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self.model_latency = _Histogram(LATENCY_BUCKETS)
        self.tool_duration = _Histogram(TOOL_BUCKETS)
        self.policy_latency = _Histogram(POLICY_BUCKETS)
        self.consent_wait = _Histogram(WAIT_BUCKETS)
        self.waiting: dict[tuple[str, str, str], float] = {}  # (run, task, action) -> requested at
        self.run_status: dict[str, str] = {}

    def add(self, name: str, labels: Labels, value: float = 1.0) -> None:
        self.counters[name][labels] += value

    def fold(self, e: Event) -> None:
        kind, run = str(e.get("event")), str(e.get("run", ""))
        if kind == "model_call":
            endpoint, purpose = str(e.get("endpoint")), str(e.get("purpose", "agent"))
            self.add("model_calls", (endpoint, purpose))
            self.add("tokens", (endpoint, "input"), _num(e.get("prompt_tokens")))
            self.add("tokens", (endpoint, "output"), _num(e.get("completion_tokens")))
            self.add("cost", (endpoint,), _num(e.get("cost_usd")))
            self.model_latency.observe((endpoint,), _num(e.get("latency_s")))
        elif kind == "tool_call":
            tool = str(e.get("tool"))
            self.add("tool_calls", (tool, "true" if e.get("ok") else "false"))
            self.tool_duration.observe((tool,), _num(e.get("duration_s")))
        elif kind == "tool_denied":
            self.add("tool_denials", (str(e.get("tool")), str(e.get("by", "policy"))))
        elif kind == "policy_decision":
            self.add("policy_decisions", (str(e.get("verdict")), str(e.get("engine"))))
            self.policy_latency.observe((str(e.get("engine")),), _num(e.get("latency_us")) / 1e6)
        elif kind == "consent_requested":
            self.add("consent_requests", (str(e.get("action")),))
            self.waiting[(run, str(e.get("task")), str(e.get("action")))] = _ts(e) or 0.0
        elif kind in ("consent_given", "consent_refused"):
            self.add("consent_answers", (str(e.get("action")), "approved" if kind == "consent_given" else "refused"))
            asked = self.waiting.pop((run, str(e.get("task")), str(e.get("action"))), None)
            now = _ts(e)
            if asked and now:
                self.consent_wait.observe((), max(0.0, now - asked))
        elif kind == "route":
            self.add("route_decisions", (str(e.get("endpoint")), str(e.get("rule")),
                                         "true" if e.get("spilled") else "false"))
        elif kind == "reroute":
            self.add("reroutes", (str(e.get("reason")),))
        elif kind == "task_finished":
            self.add("tasks", (str(e.get("status")),))
        elif kind == "budget_exceeded":
            self.add("budget_exceeded", (str(e.get("resource")),))
        elif kind == "run_started":
            self.run_status[run] = "running"
        elif kind == "run_finished":
            self.run_status[run] = str(e.get("status"))
        elif kind == "run_error":
            self.run_status[run] = "error"
        elif kind == "run_paused":
            self.run_status[run] = "paused"
        elif kind == "waiting_for_consent":
            self.run_status[run] = "waiting"


# name -> (metric name, help, label names)
_COUNTERS: dict[str, tuple[str, str, list[str]]] = {
    "model_calls": ("naestro_model_calls", "Model calls", ["endpoint", "purpose"]),
    "tokens": ("naestro_tokens", "Model tokens by direction", ["endpoint", "type"]),
    "cost": ("naestro_cost_usd", "Model cost in USD (price table in models.yaml)", ["endpoint"]),
    "tool_calls": ("naestro_tool_calls", "Tool calls by outcome", ["tool", "ok"]),
    "tool_denials": ("naestro_tool_denials", "Tool calls refused (by the policy or a human)", ["tool", "by"]),
    "policy_decisions": ("naestro_policy_decisions", "Policy decisions by verdict", ["verdict", "engine"]),
    "consent_requests": ("naestro_consent_requests", "Consents asked of a human", ["action"]),
    "consent_answers": ("naestro_consent_answers", "Consent answers", ["action", "answer"]),
    "route_decisions": ("naestro_route_decisions", "Router choices (spilled: sent past the preferred endpoint)",
                        ["endpoint", "rule", "spilled"]),
    "reroutes": ("naestro_reroutes", "Calls re-routed after a failure", ["reason"]),
    "tasks": ("naestro_tasks", "Finished tasks by final status", ["status"]),
    "budget_exceeded": ("naestro_budget_exceeded", "Budgets exceeded", ["resource"]),
}


class EventsCollector(Collector):
    """A prometheus_client collector over ``runs_dir/*/events.jsonl``, re-read incrementally at each scrape."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self._offsets: dict[Path, int] = {}
        self._totals = _Totals()
        self._lock = threading.Lock()

    def _tail(self, path: Path) -> Iterator[Event]:
        start = self._offsets.get(path, 0)
        with path.open("rb") as f:
            f.seek(start)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offsets[path] = start + end
        for line in data[:end].splitlines():
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn line from a crashed writer: skip it, keep counting the rest

    def refresh(self) -> None:
        with self._lock:
            for path in sorted(self.runs_dir.glob("*/events.jsonl")):
                for event in self._tail(path):
                    self._totals.fold(event)

    def collect(self) -> Iterable[Metric]:
        self.refresh()
        t = self._totals
        for key, (name, doc, labels) in _COUNTERS.items():
            fam = CounterMetricFamily(name, doc, labels=labels)
            for values, total in sorted(t.counters[key].items()):
                fam.add_metric(list(values), total)
            yield fam
        yield t.model_latency.family("naestro_model_latency_seconds", "Model call latency", ["endpoint"])
        yield t.tool_duration.family("naestro_tool_duration_seconds", "Tool call duration", ["tool"])
        yield t.policy_latency.family("naestro_policy_decision_seconds", "Policy evaluation latency", ["engine"])
        yield t.consent_wait.family("naestro_consent_wait_seconds", "From a consent request to its answer", [])
        waiting = GaugeMetricFamily("naestro_consent_waiting", "Consent requests not answered yet")
        waiting.add_metric([], len(t.waiting))
        yield waiting
        runs = GaugeMetricFamily("naestro_runs", "Runs by current status", labels=["status"])
        by_status: dict[str, int] = defaultdict(int)
        for status in t.run_status.values():
            by_status[status] += 1
        for status, n in sorted(by_status.items()):
            runs.add_metric([status], n)
        yield runs
        finished = [s for s in t.run_status.values() if s in ("passed", "failed", "error")]
        rate = GaugeMetricFamily("naestro_run_success_ratio", "Passed runs / finished runs (NaN before any)")
        rate.add_metric([], sum(s == "passed" for s in finished) / len(finished) if finished else float("nan"))
        yield rate
        tasks = t.counters["tasks"]
        done = sum(tasks.values())
        task_rate = GaugeMetricFamily("naestro_task_success_ratio", "Passed tasks / finished tasks")
        task_rate.add_metric([], tasks.get(("passed",), 0.0) / done if done else float("nan"))
        yield task_rate
        routes = t.counters["route_decisions"]
        routed = sum(routes.values())
        spill = GaugeMetricFamily("naestro_spill_ratio", "Router choices that spilled / all router choices")
        spill.add_metric([], sum(v for k, v in routes.items() if k[2] == "true") / routed if routed else float("nan"))
        yield spill
