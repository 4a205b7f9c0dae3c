"""The cascade: escalation on recorded signals, threshold tuning, the live strategy with real event logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from naestro.endpoints import Endpoint, ModelRegistry, RouterConfig, check_registry
from naestro.errors import ConfigError
from naestro.events import EventLog
from naestro.router import OutcomeFeed, Router, RouteRequest
from naestro.router.cascade import CascadeCase, Thresholds, escalation, tune
from naestro.router.signals import Signals


def sig(**kw: Any) -> Signals:
    return Signals(**kw)


# -- escalation on one answer's signals -----------------------------------------------------------------------

@pytest.mark.parametrize(("signals", "thresholds", "why"), [
    (sig(examples_total=3, examples_passed=3), Thresholds(), None),
    (sig(examples_total=3, examples_passed=2), Thresholds(), "failed 1/3 examples"),
    (sig(examples_total=3, examples_passed=2), Thresholds(examples=False), None),
    (sig(), Thresholds(), None),  # no examples: silent, unless asked to escalate for that
    (sig(), Thresholds(no_examples=True), "no examples"),
    (sig(mean_logprob=-0.30), Thresholds(min_mean_logprob=-0.25), "mean logprob -0.300 < -0.25"),
    (sig(mean_logprob=-0.20), Thresholds(min_mean_logprob=-0.25), None),
    (sig(min_logprob=-9.0), Thresholds(min_token_logprob=-6), "a token at logprob -9.000 < -6"),
    (sig(), Thresholds(examples=False, min_mean_logprob=-0.1, min_token_logprob=-1), None),  # not measured
    (sig(vote_total=2, vote_agree=1), Thresholds(vote=True), "1/2 samples disagree"),
    (sig(vote_total=2, vote_agree=2), Thresholds(vote=True), None),
])
def test_escalation_names_the_signal_that_failed(signals: Signals, thresholds: Thresholds, why: str | None) -> None:
    got = escalation(signals, thresholds)
    assert (got is None) == (why is None)
    if why is not None:
        assert got is not None and why in got


def test_examples_passed_cannot_exceed_what_was_measured_by_construction() -> None:
    with pytest.raises(ValueError):
        Signals(mean_logprob=0.5)  # a log-probability above 0 is a recording bug
    assert Signals(examples_total=2, examples_passed=1).examples_ok is False


signals_st = st.builds(
    Signals, examples_total=st.integers(0, 5), examples_passed=st.integers(0, 5),
    mean_logprob=st.none() | st.floats(-5, 0), min_logprob=st.none() | st.floats(-20, 0),
    vote_total=st.integers(0, 2), vote_agree=st.integers(0, 2))


@given(signals_st, st.floats(-3, 0), st.floats(-3, 0))
def test_a_stricter_logprob_threshold_never_escalates_less(s: Signals, a: float, b: float) -> None:
    low, high = sorted((a, b))
    lenient, strict = Thresholds(examples=False, min_mean_logprob=low), Thresholds(examples=False,
                                                                                      min_mean_logprob=high)
    assert escalation(s, lenient) is None or escalation(s, strict) is not None


# -- tuning -----------------------------------------------------------------------------------------------------

def case(small: bool, large: bool, **kw: Any) -> CascadeCase:
    return CascadeCase(sig(**kw), small, large)


def test_tune_finds_the_signal_that_separates_the_small_models_failures() -> None:
    # The small model fails exactly the items whose answer fails an example; the logprob is noise.
    cases = [case(True, True, examples_total=2, examples_passed=2, mean_logprob=-0.1 * (n % 5)) for n in range(30)]
    cases += [case(False, True, examples_total=2, examples_passed=1, mean_logprob=-0.1 * (n % 5)) for n in range(10)]
    t = tune(cases, max_large_share=0.4)
    assert t.examples and t.min_mean_logprob is None and not t.no_examples
    quality = sum(c.large_passed if escalation(c.signals, t) else c.small_passed for c in cases) / len(cases)
    assert quality == 1.0


def test_tune_respects_the_large_share_cap() -> None:
    # Every item fails an example: escalating on examples would send 100 % to the large model.
    cases = [case(n % 2 == 0, True, examples_total=1, examples_passed=0, mean_logprob=-0.05 * n)
             for n in range(20)]
    t = tune(cases, max_large_share=0.25)
    share = sum(escalation(c.signals, t) is not None for c in cases) / len(cases)
    assert share <= 0.25 and not t.examples


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(signals_st, st.booleans(), st.booleans()), min_size=1, max_size=30),
       st.floats(0.0, 1.0))
def test_tuned_thresholds_stay_under_the_cap_whenever_some_setting_does(rows: list[tuple[Signals, bool, bool]],
                                                                         cap: float) -> None:
    cases = [CascadeCase(s, a, b) for s, a, b in rows]
    t = tune(cases, max_large_share=cap, grid=4)
    share = sum(escalation(c.signals, t) is not None for c in cases) / len(cases)
    never = Thresholds(examples=False)  # escalates nothing: always a feasible setting
    assert all(escalation(c.signals, never) is None for c in cases)
    assert share <= cap + 1e-9


# -- the live strategy -----------------------------------------------------------------------------------------

def ep(name: str) -> Endpoint:
    return Endpoint.model_validate({"name": name, "kind": "openai", "model": name, "base_url": "http://127.0.0.1:9/v1",
                                    "context": 8192, "capabilities": ["json_schema"]})


def cascade_registry(**router: Any) -> ModelRegistry:
    return ModelRegistry(default="big", fast="small", endpoints=(ep("big"), ep("small")),
                         router=RouterConfig(strategy="cascade", **router))


def req(task: str | None, *, pinned: bool = False) -> RouteRequest:
    return RouteRequest(kind="coder", prompt_tokens=100, max_output_tokens=100, requested="big", task=task,
                        pinned=pinned)


def test_cascade_sends_a_task_to_the_small_model_until_its_checks_fail(tmp_path: Path) -> None:
    router = Router(cascade_registry())
    events = EventLog(tmp_path / "events.jsonl", run_id="r1")
    events.subscribe(OutcomeFeed(router))
    first = router.decide(req("r1/t1"))
    assert (first.endpoint.name, first.rule) == ("small", "cascade")
    events.emit("task_started", task="t1", role="coder")
    events.emit("model_call", task="t1", endpoint="small", latency_s=1.0, cost_usd=0.0)
    events.emit("task_checked", task="t1", status="retry")
    again = router.decide(req("r1/t1"))
    assert again.endpoint.name == "big" and "escalated task r1/t1" in again.reason
    assert router.decide(req("r1/t2")).endpoint.name == "small"  # other tasks still start small
    assert router.decide(req("r2/t1")).endpoint.name == "small"  # the same task id in another run too


def test_a_passed_check_or_a_failure_on_the_large_model_does_not_escalate(tmp_path: Path) -> None:
    router = Router(cascade_registry())
    assert router.record_verdict("r/t", "small", passed=True) is False
    assert router.record_verdict("r/t", "big", passed=False) is False
    assert router.decide(req("r/t")).endpoint.name == "small"
    assert router.record_verdict("r/t", "small", passed=False) is True
    assert router.record_verdict("r/t", "small", passed=False) is False  # escalated once


def test_small_attempts_keep_a_task_on_the_small_model_for_a_repair_attempt(tmp_path: Path) -> None:
    router = Router(cascade_registry(cascade={"small_attempts": 2}))
    assert router.record_verdict("r/t", "small", passed=False) is False  # the retry, with feedback, stays small
    assert router.decide(req("r/t")).endpoint.name == "small"
    assert router.record_verdict("r/t", "small", passed=False) is True
    escalated = router.decide(req("r/t"))
    assert escalated.endpoint.name == "big" and "failed 2 times on small" in escalated.reason
    assert router.record_verdict("r/u", "small", passed=False) is False  # counted per task
    assert router.record_verdict("r/u", "small", passed=True) is False
    assert router.decide(req("r/u")).endpoint.name == "small"


def test_pinned_calls_and_calls_without_a_task_follow_the_rules() -> None:
    router = Router(cascade_registry())
    assert router.decide(req("r/t", pinned=True)).endpoint.name == "big"
    assert router.decide(req(None)).rule == "requested"


def test_cascade_falls_back_to_the_rules_when_the_small_endpoint_is_filtered_out() -> None:
    router = Router(cascade_registry(), allowed=lambda e: e.name != "small")
    d = router.decide(req("r/t"))
    assert d.endpoint.name == "big" and d.rule == "requested" and "not allowed" in d.rejected["small"]


def test_other_strategies_ignore_verdicts() -> None:
    router = Router(ModelRegistry(default="big", fast="small", endpoints=(ep("big"), ep("small"))))
    assert router.cascade is None and router.record_verdict("r/t", "small", passed=False) is False
    assert router.decide(req("r/t")).endpoint.name == "big"


@pytest.mark.parametrize(("router", "message"), [
    ({"strategy": "cascade", "cascade": {"small": "nope"}}, "router.cascade.small: unknown endpoint 'nope'"),
    ({"strategy": "cascade", "cascade": {"small": "big"}}, "needs two endpoints"),
    ({"strategy": "cascade", "bandit": True}, "contradicts router.strategy"),
])
def test_cascade_config_errors_name_the_field(router: dict[str, Any], message: str) -> None:
    reg = ModelRegistry.model_validate({"default": "big", "fast": "small", "endpoints": [ep("big").model_dump(),
                                                                        ep("small").model_dump()],
                                        "router": router})
    with pytest.raises(ConfigError, match=message):
        check_registry(reg, where="models.yaml")


def test_bandit_flag_is_the_older_spelling_of_the_strategy() -> None:
    assert RouterConfig(bandit=True).mode == "bandit" and RouterConfig().mode == "rules"
    assert RouterConfig(strategy="cascade").mode == "cascade"
