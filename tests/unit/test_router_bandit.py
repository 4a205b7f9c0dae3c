"""Thompson bandit: priors, rewards, persistence in real SQLite, and its place in the router's choice."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from naestro.endpoints import Endpoint, ModelRegistry, Prior, RouterConfig, load_registry
from naestro.errors import ConfigError
from naestro.router import MemoryBanditStore, Router, RouteRequest, SqliteBanditStore, ThompsonBandit, open_store
from naestro.router.bandit import reward


def test_reward_is_cost_and_latency_aware_and_bounded() -> None:
    assert reward(success=True, cost_usd=0.0, latency_s=0.0, cost_weight=1, latency_weight=0.01) == 1.0
    assert reward(success=True, cost_usd=0.1, latency_s=20.0, cost_weight=1, latency_weight=0.01) == pytest.approx(0.7)
    assert reward(success=False, cost_usd=0.1, latency_s=5.0, cost_weight=1, latency_weight=0.01) == 0.0
    assert reward(success=True, cost_usd=5.0, latency_s=0.0, cost_weight=1, latency_weight=0) == 0.0


def test_priors_from_config_kind_specific_before_wildcard() -> None:
    b = ThompsonBandit(MemoryBanditStore(), priors=[Prior(endpoint="big", alpha=8, beta=2),
                                                    Prior(endpoint="big", kind="runner", alpha=1, beta=9)])
    assert b.posterior("coder", "big") == (8, 2)
    assert b.posterior("runner", "big") == (1, 9)
    assert b.posterior("coder", "small") == (1, 1)


def test_learns_the_arm_that_wins() -> None:
    rng = random.Random(7)
    b = ThompsonBandit(MemoryBanditStore(), rng=random.Random(1))
    truth = {"small": 0.3, "big": 0.8}
    picks = []
    for _ in range(300):
        arm, _ = b.choose("coder", ["small", "big"])
        picks.append(arm)
        b.update("coder", arm, success=rng.random() < truth[arm], cost_usd=0, latency_s=0)
    assert picks[-100:].count("big") > 80
    a, bb = b.posterior("coder", "big")
    assert a / (a + bb) == pytest.approx(0.8, abs=0.1)


def test_cost_weight_makes_an_equally_good_cheap_arm_win() -> None:
    b = ThompsonBandit(MemoryBanditStore(), cost_weight=5.0)
    for _ in range(20):
        b.update("coder", "cheap", success=True, cost_usd=0.0, latency_s=1)
        b.update("coder", "pricey", success=True, cost_usd=0.1, latency_s=1)
    assert b.choose("coder", ["pricey", "cheap"], explore=False)[0] == "cheap"


def test_sqlite_store_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "router.sqlite"
    first = ThompsonBandit(SqliteBanditStore(path))
    first.update("coder", "big", success=True, cost_usd=0.01, latency_s=3.0)
    first.update("coder", "big", success=False, cost_usd=0.01, latency_s=5.0)
    first.store.add_decision("coder", "big", spilled=True)
    second = ThompsonBandit(open_store(path))
    arm = second.store.load()[("coder", "big")]
    assert (arm.pulls, arm.successes, arm.routed, arm.spilled) == (2, 1, 1, 1)
    assert arm.cost_usd == pytest.approx(0.02) and arm.latency_s == pytest.approx(8.0)
    assert second.posterior("coder", "big") == (2.0, 2.0)


def test_router_uses_bandit_within_local_tier_unless_pinned() -> None:
    eps = tuple(Endpoint(name=n, kind="openai", model=n, base_url="http://127.0.0.1:9/v1", context=8192,
                         capabilities=("json_schema",), locality=loc)
                for n, loc in (("small", "local"), ("big", "local"), ("cloud", "cloud")))
    cfg = RouterConfig(bandit=True, priors=(Prior(endpoint="big", alpha=50, beta=1),
                                            Prior(endpoint="small", alpha=1, beta=50),
                                            Prior(endpoint="cloud", alpha=1000, beta=1)))
    reg = ModelRegistry(default="small", endpoints=eps, router=cfg)
    store = MemoryBanditStore()
    r = Router(reg, bandit=ThompsonBandit.from_config(store, cfg, rng=random.Random(0)))
    d = r.decide(RouteRequest(kind="coder", prompt_tokens=10))
    assert d.endpoint.name == "big" and d.rule == "bandit" and set(d.scores) == {"small", "big"}
    assert r.decide(RouteRequest(kind="coder", prompt_tokens=10, requested="small")).endpoint.name == "big"
    pinned = r.decide(RouteRequest(kind="coder", prompt_tokens=10, requested="small", pinned=True))
    assert (pinned.endpoint.name, pinned.rule) == ("small", "requested")
    assert r.record_outcome("coder", "big", success=True, cost_usd=0, latency_s=1) == 1.0
    assert store.load()[("coder", "big")].successes == 1


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "models.yaml"
    p.write_text(text)
    return p


BASE = """default: a
endpoints:
  - {name: a, kind: vllm, model: m, base_url: "http://127.0.0.1:1/v1", context: 4096}
"""


@pytest.mark.parametrize(("text", "message"), [
    ("default: a\nendpoints: [", "invalid YAML"),
    (BASE + "  - {name: a, kind: vllm, model: m, base_url: x, context: 1}\n", "duplicate name 'a'"),
    (BASE.replace("default: a", "default: zz"), "default: unknown endpoint 'zz'"),
    (BASE + "fast: nope\n", "fast: unknown endpoint 'nope'"),
    (BASE + "router: {priors: [{endpoint: ghost}]}\n", "router.priors.0.endpoint: unknown endpoint 'ghost'"),
    (BASE + "router: {retries: -1}\n", "router.retries: Input should be greater than or equal to 0"),
    (BASE.replace("context: 4096", "context: 4096, concurrency: 0"), "endpoints.0.concurrency"),
    (BASE.replace("kind: vllm", "kind: tgi"), "endpoints.0.kind"),
])
def test_malformed_models_yaml_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert message in str(info.value) and info.value.file == str(path)


def test_packaged_registry_loads_with_router_section() -> None:
    reg = load_registry()
    assert reg.router.retries >= 0 and {e.name for e in reg.endpoints} >= {"coder-1.5b", "coder-0.5b"}
