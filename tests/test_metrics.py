"""pass@k and energy-reduction@k: closed forms checked against enumerating every k-subset."""

from __future__ import annotations

import itertools
import random
from statistics import mean

import pytest
from wattson.refactor.metrics import (
    TrialOutcome,
    conditional_mean_reduction,
    energy_reduction_at_k,
    metrics_markdown,
    pass_at_k,
    trial_metrics,
)


def brute_force_er(reductions: list[float], k: int) -> float:
    return mean(max(subset) for subset in itertools.combinations(reductions, k))


def brute_force_pass(passed: list[bool], k: int) -> float:
    return mean(any(subset) for subset in itertools.combinations(passed, k))


def test_energy_reduction_at_k_is_the_mean_best_over_every_subset():
    rng = random.Random(5)
    for n in range(1, 8):
        reductions = [rng.choice([0.0, rng.random() * 0.5]) for _ in range(n)]
        for k in range(1, n + 1):
            assert energy_reduction_at_k(reductions, k) == pytest.approx(brute_force_er(reductions, k))


def test_pass_at_k_matches_enumeration_and_is_the_zero_one_case_of_er():
    rng = random.Random(9)
    for n in range(1, 8):
        passed = [rng.random() < 0.5 for _ in range(n)]
        c = sum(passed)
        for k in range(1, n + 1):
            expected = brute_force_pass(passed, k)
            assert pass_at_k(n, c, k) == pytest.approx(expected)
            assert energy_reduction_at_k([1.0 if p else 0.0 for p in passed], k) == pytest.approx(expected)


def test_known_values():
    # Three trials: 30 %, failed, 10 %. One at random: mean 13.3 %; best of two: (30+30+10)/3.
    reductions = [0.3, 0.0, 0.1]
    assert energy_reduction_at_k(reductions, 1) == pytest.approx(0.4 / 3)
    assert energy_reduction_at_k(reductions, 2) == pytest.approx(0.7 / 3)
    assert energy_reduction_at_k(reductions, 3) == pytest.approx(0.3)
    assert pass_at_k(3, 2, 1) == pytest.approx(2 / 3)
    assert pass_at_k(3, 2, 2) == 1.0


def test_failures_and_regressions_count_as_zero():
    outcomes = [TrialOutcome(True, 0.8), TrialOutcome(False), TrialOutcome(True, 1.05)]
    assert [o.reduction for o in outcomes] == [pytest.approx(0.2), 0.0, 0.0]
    assert conditional_mean_reduction(outcomes) == pytest.approx(0.1)
    assert conditional_mean_reduction([TrialOutcome(False)]) is None


def test_trial_metrics_rows_and_markdown():
    outcomes = [TrialOutcome(True, 0.7), TrialOutcome(False), TrialOutcome(True, 0.9), TrialOutcome(False)]
    m = trial_metrics(outcomes, ks=[1, 3, 9])
    assert [r.k for r in m.rows] == [1, 3]  # k above n is left out
    assert m.passed == 2 and m.n == 4
    assert m.row(1).pass_at_k == pytest.approx(0.5)
    assert m.row(1).energy_reduction_at_k == pytest.approx((0.3 + 0.1) / 4)
    text = metrics_markdown(m)
    assert "2 of 4 trials passed" in text and "| 1 | 50.0 % | 10.0 % |" in text


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError):
        energy_reduction_at_k([], 1)
    with pytest.raises(ValueError):
        energy_reduction_at_k([-0.1], 1)
