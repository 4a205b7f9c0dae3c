"""One contract for every bandit store: in memory, SQLite file, and the real Postgres on 127.0.0.1:5432."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from naestro.router import BanditStore, MemoryBanditStore, SqliteBanditStore, ThompsonBandit, open_store

PG_URL = os.environ.get("NAESTRO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def factories(tmp_path: Path) -> dict[str, Callable[[], BanditStore]]:
    shared = MemoryBanditStore()
    return {"memory": lambda: shared, "sqlite": lambda: SqliteBanditStore(tmp_path / "router.sqlite"),
            "postgres": lambda: open_store(PG_URL)}


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], BanditStore]:
    return factories(tmp_path)[request.param]


@pytest.fixture
def kind() -> str:
    return f"k-{uuid.uuid4().hex[:8]}"  # the Postgres table is shared: every test writes its own kind


def test_outcomes_and_decisions_accumulate(make: Callable[[], BanditStore], kind: str) -> None:
    store = make()
    store.add_outcome(kind, "big", reward=0.75, success=True, cost_usd=0.5, latency_s=2.0)
    store.add_outcome(kind, "big", reward=0.0, success=False, cost_usd=0.25, latency_s=1.0)
    store.add_decision(kind, "big", spilled=False)
    store.add_decision(kind, "small", spilled=True)
    arms = make().load()  # a second handle sees the same rows (the same file / database)
    big, small = arms[(kind, "big")], arms[(kind, "small")]
    assert (big.alpha, big.beta, big.pulls, big.successes, big.routed, big.spilled) == (0.75, 1.25, 2, 1, 1, 0)
    assert (big.cost_usd, big.latency_s) == (0.75, 3.0)
    assert (small.pulls, small.routed, small.spilled) == (0, 1, 1)


def test_concurrent_writers_lose_no_update(make: Callable[[], BanditStore], kind: str) -> None:
    stores = [make() for _ in range(4)]

    def write(store: BanditStore) -> None:
        for _ in range(25):
            store.add_outcome(kind, "e", reward=1.0, success=True, cost_usd=0.0, latency_s=0.1)

    threads = [threading.Thread(target=write, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert make().load()[(kind, "e")].pulls == 100


def test_bandit_reads_live_updates_from_another_handle(make: Callable[[], BanditStore], kind: str) -> None:
    reader = ThompsonBandit(make())
    writer = ThompsonBandit(make())
    assert reader.posterior(kind, "e") == (1.0, 1.0)
    writer.update(kind, "e", success=True, cost_usd=0, latency_s=0)
    assert reader.posterior(kind, "e") == (2.0, 1.0)
