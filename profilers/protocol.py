"""How a figure with an interval is made: idle level, warm-up, cooldown, trials, A/B interleaving, stopping.

profile() measures one program: warm-up runs (not counted), then trials, each after a cooldown, until
the 95 % interval of the median energy is narrow enough (Budget.target_ci_half_width) or the budget
is spent. compare() does the same for two programs interleaved A B B A A B B A ... on the same GPU,
so slow drifts (temperature, clocks, neighbours, a host CPU's speed) hit both alike, and stops on the
interval of the ratio of medians B/A, resampled by trial pairs (A's k-th trial and B's k-th ran next
to each other), so what drifts from pair to pair stays out of the interval. Both say why they stopped
and flag trials that ran under other conditions.

A run is passed in as `run_once`, a function that performs one measured execution (usually a
closure over run.measured_run); it should pass the same `cancel` event to measured_run, so a
cancel also stops the run in flight.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from . import host_load, spread, stats
from .device import DeviceError, DeviceState, GpuDevice
from .run import RunMeasurement
from .stats import Estimate, Verdict

RunOnce = Callable[[], RunMeasurement]  # may also offer warm_up(): the same run, its record thrown away
Progress = Callable[[str, float], None]  # (message, fraction 0..1)

# Cooldown: poll instant power until it is near the idle level or stops falling. The H100's power
# sensor updates every ~100 ms, so "stops falling" compares means of windows of several updates.
COOLDOWN_POLL_S = 0.05
SETTLE_WINDOW_S = 0.3
STILL_FALLING_FRACTION = 0.01  # a window 1 % below the previous one is still falling
IDLE_MARGIN_FRACTION = 0.05
IDLE_MARGIN_MIN_W = 3.0

# The counter updates every ~100 ms (H100, measured): windows shorter than this are mostly edge error.
RELIABLE_WINDOW_S = 1.0
TEMPERATURE_DRIFT_C = 10.0
CLOCK_DRIFT_FRACTION = 0.15
# Reasons that say nothing about this trial's conditions: an idle GPU "throttles" because it is idle,
# application clocks and display clocks are settings that hold for every trial alike.
BENIGN_THROTTLE_REASONS = frozenset({"gpu_idle", "idle", "applications_clocks", "applications_clocks_setting",
                                     "display_clocks", "none"})

STOP_CI = "ci target reached"
STOP_MAX_TRIALS = "max trials"
STOP_TIME = "time budget"
STOP_CANCELLED = "cancelled"
STOP_SINGLE_RUN = "single run"


@dataclass
class Budget:
    warmup_runs: int = 1
    min_trials: int = 5
    max_trials: int = 30
    max_wall_s: float = 90.0
    target_ci_half_width: float = 0.02  # relative, of energy (or of the B/A ratio in compare)
    cooldown_cap_s: float = 10.0
    min_effect: float = 0.01  # verdict band: ratios within 1 +- min_effect are "no difference"
    pin_cpus: int = 0  # bind each run to this many host CPUs near the GPU (cpu_pinning.py); 0: no pinning

    def __post_init__(self) -> None:
        problems = []
        if self.warmup_runs < 0:
            problems.append("warmup_runs must be 0 or more")
        if self.min_trials < 1:
            problems.append("min_trials must be at least 1")
        if self.max_trials < self.min_trials:
            problems.append(f"max_trials ({self.max_trials}) must be at least min_trials ({self.min_trials})")
        if self.max_wall_s <= 0:
            problems.append("max_wall_s must be positive")
        if self.target_ci_half_width <= 0:
            problems.append("target_ci_half_width must be positive (0.02 means +-2 %)")
        if self.cooldown_cap_s < 0:
            problems.append("cooldown_cap_s must be 0 or more")
        if not 0 <= self.min_effect < 1:
            problems.append("min_effect must be between 0 and 1 (0.01 means 1 %)")
        if self.pin_cpus < 0:
            problems.append("pin_cpus must be 0 (no pinning) or more")
        if problems:
            raise ValueError("invalid measurement budget: " + "; ".join(problems)
                             + " (set these in wattson.toml [measure] or on the command line)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Budget:
        """Known keys only; unknown ones (from a newer client) are ignored, None means the default."""
        whole = {"warmup_runs", "min_trials", "max_trials", "pin_cpus"}
        kwargs = {}
        for f in fields(cls):
            value = (d or {}).get(f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"{f.name} must be a finite number, got {value!r}")
            if f.name in whole:
                if not number.is_integer():
                    raise ValueError(f"{f.name} must be a whole number, got {value!r}")
                kwargs[f.name] = int(number)
            else:
                kwargs[f.name] = number
        return cls(**kwargs)


@dataclass
class TrialConditions:
    """What surrounded one trial: how long it cooled down, the power it started from, what was odd."""

    cooldown_s: float
    start_power_w: float | None
    flags: list[str] = field(default_factory=list)
    outlier: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrialConditions:
        return cls(cooldown_s=float(d.get("cooldown_s", 0.0)), start_power_w=d.get("start_power_w"),
                   flags=list(d.get("flags") or []), outlier=bool(d.get("outlier")))


def _est_dict(e: Estimate | None) -> dict | None:
    return e.to_dict() if e is not None else None


def _est(d: dict | None) -> Estimate | None:
    return Estimate.from_dict(d) if d else None


@dataclass
class ProfileResult:
    protocol: str  # "wattson" | "lassi-ee"
    device: dict | None  # DeviceInfo as a dict
    trials: list[RunMeasurement]
    conditions: list[TrialConditions]  # one per trial, same order
    energy_j: Estimate | None  # total energy of the program run: median and 95 % CI
    duration_s: Estimate | None
    avg_power_w: float | None  # median over trials of energy / duration
    peak_power_w: float | None  # highest instant power seen in any trial
    edp_js: float | None  # energy-delay product, median over trials of E * T
    idle_power_w: float | None  # the GPU's settled power before the first run
    energy_source: str  # "counter" | "instant-power-integral" | "none" | "mixed" | lassi-ee's
    outliers: list[int]  # trial indices the MAD rule flags; they are kept in the median
    warnings: list[str]
    stopped_because: str
    state_start: DeviceState | None  # at the first trial's start
    state_end: DeviceState | None  # at the last trial's end
    wall_s: float = 0.0  # the whole measurement, cooldowns and warm-ups included
    budget: dict | None = None
    details: dict | None = None  # protocol-specific extras (lassi-ee: idle windows, polled samples)
    host: host_load.HostLoad | None = None  # load average and steal over the measurement

    def to_dict(self, max_timeline_points: int | None = 200) -> dict:
        """JSON-safe. Timelines are downsampled to max_timeline_points (0 drops them, None keeps all)."""
        return {
            "protocol": self.protocol,
            "device": self.device,
            "trials": [t.to_dict(max_timeline_points=max_timeline_points) for t in self.trials],
            "conditions": [c.to_dict() for c in self.conditions],
            "energy_j": _est_dict(self.energy_j),
            "duration_s": _est_dict(self.duration_s),
            "avg_power_w": self.avg_power_w,
            "peak_power_w": self.peak_power_w,
            "edp_js": self.edp_js,
            "idle_power_w": self.idle_power_w,
            "energy_source": self.energy_source,
            "outliers": list(self.outliers),
            "warnings": list(self.warnings),
            "stopped_because": self.stopped_because,
            "state_start": self.state_start.to_dict() if self.state_start else None,
            "state_end": self.state_end.to_dict() if self.state_end else None,
            "wall_s": self.wall_s,
            "budget": self.budget,
            "details": self.details,
            "host": self.host.to_dict() if self.host else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ProfileResult:
        return cls(
            protocol=d.get("protocol", "wattson"),
            device=d.get("device"),
            trials=[RunMeasurement.from_dict(t) for t in d.get("trials") or []],
            conditions=[TrialConditions.from_dict(c) for c in d.get("conditions") or []],
            energy_j=_est(d.get("energy_j")),
            duration_s=_est(d.get("duration_s")),
            avg_power_w=d.get("avg_power_w"),
            peak_power_w=d.get("peak_power_w"),
            edp_js=d.get("edp_js"),
            idle_power_w=d.get("idle_power_w"),
            energy_source=d.get("energy_source", "none"),
            outliers=list(d.get("outliers") or []),
            warnings=list(d.get("warnings") or []),
            stopped_because=d.get("stopped_because", ""),
            state_start=DeviceState.from_dict(d["state_start"]) if d.get("state_start") else None,
            state_end=DeviceState.from_dict(d["state_end"]) if d.get("state_end") else None,
            wall_s=float(d.get("wall_s", 0.0)),
            budget=d.get("budget"),
            details=d.get("details"),
            host=host_load.HostLoad.from_dict(d["host"]) if d.get("host") else None,
        )


@dataclass
class CompareResult:
    protocol: str
    device: dict | None
    a: ProfileResult
    b: ProfileResult
    energy_ratio: Verdict | None  # energy B/A with its interval and the verdict; None without energy
    time_ratio: Estimate | None  # duration B/A
    power_ratio: Estimate | None  # average power B/A
    order: list[str]  # the counted trials as run: "A", "B", "B", "A", ...
    warnings: list[str]
    stopped_because: str
    idle_power_w: float | None = None
    wall_s: float = 0.0
    budget: dict | None = None
    host: host_load.HostLoad | None = None  # load average and steal over the whole comparison

    def to_dict(self, max_timeline_points: int | None = 200) -> dict:
        return {
            "protocol": self.protocol,
            "device": self.device,
            "a": self.a.to_dict(max_timeline_points),
            "b": self.b.to_dict(max_timeline_points),
            "energy_ratio": self.energy_ratio.to_dict() if self.energy_ratio else None,
            "time_ratio": _est_dict(self.time_ratio),
            "power_ratio": _est_dict(self.power_ratio),
            "order": list(self.order),
            "warnings": list(self.warnings),
            "stopped_because": self.stopped_because,
            "idle_power_w": self.idle_power_w,
            "wall_s": self.wall_s,
            "budget": self.budget,
            "host": self.host.to_dict() if self.host else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> CompareResult:
        return cls(
            protocol=d.get("protocol", "wattson"),
            device=d.get("device"),
            a=ProfileResult.from_dict(d["a"]),
            b=ProfileResult.from_dict(d["b"]),
            energy_ratio=Verdict.from_dict(d["energy_ratio"]) if d.get("energy_ratio") else None,
            time_ratio=_est(d.get("time_ratio")),
            power_ratio=_est(d.get("power_ratio")),
            order=list(d.get("order") or []),
            warnings=list(d.get("warnings") or []),
            stopped_because=d.get("stopped_because", ""),
            idle_power_w=d.get("idle_power_w"),
            wall_s=float(d.get("wall_s", 0.0)),
            budget=d.get("budget"),
            host=host_load.HostLoad.from_dict(d["host"]) if d.get("host") else None,
        )


class ProgramFailed(Exception):
    """A run exited nonzero, crashed or timed out; carries what it printed so the user can fix it."""

    def __init__(self, measurement: RunMeasurement, label: str, phase: str = ""):
        self.measurement = measurement
        self.label = label
        where = f" during {phase}" if phase else ""
        super().__init__(f"{label} {measurement.failure_text()}{where}; it must run cleanly before its "
                         "energy can be measured (its output is attached)")


class Cancelled(Exception):
    """The measurement was cancelled; `partial` holds the trials that finished, summarized."""

    def __init__(self, partial: ProfileResult | CompareResult):
        self.partial = partial
        n = len(partial.trials) if isinstance(partial, ProfileResult) else len(partial.order)
        super().__init__(f"measurement cancelled after {n} finished trial(s)")


class _Stop(Exception):
    """Unwinds the trial loop on cancel; turned into Cancelled with the partial result."""


# --- cooldown -------------------------------------------------------------------------------------


@dataclass
class Settled:
    power_w: float | None  # the power the wait ended at (last reading, or mean of the last window)
    waited_s: float
    settled: bool  # False: the cap ran out, or there is no power sensor
    cancelled: bool = False


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def settle_power(device: GpuDevice | None, *, idle_w: float | None, cap_s: float,
                 cancel: threading.Event | None = None) -> Settled:
    """Wait until instant power is within a margin of idle_w, or stops falling; at most cap_s.

    Without idle_w (measuring the idle level itself) only "stops falling" ends the wait."""
    if device is None or not device.info.has_instant_power:
        return Settled(None, 0.0, False)
    start = time.monotonic()
    samples: list[tuple[float, float]] = []
    margin_w = None if idle_w is None else max(IDLE_MARGIN_FRACTION * idle_w, IDLE_MARGIN_MIN_W)
    while True:
        try:
            power_mw = device.power_instant_mw()
        except DeviceError:
            power_mw = None
        now = time.monotonic() - start
        if power_mw is None:
            return Settled(None, now, False)
        samples.append((now, power_mw / 1000.0))
        recent = [p for t, p in samples if t >= now - SETTLE_WINDOW_S]
        if margin_w is not None and idle_w is not None and recent[-1] <= idle_w + margin_w:
            return Settled(recent[-1], now, True)
        if now >= 2 * SETTLE_WINDOW_S:
            previous = [p for t, p in samples if now - 2 * SETTLE_WINDOW_S <= t < now - SETTLE_WINDOW_S]
            if previous and _mean(recent) >= _mean(previous) * (1.0 - STILL_FALLING_FRACTION):
                return Settled(_mean(recent), now, True)
        if now >= cap_s:
            return Settled(_mean(recent), now, False)
        if cancel is not None:
            if cancel.wait(COOLDOWN_POLL_S):
                return Settled(_mean(recent), now, False, cancelled=True)
        else:
            time.sleep(COOLDOWN_POLL_S)


# --- one series of trials -------------------------------------------------------------------------


@dataclass
class _Series:
    label: str
    runs: list[RunMeasurement] = field(default_factory=list)
    conditions: list[TrialConditions] = field(default_factory=list)

    def energies_mj(self) -> list[float]:
        return [r.energy_mj for r in self.runs if r.energy_mj is not None]

    def durations_s(self) -> list[float]:
        return [r.duration_s for r in self.runs]

    def powers_mw(self) -> list[float]:
        return [r.avg_power_mw for r in self.runs if r.avg_power_mw is not None]

    def key_values(self) -> list[float]:
        """What the stopping rule watches: energy, or time where there is no energy reading."""
        return self.energies_mj() or self.durations_s()


class _Session:
    """State shared by the trials of one profile or compare: clock, idle level, budget, callbacks."""

    def __init__(self, device: GpuDevice | None, budget: Budget, progress: Progress | None,
                 cancel: threading.Event | None):
        self.device = device
        self.budget = budget
        self.progress = progress
        self.cancel = cancel
        self.started_s = time.monotonic()
        self.host_start = host_load.snapshot()
        self._host: host_load.HostLoad | None = None
        self.idle_w: float | None = None
        self.warnings: list[str] = []
        self.trial_costs_s: list[float] = []  # wall time per counted trial, cooldown included

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_s

    def host_so_far(self) -> host_load.HostLoad:
        """The host's load average and steal time from the session's start until the trials ended: read
        once, when the summaries first ask, so A, B, the comparison and the spread note share one figure."""
        if self._host is None:
            self._host = host_load.between(self.host_start, host_load.snapshot())
        return self._host

    def report(self, message: str, done_trials: int, total_trials: int) -> None:
        if self.progress is None:
            return
        fraction = max(done_trials / max(total_trials, 1), self.elapsed_s() / self.budget.max_wall_s)
        self.progress(message, min(1.0, fraction))

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Stop()

    def measure_idle(self) -> None:
        if self.device is None:
            return
        if not self.device.info.has_instant_power:
            self.warnings.append("this GPU reports no instant power: trials ran back to back without "
                                 "cooldown, and no idle level was measured")
            return
        self.report("measuring the idle level", 0, 1)
        settled = settle_power(self.device, idle_w=None, cap_s=self.budget.cooldown_cap_s, cancel=self.cancel)
        self.check_cancel()
        self.idle_w = settled.power_w
        if not settled.settled:
            self.warnings.append(
                f"GPU power was still falling after {settled.waited_s:.0f} s before the first run: the GPU "
                "was busy (another job?); trials may start from different states")

    def warm_up(self, run_once: RunOnce, label: str, k: int) -> None:
        self.check_cancel()
        self.report(f"warm-up {k}: {label}", 0, 1)
        m = getattr(run_once, "warm_up", run_once)()
        if m.cancelled:
            raise _Stop()
        if m.failed:
            raise ProgramFailed(m, label, "warm-up")

    def trial(self, run_once: RunOnce, series: _Series, done: int, total: int) -> None:
        self.check_cancel()
        t0 = time.monotonic()
        self.report(f"cooling down before trial {len(series.runs) + 1} of {series.label}", done, total)
        settled = settle_power(self.device, idle_w=self.idle_w, cap_s=self.budget.cooldown_cap_s,
                               cancel=self.cancel)
        self.check_cancel()
        m = run_once()
        if m.cancelled:
            raise _Stop()
        if m.failed:
            raise ProgramFailed(m, series.label, f"trial {len(series.runs) + 1}")
        series.runs.append(m)
        series.conditions.append(TrialConditions(cooldown_s=settled.waited_s, start_power_w=settled.power_w))
        self.trial_costs_s.append(time.monotonic() - t0)
        energy = f"{m.energy_mj / 1000:.4g} J" if m.energy_mj is not None else f"{m.duration_s:.3g} s"
        self.report(f"trial {len(series.runs)} of {series.label}: {energy}", done + 1, total)

    def out_of_time(self, next_trials: int) -> bool:
        """Would `next_trials` more trials, at the average cost so far, overrun the time budget?"""
        cost = _mean(self.trial_costs_s) if self.trial_costs_s else 0.0
        return self.elapsed_s() + next_trials * cost > self.budget.max_wall_s


# --- flags and summaries --------------------------------------------------------------------------


def trial_flags(runs: list[RunMeasurement]) -> list[list[str]]:
    """Per trial, what made it unlike the others: throttling (polled during the run or at its edges),
    a start temperature more than 10 C from the median trial's, an end SM clock 15 % off the median."""
    start_temps = [r.state_start.temperature_c for r in runs
                   if r.state_start and r.state_start.temperature_c is not None]
    end_clocks = [r.state_end.sm_clock_mhz for r in runs
                  if r.state_end and r.state_end.sm_clock_mhz is not None]
    med_temp = stats.median(start_temps) if start_temps else None
    med_clock = stats.median(end_clocks) if end_clocks else None
    all_flags = []
    for run in runs:
        flags = []
        seen = set(run.throttle_reasons_seen)
        for state in (run.state_start, run.state_end):
            if state is not None:
                seen.update(state.throttle_reasons)
        reasons = sorted(seen - BENIGN_THROTTLE_REASONS)
        if reasons:
            flags.append("throttled: " + ", ".join(reasons))
        temp = run.state_start.temperature_c if run.state_start else None
        if temp is not None and med_temp is not None and abs(temp - med_temp) > TEMPERATURE_DRIFT_C:
            flags.append(f"started at {temp:.0f} C, {temp - med_temp:+.0f} C from the median trial")
        clock = run.state_end.sm_clock_mhz if run.state_end else None
        if clock is not None and med_clock and abs(clock - med_clock) > CLOCK_DRIFT_FRACTION * med_clock:
            flags.append(f"SM clock {clock} MHz at the end, median trial {med_clock:.0f} MHz")
        all_flags.append(flags)
    return all_flags


def _series_warnings(series: _Series, outliers: list[int]) -> list[str]:
    warnings: list[str] = []
    n = len(series.runs)
    throttled = [c for c in series.conditions if any(f.startswith("throttled") for f in c.flags)]
    if throttled:
        reasons = sorted({f for c in throttled for f in c.flags if f.startswith("throttled")})
        if len(throttled) == n and len(reasons) == 1:
            warnings.append(f"every trial of {series.label} ran with the GPU throttling ({reasons[0]}): "
                            "the trials are alike, but the figures hold for throttled clocks only")
        else:
            warnings.append(f"{len(throttled)} of {n} trials of {series.label} ran with the GPU throttling "
                            f"({'; '.join(reasons)}): their energy may not be comparable")
    others = sum(1 for c in series.conditions if any(not f.startswith("throttled") for f in c.flags))
    if others:
        warnings.append(f"{others} of {n} trials of {series.label} ran at another temperature or clock "
                        "than the others (see the trial flags)")
    energies = [r.energy_mj for r in series.runs]
    valid = [e for e in energies if e is not None]
    for i in outliers:
        e = energies[i]
        if e is not None and valid:
            warnings.append(f"trial {i + 1} of {series.label} is an outlier ({e / 1000:.4g} J, median "
                            f"{stats.median(valid) / 1000:.4g} J); it is kept in the median")
    counts: dict[str, int] = {}
    for r in series.runs:
        for w in r.warnings:
            counts[w] = counts.get(w, 0) + 1
    for w, k in counts.items():
        warnings.append(f"{series.label}, {k} of {n} trials: {w}")
    sources = {r.energy_source for r in series.runs}
    if len(sources) > 1:
        warnings.append(f"the trials of {series.label} mixed energy sources ({', '.join(sorted(sources))}): "
                        "compare their figures with care")
    durations = series.durations_s()
    if valid and durations and stats.median(durations) < RELIABLE_WINDOW_S and "counter" in sources:
        warnings.append(
            f"each run of {series.label} lasts {stats.median(durations):.2f} s; the energy counter updates "
            f"every ~0.1 s, so windows under {RELIABLE_WINDOW_S:.0f} s carry large edge errors: make the run "
            "longer (more iterations or a bigger input) for a reliable figure")
    if len(valid) == 1:
        warnings.append(f"{series.label} has a single trial: its figure has no uncertainty estimate")
    return warnings


def _idle_only_warnings(series: _Series, idle_w: float | None) -> list[str]:
    """Every run at idle power: the GPU most likely did no work (HeCBench programs, for one, do not
    check CUDA errors, so a kernel that never launched still prints PASS)."""
    powers_w = [p / 1000.0 for p in series.powers_mw()]
    peaks_w = [r.peak_power_mw / 1000.0 for r in series.runs if r.peak_power_mw is not None]
    if idle_w is None or idle_w <= 0 or not powers_w or len(peaks_w) < len(series.runs):
        return []
    # The peak too: a short kernel after a long host phase barely moves the average, but the 20 ms
    # power samples catch it.
    if max(powers_w + peaks_w) > idle_w + max(IDLE_MARGIN_FRACTION * idle_w, IDLE_MARGIN_MIN_W):
        return []
    return [f"every run of {series.label} stayed at the GPU's idle power (median {stats.median(powers_w):.0f} W, "
            f"peak {max(peaks_w):.0f} W, idle {idle_w:.0f} W): it may not have used this GPU at all. Check that it "
            "runs on this GPU (CUDA_VISIBLE_DEVICES, the build's architecture) and that it checks CUDA errors: "
            "a program that does not can print PASS without running a kernel"]


def _summarize(series: _Series, *, protocol: str, device: GpuDevice | None, session: _Session,
               stopped_because: str, extra_warnings: list[str]) -> ProfileResult:
    for cond, flags in zip(series.conditions, trial_flags(series.runs), strict=True):
        cond.flags = flags
    energies = [r.energy_mj for r in series.runs]
    valid_idx = [i for i, e in enumerate(energies) if e is not None]
    flags = stats.outlier_flags([energies[i] for i in valid_idx])  # type: ignore[misc]
    outliers = [i for i, f in zip(valid_idx, flags, strict=True) if f]
    for i in outliers:
        series.conditions[i].outlier = True
    valid = series.energies_mj()
    energy = stats.estimate(valid).scaled(1e-3) if valid else None
    duration = stats.estimate(series.durations_s()) if series.runs else None
    powers = series.powers_mw()
    peaks = [r.peak_power_mw for r in series.runs if r.peak_power_mw is not None]
    edps = [r.energy_mj / 1000.0 * r.duration_s for r in series.runs if r.energy_mj is not None]
    sources = {r.energy_source for r in series.runs}
    warnings = list(extra_warnings) + _series_warnings(series, outliers) + _idle_only_warnings(series, session.idle_w)
    if series.runs and not valid:
        warnings.append(f"no energy reading for {series.label}: only its time is reported")
    return ProfileResult(
        protocol=protocol,
        device=device.info.to_dict() if device is not None else None,
        trials=list(series.runs),
        conditions=list(series.conditions),
        energy_j=energy,
        duration_s=duration,
        avg_power_w=stats.median(powers) / 1000.0 if powers else None,
        peak_power_w=max(peaks) / 1000.0 if peaks else None,
        edp_js=stats.median(edps) if edps else None,
        idle_power_w=session.idle_w,
        energy_source=sources.pop() if len(sources) == 1 else ("mixed" if sources else "none"),
        outliers=outliers,
        warnings=warnings,
        stopped_because=stopped_because,
        state_start=series.runs[0].state_start if series.runs else None,
        state_end=series.runs[-1].state_end if series.runs else None,
        wall_s=session.elapsed_s(),
        budget=session.budget.to_dict(),
        host=session.host_so_far(),
    )


def _stop_warnings(stopped: str, n_done: list[int], budget: Budget, half_width: float | None,
                   what: str) -> list[str]:
    warnings = []
    if min(n_done, default=0) < budget.min_trials and stopped != STOP_CANCELLED:
        warnings.append(f"only {min(n_done)} trial(s) fit in the {budget.max_wall_s:.0f} s time budget "
                        f"(min_trials {budget.min_trials}): the interval is unreliable; raise max_wall_s")
    if stopped in (STOP_MAX_TRIALS, STOP_TIME) and half_width is not None \
            and half_width > budget.target_ci_half_width:
        warnings.append(f"the 95 % interval of {what} is +-{100 * half_width:.1f} %, wider than the "
                        f"+-{100 * budget.target_ci_half_width:.1f} % target ({stopped} reached)")
    return warnings


def _spread_warnings(sides: list[_Series], session: _Session, stopped: str, half_width: float | None) -> list[str]:
    """When the interval stayed wide and the energy per run follows the run's wall time, say so."""
    budget = session.budget
    if stopped not in (STOP_MAX_TRIALS, STOP_TIME) or half_width is None \
            or half_width <= budget.target_ci_half_width:
        return []
    runs = [[spread.Run(r.energy_mj / 1000.0, r.duration_s) for r in s.runs
             if r.energy_mj is not None] for s in sides]
    found = spread.time_bound_spread(runs)
    if found is None:
        return []
    n_done = min(len(side) for side in runs)
    return [spread.explain(found, idle_w=session.idle_w, trials_done=n_done, half_width=half_width,
                           target_half_width=budget.target_ci_half_width,
                           seconds_per_trial=sum(session.trial_costs_s) / max(n_done, 1),
                           pinned_cpus=budget.pin_cpus, host_note=host_load.busy_note(session.host_so_far()))]


# --- the two entry points -------------------------------------------------------------------------


def profile(run_once: RunOnce, device: GpuDevice | None, budget: Budget, *,
            progress: Progress | None = None, cancel: threading.Event | None = None) -> ProfileResult:
    """Trials of one program until the median energy's interval is narrow enough or the budget is spent.

    Raises ProgramFailed when a run fails, Cancelled (with the finished trials) when cancelled."""
    session = _Session(device, budget, progress, cancel)
    series = _Series("the program")
    stopped = STOP_CANCELLED
    half_width: float | None = None
    try:
        session.measure_idle()
        for k in range(budget.warmup_runs):
            session.warm_up(run_once, series.label, k + 1)
        while True:
            session.trial(run_once, series, len(series.runs), budget.max_trials)
            n = len(series.runs)
            half_width = stats.estimate(series.key_values()).relative_half_width
            if n >= budget.min_trials and half_width <= budget.target_ci_half_width:
                stopped = STOP_CI
            elif n >= budget.max_trials:
                stopped = STOP_MAX_TRIALS
            elif session.out_of_time(1):
                stopped = STOP_TIME
            else:
                continue
            break
    except _Stop:
        result = _summarize(series, protocol="wattson", device=device, session=session,
                            stopped_because=STOP_CANCELLED, extra_warnings=session.warnings)
        raise Cancelled(result) from None
    what = "the median energy" if series.energies_mj() else "the median time"
    extra = session.warnings + _stop_warnings(stopped, [len(series.runs)], budget, half_width, what) \
        + _spread_warnings([series], session, stopped, half_width)
    return _summarize(series, protocol="wattson", device=device, session=session, stopped_because=stopped,
                      extra_warnings=extra)


INTERLEAVE_PATTERN = "ABBA"  # repeated: A B B A A B B A ...; each half is one balanced pair


def compare(run_a: RunOnce, run_b: RunOnce, device: GpuDevice | None, budget: Budget, *,
            progress: Progress | None = None, cancel: threading.Event | None = None) -> CompareResult:
    """Interleaved trials of A and B until the interval of the median ratio B/A is narrow enough.

    The verdict compares energy B/A; time and average power ratios come with their intervals too."""
    session = _Session(device, budget, progress, cancel)
    series = {"A": _Series("A"), "B": _Series("B")}
    runs = {"A": run_a, "B": run_b}
    order: list[str] = []
    stopped = STOP_CANCELLED
    half_width: float | None = None
    total = 2 * budget.max_trials
    try:
        session.measure_idle()
        for k in range(budget.warmup_runs):
            session.warm_up(run_a, "A", k + 1)
            session.warm_up(run_b, "B", k + 1)
        while True:
            label = INTERLEAVE_PATTERN[len(order) % len(INTERLEAVE_PATTERN)]
            session.trial(runs[label], series[label], len(order), total)
            order.append(label)
            if len(order) % 2:
                continue  # decide only on balanced pairs
            n = len(series["A"].runs)
            ratio = _key_ratio(series["A"], series["B"])
            half_width = ratio.relative_half_width if ratio is not None else None
            narrow = half_width is not None and half_width <= budget.target_ci_half_width
            if n >= budget.min_trials and narrow:
                stopped = STOP_CI
            elif n >= budget.max_trials:
                stopped = STOP_MAX_TRIALS
            elif session.out_of_time(2):
                stopped = STOP_TIME
            else:
                continue
            break
    except _Stop:
        if len(order) % 2:  # an unpaired last trial would tilt the ratio: drop it from the partial
            last = order.pop()
            series[last].runs.pop()
            series[last].conditions.pop()
        raise Cancelled(_compare_result(series, order, device, session, STOP_CANCELLED, [])) from None
    what = "the energy ratio B/A" if series["A"].energies_mj() else "the time ratio B/A"
    extra = _stop_warnings(stopped, [len(s.runs) for s in series.values()], budget, half_width, what) \
        + _spread_warnings(list(series.values()), session, stopped, half_width)
    return _compare_result(series, order, device, session, stopped, extra)


def _key_ratio(a: _Series, b: _Series) -> Estimate | None:
    """The ratio the stopping rule watches: energy B/A, or time B/A without usable energy readings."""
    return _pair_ratio_or_none(a, b, "energy_mj") or _pair_ratio_or_none(a, b, "duration_s")


MIN_TRIALS_FOR_VERDICT = 2  # one run per side has no spread to judge by


def _compare_result(series: dict[str, _Series], order: list[str], device: GpuDevice | None,
                    session: _Session, stopped: str, extra: list[str]) -> CompareResult:
    a = _summarize(series["A"], protocol="wattson", device=device, session=session, stopped_because=stopped,
                   extra_warnings=[])
    b = _summarize(series["B"], protocol="wattson", device=device, session=session, stopped_because=stopped,
                   extra_warnings=[])
    ea, eb = series["A"].energies_mj(), series["B"].energies_mj()
    verdict = None
    if ea and eb and min(ea) <= 0:
        warnings_zero = ["some runs of A read zero energy (runs shorter than the energy counter's update "
                         "period): no energy verdict; make the runs longer"]
    else:
        warnings_zero = []
    est = _pair_ratio_or_none(series["A"], series["B"], "energy_mj") if ea and eb and min(ea) > 0 else None
    if est is not None:
        verdict = stats.verdict_from_ratio(est.median, est.ci_low, est.ci_high,
                                           min_effect=session.budget.min_effect, single_pair=est.n < 2)
        if est.n < MIN_TRIALS_FOR_VERDICT:
            # A bootstrap interval of one run is not an interval: never claim a difference.
            verdict = stats.Verdict(
                kind="same", ratio=verdict.ratio, ci_low=verdict.ci_low, ci_high=verdict.ci_high,
                text=(f"no verdict: only {est.n} trial(s) of each fit in the time budget "
                      f"(at least {MIN_TRIALS_FOR_VERDICT} are needed); raise max_wall_s"),
                single_pair=verdict.single_pair)
    time_ratio = _pair_ratio_or_none(series["A"], series["B"], "duration_s")
    power_ratio = _pair_ratio_or_none(series["A"], series["B"], "avg_power_mw")
    warnings = session.warnings + extra + warnings_zero + a.warnings + b.warnings
    if a.energy_source != b.energy_source and a.trials and b.trials:
        warnings.append(f"A and B were measured with different energy sources ({a.energy_source} vs "
                        f"{b.energy_source}): the ratio may be biased")
    if verdict is None and a.trials and b.trials and not warnings_zero:
        warnings.append("no energy reading on this GPU: no energy verdict, only time is compared")
    return CompareResult(
        protocol="wattson",
        device=device.info.to_dict() if device is not None else None,
        a=a,
        b=b,
        energy_ratio=verdict,
        time_ratio=time_ratio,
        power_ratio=power_ratio,
        order=order,
        warnings=warnings,
        stopped_because=stopped,
        idle_power_w=session.idle_w,
        wall_s=session.elapsed_s(),
        budget=session.budget.to_dict(),
        host=session.host_so_far(),
    )


def _pair_ratio_or_none(a: _Series, b: _Series, field_name: str) -> Estimate | None:
    """B/A of one RunMeasurement field over the trial pairs that both have it (A's k-th trial with B's
    k-th, which ran next to each other: A B, then B A, ...). None without pairs, or when a value of A
    is zero or less."""
    pairs = [(getattr(ra, field_name), getattr(rb, field_name)) for ra, rb in zip(a.runs, b.runs, strict=False)]
    pairs = [(va, vb) for va, vb in pairs if va is not None and vb is not None]
    if not pairs or min(va for va, _ in pairs) <= 0:
        return None
    return stats.ratio_of_pairs(pairs)
