"""How often the energy-ratio interval contains the true ratio, by trials per side (no GPU needed).

    python bench/ci_coverage.py [--cv 0.01] [--ratio 1.05] [--repeats 400]
    python bench/ci_coverage.py --adaptive 5,8 --cv 0.01,0.02,0.03 --repeats 300


Draws A and B trials from normal distributions with a known ratio of medians and the given
coefficient of variation, computes the interval exactly as a comparison does
(wattson.profilers.stats.ratio_of_medians), and counts how often the truth lies inside. A 95 %
interval should contain it about 95 % of the time; fewer trials per side than 5 fall short.

--adaptive MIN,... simulates the protocol's stopping rule instead of a fixed count: trials are added
one per side until the interval's half-width reaches --target (after at least MIN trials) or
--max-trials is reached; stopping when the interval first looks narrow selects narrow intervals.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wattson.profilers.stats import ratio_of_medians  # noqa: E402


def coverage(n: int, *, ratio: float, cv: float, repeats: int, rng: random.Random) -> float:
    inside = 0
    for k in range(repeats):
        a = [rng.gauss(1.0, cv) for _ in range(n)]
        b = [rng.gauss(ratio, cv * ratio) for _ in range(n)]
        e = ratio_of_medians(a, b, resamples=500, seed=k)
        inside += e.ci_low <= ratio <= e.ci_high
    return inside / repeats


def adaptive_coverage(min_trials: int, *, ratio: float, cv: float, repeats: int, target: float,
                      max_trials: int, rng: random.Random) -> tuple[float, float]:
    """(coverage, mean trials per side) under the stop-when-narrow rule."""
    inside, trials = 0, 0
    for k in range(repeats):
        a: list[float] = []
        b: list[float] = []
        while True:
            a.append(rng.gauss(1.0, cv))
            b.append(rng.gauss(ratio, cv * ratio))
            if len(a) < 2:
                continue
            e = ratio_of_medians(a, b, resamples=400, seed=k)
            if (len(a) >= min_trials and e.relative_half_width <= target) or len(a) >= max_trials:
                break
        inside += e.ci_low <= ratio <= e.ci_high
        trials += len(a)
    return inside / repeats, trials / repeats


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cv", default="0.01", help="coefficient(s) of variation, comma-separated")
    p.add_argument("--ratio", type=float, default=1.05)
    p.add_argument("--repeats", type=int, default=400)
    p.add_argument("--trials", default="3,4,5,6,8,12,20", help="trials per side, comma-separated")
    p.add_argument("--adaptive", default=None, metavar="MIN,...",
                   help="simulate the stop-when-narrow rule with these minimum trial counts")
    p.add_argument("--target", type=float, default=0.02, help="--adaptive: the half-width that stops")
    p.add_argument("--max-trials", type=int, default=30, help="--adaptive: the most trials per side")
    args = p.parse_args()
    cvs = [float(v) for v in args.cv.split(",")]
    if args.adaptive:
        print("| CV | min trials | coverage of the 95 % interval | mean trials per side |\n|---:|---:|---:|---:|")
        for cv in cvs:
            for m in (int(v) for v in args.adaptive.split(",")):
                cov, mean_n = adaptive_coverage(m, ratio=args.ratio, cv=cv, repeats=args.repeats,
                                                target=args.target, max_trials=args.max_trials,
                                                rng=random.Random(1))
                print(f"| {100 * cv:g} % | {m} | {100 * cov:.1f} % | {mean_n:.1f} |")
        return 0
    rng = random.Random(1)
    print("| CV | trials per side | coverage of the 95 % interval |\n|---:|---:|---:|")
    for cv in cvs:
        for n in (int(v) for v in args.trials.split(",")):
            cov = coverage(n, ratio=args.ratio, cv=cv, repeats=args.repeats, rng=rng)
            print(f"| {100 * cv:g} % | {n} | {100 * cov:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
