"""The statistics behind every figure: medians, bootstrap confidence intervals, outliers, verdicts.

Pure functions on lists of floats, no I/O and no numpy, so the GPU host needs nothing extra. Every
random draw comes from a seeded `random.Random`: the same trials always give the same interval.

- Point estimates are medians: one slow trial (a page fault storm, a neighbour on the node) moves a
  median far less than a mean.
- Intervals are 95 % percentile-bootstrap intervals. A ratio B/A is median(B) / median(A), and the
  statistic resampled is median(B*) / median(A*). A comparison resamples whole pairs: A and B run
  interleaved, so A's k-th trial and B's k-th ran next to each other, and a host that is slower or
  faster for minutes at a time moves both alike. Unpaired samples are resampled independently.
- Outliers are flagged with a MAD rule and reported; they are NOT removed. The median already resists
  them, and dropping trials after the fact would let a lucky cut decide a verdict.
- A verdict says "less" or "more" only when the whole interval lies outside the band
  [1 - min_effect, 1 + min_effect]; anything else is "no detectable difference".
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 20250502  # fixed, so a result can be reproduced from its trials
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
DEFAULT_OUTLIER_K = 5.0


@dataclass
class Estimate:
    """A median with its confidence interval, over n values. A single value has ci_low = ci_high."""

    median: float
    ci_low: float
    ci_high: float
    n: int

    @property
    def relative_half_width(self) -> float:
        """Half the interval's width over the median: 0.02 means "plus or minus 2 %"."""
        if self.median == 0:
            return float("inf") if self.ci_high != self.ci_low else 0.0
        return (self.ci_high - self.ci_low) / 2.0 / abs(self.median)

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in another unit (e.g. mJ -> J with factor 1e-3)."""
        return Estimate(self.median * factor, self.ci_low * factor, self.ci_high * factor, self.n)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Estimate:
        return cls(median=float(d["median"]), ci_low=float(d["ci_low"]), ci_high=float(d["ci_high"]),
                   n=int(d["n"]))


@dataclass
class Verdict:
    """The answer to "does B use less energy than A?", with the interval it rests on.

    ratio is B/A (0.92 means B uses 8 % less). single_pair marks a verdict from one run of each,
    which has no interval (ci_low = ci_high = ratio) and cannot be trusted to detect small changes.
    """

    kind: str  # "less" | "more" | "same"
    ratio: float
    ci_low: float
    ci_high: float
    text: str
    single_pair: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Verdict:
        return cls(kind=str(d["kind"]), ratio=float(d["ratio"]), ci_low=float(d["ci_low"]),
                   ci_high=float(d["ci_high"]), text=str(d["text"]), single_pair=bool(d.get("single_pair")))


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, interpolating linearly between ranks."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _bootstrap_medians(values: Sequence[float], resamples: int, rng: random.Random) -> list[float]:
    n = len(values)
    return [median(rng.choices(values, k=n)) for _ in range(resamples)]


def _interval(stats: list[float], confidence: float) -> tuple[float, float]:
    stats.sort()
    alpha = 1.0 - confidence
    return percentile(stats, alpha / 2.0), percentile(stats, 1.0 - alpha / 2.0)


def median_ci(values: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE,
              resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median. One value gives (value, value)."""
    values = list(values)
    if len(values) < 2:
        return (values[0], values[0]) if values else _no_values()
    rng = random.Random(seed)
    return _interval(_bootstrap_medians(values, resamples, rng), confidence)


def estimate(values: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE,
             resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Estimate:
    values = list(values)
    lo, hi = median_ci(values, confidence=confidence, resamples=resamples, seed=seed)
    return Estimate(median=median(values), ci_low=lo, ci_high=hi, n=len(values))


def ratio_of_medians(a: Sequence[float], b: Sequence[float], *, paired: bool = False,
                     confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED) -> Estimate:
    """median(b) / median(a) with a bootstrap interval of median(B*) / median(A*).

    Unpaired, A and B are resampled independently, and n is the smaller sample size. Paired, a[k] and
    b[k] are one pair (they ran next to each other) and whole pairs are resampled: a slow drift that
    moved both members of a pair alike then stays out of the interval. n is the number of pairs. With
    one value on each side the interval is the point.
    """
    a, b = list(a), list(b)
    if not a or not b:
        _no_values()
    if paired and len(a) != len(b):
        raise ValueError(f"pairs need as many values of A as of B ({len(a)} and {len(b)})")
    med_a = median(a)
    if med_a == 0:
        raise ValueError("ratio of medians: the median of A is zero")
    point = median(b) / med_a
    if len(a) < 2 and len(b) < 2:
        return Estimate(point, point, point, 1)
    rng = random.Random(seed)
    stats = []
    for _ in range(resamples):
        if paired:
            picks = rng.choices(range(len(a)), k=len(a))
            ma, mb = median([a[k] for k in picks]), median([b[k] for k in picks])
        else:
            ma, mb = median(rng.choices(a, k=len(a))), median(rng.choices(b, k=len(b)))
        stats.append(mb / ma if ma else float("inf"))
    lo, hi = _interval(stats, confidence)
    return Estimate(median=point, ci_low=lo, ci_high=hi, n=min(len(a), len(b)))


def ratio_of_pairs(pairs: Sequence[tuple[float, float]], **resampling) -> Estimate:
    """ratio_of_medians of (a, b) pairs, resampled by pairs."""
    a, b = zip(*pairs, strict=True) if pairs else ((), ())
    return ratio_of_medians(a, b, paired=True, **resampling)


def outlier_flags(values: Sequence[float], k: float = DEFAULT_OUTLIER_K) -> list[bool]:
    """True where |x - median| > k * 1.4826 * MAD: a robust "more than k sigma away".

    When the MAD is zero (half the values identical) the scale floors at 0.1 % of the median, so
    exact repeats do not make every other value an outlier by division by zero.
    """
    values = list(values)
    if len(values) < 3:
        return [False] * len(values)  # two values cannot say which of them is odd
    med = median(values)
    mad = median([abs(x - med) for x in values])
    scale = max(MAD_TO_SIGMA * mad, 1e-3 * abs(med))
    if scale == 0:
        return [x != med for x in values]
    return [abs(x - med) > k * scale for x in values]


def _signed_percent(ratio: float) -> str:
    return f"{(ratio - 1.0) * 100.0:+.1f} %"


def verdict_from_ratio(ratio: float, ci_low: float, ci_high: float, *, min_effect: float = 0.01,
                       single_pair: bool = False) -> Verdict:
    """The rule: less/more only when the whole interval lies outside [1 - min_effect, 1 + min_effect]."""
    if ci_high < 1.0 - min_effect:
        kind = "less"
    elif ci_low > 1.0 + min_effect:
        kind = "more"
    else:
        kind = "same"
    if single_pair:
        spread = "single pair of runs, no interval"
        text = {
            "less": f"B uses less energy: {_signed_percent(ratio)} ({spread})",
            "more": f"B uses more energy: {_signed_percent(ratio)} ({spread})",
            "same": f"no detectable difference ({_signed_percent(ratio)}, {spread})",
        }[kind]
    else:
        interval = f"{_signed_percent(ratio)} [{_signed_percent(ci_low)}, {_signed_percent(ci_high)}]"
        text = {
            "less": f"B uses less energy: {interval}",
            "more": f"B uses more energy: {interval}",
            "same": f"no detectable difference ({interval})",
        }[kind]
    return Verdict(kind=kind, ratio=ratio, ci_low=ci_low, ci_high=ci_high, text=text, single_pair=single_pair)


def verdict(a: Sequence[float], b: Sequence[float], *, min_effect: float = 0.01,
            confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
            seed: int = DEFAULT_SEED) -> Verdict:
    """Compare B's values with A's (energy per run, in any one unit)."""
    est = ratio_of_medians(a, b, confidence=confidence, resamples=resamples, seed=seed)
    single = len(a) < 2 and len(b) < 2
    return verdict_from_ratio(est.median, est.ci_low, est.ci_high, min_effect=min_effect, single_pair=single)


def _no_values() -> tuple[float, float]:
    raise ValueError("no values to estimate from")
