"""pass@k against brute force over every k-subset, plus its properties."""

from __future__ import annotations

import itertools
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from naestro.errors import UsageError
from naestro.passk import mean_pass_at_k, pass_at_k


@st.composite
def nck(draw: st.DrawFn, max_n: int = 12) -> tuple[int, int, int]:
    n = draw(st.integers(1, max_n))
    return n, draw(st.integers(0, n)), draw(st.integers(1, n))


@given(nck(max_n=9))
def test_matches_enumerating_every_subset(args: tuple[int, int, int]) -> None:
    n, c, k = args
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(outcomes, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


@given(nck(max_n=200))
def test_matches_the_closed_form_and_is_a_probability(args: tuple[int, int, int]) -> None:
    n, c, k = args
    value = pass_at_k(n, c, k)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-9)


@given(nck())
def test_monotone_in_k_and_c(args: tuple[int, int, int]) -> None:
    n, c, k = args
    if k < n:
        assert pass_at_k(n, c, k + 1) >= pass_at_k(n, c, k) - 1e-12
    if c < n:
        assert pass_at_k(n, c + 1, k) >= pass_at_k(n, c, k) - 1e-12


def test_known_values_and_errors() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 0, 5) == 0.0 and pass_at_k(5, 1, 5) == 1.0
    assert mean_pass_at_k([(4, 2), (4, 0)], 1) == pytest.approx(0.25)
    for bad in ((0, 0, 1), (3, 4, 1), (3, 1, 4), (3, 1, 0)):
        with pytest.raises(UsageError):
            pass_at_k(*bad)
    with pytest.raises(UsageError):
        mean_pass_at_k([], 1)
