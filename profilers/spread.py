"""Why an interval stayed wide: does a run's energy follow its wall time?

On HeCBench programs that build inputs or check results on the CPU, most of the run-to-run spread in
energy is the GPU idling (at its idle power) for a host phase whose length varies from run to run:
the sensor and the GPU work are steady, the host is not. Said plainly, the user knows where to look
(their CPU reference code, or the machine's CPU noise) and how many trials a narrow interval costs.

Each side is centred on its own means first, so a real A/B difference never reads as correlation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_RUNS = 6  # fewer deviations than this make a correlation meaningless
MIN_CORRELATION = 0.8


@dataclass(frozen=True)
class Run:
    energy_j: float
    duration_s: float
    host_cpu_s: float | None = None


@dataclass(frozen=True)
class TimeBoundSpread:
    correlation: float
    joules_per_extra_s: float  # slope of energy on wall time, within sides
    duration_min_s: float
    duration_max_s: float
    host_cpu_correlation: float | None  # of host CPU time with wall time; None where not known


def _centred(values: Sequence[float]) -> list[float]:
    mean = sum(values) / len(values)
    return [v - mean for v in values]


def _correlation(x: Sequence[float], y: Sequence[float]) -> float | None:
    sxx = sum(v * v for v in x)
    syy = sum(v * v for v in y)
    if sxx <= 0 or syy <= 0:
        return None
    return sum(a * b for a, b in zip(x, y, strict=True)) / math.sqrt(sxx * syy)


def time_bound_spread(sides: Sequence[Sequence[Run]]) -> TimeBoundSpread | None:
    """The energy-on-time relation within the sides, when it explains the spread; else None."""
    de: list[float] = []
    dt: list[float] = []
    dc: list[float] = []
    cpu_known = True
    durations = [r.duration_s for side in sides for r in side]
    for side in sides:
        if len(side) < 2:
            continue
        de += _centred([r.energy_j for r in side])
        dt += _centred([r.duration_s for r in side])
        if all(r.host_cpu_s is not None for r in side):
            dc += _centred([r.host_cpu_s for r in side])  # type: ignore[misc]
        else:
            cpu_known = False
    if len(de) < MIN_RUNS:
        return None
    r = _correlation(dt, de)
    if r is None or r < MIN_CORRELATION:
        return None
    slope = sum(a * b for a, b in zip(dt, de, strict=True)) / sum(v * v for v in dt)
    cpu_r = _correlation(dt, dc) if cpu_known and len(dc) == len(dt) else None
    return TimeBoundSpread(correlation=r, joules_per_extra_s=slope, duration_min_s=min(durations),
                           duration_max_s=max(durations), host_cpu_correlation=cpu_r)


def trials_needed(trials_done: int, half_width: float, target_half_width: float) -> int:
    """Trials per side for the target width, from the 1/sqrt(n) law (an estimate, not a promise)."""
    return max(trials_done + 1, math.ceil(trials_done * (half_width / target_half_width) ** 2))


IDLE_SLOPE_FACTOR = 1.5  # extra seconds priced at up to 1.5x idle power are seconds of idling


def explain(spread: TimeBoundSpread, *, idle_w: float | None, trials_done: int, half_width: float,
            target_half_width: float, seconds_per_trial: float) -> str:
    """One warning line: what the spread follows, what that means, what a narrow interval would cost.

    Extra seconds priced near idle power are the GPU waiting (a host phase of varying length); priced
    well above it, the GPU work itself took longer in some runs (clocks, throttling, other work)."""
    slope = spread.joules_per_extra_s
    parts = [f"the energy of a run follows its wall time (r = {spread.correlation:.2f}; runs took "
             f"{spread.duration_min_s:.2f}-{spread.duration_max_s:.2f} s, {slope:.0f} J per extra second"]
    if idle_w is not None and idle_w > 0 and slope <= IDLE_SLOPE_FACTOR * idle_w:
        parts.append(f", near the board's idle power of {idle_w:.0f} W): the GPU waits for a host phase "
                     "whose length varies, so the spread comes from the program's host side, not the sensor")
        if spread.host_cpu_correlation is not None and spread.host_cpu_correlation >= MIN_CORRELATION:
            parts.append(" (its CPU time varies with it: CPU-side work such as input generation or a CPU "
                         "reference check)")
    else:
        parts.append("): the GPU work itself took longer in some runs (clocks, throttling or other work "
                     "on the GPU)")
    n = trials_needed(trials_done, half_width, target_half_width)
    parts.append(f"; a +-{100 * target_half_width:.1f} % interval would take about {n} trials per side "
                 f"(~{max(1, round(n * seconds_per_trial / 60))} min)")
    return "".join(parts)
