"""stats.py on data whose answers are known: medians, bootstrap intervals, outliers, verdict texts."""

from __future__ import annotations

import json
import random

import pytest
from wattson.profilers import stats
from wattson.profilers.stats import Estimate, Verdict


def test_median_and_percentile():
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert stats.percentile([0.0, 10.0], 0.25) == 2.5
    assert stats.percentile([1.0, 2.0, 3.0], 1.0) == 3.0
    with pytest.raises(ValueError):
        stats.median([])


def test_median_ci_is_seeded_and_brackets_the_median():
    rng = random.Random(1)
    data = [100 + rng.gauss(0, 2) for _ in range(15)]
    lo1, hi1 = stats.median_ci(data)
    lo2, hi2 = stats.median_ci(data)
    assert (lo1, hi1) == (lo2, hi2)  # same trials, same interval
    assert lo1 <= stats.median(data) <= hi1
    noisy = [100 + 5 * (x - 100) for x in data]
    lo3, hi3 = stats.median_ci(noisy)
    assert hi3 - lo3 > 4 * (hi1 - lo1)


def test_single_value_has_a_point_interval():
    e = stats.estimate([42.0])
    assert (e.median, e.ci_low, e.ci_high, e.n) == (42.0, 42.0, 42.0, 1)
    assert e.relative_half_width == 0.0


def test_median_ci_covers_the_true_median_most_of_the_time():
    rng = random.Random(5)
    covered = 0
    for rep in range(100):
        sample = [rng.gauss(50.0, 3.0) for _ in range(21)]
        lo, hi = stats.median_ci(sample, resamples=400, seed=rep)
        covered += lo <= 50.0 <= hi
    assert covered >= 85  # nominal 95 %; the percentile bootstrap runs a little short at small n


def test_ratio_of_medians_resamples_a_and_b_independently():
    rng = random.Random(3)
    a = [10.0 + rng.gauss(0, 0.1) for _ in range(12)]
    b = [11.0 + rng.gauss(0, 0.1) for _ in range(9)]
    est = stats.ratio_of_medians(a, b)
    assert est.median == pytest.approx(stats.median(b) / stats.median(a))
    assert est.median == pytest.approx(1.1, rel=0.02)
    assert est.ci_low < est.median < est.ci_high
    assert est.ci_high - est.ci_low < 0.05
    assert est.n == 9
    one = stats.ratio_of_medians([2.0], [3.0])
    assert (one.median, one.ci_low, one.ci_high) == (1.5, 1.5, 1.5)


def test_ratio_ci_covers_the_true_ratio_most_of_the_time():
    rng = random.Random(8)
    covered = 0
    for rep in range(60):
        a = [rng.gauss(10.0, 0.3) for _ in range(10)]
        b = [rng.gauss(11.0, 0.3) for _ in range(10)]
        est = stats.ratio_of_medians(a, b, resamples=300, seed=rep)
        covered += est.ci_low <= 1.1 <= est.ci_high
    assert covered >= 50


def test_paired_ratio_of_medians_resamples_whole_pairs():
    # Each pair ran at its own host speed (a slow drift): within a pair, B is 10 % above A.
    speed = [1.0, 1.3, 0.8, 1.15, 0.9, 1.25, 1.05, 0.85]
    a = [100.0 * s for s in speed]
    b = [110.0 * s * (1 + 0.002 * (-1) ** k) for k, s in enumerate(speed)]
    paired = stats.ratio_of_medians(a, b, paired=True)
    unpaired = stats.ratio_of_medians(a, b)
    assert paired.median == unpaired.median == pytest.approx(stats.median(b) / stats.median(a))
    assert paired.n == 8
    assert paired.ci_low <= 1.1 <= paired.ci_high
    # Resampled as separate runs, the drift shows as spread; resampled by pairs, it mostly cancels.
    assert unpaired.relative_half_width > 4 * paired.relative_half_width
    one = stats.ratio_of_medians([2.0], [3.0], paired=True)
    assert (one.median, one.ci_low, one.ci_high, one.n) == (1.5, 1.5, 1.5, 1)


def test_paired_ratio_needs_as_many_values_on_each_side():
    with pytest.raises(ValueError, match="as many values of A as of B"):
        stats.ratio_of_medians([1.0, 2.0], [1.0], paired=True)


def test_paired_ratio_ci_covers_the_true_ratio_most_of_the_time():
    rng = random.Random(8)
    covered = 0
    for rep in range(60):
        drift = [rng.gauss(1.0, 0.05) for _ in range(10)]
        a = [d * rng.gauss(10.0, 0.3) for d in drift]
        b = [d * rng.gauss(11.0, 0.3) for d in drift]
        est = stats.ratio_of_medians(a, b, paired=True, resamples=300, seed=rep)
        covered += est.ci_low <= 1.1 <= est.ci_high
    assert covered >= 50


def test_outliers_are_flagged_by_the_mad_rule():
    flags = stats.outlier_flags([10.0, 10.1, 9.9, 10.05, 9.95, 30.0])
    assert flags == [False] * 5 + [True]
    # A value 3 robust sigmas away is not an outlier at k = 5.
    assert stats.outlier_flags([10.0, 10.1, 9.9, 10.05, 9.95, 10.3]) == [False] * 6
    assert stats.outlier_flags([5.0, 5.0, 5.0, 5.0, 9.0]) == [False] * 4 + [True]
    assert stats.outlier_flags([1.0, 100.0]) == [False, False]


@pytest.mark.parametrize(("ratio", "lo", "hi", "kind", "text"), [
    (0.921, 0.909, 0.932, "less", "B uses less energy: -7.9 % [-9.1 %, -6.8 %]"),
    (1.003, 0.988, 1.018, "same", "no detectable difference (+0.3 % [-1.2 %, +1.8 %])"),
    (1.051, 1.039, 1.062, "more", "B uses more energy: +5.1 % [+3.9 %, +6.2 %]"),
    # The whole interval must clear the 1 % band: this one is below 1 but touches the band.
    (0.985, 0.975, 0.995, "same", "no detectable difference (-1.5 % [-2.5 %, -0.5 %])"),
])
def test_verdict_texts_and_band(ratio, lo, hi, kind, text):
    v = stats.verdict_from_ratio(ratio, lo, hi, min_effect=0.01)
    assert v.kind == kind
    assert v.text == text


def test_min_effect_widens_the_band():
    assert stats.verdict_from_ratio(0.95, 0.94, 0.96, min_effect=0.01).kind == "less"
    assert stats.verdict_from_ratio(0.95, 0.94, 0.96, min_effect=0.05).kind == "same"


def test_single_pair_verdict_says_so():
    v = stats.verdict([10.0], [12.0])
    assert v.single_pair and v.kind == "more"
    assert v.text == "B uses more energy: +20.0 % (single pair of runs, no interval)"


def test_verdict_from_trials():
    rng = random.Random(11)
    a = [100 + rng.gauss(0, 1) for _ in range(8)]
    b = [90 + rng.gauss(0, 1) for _ in range(8)]
    v = stats.verdict(a, b)
    assert v.kind == "less" and v.ci_high < 0.99 and v.text.startswith("B uses less energy: -")


def test_dataclasses_round_trip_through_json():
    e = Estimate(1.0, 0.9, 1.1, 5)
    assert Estimate.from_dict(json.loads(json.dumps(e.to_dict()))) == e
    assert e.scaled(1000.0).median == 1000.0
    v = stats.verdict_from_ratio(0.9, 0.85, 0.95)
    assert Verdict.from_dict(json.loads(json.dumps(v.to_dict()))) == v
