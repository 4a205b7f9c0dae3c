"""The cascade: answer with the small model first, escalate to the large one when a cheap signal says it failed.

A bandit learns *which model wins on average* for a kind of call; it cannot tell which of two similar prompts
the small model gets wrong, so it keeps paying for the large model on many calls the small one would pass.
A cascade looks at the small model's actual answer instead: it runs the answer's cheap checks (the task's own
acceptance checks live; the docstring's examples, the model's token log-probabilities and a self-consistency
vote in the replay, see ``signals.py``) and only calls the large model when one fails.

``Thresholds`` says which signals escalate; ``escalation`` applies them to one answer's ``Signals``;
``tune`` picks thresholds on recorded outcomes (the replay tunes on its training half and scores on the
held-out half). ``Cascade`` is the live state: which tasks failed their checks on the small model.
"""

from __future__ import annotations

import itertools
import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from naestro.router.signals import Signals

__all__ = ["Cascade", "CascadeCase", "Thresholds", "escalation", "tune"]

_V = TypeVar("_V")


class Thresholds(BaseModel):
    """Which cheap signals send a call on to the large model (any one failing escalates)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    examples: bool = Field(default=True, description="escalate when the answer fails a docstring example")
    no_examples: bool = Field(default=False, description="escalate when the prompt shows no examples at all")
    min_mean_logprob: float | None = Field(default=None, le=0, description="escalate below this mean logprob")
    min_token_logprob: float | None = Field(default=None, le=0, description="escalate when any token is below")
    vote: bool = Field(default=False, description="escalate when a temperature sample behaves differently")

    def describe(self) -> str:
        parts = [name for name, on in (("examples fail", self.examples), ("no examples", self.no_examples),
                                       ("vote disagrees", self.vote)) if on]
        if self.min_mean_logprob is not None:
            parts.append(f"mean logprob < {self.min_mean_logprob:g}")
        if self.min_token_logprob is not None:
            parts.append(f"min token logprob < {self.min_token_logprob:g}")
        return "escalate when " + (" or ".join(parts) if parts else "never")


def escalation(signals: Signals, t: Thresholds) -> str | None:
    """Why this answer goes to the large model (None: keep the small model's answer).

    A signal that was not measured (no logprobs, no vote) never escalates on its own."""
    if t.examples and signals.examples_ok is False:
        return f"failed {signals.examples_total - signals.examples_passed}/{signals.examples_total} examples"
    if t.no_examples and signals.examples_ok is None:
        return "no examples to check the answer against"
    if t.min_mean_logprob is not None and signals.mean_logprob is not None \
            and signals.mean_logprob < t.min_mean_logprob:
        return f"mean logprob {signals.mean_logprob:.3f} < {t.min_mean_logprob:g}"
    if t.min_token_logprob is not None and signals.min_logprob is not None \
            and signals.min_logprob < t.min_token_logprob:
        return f"a token at logprob {signals.min_logprob:.3f} < {t.min_token_logprob:g}"
    if t.vote and signals.vote_ok is False:
        return f"{signals.vote_total - signals.vote_agree}/{signals.vote_total} samples disagree"
    return None


@dataclass(frozen=True)
class CascadeCase:
    """One recorded item: the small model's signals and whether each model's answer passed."""

    signals: Signals
    small_passed: bool
    large_passed: bool


def _score(cases: Sequence[CascadeCase], t: Thresholds) -> tuple[float, float]:
    """(quality, share escalated) of the cascade with thresholds ``t`` on ``cases``."""
    up = [escalation(c.signals, t) is not None for c in cases]
    quality = statistics.fmean(c.large_passed if e else c.small_passed for c, e in zip(cases, up, strict=True))
    return quality, statistics.fmean(up)


def _cuts(values: Sequence[float], n: int) -> list[float | None]:
    """None (off) and up to ``n`` cut points between observed values (midpoints, so no value sits on a cut)."""
    ordered = sorted(set(values))
    if len(ordered) < 2:
        return [None]
    step = max(1, len(ordered) // n)
    mids = [round((a + b) / 2, 4) for a, b in itertools.pairwise(ordered)][::step]
    return [None, *mids]


def tune(cases: Sequence[CascadeCase], *, max_large_share: float = 0.4, grid: int = 16) -> Thresholds:
    """The thresholds with the best quality on ``cases`` that send at most ``max_large_share`` of them to the
    large model (ties: fewer escalations, then fewer signals switched on). Always returns something: when no
    combination fits the share, the one with the fewest escalations."""
    if not cases:
        raise ValueError("tune needs at least one recorded case")
    means = _cuts([c.signals.mean_logprob for c in cases if c.signals.mean_logprob is not None], grid)
    mins = _cuts([c.signals.min_logprob for c in cases if c.signals.min_logprob is not None], grid)
    votes = [False, True] if any(c.signals.vote_total for c in cases) else [False]
    best: tuple[tuple[float, float, int], Thresholds] | None = None
    fallback: tuple[tuple[float, float], Thresholds] | None = None
    for ex, silent, mean, low, vote in itertools.product((True, False), (False, True), means, mins, votes):
        t = Thresholds(examples=ex, no_examples=silent, min_mean_logprob=mean, min_token_logprob=low, vote=vote)
        quality, share = _score(cases, t)
        on = ex + silent + vote + (mean is not None) + (low is not None)
        if share <= max_large_share + 1e-9:
            key = (quality, -share, -on)
            if best is None or key > best[0]:
                best = (key, t)
        elif fallback is None or (share, -quality) < fallback[0]:
            fallback = ((share, -quality), t)
    if best is not None:
        return best[1]
    assert fallback is not None
    return fallback[1]


class Cascade:
    """Live cascade state for one router: the tasks whose checks failed on the small model go to the large one.

    The task's acceptance checks are the signal in a run: the first attempt of a task is routed to the small
    endpoint; a failed check (an evaluator verdict from the ``OutcomeFeed``) escalates the task's later calls.
    With ``small_attempts`` > 1 the small endpoint keeps the task for that many failed attempts first: a retry
    gets the checks' failures as feedback, the live form of the replay's repair turn (``cascade-repair``).
    """

    def __init__(self, *, small: str, large: str, remember: int = 10_000, small_attempts: int = 1) -> None:
        if small_attempts < 1:
            raise ValueError("small_attempts must be at least 1")
        self.small, self.large = small, large
        self.small_attempts = small_attempts
        self._failed: dict[str, str] = {}  # insertion-ordered: the oldest escalations are forgotten first
        self._misses: dict[str, int] = {}  # failed attempts on the small endpoint, per task not yet escalated
        self._remember = remember
        self._lock = threading.Lock()

    def target(self, task: str) -> tuple[str, str]:
        """(endpoint, why) for the next call of ``task``."""
        with self._lock:
            why = self._failed.get(task)
        if why is None:
            return self.small, f"cascade: {self.small} first for task {task}"
        return self.large, f"cascade: escalated task {task} to {self.large} ({why})"

    def verdict(self, task: str, endpoint: str, *, passed: bool) -> bool:
        """Record a task attempt's check verdict; True when it escalates the task."""
        if passed or endpoint != self.small:
            return False
        with self._lock:
            if task in self._failed:
                return False
            misses = self._misses.pop(task, 0) + 1
            if misses < self.small_attempts:
                self._misses[task] = misses
                _forget_oldest(self._misses, keep=self._remember)
                return False
            self._failed[task] = (f"its checks failed on {self.small}" if misses == 1
                                  else f"its checks failed {misses} times on {self.small}")
            _forget_oldest(self._failed, keep=self._remember)
        return True


def _forget_oldest(entries: dict[str, _V], *, keep: int) -> None:
    """Drop the oldest entries (insertion order) beyond ``keep``: a long-lived server routes many runs' tasks."""
    while len(entries) > keep:
        del entries[next(iter(entries))]
