"""Learn → the live router (issue 21), without runs: priors learned from a real SQLite bandit store are merged
into a signed release, the composition root builds the next router from them (without counting the store's
observations twice), and a rollback takes them back. Real git, real Ed25519, the real composition root."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from naestro.commands.router import stats_rows
from naestro.endpoints import Endpoint, ModelRegistry, Prior, RouterConfig, load_registry
from naestro.errors import ConfigError
from naestro.improve import ActiveConfig, ConfigRepo, Proposal, load_active, with_active_priors
from naestro.improve.canary import CanaryReport
from naestro.improve.learn import learned_from_yaml, parse_learned_from, priors_from
from naestro.improve.loop import ImproveLoop
from naestro.improve.release import publish
from naestro.improve.repo import MAIN, seed_files
from naestro.improve.rollback import rollback
from naestro.improve.validate import Validation, side_router, side_runtime
from naestro.llm import EndpointProvider
from naestro.router import RouteRequest, SqliteBanditStore, ThompsonBandit
from naestro.runtime import build_runtime
from naestro.settings import Settings
from policies.audit import load_signing_key
from policies.engines import RegorusEngine, load_bundle
from tests.fakes import ScriptedProvider

MODELS = """default: small
fast: small
endpoints:
  - name: small
    kind: openai
    model: small
    base_url: http://127.0.0.1:18601/v1
    context: 8192
    capabilities: [json_schema]
  - name: big
    kind: openai
    model: big
    base_url: http://127.0.0.1:18602/v1
    context: 8192
    capabilities: [json_schema]
router:
  strategy: bandit
  priors:
    - {endpoint: big, kind: coder, alpha: 2, beta: 2, p95_latency_s: 30}
"""


def ep(name: str) -> Endpoint:
    return Endpoint(name=name, kind="openai", model=name, base_url="http://127.0.0.1:18601/v1", context=8192,
                    capabilities=("json_schema",))


def observe(store: SqliteBanditStore, endpoint: str, *, wins: int, losses: int) -> None:
    for i in range(wins + losses):
        ok = i < wins
        store.add_outcome("coder", endpoint, reward=float(ok), success=ok, cost_usd=0.0, latency_s=1.0)


def test_learned_priors_are_not_counted_twice_by_the_store_they_came_from(tmp_path: Path) -> None:
    store = SqliteBanditStore(tmp_path / "router.sqlite")
    observe(store, "big", wins=12, losses=0)
    arms = store.load()
    learned = priors_from(arms)
    counted = parse_learned_from(learned_from_yaml(arms, learned))
    assert counted == {("coder", "big"): (12.0, 0.0)}
    bandit = ThompsonBandit(store, priors=learned, counted=counted)
    assert bandit.prior("coder", "big") == (11.0, 1.0)  # 12 wins shrunk to PSEUDO_COUNT = 10 observations
    assert bandit.posterior("coder", "big") == (11.0, 1.0)  # the store's 12 are inside the prior already
    # without `counted` the same 12 wins would be added on top of the prior that summarises them
    assert ThompsonBandit(store, priors=learned).posterior("coder", "big") == (23.0, 1.0)
    observe(store, "big", wins=0, losses=1)  # what the store sees after learning is added
    assert bandit.posterior("coder", "big") == (11.0, 2.0)
    other = SqliteBanditStore(tmp_path / "other.sqlite")  # a worker whose store never saw those 12
    assert ThompsonBandit(other, priors=learned, counted=counted).posterior("coder", "big") == (11.0, 1.0)
    store.close()
    other.close()


def test_release_priors_replace_models_yaml_ones_for_the_same_arm() -> None:
    registry = ModelRegistry(default="small", endpoints=(ep("small"), ep("big")), router=RouterConfig(priors=(
        Prior(endpoint="big", kind="coder", alpha=2, beta=2, p95_latency_s=30.0), Prior(endpoint="small", alpha=3))))
    active = ActiveConfig(version="0.1.1", commit="c", prompts={}, priors=(
        Prior(endpoint="big", kind="coder", alpha=9, beta=1), Prior(endpoint="gone", kind="coder", alpha=5)))
    priors = {(p.kind, p.endpoint): p for p in with_active_priors(registry, active).router.priors}
    assert set(priors) == {("coder", "big"), ("*", "small")}  # an endpoint models.yaml no longer has: left out
    assert (priors[("coder", "big")].alpha, priors[("coder", "big")].beta) == (9, 1)
    assert priors[("coder", "big")].p95_latency_s == 30.0  # measured by `naestro router tune`: kept
    assert priors[("*", "small")].alpha == 3
    assert with_active_priors(registry, None) is registry


@pytest.fixture
def home(settings: Settings, tmp_path: Path) -> Settings:
    models = tmp_path / "models.yaml"
    models.write_text(MODELS)
    return settings.model_copy(update={"models_file": models})


async def test_merge_learns_priors_that_route_the_next_runtime_and_rollback_takes_them_back(home: Settings) -> None:
    request = RouteRequest(kind="coder", prompt_tokens=100, needs=frozenset({"json_schema"}), requested="small")
    before = build_runtime(home)
    assert before.router is not None and before.router.bandit is not None
    assert before.router.bandit.prior("coder", "big") == (2.0, 2.0)  # models.yaml's: no release yet
    await before.aclose()

    improve = home.home / "improve"
    key: Ed25519PrivateKey = load_signing_key(home.keys_dir)
    repo = ConfigRepo.open(improve / "config.git")
    publish(repo, improve, key, proposal=None)  # 0.1.0: the packaged config, no learned priors
    store = SqliteBanditStore(home.home / "router.sqlite")  # the store the runtime's router reads (router.store)
    observe(store, "big", wins=20, losses=0)
    observe(store, "small", wins=0, losses=20)
    loop = ImproveLoop(settings=home, provider=ScriptedProvider(lambda _m: {}), engine=RegorusEngine(load_bundle()),
                       key=key, arms=store.load)
    base = repo.rev(MAIN)
    assert base is not None
    proposal = Proposal.model_validate({"kind": "tool_adapter", "title": "t", "rationale": "r",
                                        "changes": [{"path": "tools/fs.yaml", "text": "timeout_s: 30\n"}]}).identified()
    branch = repo.commit(base, {"tools/fs.yaml": "timeout_s: 30\n"}, "t")
    learned = loop._learned(proposal, repo.files(branch))  # before validation: the candidate tree holds them
    assert set(learned) == {"router/priors.yaml", "router/learned_from.yaml"}
    release = loop._merge(proposal, branch="improve/t", branch_commit=branch, base_commit=base, patch="",
                          validation=Validation(static=[]), canary=CanaryReport(fraction=1.0, considered=0),
                          learned=learned)
    assert release.files["router/priors.yaml"] == hashlib.sha256(learned["router/priors.yaml"].encode()).hexdigest()
    assert release.version == "0.1.1" and {"router/priors.yaml", "router/learned_from.yaml"} <= set(release.files)
    active = load_active(improve, key.public_key())
    assert active is not None and {(p.kind, p.endpoint): (p.alpha, p.beta) for p in active.priors} == {
        ("coder", "big"): (11.0, 1.0), ("coder", "small"): (1.0, 11.0)}

    after = build_runtime(home)  # the next process: the composition root reads the active release
    assert after.router is not None and after.router.bandit is not None
    assert after.router.bandit.prior("coder", "big") == (11.0, 1.0)
    assert after.router.bandit.posterior("coder", "big") == (11.0, 1.0)  # the store's 20 wins are in the prior
    assert after.router.decide(request).endpoint.name == "big"  # Thompson sampling: Beta(11, 1) vs Beta(1, 11)
    await after.aclose()
    # `naestro router stats` (and the Studio's router table) show what the live router starts from
    assert _stats(home)[("coder", "big")] == ([11.0, 1.0], "release 0.1.1", round(11 / 12, 3))

    taken_back = rollback(home, key)  # what `naestro improve rollback` runs
    assert taken_back.version == "0.1.2"
    rolled = build_runtime(home)
    assert rolled.router is not None and rolled.router.bandit is not None
    assert rolled.router.bandit.prior("coder", "big") == (2.0, 2.0)  # models.yaml's again
    assert rolled.router.bandit.posterior("coder", "big") == (22.0, 2.0)  # and the store's wins count once
    await rolled.aclose()
    assert _stats(home)[("coder", "big")] == ([2.0, 2.0], "models.yaml", round(22 / 24, 3))
    store.close()


def test_an_edited_priors_file_of_the_active_release_refuses_to_load(home: Settings) -> None:
    improve = home.home / "improve"
    key = load_signing_key(home.keys_dir)
    priors = "- {endpoint: big, kind: coder, alpha: 9.0, beta: 1.0}\n"
    repo = ConfigRepo.open(improve / "config.git", seed={**seed_files(), "router/priors.yaml": priors})
    publish(repo, improve, key, proposal=None)
    active = load_active(improve, key.public_key())
    assert active is not None and active.priors[0].alpha == 9.0
    (improve / "active" / "router" / "priors.yaml").write_text(priors.replace("9.0", "90.0"))
    with pytest.raises(ConfigError, match=r"router/priors\.yaml differs from the signed release"):
        build_runtime(home)


def _stats(home: Settings) -> dict[tuple[str, str], tuple[list[float], str, float]]:
    return {(r["kind"], r["endpoint"]): (r["prior"], r["prior_from"], r["posterior_mean"]) for r in stats_rows(home)}


async def test_validation_and_shadow_runs_route_by_their_trees_priors(home: Settings, tmp_path: Path) -> None:
    """Issue 21: a config's router priors were merged unvalidated (validation and canary runs had no router). Now
    each side routes the same live calls by its own tree's priors, learning into a store of its own."""
    live = tmp_path / "live-router.sqlite"  # models.yaml may name a shared store: a side run never writes it
    models = home.models_file.read_text().replace("  strategy: bandit\n", f"  strategy: bandit\n  store: {live}\n")
    home.models_file.write_text(models)
    provider = EndpointProvider(load_registry(home.models_file), home)
    request = RouteRequest(kind="coder", prompt_tokens=100, needs=frozenset({"json_schema"}))
    priors = ("- {endpoint: small, kind: coder, alpha: 40, beta: 1}\n"
              "- {endpoint: big, kind: coder, alpha: 1, beta: 40}\n")
    candidate = side_runtime(home, provider, {**seed_files(), "router/priors.yaml": priors}, tmp_path / "cand")
    current = side_runtime(home, provider, seed_files(), tmp_path / "cur")
    try:
        for runtime, side in ((candidate, "cand"), (current, "cur")):
            assert runtime.router is not None and runtime.router.bandit is not None
            assert isinstance(runtime.router.store, SqliteBanditStore)
            assert runtime.router.store.path == tmp_path / side / "router.sqlite"
        assert candidate.router is not None and candidate.router.bandit is not None
        assert candidate.router.bandit.prior("coder", "small") == (40.0, 1.0)
        assert {candidate.router.decide(request).endpoint.name for _ in range(20)} == {"small"}
        assert current.router is not None and current.router.bandit is not None
        assert current.router.bandit.prior("coder", "big") == (2.0, 2.0)  # models.yaml's: the current tree has none
        assert not live.exists()
        assert side_router(ScriptedProvider(lambda _m: {}), seed_files(), tmp_path / "one") is None  # one endpoint
    finally:
        await candidate.aclose()
        await current.aclose()
