"""The metrics page's data: the same series ``naestro metrics`` serves to Prometheus, as JSON.

One ``EventsCollector`` per app folds every run's events.jsonl incrementally (new lines only), so the numbers
match what a Prometheus scrape of the same home shows; the browser draws them.
"""

from __future__ import annotations

import math

from pydantic import JsonValue

from naestro.telemetry import EventsCollector

__all__ = ["metrics_json"]


def _value(v: float) -> float | None:
    return None if math.isnan(v) or math.isinf(v) else v


def metrics_json(collector: EventsCollector) -> list[JsonValue]:
    """Every metric family with its samples (histograms as their ``_sum``/``_count``/``_bucket`` samples)."""
    out: list[JsonValue] = []
    for fam in collector.collect():
        samples: list[JsonValue] = [{"name": s.name, "labels": dict(s.labels), "value": _value(s.value)}
                                    for s in fam.samples]
        out.append({"name": fam.name, "type": fam.type, "help": fam.documentation, "samples": samples})
    return out
