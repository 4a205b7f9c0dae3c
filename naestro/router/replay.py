"""Routing benchmark by replay: recorded real outcomes of two models on the same items, routers judged offline.

Files (JSON lines): items ``{"id", "prompt"}`` — the text the router sees; other shapes such as BFCL's
``question`` + ``function`` are read too (``items.py``) — and outcomes ``{"id", "model", "passed",
"prompt_tokens", "completion_tokens", "latency_s"}``, optionally with ``completion`` and ``signals`` (the cheap
runtime signals of ``signals.py``), one per (item, model); a later row for the same pair replaces an earlier
one (a re-recording). Any two model names work; the one with the higher mean cost is "large". Cost is latency
(seconds) unless prices per 1K tokens are given.

The items are split deterministically (by a hash of the id) into a training part and a held-out test part;
every router is scored on the test part only:

* ``always-small`` / ``always-large`` — the two anchors;
* ``random`` — each call to either model with probability ½ (expected value over many seeds);
* ``rules`` — Naestro's rule router as configured for these two local endpoints (the large one is the
  default; same context): it sends everything to the large model unless a prompt does not fit;
* ``length-rule`` — a prompt-length threshold learned on the training part: prompts longer than it go to
  the large model (the best threshold with at most ``max_large_share`` of training calls to large);
* ``bandit`` — Naestro's ThompsonBandit, with the prompt-length tercile (cut points from the training part)
  as the task kind, learning online from each outcome over the training part and then the test part with
  bandit feedback only (it sees the outcome of the model it chose); reward = pass − latency_weight·cost/
  (mean large cost); mean over ``seeds`` runs;
* ``cascade-examples`` — when the outcomes carry signals: the small model first, the large one when the small
  model's answer fails one of the docstring's examples (a fixed rule, nothing tuned);
* ``cascade-repair`` — when the small model's rows carry a ``repair`` (``bench.routing.record --repair``): the
  examples rule with one repair turn first: an answer that fails an example goes back to the small model with the
  failures (call, what it returned, what the docstring expects); the large model is called only when the repaired
  answer still fails one. Cost: the small call, the repair, and the large call when it escalates. A live run's
  retry with its failed checks as feedback is the same step (``router.cascade.small_attempts``);
* ``cascade`` — the same with thresholds over every recorded signal (examples, no examples, mean / min token
  logprob, vote) tuned on the training part for the best quality with at most ``max_large_share`` of its calls
  escalated; its cost is the small call plus the large call when it escalates. ``cascade_cv`` in the result
  is the 2-fold cross-validated cascade: tuned on each part, scored on the other, pooled over all items;
* ``oracle`` — the small model whenever it passes, else the large one if that passes (the upper bound).
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naestro.endpoints import Endpoint, ModelRegistry
from naestro.errors import ConfigError
from naestro.router.bandit import MemoryBanditStore, ThompsonBandit
from naestro.router.cascade import CascadeCase, Thresholds, escalation, tune
from naestro.router.items import load_items
from naestro.router.route import NoRoute, Router, RouteRequest
from naestro.router.signals import Signals

__all__ = ["Outcome", "Repair", "ReplayResult", "Row", "load_items", "load_outcomes", "replay"]


class Repair(BaseModel):
    """The small model's second answer after it was told which docstring examples its first answer failed."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    passed: bool
    examples_passed: int = Field(ge=0)
    examples_total: int = Field(ge=1)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    latency_s: float = Field(ge=0)

    @property
    def examples_ok(self) -> bool:
        return self.examples_passed == self.examples_total


class Outcome(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    id: str
    model: str
    passed: bool
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    latency_s: float = Field(ge=0)
    completion: str | None = None
    signals: Signals | None = None
    repair: Repair | None = None


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc.strerror if isinstance(exc, OSError) else 'not UTF-8'}",
                          file=str(path)) from exc
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


M = TypeVar("M", bound=BaseModel)


def _parse(path: Path, model: type[M]) -> list[M]:
    rows: list[M] = []
    for n, line in _lines(path):
        try:
            rows.append(model.model_validate_json(line))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"line {n}: {problems}", file=str(path)) from exc
    if not rows:
        raise ConfigError("no rows", file=str(path))
    return rows


def load_outcomes(path: Path) -> list[Outcome]:
    """The outcomes, the last row per (id, model) kept (a re-recording appends rather than rewrites)."""
    latest = {(o.id, o.model): o for o in _parse(path, Outcome)}
    return list(latest.values())


@dataclass(frozen=True)
class Row:
    name: str
    quality: float
    cost: float
    large_share: float

    def json(self) -> dict[str, float | str]:
        return {"name": self.name, "quality": round(self.quality, 4), "cost": round(self.cost, 4),
                "large_share": round(self.large_share, 4)}


@dataclass(frozen=True)
class ReplayResult:
    small: str
    large: str
    train: int
    test: int
    rows: tuple[Row, ...]
    note: str
    cascade: Thresholds | None = None
    cascade_cv: Row | None = None
    cv_large: Row | None = None  # always-large over all items: the anchor of ``cascade_cv``
    untuned: tuple[Row, ...] = ()  # the routers with nothing learned (anchors, fixed cascades, oracle), all items

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)


def _split(ids: Sequence[str], test_share: float, seed: int) -> tuple[list[str], list[str]]:
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    n_test = max(1, round(len(ranked) * test_share))
    return ranked[n_test:], ranked[:n_test]


def replay(items: dict[str, str], outcomes: Sequence[Outcome], *, test_share: float = 0.5, seed: int = 0,
           seeds: int = 50, latency_weight: float = 0.5, max_large_share: float = 0.4,
           prices: dict[str, tuple[float, float]] | None = None, signalled_only: bool = False) -> ReplayResult:
    """``signalled_only``: replay only the items whose small-model row carries signals (a partial re-recording),
    so that every router, the cascade included, is scored on the same items."""
    table: dict[str, dict[str, Outcome]] = {}
    for o in outcomes:
        table.setdefault(o.id, {})[o.model] = o
    models = sorted({o.model for o in outcomes})
    if len(models) != 2:
        raise ConfigError(f"outcomes must cover exactly two models, found {len(models)}: {', '.join(models)}")
    ids = sorted(i for i in items if len(table.get(i, {})) == 2)
    if len(ids) < 4:
        raise ConfigError(f"only {len(ids)} item(s) have outcomes for both models; need at least 4")

    def cost(o: Outcome) -> float:
        if prices and o.model in prices:
            p_in, p_out = prices[o.model]
            return (o.prompt_tokens * p_in + o.completion_tokens * p_out) / 1000
        return o.latency_s

    mean_cost = {m: statistics.fmean(cost(table[i][m]) for i in ids) for m in models}
    small, large = sorted(models, key=lambda m: (mean_cost[m], m))
    if signalled_only:
        ids = [i for i in ids if table[i][small].signals is not None]
        if len(ids) < 4:
            raise ConfigError(f"only {len(ids)} item(s) have signals for {small}; need at least 4")
        mean_cost = {m: statistics.fmean(cost(table[i][m]) for i in ids) for m in models}
    train, test = _split(ids, test_share, seed)
    tokens = {i: table[i][large].prompt_tokens for i in ids}

    def score(name: str, choose: Callable[[str], str], on: Sequence[str] = test) -> Row:
        picks = [choose(i) for i in on]
        return Row(name, statistics.fmean(table[i][m].passed for i, m in zip(on, picks, strict=True)),
                   statistics.fmean(cost(table[i][m]) for i, m in zip(on, picks, strict=True)),
                   picks.count(large) / len(picks))

    rows = [score("always-small", lambda i: small), score("always-large", lambda i: large)]

    randoms = []
    for s in range(seeds):
        rng = random.Random(s)
        randoms.append(score("random", lambda i, rng=rng: rng.choice((small, large))))  # type: ignore[misc]
    rows.append(_mean("random", randoms))

    rows.append(score("rules", _rules_router(items, small=small, large=large)))

    threshold = _length_threshold([(tokens[i], table[i]) for i in train], small=small, large=large,
                                  max_large_share=max_large_share)
    rows.append(score("length-rule", lambda i: large if tokens[i] > threshold else small))

    cuts = _terciles([tokens[i] for i in train])
    scale = mean_cost[large]
    kinds: dict[str, Callable[[str], str]] = {"bandit": lambda i: _bucket(tokens[i], cuts),
                                              "bandit-role": lambda i: "coder"}
    for name, kind_of in kinds.items():
        runs = []
        for s in range(seeds):
            bandit = ThompsonBandit(MemoryBanditStore(), latency_weight=latency_weight / scale,
                                    rng=random.Random(s))
            for i in train:
                _bandit_step(bandit, kind_of(i), table[i], cost, small, large)
            picks: dict[str, str] = {}
            for i in test:  # keeps learning while it is scored, as it would in production
                picks[i] = _bandit_step(bandit, kind_of(i), table[i], cost, small, large)
            runs.append(score(name, picks.__getitem__))
        rows.append(_mean(name, runs))

    def oracle(i: str) -> str:
        return small if table[i][small].passed or not table[i][large].passed else large

    note = (f"length-rule threshold: {threshold} prompt tokens; bandit kinds: prompt-length terciles "
            f"{cuts}; latency_weight {latency_weight}; {seeds} seeds")
    tuned: Thresholds | None = None
    untuned = [score("always-small", lambda i: small, ids), score("always-large", lambda i: large, ids)]
    cv: Row | None = None
    cv_large: Row | None = None
    unsignalled = [i for i in ids if table[i][small].signals is None]
    if unsignalled:
        note += f"; no cascade: {len(unsignalled)} item(s) lack the small model's signals"
    else:
        def cascade_score(name: str, t: Thresholds, on: Sequence[str]) -> Row:
            up = [escalation(_signals(table[i][small]), t) is not None for i in on]
            return Row(name, statistics.fmean(table[i][large if e else small].passed for i, e in zip(on, up,
                                                                                                      strict=True)),
                       statistics.fmean(cost(table[i][small]) + (cost(table[i][large]) if e else 0.0)
                                        for i, e in zip(on, up, strict=True)),
                       statistics.fmean(up))

        def cases(on: Sequence[str]) -> list[CascadeCase]:
            return [CascadeCase(_signals(table[i][small]), table[i][small].passed, table[i][large].passed)
                    for i in on]

        rows.append(cascade_score("cascade-examples", Thresholds(), test))
        untuned.append(cascade_score("cascade-examples", Thresholds(), ids))
        unrepaired = [i for i in ids
                      if _signals(table[i][small]).examples_ok is False and table[i][small].repair is None]
        if unrepaired:
            note += f"; no cascade-repair: {len(unrepaired)} answer(s) failing an example have no recorded repair"
        else:
            def repair_score(on: Sequence[str]) -> Row:
                picks = [_repaired(table[i], small, large, cost) for i in on]
                return Row("cascade-repair", statistics.fmean(ok for ok, _, _ in picks),
                           statistics.fmean(c for _, c, _ in picks), statistics.fmean(up for _, _, up in picks))
            rows.append(repair_score(test))
            untuned.append(repair_score(ids))
        tuned = tune(cases(train), max_large_share=max_large_share)
        rows.append(cascade_score("cascade", tuned, test))
        folds = [cascade_score("cv", tune(cases(fit), max_large_share=max_large_share), held)
                 for fit, held in ((train, test), (test, train))]
        n = len(test), len(train)
        cv = Row("cascade (2-fold CV)", *(sum(getattr(r, f) * k for r, k in zip(folds, n, strict=True)) / sum(n)
                                          for f in ("quality", "cost", "large_share")))
        everything = (*test, *train)
        cv_large = Row("always-large (all items)", statistics.fmean(table[i][large].passed for i in everything),
                       statistics.fmean(cost(table[i][large]) for i in everything), 1.0)
        note += f"; cascade tuned on the training part: {tuned.describe()}"
    rows.append(score("oracle", oracle))
    untuned.append(score("oracle", oracle, ids))
    return ReplayResult(small, large, len(train), len(test), tuple(rows), note, tuned, cv, cv_large, tuple(untuned))


def _repaired(row: dict[str, Outcome], small: str, large: str, cost: Callable[[Outcome], float]
              ) -> tuple[bool, float, bool]:
    """(passed, cost, escalated) of the examples cascade with one repair turn on the small model."""
    first = row[small]
    if _signals(first).examples_ok is not False:
        return first.passed, cost(first), False
    fix = first.repair
    assert fix is not None  # checked for every such item before this router is scored
    # priced like any call of the small model (tokens with prices, else latency)
    spent = cost(first) + cost(first.model_copy(update={
        "prompt_tokens": fix.prompt_tokens, "completion_tokens": fix.completion_tokens, "latency_s": fix.latency_s}))
    if fix.examples_ok:
        return fix.passed, spent, False
    return row[large].passed, spent + cost(row[large]), True


def _signals(o: Outcome) -> Signals:
    assert o.signals is not None  # checked for every item before the cascade is scored
    return o.signals


def _mean(name: str, rows: Sequence[Row]) -> Row:
    return Row(name, statistics.fmean(r.quality for r in rows), statistics.fmean(r.cost for r in rows),
               statistics.fmean(r.large_share for r in rows))


def _rules_router(items: dict[str, str], *, small: str, large: str) -> Callable[[str], str]:
    """The production rules with both models as local endpoints of equal context, the large one the default."""
    eps = tuple(Endpoint(name=m, kind="openai", model=m, base_url="http://127.0.0.1:9/v1", context=8192,
                         capabilities=("json_schema", "code")) for m in (large, small))
    router = Router(ModelRegistry(default=large, endpoints=eps))

    def choose(i: str) -> str:
        req = RouteRequest(kind="coder", prompt_tokens=len(items[i]) // 3, max_output_tokens=384,
                           requested=large)
        try:
            return router.decide(req).endpoint.name
        except NoRoute:
            return large
    return choose


def _length_threshold(train: Sequence[tuple[int, dict[str, Outcome]]], *, small: str, large: str,
                      max_large_share: float) -> int:
    best = (-1.0, 0)
    candidates = sorted({t for t, _ in train} | {max(t for t, _ in train)})
    for threshold in candidates:
        sent = [large if t > threshold else small for t, _ in train]
        if sent.count(large) / len(sent) > max_large_share:
            continue
        quality = statistics.fmean(o[m].passed for (_, o), m in zip(train, sent, strict=True))
        if quality > best[0]:
            best = (quality, threshold)
    return best[1]


def _terciles(values: Sequence[int]) -> list[int]:
    ordered = sorted(values)
    return [ordered[len(ordered) // 3], ordered[2 * len(ordered) // 3]]


def _bucket(tokens: int, cuts: Sequence[int]) -> str:
    return f"len{sum(tokens > c for c in cuts)}"


def _bandit_step(bandit: ThompsonBandit, kind: str, row: dict[str, Outcome], cost: Callable[[Outcome], float],
                 small: str, large: str) -> str:
    chosen, _ = bandit.choose(kind, [small, large])
    o = row[chosen]
    bandit.update(kind, chosen, success=o.passed, cost_usd=0.0, latency_s=cost(o))
    return chosen


def result_json(result: ReplayResult) -> str:
    return json.dumps([r.json() for r in result.rows], indent=2)
