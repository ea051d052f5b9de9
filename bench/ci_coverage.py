"""How often the energy-ratio interval contains the true ratio, by trials per side (no GPU needed).

    python bench/ci_coverage.py [--cv 0.01] [--ratio 1.05] [--repeats 400]

Draws A and B trials from normal distributions with a known ratio of medians and the given
coefficient of variation, computes the interval exactly as a comparison does
(wattson.profilers.stats.ratio_of_medians), and counts how often the truth lies inside. A 95 %
interval should contain it about 95 % of the time; fewer trials per side than 5 fall short.
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cv", type=float, default=0.01)
    p.add_argument("--ratio", type=float, default=1.05)
    p.add_argument("--repeats", type=int, default=400)
    p.add_argument("--trials", default="3,4,5,6,8,12,20", help="trials per side, comma-separated")
    args = p.parse_args()
    rng = random.Random(1)
    print("| trials per side | coverage of the 95 % interval |\n|---:|---:|")
    for n in (int(v) for v in args.trials.split(",")):
        print(f"| {n} | {100 * coverage(n, ratio=args.ratio, cv=args.cv, repeats=args.repeats, rng=rng):.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
