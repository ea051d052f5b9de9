"""Why an interval stayed wide: does a run's energy follow its wall time?

On HeCBench programs that build inputs or check results on the CPU, most of the run-to-run spread in
energy is the GPU waiting, near idle power, through a host phase whose length varies from run to run:
the sensor and the GPU work are steady, the host is not. Said plainly, the user knows where to look
(their CPU-side code, the machine's CPU noise, CPU pinning) and how many trials a narrow interval costs.

The extra seconds of a long run are priced by the slope of energy on wall time. Below the runs'
average power, the GPU did less than average in them: it was waiting. At or above it, the GPU work
itself stretched. (Host CPU time does not tell these apart: CUDA's default synchronization spins, so
a CUDA process's CPU time tracks its wall time whatever the GPU does; measured: within 0.03 s.)

Each side is centred on its own means first, so a real A/B difference never reads as correlation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .stats import median

MIN_DEGREES_OF_FREEDOM = 5  # runs minus one per side: r >= 0.8 by chance at 5 has p ~ 0.03
MIN_CORRELATION = 0.8
WAITING_FRACTION = 0.85  # extra seconds priced under 85 % of the average power are mostly waiting


@dataclass(frozen=True)
class Run:
    energy_j: float
    duration_s: float


@dataclass(frozen=True)
class TimeBoundSpread:
    correlation: float
    joules_per_extra_s: float  # slope of energy on wall time, within sides
    duration_min_s: float
    duration_max_s: float
    average_power_w: float  # median over the runs of energy / duration


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
    runs = [r for side in sides for r in side if r.duration_s > 0]
    freedom = 0
    for side in sides:
        if len(side) < 2:
            continue
        de += _centred([r.energy_j for r in side])
        dt += _centred([r.duration_s for r in side])
        freedom += len(side) - 1
    if freedom < MIN_DEGREES_OF_FREEDOM:
        return None
    r = _correlation(dt, de)
    if r is None or r < MIN_CORRELATION:
        return None
    slope = sum(a * b for a, b in zip(dt, de, strict=True)) / sum(v * v for v in dt)
    return TimeBoundSpread(correlation=r, joules_per_extra_s=slope,
                           duration_min_s=min(run.duration_s for run in runs),
                           duration_max_s=max(run.duration_s for run in runs),
                           average_power_w=median([run.energy_j / run.duration_s for run in runs]))


def trials_needed(trials_done: int, half_width: float, target_half_width: float) -> int:
    """Trials per side for the target width, from the 1/sqrt(n) law (an estimate, not a promise)."""
    return max(trials_done + 1, math.ceil(trials_done * (half_width / target_half_width) ** 2))


def explain(spread: TimeBoundSpread, *, idle_w: float | None, trials_done: int, half_width: float,
            target_half_width: float, seconds_per_trial: float, pinned_cpus: int = 0,
            host_note: str | None = None) -> str:
    """One warning line: what the spread follows, what that means, what a narrow interval would cost."""
    slope = spread.joules_per_extra_s
    parts = [f"the energy of a run follows its wall time (r = {spread.correlation:.2f}; runs took "
             f"{spread.duration_min_s:.2f}-{spread.duration_max_s:.2f} s, {slope:.0f} J per extra second "
             f"against a median run power of {spread.average_power_w:.0f} W"]
    if idle_w is not None and idle_w > 0:
        parts.append(f", {idle_w:.0f} W idle")
    if slope < WAITING_FRACTION * spread.average_power_w:
        parts.append("): in the extra seconds the GPU mostly waits, so the spread comes from a host phase "
                     "whose length varies (CPU-side input generation or reference checks, other load on "
                     "the host, a host CPU whose speed varies from run to run), not from the sensor")
        if pinned_cpus:
            parts.append(f", even with each run pinned to {pinned_cpus} CPU{'s' if pinned_cpus > 1 else ''}")
        if host_note:
            parts.append(f"; during the trials {host_note}")
        if not pinned_cpus:
            parts.append(". Pinning the program to one CPU core can steady a single-threaded host phase "
                         "([measure] pin_cpus = 1)")
    else:
        parts.append("): the GPU work itself took longer in some runs (clocks, throttling or other work "
                     "on the GPU)")
    n = trials_needed(trials_done, half_width, target_half_width)
    # The budget that would allow it, rounded up to whole minutes: the knobs to turn, by their names.
    wall_s = 60 * max(1, math.ceil(n * seconds_per_trial / 60))
    parts.append(f"; a +-{100 * target_half_width:.1f} % interval would take about {n} trials per side "
                 f"(~{wall_s // 60} min: max_trials = {n}, max_wall_s = {wall_s})")
    return "".join(parts)
