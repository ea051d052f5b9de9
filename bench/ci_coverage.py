"""How often the energy-ratio interval contains the true ratio, by trials per side (no GPU needed).

    python bench/ci_coverage.py [--cv 0.01] [--ratio 1.05] [--repeats 400] [--drift-cv 0.05] [--late P,X]
        [--estimator E]
    python bench/ci_coverage.py --adaptive 5,8 --cv 0.01,0.02,0.03 --repeats 300


Draws A and B trials from normal distributions with a known ratio of medians and the given
coefficient of variation, computes the interval exactly as a comparison does (the ratio of medians,
resampled by pairs: wattson.profilers.stats.ratio_of_medians(paired=True)), and counts how often the
truth lies inside. A 95 % interval should contain it about 95 % of the time; fewer trials per side
than 5 fall short.

--drift-cv D gives each pair its own host speed, a factor drawn around 1 with CV D that multiplies
both trials of the pair: a host that is slower or faster for minutes at a time. --estimator picks
the interval: `pairs` (the default, a comparison's), `unpaired` (A and B resampled independently:
what comparisons did before 2026-12-07, and the overhead phase's unpaired column) or `pair-ratios`
(the median of the per-pair ratios: the overhead phase's paired column), to set them side by side on
the same draws.

--late P,X makes each trial, with probability P, X more (0.3: +30 %): a run that started late and
spent the wait at idle power. The last column says how often the verdict is the truth's ("less"
below 0.99, "more" above 1.01, else "no detectable difference"): one late trial on the wrong side
can take a real saving's verdict away.

--adaptive MIN,... simulates the protocol's stopping rule instead of a fixed count: trials are added
one per side until the interval's half-width reaches --target (after at least MIN trials) or
--max-trials is reached; stopping when the interval first looks narrow selects narrow intervals.

    python bench/ci_coverage.py --from-runs bench/results/2026-12-07-h100/known-pinned-*.jsonl \
        --program colorwheel --ratio 1.0,1.1 --adaptive 5 --max-trials 12

draws trials from a program's measured runs instead of a normal distribution: every side of every
comparison record of that program (known-answer and `compare X X` records that keep their runs) is
divided by its own median, and the pooled values are resampled, B's times the ratio. It shows how the
interval and the verdict behave on that program's real spread and shape (clusters, tails), not on an
idealized one; runs are drawn independently, so drift within a comparison is not in it.
"""

from __future__ import annotations

import argparse
import random
import sys
from functools import partial
from pathlib import Path
from statistics import median, pstdev

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement_quality import median_of_pair_ratios, read_results  # noqa: E402
from wattson.profilers.stats import ratio_of_medians, verdict_from_ratio  # noqa: E402

paired_ratio = partial(ratio_of_medians, paired=True)
ESTIMATORS = {"pairs": paired_ratio, "unpaired": ratio_of_medians, "pair-ratios": median_of_pair_ratios}


def pooled_runs(paths: list[Path], program: str) -> list[float]:
    """Energies of a program's measured runs, each side of each comparison divided by its own median."""
    pool: list[float] = []
    for record in (r.record for r in read_results(paths)):
        if record.get("program") != program or not record.get("runs"):
            continue
        for side in ("a", "b"):
            energies = [run["energy_j"] for run in record["runs"].get(side) or [] if run.get("energy_j")]
            if len(energies) >= 2:
                mid = median(energies)
                pool += [e / mid for e in energies]
    return pool


def _stop_when_narrow(draw_pair, min_trials: int, *, target: float, max_trials: int, seed: int,
                      estimator=paired_ratio):
    """The protocol's stopping rule: add one (A, B) pair of trials at a time until the interval's
    half-width reaches `target` (after at least `min_trials`) or `max_trials`; (interval, trials per side)."""
    a: list[float] = []
    b: list[float] = []
    while True:
        value_a, value_b = draw_pair()
        a.append(value_a)
        b.append(value_b)
        if len(a) < 2:
            continue
        e = estimator(a, b, resamples=400, seed=seed)
        if (len(a) >= min_trials and e.relative_half_width <= target) or len(a) >= max_trials:
            return e, len(a)


def true_kind(ratio: float) -> str:
    return verdict_from_ratio(ratio, ratio, ratio).kind


def _inside_and_kind(e, ratio: float) -> tuple[bool, str]:
    """Whether the interval holds the true ratio, and the verdict a comparison would give."""
    return e.ci_low <= ratio <= e.ci_high, verdict_from_ratio(e.median, e.ci_low, e.ci_high).kind


def pooled_verdicts(pool: list[float], min_trials: int, *, ratio: float, repeats: int, target: float,
                    max_trials: int, rng: random.Random, estimator=paired_ratio) -> dict[str, float]:
    """Coverage, verdict shares and mean trials per side when both sides are drawn from `pool`
    (B's draws times `ratio`), under the protocol's stop-when-narrow rule."""
    inside, trials = 0, 0
    kinds = {"less": 0, "same": 0, "more": 0}
    for k in range(repeats):
        e, n = _stop_when_narrow(lambda: (rng.choice(pool), ratio * rng.choice(pool)), min_trials,
                                 target=target, max_trials=max_trials, seed=k, estimator=estimator)
        held, kind = _inside_and_kind(e, ratio)
        inside += held
        kinds[kind] += 1
        trials += n
    return {"coverage": inside / repeats, "mean_trials": trials / repeats,
            **{kind: count / repeats for kind, count in kinds.items()}}


def _lengthen(value: float, rng: random.Random, late: tuple[float, float]) -> float:
    """A trial that, with probability late[0], started late and ran late[1] longer at idle power."""
    return value * (1 + late[1]) if late[0] and rng.random() < late[0] else value


def coverage(n: int, *, ratio: float, cv: float, repeats: int, rng: random.Random, drift_cv: float = 0.0,
             late: tuple[float, float] = (0.0, 0.0), estimator=paired_ratio) -> tuple[float, float, float]:
    """(coverage, median relative half-width, share of verdicts that are the truth's) of the interval
    from n trials per side; with drift_cv, each pair's two trials share a host speed factor; with
    late = (p, x), each trial is x more with probability p."""
    inside, right, widths = 0, 0, []
    for k in range(repeats):
        speeds = [rng.gauss(1.0, drift_cv) if drift_cv else 1.0 for _ in range(n)]
        a = [_lengthen(s * rng.gauss(1.0, cv), rng, late) for s in speeds]
        b = [_lengthen(s * rng.gauss(ratio, cv * ratio), rng, late) for s in speeds]
        e = estimator(a, b, resamples=500, seed=k)
        held, kind = _inside_and_kind(e, ratio)
        inside += held
        right += kind == true_kind(ratio)
        widths.append(e.relative_half_width)
    return inside / repeats, median(widths), right / repeats


def adaptive_coverage(min_trials: int, *, ratio: float, cv: float, repeats: int, target: float,
                      max_trials: int, rng: random.Random, late: tuple[float, float] = (0.0, 0.0),
                      estimator=paired_ratio) -> tuple[float, float, float]:
    """(coverage, mean trials per side, share of verdicts that are the truth's) under the
    stop-when-narrow rule."""
    inside, trials, right = 0, 0, 0
    for k in range(repeats):
        e, n = _stop_when_narrow(lambda: (_lengthen(rng.gauss(1.0, cv), rng, late),
                                          _lengthen(rng.gauss(ratio, cv * ratio), rng, late)),
                                 min_trials, target=target, max_trials=max_trials, seed=k, estimator=estimator)
        held, kind = _inside_and_kind(e, ratio)
        inside += held
        right += kind == true_kind(ratio)
        trials += n
    return inside / repeats, trials / repeats, right / repeats


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cv", default="0.01", help="coefficient(s) of variation, comma-separated")
    p.add_argument("--ratio", default="1.05", help="true ratio(s) B/A, comma-separated")
    p.add_argument("--repeats", type=int, default=400)
    p.add_argument("--trials", default="3,4,5,6,8,12,20", help="trials per side, comma-separated")
    p.add_argument("--adaptive", default=None, metavar="MIN,...",
                   help="simulate the stop-when-narrow rule with these minimum trial counts")
    p.add_argument("--target", type=float, default=0.02, help="--adaptive: the half-width that stops")
    p.add_argument("--max-trials", type=int, default=30, help="--adaptive: the most trials per side")
    p.add_argument("--from-runs", type=Path, nargs="+", metavar="JSONL",
                   help="draw trials from a program's measured runs in these result files (with --program)")
    p.add_argument("--program", default=None, help="--from-runs: whose runs")
    p.add_argument("--drift-cv", type=float, default=0.0,
                   help="fixed counts: each pair's two trials share a host speed factor with this CV")
    p.add_argument("--late", default=None, metavar="P,X",
                   help="each simulated trial is X more (a late start at idle power) with probability P")
    p.add_argument("--estimator", choices=sorted(ESTIMATORS), default="pairs",
                   help="pairs: ratio of medians resampled by pairs (a comparison's); unpaired: A and B "
                        "resampled independently; pair-ratios: the median of per-pair ratios")
    args = p.parse_args()
    cvs = [float(v) for v in args.cv.split(",")]
    name = args.estimator
    estimator = ESTIMATORS[name]
    ratios = [float(v) for v in args.ratio.split(",")]
    if len(ratios) > 1 and not args.from_runs:
        p.error("several --ratio values are for --from-runs; give one ratio here")
    late = (0.0, 0.0)
    if args.late:
        try:
            late_p, late_x = (float(v) for v in args.late.split(","))
        except ValueError:
            p.error(f"--late takes P,X (for example 0.1,0.3), not {args.late!r}")
        late = (late_p, late_x)
    if args.from_runs:
        if args.late:
            p.error("--late is for simulated trials; measured runs carry their own late starts")
        if not args.program:
            p.error("--from-runs needs --program")
        pool = pooled_runs(args.from_runs, args.program)
        if len(pool) < 10:
            p.error(f"only {len(pool)} measured runs of {args.program!r} in these files; 10 or more are needed")
        print(f"{len(pool)} runs of {args.program}, each divided by its comparison side's median: "
              f"spread (CV) {100 * pstdev(pool) / (sum(pool) / len(pool)):.1f} %, "
              f"range {min(pool):.3f}-{max(pool):.3f}\n")
        print("| true ratio | min trials | coverage of the 95 % interval | \"less\" | \"same\" | \"more\" "
              "| mean trials per side |\n|---:|---:|---:|---:|---:|---:|---:|")
        for ratio in ratios:
            for m in (int(v) for v in (args.adaptive or "5").split(",")):
                r = pooled_verdicts(pool, m, ratio=ratio, repeats=args.repeats, target=args.target,
                                    max_trials=args.max_trials, rng=random.Random(1), estimator=estimator)
                print(f"| {ratio:.3f} | {m} | {100 * r['coverage']:.1f} % | {100 * r['less']:.1f} % | "
                      f"{100 * r['same']:.1f} % | {100 * r['more']:.1f} % | {r['mean_trials']:.1f} |")
        return 0
    if args.adaptive:
        print(f"| CV | min trials | coverage of the 95 % interval | mean trials per side "
              f"| verdict \"{true_kind(ratios[0])}\" |\n|---:|---:|---:|---:|---:|")
        for cv in cvs:
            for m in (int(v) for v in args.adaptive.split(",")):
                cov, mean_n, right = adaptive_coverage(m, ratio=ratios[0], cv=cv, repeats=args.repeats,
                                                       target=args.target, max_trials=args.max_trials,
                                                       rng=random.Random(1), late=late, estimator=estimator)
                print(f"| {100 * cv:g} % | {m} | {100 * cov:.1f} % | {mean_n:.1f} | {100 * right:.1f} % |")
        return 0
    rng = random.Random(1)
    print(f"| CV | trials per side | coverage of the 95 % interval ({name}) | median half-width "
          f"| verdict \"{true_kind(ratios[0])}\" |\n|---:|---:|---:|---:|---:|")
    for cv in cvs:
        for n in (int(v) for v in args.trials.split(",")):
            cov, width, right = coverage(n, ratio=ratios[0], cv=cv, repeats=args.repeats, rng=rng,
                                         drift_cv=args.drift_cv, late=late, estimator=estimator)
            print(f"| {100 * cv:g} % | {n} | {100 * cov:.1f} % | {100 * width:.2f} % | {100 * right:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
