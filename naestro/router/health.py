"""Live health of each endpoint, as the router sees it: up/down, calls in flight, latency over a sliding window.

Kept in-process (one board per router, shared by every run the process makes): health is a property of the
endpoint right now, not of a run, so it is neither checkpointed nor persisted. A failed endpoint is skipped
for a cooldown, after which the next call tries it again (half-open), so a restarted server is used again.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["EndpointHealth", "HealthBoard"]


@dataclass
class EndpointHealth:
    window: int
    latencies: deque[float] = field(init=False)
    in_flight: int = 0
    down_until: float = 0.0
    failures: int = 0
    last_error: str | None = None
    calls: int = 0

    def __post_init__(self) -> None:
        self.latencies = deque(maxlen=self.window)

    def p95(self) -> float | None:
        """Nearest-rank 95th percentile of the window, or None before the first call."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class HealthBoard:
    """Thread-safe: parallel task nodes call through one router."""

    def __init__(self, *, window: int = 20, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.cooldown_s, self.clock = window, cooldown_s, clock
        self._lock = threading.Lock()
        self._by_name: dict[str, EndpointHealth] = {}

    def get(self, name: str) -> EndpointHealth:
        with self._lock:
            if name not in self._by_name:
                self._by_name[name] = EndpointHealth(window=self.window)
            return self._by_name[name]

    def seed_latency(self, name: str, p95_s: float) -> None:
        """A measured profile (from `naestro router tune`) stands in until real calls fill the window."""
        h = self.get(name)
        with self._lock:
            if not h.latencies:
                h.latencies.append(p95_s)

    def is_down(self, name: str) -> bool:
        h = self.get(name)
        return self.clock() < h.down_until

    def started(self, name: str) -> None:
        h = self.get(name)
        with self._lock:
            h.in_flight += 1

    def finished(self, name: str, *, latency_s: float | None, error: str | None = None,
                 healthy: bool = False) -> None:
        """End of one attempt: a latency on success, an error string on failure (not both). ``healthy``: the
        error was the request's fault (bad request, prompt too long), not the endpoint's."""
        h = self.get(name)
        with self._lock:
            h.in_flight = max(0, h.in_flight - 1)
            h.calls += 1
            if error is None:
                if latency_s is not None:
                    h.latencies.append(latency_s)
                h.failures, h.down_until = 0, 0.0
            elif not healthy:
                h.failures += 1
                h.last_error = error

    def mark_down(self, name: str, reason: str) -> None:
        h = self.get(name)
        with self._lock:
            h.down_until = self.clock() + self.cooldown_s
            h.last_error = reason

    def snapshot(self) -> dict[str, EndpointHealth]:
        with self._lock:
            return dict(self._by_name)
