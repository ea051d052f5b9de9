"""pass@k and energy-reduction@k over n independent optimize trials (`wattson optimize --trials n`).

A trial is one independent run of the loop (context, plan, generate, self-correct, measure). It
passes when it produced at least one candidate that passed every check and was measured. Its
reduction is r = max(0, 1 - B/A) for the best such candidate (B/A: the measured median energy
ratio), and 0 for a failed trial: a user keeps the original when nothing better came out.

With c passing trials among n, and the reductions sorted r_(1) <= ... <= r_(n):

    pass@k = 1 - C(n - c, k) / C(n, k)
    ER@k   = sum_{j=k..n} r_(j) * C(j - 1, k - 1) / C(n, k)

ER@k is the expected best reduction among k trials drawn without replacement from the n: the j-th
smallest is the best of a k-subset exactly when the other k - 1 come from the j - 1 below it. Like
pass@k (its special case for r in {0, 1}), it is unbiased for the k-trial expectation and uses every
trial. docs/optimize.md gives the derivation; the conditional mean (mean r over passing trials) is
reported beside it so that a high pass rate and a large saving are not confused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import comb


@dataclass(frozen=True)
class TrialOutcome:
    passed: bool
    energy_ratio: float | None = None  # best measured B/A among the trial's passing candidates

    @property
    def reduction(self) -> float:
        """The saving this trial gives a user: 0 for a failed trial or one that saved nothing."""
        if not self.passed or self.energy_ratio is None:
            return 0.0
        return max(0.0, 1.0 - self.energy_ratio)


def _check(n: int, k: int) -> None:
    if n < 1:
        raise ValueError("metrics need at least one trial")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of trials ({n}), got {k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k trials, drawn from n of which c passed, passes."""
    _check(n, k)
    if not 0 <= c <= n:
        raise ValueError(f"passing trials must be between 0 and {n}, got {c}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def energy_reduction_at_k(reductions: list[float], k: int) -> float:
    """Expected best reduction among k of the trials (failed trials given as 0)."""
    n = len(reductions)
    _check(n, k)
    if any(r < 0 for r in reductions):
        raise ValueError("reductions are savings clamped at 0; a failed trial counts as 0")
    ordered = sorted(reductions)
    total = comb(n, k)
    return sum(ordered[j - 1] * comb(j - 1, k - 1) for j in range(k, n + 1)) / total


def conditional_mean_reduction(outcomes: list[TrialOutcome]) -> float | None:
    """Mean reduction over the passing trials; None when none passed."""
    passing = [o.reduction for o in outcomes if o.passed]
    return sum(passing) / len(passing) if passing else None


@dataclass(frozen=True)
class MetricsRow:
    k: int
    pass_at_k: float
    energy_reduction_at_k: float


@dataclass(frozen=True)
class TrialMetrics:
    n: int
    passed: int
    rows: list[MetricsRow]
    conditional_mean_reduction: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    def row(self, k: int) -> MetricsRow | None:
        return next((r for r in self.rows if r.k == k), None)


def trial_metrics(outcomes: list[TrialOutcome], ks: list[int] | None = None) -> TrialMetrics:
    """pass@k and ER@k for each k (default every k from 1 to n)."""
    n = len(outcomes)
    if n == 0:
        raise ValueError("metrics need at least one trial")
    c = sum(1 for o in outcomes if o.passed)
    reductions = [o.reduction for o in outcomes]
    wanted = sorted({k for k in (ks or range(1, n + 1)) if 1 <= k <= n})
    rows = [MetricsRow(k, pass_at_k(n, c, k), energy_reduction_at_k(reductions, k)) for k in wanted]
    return TrialMetrics(
        n=n, passed=c, rows=rows, conditional_mean_reduction=conditional_mean_reduction(outcomes)
    )


def metrics_markdown(metrics: TrialMetrics) -> str:
    lines = [
        f"{metrics.passed} of {metrics.n} trials passed.",
        "",
        "| k | pass@k | energy-reduction@k |",
        "|---:|---:|---:|",
    ]
    for row in metrics.rows:
        lines.append(f"| {row.k} | {row.pass_at_k * 100:.1f} % | {row.energy_reduction_at_k * 100:.1f} % |")
    mean = metrics.conditional_mean_reduction
    lines += [
        "",
        "Mean reduction over passing trials: "
        + (f"{mean * 100:.1f} %." if mean is not None else "none passed."),
    ]
    return "\n".join(lines)
