"""Thompson sampling per (kind, endpoint): which endpoint wins for this role or task kind, learned from outcomes.

Each arm is a Beta posterior: the prior (models.yaml ``router.priors``, or the priors of the active self-improved
release, issue 21) plus what was observed. An outcome
becomes a reward in [0, 1] — 1 for an evaluator pass, minus ``cost_weight``·USD and ``latency_weight``·seconds,
clipped — and updates the arm fractionally (alpha += r, beta += 1 - r; Agrawal & Goyal's trick for bounded
rewards), so a cheaper endpoint that passes as often wins.

The observations live in a ``BanditStore``: in memory, SQLite (the embedded default, one file in HOME) or
Postgres (many workers learning together); updates are applied live by every router reading the store.

Priors learned from this store's own observations (``naestro/improve/learn.py``) already contain them: ``counted``
names, per arm, the observation sums a prior was learned from, and only what the store saw beyond them is added,
so no outcome counts twice.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from naestro.endpoints import Prior, RouterConfig

__all__ = ["ArmStats", "BanditStore", "MemoryBanditStore", "PostgresBanditStore", "SqliteBanditStore",
           "ThompsonBandit", "open_store", "reward"]


@dataclass
class ArmStats:
    """What was observed for one (kind, endpoint); priors are added on read, never stored."""

    kind: str
    endpoint: str
    alpha: float = 0.0
    beta: float = 0.0
    pulls: int = 0
    successes: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    routed: int = 0
    spilled: int = 0


class BanditStore(Protocol):
    def load(self) -> dict[tuple[str, str], ArmStats]: ...

    def add_outcome(self, kind: str, endpoint: str, *, reward: float, success: bool, cost_usd: float,
                    latency_s: float) -> None: ...

    def add_decision(self, kind: str, endpoint: str, *, spilled: bool) -> None: ...


class MemoryBanditStore:
    def __init__(self) -> None:
        self._arms: dict[tuple[str, str], ArmStats] = {}
        self._lock = threading.Lock()

    def _arm(self, kind: str, endpoint: str) -> ArmStats:
        return self._arms.setdefault((kind, endpoint), ArmStats(kind, endpoint))

    def load(self) -> dict[tuple[str, str], ArmStats]:
        with self._lock:
            return {k: ArmStats(**vars(v)) for k, v in self._arms.items()}

    def add_outcome(self, kind: str, endpoint: str, *, reward: float, success: bool, cost_usd: float,
                    latency_s: float) -> None:
        with self._lock:
            a = self._arm(kind, endpoint)
            a.alpha += reward
            a.beta += 1 - reward
            a.pulls += 1
            a.successes += int(success)
            a.cost_usd += cost_usd
            a.latency_s += latency_s

    def add_decision(self, kind: str, endpoint: str, *, spilled: bool) -> None:
        with self._lock:
            a = self._arm(kind, endpoint)
            a.routed += 1
            a.spilled += int(spilled)


_COLUMNS = ("kind", "endpoint", "alpha", "beta", "pulls", "successes", "cost_usd", "latency_s", "routed", "spilled")
_DDL = """CREATE TABLE IF NOT EXISTS router_arms (
  kind TEXT NOT NULL, endpoint TEXT NOT NULL, alpha DOUBLE PRECISION NOT NULL DEFAULT 0,
  beta DOUBLE PRECISION NOT NULL DEFAULT 0, pulls INTEGER NOT NULL DEFAULT 0, successes INTEGER NOT NULL DEFAULT 0,
  cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0, latency_s DOUBLE PRECISION NOT NULL DEFAULT 0,
  routed INTEGER NOT NULL DEFAULT 0, spilled INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (kind, endpoint))"""
# One upsert per event; increments happen in the database so concurrent writers never lose an update.
_OUTCOME = """INSERT INTO router_arms (kind, endpoint, alpha, beta, pulls, successes, cost_usd, latency_s)
VALUES ({p}, {p}, {p}, {p}, 1, {p}, {p}, {p}) ON CONFLICT (kind, endpoint) DO UPDATE SET
alpha = router_arms.alpha + excluded.alpha, beta = router_arms.beta + excluded.beta, pulls = router_arms.pulls + 1,
successes = router_arms.successes + excluded.successes, cost_usd = router_arms.cost_usd + excluded.cost_usd,
latency_s = router_arms.latency_s + excluded.latency_s"""
_DECISION = """INSERT INTO router_arms (kind, endpoint, routed, spilled) VALUES ({p}, {p}, 1, {p})
ON CONFLICT (kind, endpoint) DO UPDATE SET routed = router_arms.routed + 1,
spilled = router_arms.spilled + excluded.spilled"""


Row = tuple[str, str, float, float, int, int, float, float, int, int]


def _rows_to_arms(rows: Iterable[Row]) -> dict[tuple[str, str], ArmStats]:
    return {(row[0], row[1]): ArmStats(*row) for row in rows}


class _SqlBanditStore:
    """The arms table over a DB-API connection; subclasses open it and name the parameter placeholder."""

    _db: Any
    _param: str

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db.execute(_DDL)

    def load(self) -> dict[tuple[str, str], ArmStats]:
        with self._lock:
            return _rows_to_arms(self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM router_arms").fetchall())

    def add_outcome(self, kind: str, endpoint: str, *, reward: float, success: bool, cost_usd: float,
                    latency_s: float) -> None:
        with self._lock:
            self._db.execute(_OUTCOME.format(p=self._param),  # a fixed template, never user text
                             (kind, endpoint, reward, 1 - reward, int(success), cost_usd, latency_s))

    def add_decision(self, kind: str, endpoint: str, *, spilled: bool) -> None:
        with self._lock:
            self._db.execute(_DECISION.format(p=self._param), (kind, endpoint, int(spilled)))

    def close(self) -> None:
        self._db.close()


class SqliteBanditStore(_SqlBanditStore):
    """The embedded default: HOME/router.sqlite (WAL, so `naestro router stats` reads while runs write)."""

    _param = "?"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection per process (the runtime's router); other processes sharing HOME wait for its writes.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        super().__init__()


class PostgresBanditStore(_SqlBanditStore):
    """Production: many workers share one table (naestro[postgres] provides psycopg)."""

    _param = "%s"

    def __init__(self, url: str) -> None:
        import psycopg  # an optional extra: imported only when a Postgres URL is configured

        self._db = psycopg.connect(url, autocommit=True)
        super().__init__()


def open_store(location: str | Path) -> SqliteBanditStore | PostgresBanditStore:
    """``postgresql://...`` → Postgres; anything else is a SQLite file path."""
    text = str(location)
    if text.startswith(("postgres://", "postgresql://")):
        return PostgresBanditStore(text)
    return SqliteBanditStore(Path(text))


def reward(*, success: bool, cost_usd: float, latency_s: float, cost_weight: float, latency_weight: float) -> float:
    r = float(success) - cost_weight * cost_usd - latency_weight * latency_s
    return min(1.0, max(0.0, r))


class ThompsonBandit:
    def __init__(self, store: BanditStore, *, priors: Sequence[Prior] = (), cost_weight: float = 0.0,
                 latency_weight: float = 0.0, rng: random.Random | None = None,
                 counted: Mapping[tuple[str, str], tuple[float, float]] | None = None) -> None:
        self.store, self.cost_weight, self.latency_weight = store, cost_weight, latency_weight
        self._priors = {(p.kind, p.endpoint): p for p in priors}
        self._counted = dict(counted or {})  # (kind, endpoint) -> (alpha, beta) observed sums inside its prior
        self.rng = rng or random.Random()

    @classmethod
    def from_config(cls, store: BanditStore, config: RouterConfig, *, rng: random.Random | None = None,
                    counted: Mapping[tuple[str, str], tuple[float, float]] | None = None) -> ThompsonBandit:
        return cls(store, priors=config.priors, cost_weight=config.cost_weight,
                   latency_weight=config.latency_weight, rng=rng, counted=counted)

    def prior(self, kind: str, endpoint: str) -> tuple[float, float]:
        p = self._priors.get((kind, endpoint)) or self._priors.get(("*", endpoint))
        return (p.alpha, p.beta) if p else (1.0, 1.0)

    def posterior(self, kind: str, endpoint: str, arms: dict[tuple[str, str], ArmStats] | None = None
                  ) -> tuple[float, float]:
        a0, b0 = self.prior(kind, endpoint)
        arm = (arms if arms is not None else self.store.load()).get((kind, endpoint))
        if arm is None:
            return a0, b0
        # A store that holds less than was counted (another home's, or reset since) adds nothing, never less.
        seen_a, seen_b = self._counted.get((kind, endpoint), (0.0, 0.0))
        return a0 + max(0.0, arm.alpha - seen_a), b0 + max(0.0, arm.beta - seen_b)

    def choose(self, kind: str, endpoints: Sequence[str], *, explore: bool = True) -> tuple[str, dict[str, float]]:
        """Sample each arm's posterior (or take its mean when not exploring); the highest wins, ties by order."""
        if not endpoints:
            raise ValueError("no endpoints to choose from")
        arms = self.store.load()
        scores: dict[str, float] = {}
        for name in endpoints:
            a, b = self.posterior(kind, name, arms)
            scores[name] = round(self.rng.betavariate(a, b) if explore else a / (a + b), 4)
        best = max(endpoints, key=lambda n: scores[n])
        return best, scores

    def update(self, kind: str, endpoint: str, *, success: bool, cost_usd: float, latency_s: float) -> float:
        r = reward(success=success, cost_usd=cost_usd, latency_s=latency_s, cost_weight=self.cost_weight,
                   latency_weight=self.latency_weight)
        self.store.add_outcome(kind, endpoint, reward=r, success=success, cost_usd=cost_usd, latency_s=latency_s)
        return r
