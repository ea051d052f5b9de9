"""The LASSI-EE paper's measurement method (arXiv 2505.02184), reproduced for side-by-side comparison.

The paper polls nvmlDeviceGetPowerUsage (device.power_average_mw: a 1 s moving average on Ampere and
later) every 10 ms, takes an idle mean over 2 s before and 2 s after the run, subtracts it from every
sample, clamps negatives to zero and integrates over the process run. One run gives one figure.

Wattson's own protocol (protocol.py) exists because this method is weak: the averaged sensor lags
the work by up to a second, the idle mean is high when the GPU is still clocked up from earlier
work (idle-subtracted energy then drops to near zero), subtraction rewards slower code, and a single
run carries no uncertainty. The same run's energy-counter window is kept next to the paper's figure
so the two can be compared.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import stats
from .device import DeviceError, GpuDevice
from .protocol import (
    STOP_SINGLE_RUN,
    Cancelled,
    CompareResult,
    ProfileResult,
    ProgramFailed,
    Progress,
    TrialConditions,
)
from .run import RunMeasurement, Sandbox, downsample_timeline, measured_run
from .stats import Estimate

ENERGY_SOURCE = "power-average-idle-subtracted"
SINGLE_RUN_WARNING = ("lassi-ee: one run per figure, as in the paper: a single run has no uncertainty "
                      "estimate, and run-to-run noise (often several %) can exceed the effect measured")


@dataclass
class LassiEEResult:
    measurement: RunMeasurement  # the run itself, with Wattson's counter window of the same process
    energy_j: float | None  # the paper's figure: idle-subtracted, clamped, integrated over the run
    idle_w: float | None  # the idle mean that was subtracted (both idle windows pooled)
    idle_before_w: float | None
    idle_after_w: float | None
    samples: list[tuple[float, float]]  # (s since process start, averaged power W), idle windows included
    warnings: list[str] = field(default_factory=list)

    @property
    def counter_energy_j(self) -> float | None:
        m = self.measurement
        return m.energy_mj / 1000.0 if m.energy_mj is not None else None

    def to_dict(self, max_samples: int | None = 400) -> dict:
        samples = self.samples if max_samples is None else downsample_timeline(self.samples, max_samples)
        return {
            "measurement": self.measurement.to_dict(max_timeline_points=max_samples),
            "energy_j": self.energy_j,
            "idle_w": self.idle_w,
            "idle_before_w": self.idle_before_w,
            "idle_after_w": self.idle_after_w,
            "samples": [[t, p] for t, p in samples],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: dict) -> LassiEEResult:
        return cls(measurement=RunMeasurement.from_dict(d["measurement"]), energy_j=d.get("energy_j"),
                   idle_w=d.get("idle_w"), idle_before_w=d.get("idle_before_w"),
                   idle_after_w=d.get("idle_after_w"),
                   samples=[(float(t), float(p)) for t, p in d.get("samples") or []],
                   warnings=list(d.get("warnings") or []))


class _AveragePowerPoller:
    """Polls the driver's averaged power on a thread: (time.monotonic(), W) pairs."""

    def __init__(self, device: GpuDevice, period_s: float):
        self.device = device
        self.period_s = max(period_s, 0.001)
        self.samples: list[tuple[float, float]] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lassi-ee-poller", daemon=True)

    def __enter__(self) -> _AveragePowerPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        next_s = time.monotonic()
        while True:
            try:
                power_mw = self.device.power_average_mw()
            except DeviceError as e:
                self.error = str(e)
                return
            now = time.monotonic()
            if power_mw is None:
                self.error = "this GPU reports no averaged power"
                return
            self.samples.append((now, power_mw / 1000.0))
            next_s = max(next_s + self.period_s, now)
            if self._stop.wait(next_s - now):
                return


def _wait(seconds: float, cancel: threading.Event | None) -> bool:
    """Sleep; True if cancelled meanwhile."""
    if cancel is None:
        time.sleep(seconds)
        return False
    return cancel.wait(seconds)


def idle_subtracted_energy_j(samples: list[tuple[float, float]], start_s: float, end_s: float,
                             idle_w: float) -> float | None:
    """The paper's integral: (power - idle) clamped at 0, trapezoid over [start_s, end_s].

    samples are (time, W) on the same clock as start_s/end_s; edge values are held to the window."""
    inside = [(t, max(0.0, p - idle_w)) for t, p in samples if start_s <= t <= end_s]
    before = [(t, p) for t, p in samples if t < start_s]
    after = [(t, p) for t, p in samples if t > end_s]
    if not inside and not (before and after):
        return None
    first = inside[0][1] if inside else max(0.0, before[-1][1] - idle_w)
    last = inside[-1][1] if inside else max(0.0, after[0][1] - idle_w)
    points = [(start_s, first), *inside, (end_s, last)]
    return sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in zip(points, points[1:], strict=False))


def measure_lassi_ee(command: str, *, cwd: Path, device: GpuDevice, timeout_s: float,
                     env: dict[str, str] | None = None, sandbox: Sandbox | None = None,
                     idle_window_s: float = 2.0, poll_period_s: float = 0.01,
                     cancel: threading.Event | None = None,
                     progress: Progress | None = None) -> LassiEEResult | None:
    """One run measured the paper's way. None when cancelled before or during the run."""
    warnings: list[str] = []

    def note(message: str, fraction: float) -> None:
        if progress is not None:
            progress(message, fraction)

    with _AveragePowerPoller(device, poll_period_s) as poller:
        note("lassi-ee: idle window before the run", 0.0)
        if _wait(idle_window_s, cancel):
            return None
        note("lassi-ee: running", 0.3)
        m = measured_run(command, cwd=cwd, device=device, timeout_s=timeout_s, env=env, sandbox=sandbox,
                         cancel=cancel)
        if m.cancelled:
            return None
        note("lassi-ee: idle window after the run", 0.7)
        if not m.failed and _wait(idle_window_s, cancel):
            return None
    start_s, end_s = m.start_monotonic_s, m.start_monotonic_s + m.duration_s
    before = [p for t, p in poller.samples if t < start_s]
    after = [p for t, p in poller.samples if t > end_s]
    idle_before = sum(before) / len(before) if before else None
    idle_after = sum(after) / len(after) if after else None
    idle = sum(before + after) / len(before + after) if before or after else None
    energy = None
    if poller.error:
        warnings.append(f"lassi-ee: averaged power could not be polled: {poller.error}")
    if idle is not None:
        energy = idle_subtracted_energy_j(poller.samples, start_s, end_s, idle)
    if energy is None and not poller.error:
        warnings.append("lassi-ee: no power samples around the run; no energy figure")
    samples = [(t - start_s, p) for t, p in poller.samples]
    return LassiEEResult(measurement=m, energy_j=energy, idle_w=idle, idle_before_w=idle_before,
                         idle_after_w=idle_after, samples=samples, warnings=warnings)


def _single(value: float | None) -> Estimate | None:
    return Estimate(value, value, value, 1) if value is not None else None


def _profile_from(result: LassiEEResult | None, device: GpuDevice, wall_s: float, label: str,
                  stopped_because: str = STOP_SINGLE_RUN) -> ProfileResult:
    if result is None:  # cancelled before a run finished
        return ProfileResult(protocol="lassi-ee", device=device.info.to_dict(), trials=[], conditions=[],
                             energy_j=None, duration_s=None, avg_power_w=None, peak_power_w=None, edp_js=None,
                             idle_power_w=None, energy_source=ENERGY_SOURCE, outliers=[], warnings=[],
                             stopped_because=stopped_because, state_start=None, state_end=None, wall_s=wall_s)
    m = result.measurement
    energy = result.energy_j
    in_run = [p for t, p in result.samples if 0.0 <= t <= m.duration_s]
    warnings = [SINGLE_RUN_WARNING, *result.warnings, *(f"{label}: {w}" for w in m.warnings)]
    counter = result.counter_energy_j
    if counter is not None and energy is not None:
        warnings.append(f"{label}: the same run's energy counter read {counter:.4g} J for the whole process "
                        f"(Wattson's figure, no idle subtraction) vs {energy:.4g} J here")
    if energy is not None and counter and energy < 0.05 * counter:
        warnings.append(f"{label}: the idle-subtracted energy is near zero: the idle windows read as much "
                        "power as the run (the GPU stays clocked up after work), so this figure is mostly "
                        "noise")
    return ProfileResult(
        protocol="lassi-ee",
        device=device.info.to_dict(),
        trials=[m],
        conditions=[TrialConditions(cooldown_s=0.0, start_power_w=result.idle_before_w)],
        energy_j=_single(energy),
        duration_s=_single(m.duration_s),
        avg_power_w=energy / m.duration_s if energy is not None and m.duration_s > 0 else None,
        peak_power_w=max(in_run, default=None),
        edp_js=energy * m.duration_s if energy is not None else None,
        idle_power_w=result.idle_w,
        energy_source=ENERGY_SOURCE,
        outliers=[],
        warnings=warnings,
        stopped_because=stopped_because,
        state_start=m.state_start,
        state_end=m.state_end,
        wall_s=wall_s,
        details={"idle_before_w": result.idle_before_w, "idle_after_w": result.idle_after_w,
                 "counter_energy_j": counter,
                 "samples": [[t, p] for t, p in downsample_timeline(result.samples, 400)]},
    )


def profile_lassi_ee(command: str, *, cwd: Path, device: GpuDevice, timeout_s: float,
                     env: dict[str, str] | None = None, sandbox: Sandbox | None = None,
                     cancel: threading.Event | None = None, progress: Progress | None = None,
                     idle_window_s: float = 2.0, poll_period_s: float = 0.01) -> ProfileResult:
    """The paper's figure for one program: one run, energy_j with ci_low = ci_high = the value.

    Raises ProgramFailed when the run fails and Cancelled when cancelled."""
    started = time.monotonic()
    result = measure_lassi_ee(command, cwd=cwd, device=device, timeout_s=timeout_s, env=env, sandbox=sandbox,
                              idle_window_s=idle_window_s, poll_period_s=poll_period_s, cancel=cancel,
                              progress=progress)
    if result is None:
        raise Cancelled(_profile_from(None, device, time.monotonic() - started, "the program", "cancelled"))
    if result.measurement.failed:
        raise ProgramFailed(result.measurement, "the program", "the lassi-ee run")
    return _profile_from(result, device, time.monotonic() - started, "the program")


def compare_lassi_ee(command_a: str, command_b: str, *, cwd_a: Path, cwd_b: Path, device: GpuDevice,
                     timeout_a_s: float, timeout_b_s: float, env_a: dict[str, str] | None = None,
                     env_b: dict[str, str] | None = None, sandbox_a: Sandbox | None = None,
                     sandbox_b: Sandbox | None = None, cancel: threading.Event | None = None,
                     progress: Progress | None = None, idle_window_s: float = 2.0,
                     poll_period_s: float = 0.01, min_effect: float = 0.01) -> CompareResult:
    """One run of A, then one of B, the paper's way; the verdict rests on that single pair."""
    started = time.monotonic()
    results: dict[str, LassiEEResult] = {}
    plan = (("A", command_a, cwd_a, timeout_a_s, env_a, sandbox_a),
            ("B", command_b, cwd_b, timeout_b_s, env_b, sandbox_b))
    for i, (label, command, cwd, timeout_s, env, sandbox) in enumerate(plan):
        def note(message: str, fraction: float, i: int = i, label: str = label) -> None:
            if progress is not None:
                progress(f"{label}: {message}", (i + fraction) / 2.0)

        r = measure_lassi_ee(command, cwd=cwd, device=device, timeout_s=timeout_s, env=env, sandbox=sandbox,
                             idle_window_s=idle_window_s, poll_period_s=poll_period_s, cancel=cancel,
                             progress=note)
        if r is None:
            raise Cancelled(_compare_from(results, device, started, min_effect, "cancelled"))
        if r.measurement.failed:
            raise ProgramFailed(r.measurement, label, "the lassi-ee run")
        results[label] = r
    return _compare_from(results, device, started, min_effect, STOP_SINGLE_RUN)


def _compare_from(results: dict[str, LassiEEResult], device: GpuDevice, started: float, min_effect: float,
                  stopped_because: str) -> CompareResult:
    wall_s = time.monotonic() - started
    a = _profile_from(results.get("A"), device, wall_s, "A", stopped_because)
    b = _profile_from(results.get("B"), device, wall_s, "B", stopped_because)
    warnings = [SINGLE_RUN_WARNING]
    verdict = None
    ea = a.energy_j.median if a.energy_j else None
    eb = b.energy_j.median if b.energy_j else None
    if ea and eb is not None:
        r = eb / ea
        verdict = stats.verdict_from_ratio(r, r, r, min_effect=min_effect, single_pair=True)
    elif a.trials and b.trials:
        warnings.append("lassi-ee: A's idle-subtracted energy is zero or missing, so no ratio can be formed")
    warnings += [w for w in a.warnings + b.warnings if w != SINGLE_RUN_WARNING]
    time_ratio = power_ratio = None
    if a.duration_s and b.duration_s and a.duration_s.median > 0:
        time_ratio = _single(b.duration_s.median / a.duration_s.median)
    if a.avg_power_w and b.avg_power_w is not None:
        power_ratio = _single(b.avg_power_w / a.avg_power_w)
    return CompareResult(protocol="lassi-ee", device=device.info.to_dict(), a=a, b=b, energy_ratio=verdict,
                         time_ratio=time_ratio, power_ratio=power_ratio,
                         order=[k for k in ("A", "B") if k in results], warnings=warnings,
                         stopped_because=stopped_because, idle_power_w=a.idle_power_w, wall_s=wall_s)
