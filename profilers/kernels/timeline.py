"""The two timelines attribution joins: GPU activity (who ran when) and power (sensor windows).

Activity: kernel records become segments of time, each charged to the kernels running in it. When
n kernels overlap (several streams), each is charged 1/n of the overlap, so charged times add up
to the time the GPU was busy. `ChargedTime` answers "how long was kernel k charged in [a, b]?".

Power: the sampler records (t_s, power_mw) far more often than the H100's sensor updates (~100 ms).
A new value marks a sensor update; the value is read as the average power over the window since the
previous update (the sensor's period), ending `lag_s` before the sampler saw it.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from dataclasses import dataclass, field

from .trace import KernelRecord


@dataclass
class _Series:
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    before: list[float] = field(default_factory=list)  # charged time before this piece starts
    total: float = 0.0


class ChargedTime:
    """Per-name charged time as a cumulative function of time, built once by a sweep over records."""

    def __init__(self, records: list[KernelRecord]):
        self._series: dict[str, _Series] = {}
        self.busy_s = 0.0  # union of all activity
        events: list[tuple[float, int, str]] = []
        for r in records:
            if r.end_s > r.start_s:
                events.append((r.start_s, 1, r.name))
                events.append((r.end_s, -1, r.name))
        events.sort(key=lambda e: (e[0], e[1]))  # ends before starts at the same instant
        active: Counter[str] = Counter()
        running = 0
        last_t = events[0][0] if events else 0.0
        for t, delta, name in events:
            if running and t > last_t:
                for n, count in active.items():
                    self._add(n, last_t, t, count / running)
                self.busy_s += t - last_t
            active[name] += delta
            if active[name] == 0:
                del active[name]
            running += delta
            last_t = t
        self.start_s = events[0][0] if events else 0.0
        self.end_s = events[-1][0] if events else 0.0

    def _add(self, name: str, a: float, b: float, weight: float) -> None:
        s = self._series.get(name)
        if s is None:
            s = self._series[name] = _Series()
        if s.ends and s.ends[-1] == a and s.weights[-1] == weight:
            s.ends[-1] = b  # extend the previous piece: back-to-back launches of one kernel
        else:
            s.starts.append(a)
            s.ends.append(b)
            s.weights.append(weight)
            s.before.append(s.total)
        s.total += (b - a) * weight

    @property
    def names(self) -> list[str]:
        return list(self._series)

    def total_s(self, name: str) -> float:
        return self._series[name].total

    def cumulative_s(self, name: str, t: float) -> float:
        s = self._series[name]
        i = bisect.bisect_right(s.starts, t) - 1
        if i < 0:
            return 0.0
        return s.before[i] + s.weights[i] * (min(t, s.ends[i]) - s.starts[i])

    def between_s(self, name: str, a: float, b: float) -> float:
        return self.cumulative_s(name, b) - self.cumulative_s(name, a)


@dataclass
class PowerWindow:
    start_s: float
    end_s: float
    power_w: float

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


def sensor_updates(timeline: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(time first seen, power W) for each change of the reading: the sensor's updates."""
    updates: list[tuple[float, float]] = []
    last: float | None = None
    for t, p_mw in sorted(timeline):
        if p_mw is None:
            continue
        if last is None or p_mw != last:
            updates.append((t, p_mw / 1000.0))
            last = p_mw
    return updates


def sensor_period_s(updates: list[tuple[float, float]]) -> float | None:
    gaps = [b[0] - a[0] for a, b in zip(updates, updates[1:], strict=False) if b[0] > a[0]]
    return statistics.median(gaps) if gaps else None


def power_windows(updates: list[tuple[float, float]], lag_s: float, period_s: float) -> list[PowerWindow]:
    """Each update as the average power over the window before it, shifted back by lag_s.

    A gap much longer than the sensor's period (the sampler stalled, or the reading held still) is
    cut to the last 3 periods, since the reading only speaks for the time just before it."""
    windows = []
    for (t0, _), (t1, p) in zip(updates, updates[1:], strict=False):
        start = max(t0, t1 - 3 * period_s)
        windows.append(PowerWindow(start - lag_s, t1 - lag_s, p))
    return windows


def integrate_w(windows: list[PowerWindow], a: float, b: float) -> tuple[float, float]:
    """(energy in J over [a, b], seconds of [a, b] the windows cover)."""
    energy = covered = 0.0
    for w in windows:
        overlap = min(w.end_s, b) - max(w.start_s, a)
        if overlap > 0:
            energy += w.power_w * overlap
            covered += overlap
    return energy, covered
