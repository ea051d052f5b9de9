"""What this host can measure: each sensor's real behaviour, and the toolchains present.

`probe_device` watches a GPU's sensors for a short window and measures what vendors do not
document reliably: how often the energy counter and instant power really update, what one counter
read costs, and whether the counter agrees with integrated instant power. `wattson doctor` shows
the result; figures and findings come back as a `SensorProbe`.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .device import DeviceError, DeviceInfo, GpuDevice, counter_delta_mj
from .kernels.build import KernelTraceUnavailable, locate_cupti

# The counter passes when it is within 15 % of integrated power. At idle the two agree within a few
# percent on an H100; 15 % leaves room for the ends of a short window, yet catches counters that are
# off by a factor (as some AMD GPUs are) or frozen.
COUNTER_TOLERANCE = 0.15
POWER_POLL_S = 0.002
_COUNTER_POLL_S = 0.001
_SLOW_COUNTER_PERIOD_S = 0.5
_SLOW_READ_MS = 20.0
_MIN_CHANGES = 3
_VERSION_TIMEOUT_S = 30


# Notes on a sensor's absence or disagreement: `wattson doctor` shows these in the sensor's own row
# rather than as a second line saying the same.
NO_COUNTER_NOTE = ("this GPU has no usable energy counter: energy comes from integrated instant power, "
                   "which is less precise; an NVIDIA GPU of Volta or newer, or an AMD MI200/MI300, has one")
NO_INSTANT_POWER_NOTE = ("this GPU reports no instant power: power timelines and per-kernel energy are not "
                         "available; update the GPU driver")
COUNTER_DISAGREES = "the energy counter disagrees with"

@dataclass
class SensorProbe:
    """What probe_device found on one GPU; None where it could not be measured."""

    device: DeviceInfo
    energy_counter_period_s: float | None  # median interval between changes of the counter's value
    instant_power_period_s: float | None  # the same, for instant power
    energy_read_cost_ms: float | None  # median duration of one counter read
    counter_vs_power_ratio: float | None  # counter energy / integrated power over the same span
    counter_valid: bool | None  # ratio within COUNTER_TOLERANCE; None when it could not be checked
    idle_power_w: float | None  # median power over the window (the GPU should be idle while probed)
    notes: list[str] = field(default_factory=list)  # findings in words, each with the next step

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SensorProbe:
        fields = dict(d)
        device = DeviceInfo(**fields.pop("device"))
        return cls(device=device, **fields)


@dataclass
class _Series:
    """Readings of one sensor: when each was taken (monotonic s, read midpoint) and what it read."""

    times_s: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    read_costs_s: list[float] = field(default_factory=list)
    error: str | None = None

    def change_times_s(self) -> list[float]:
        return [self.times_s[i] for i in range(1, len(self.values)) if self.values[i] != self.values[i - 1]]

    def change_points(self) -> list[tuple[float, float]]:
        return [(self.times_s[i], self.values[i])
                for i in range(1, len(self.values)) if self.values[i] != self.values[i - 1]]


def _poll(read: Callable[[], float | None], interval_s: float, until_s: float, series: _Series) -> None:
    """Read a sensor every interval_s (or back to back, if a read takes longer) until until_s."""
    next_s = time.monotonic()
    while True:
        start_s = time.monotonic()
        if start_s >= until_s:
            return
        try:
            value = read()
        except DeviceError as e:
            series.error = str(e)
            return
        end_s = time.monotonic()
        if value is not None:
            series.times_s.append((start_s + end_s) / 2)
            series.values.append(value)
            series.read_costs_s.append(end_s - start_s)
        next_s = max(next_s + interval_s, end_s)
        pause_s = next_s - time.monotonic()
        if pause_s > 0:
            time.sleep(pause_s)


def _median_period_s(series: _Series) -> float | None:
    changes = series.change_times_s()
    gaps = [b - a for a, b in zip(changes, changes[1:], strict=False)]
    return statistics.median(gaps) if gaps else None


def _integrate_mj(times_s: list[float], powers_mw: list[float], start_s: float, end_s: float) -> float:
    """Integral of piecewise-linear power (mW) over [start_s, end_s], in mJ (mW x s)."""
    total_mj = 0.0
    for i in range(1, len(times_s)):
        t0, t1, p0, p1 = times_s[i - 1], times_s[i], powers_mw[i - 1], powers_mw[i]
        a, b = max(t0, start_s), min(t1, end_s)
        if b <= a:
            continue
        slope = (p1 - p0) / (t1 - t0)
        total_mj += (p0 + slope * (a - t0) + p0 + slope * (b - t0)) / 2 * (b - a)
    return total_mj


def _counter_span(counter: _Series) -> tuple[float, float, float, float] | None:
    """(start_s, end_s, start_mj, end_mj) to compare with power: between the first and last updates
    seen, so the counter's coarse steps do not bias the ratio; the whole window when it barely moved."""
    points = counter.change_points()
    if len(points) >= 2:
        (t0, v0), (t1, v1) = points[0], points[-1]
        return t0, t1, v0, v1
    if len(counter.values) >= 2:
        return counter.times_s[0], counter.times_s[-1], counter.values[0], counter.values[-1]
    return None


def probe_device(device: GpuDevice, duration_s: float = 2.0) -> SensorProbe:
    """Watch device's sensors for duration_s; the GPU should be idle meanwhile."""
    info = device.info
    notes: list[str] = list(getattr(device, "sensor_notes", []))
    try:
        has_counter = info.has_energy_counter and device.energy_mj() is not None
    except DeviceError as e:
        notes.append(str(e))
        has_counter = False

    counter = _Series()
    power = _Series()
    power_source = "instant power"
    read_power: Callable[[], float | None] = device.power_instant_mw
    if not info.has_instant_power:
        power_source = "the driver's averaged power"
        read_power = device.power_average_mw

    until_s = time.monotonic() + duration_s
    poller = None
    if has_counter:
        # Every 1 ms, or back to back where a read takes longer (~4 ms on an H100): as fast as the
        # counter can be read, since its update period is what is measured.
        poller = threading.Thread(target=_poll, args=(device.energy_mj, _COUNTER_POLL_S, until_s, counter),
                                  name="probe-counter", daemon=True)
        poller.start()
    _poll(read_power, POWER_POLL_S, until_s, power)
    if poller is not None:
        poller.join()
    for error in (counter.error, power.error):
        if error:
            notes.append(error)

    counter_period_s = _median_period_s(counter) if has_counter else None
    power_period_s = _median_period_s(power) if info.has_instant_power else None
    read_cost_ms = 1000 * statistics.median(counter.read_costs_s) if counter.read_costs_s else None
    idle_power_w = statistics.median(power.values) / 1000 if power.values else None

    ratio, valid = None, None
    if has_counter:
        ratio, valid = _check_counter(device, counter, power, power_source, notes)
        notes += _counter_notes(counter, counter_period_s, read_cost_ms, duration_s)
    else:
        notes.append(NO_COUNTER_NOTE)
    if info.has_instant_power:
        notes += _power_notes(power, power_period_s, duration_s)
    else:
        notes.append(NO_INSTANT_POWER_NOTE)
    if not power.values and not power.error:
        notes.append("no power reading came back during the probe: check the GPU driver")

    return SensorProbe(
        device=info,
        energy_counter_period_s=counter_period_s,
        instant_power_period_s=power_period_s,
        energy_read_cost_ms=read_cost_ms,
        counter_vs_power_ratio=ratio,
        counter_valid=valid,
        idle_power_w=idle_power_w,
        notes=notes,
    )


def _check_counter(device: GpuDevice, counter: _Series, power: _Series, power_source: str,
                   notes: list[str]) -> tuple[float | None, bool | None]:
    span = _counter_span(counter)
    if span is None or len(power.values) < 2:
        notes.append(f"the energy counter could not be checked against {power_source}: too few readings; "
                     "re-run `wattson doctor` with a longer --probe-s")
        return None, None
    start_s, end_s, start_mj, end_mj = span
    try:
        counted_mj = counter_delta_mj(start_mj, end_mj, device.energy_counter_wrap_mj)
    except DeviceError as e:
        notes.append(str(e))
        return None, False
    integrated_mj = _integrate_mj(power.times_s, power.values, start_s, end_s)
    if integrated_mj <= 0:
        notes.append(f"the energy counter could not be checked: {power_source} read zero; "
                     "check the GPU driver")
        return None, None
    ratio = counted_mj / integrated_mj
    valid = abs(ratio - 1) <= COUNTER_TOLERANCE
    if not valid:
        notes.append(
            f"{COUNTER_DISAGREES} {power_source}: {counted_mj / 1000:.2f} J counted, "
            f"{integrated_mj / 1000:.2f} J integrated over {end_s - start_s:.2f} s (ratio {ratio:.2f}, "
            f"tolerance ±{COUNTER_TOLERANCE:.0%}); re-run `wattson doctor` while the GPU is idle, "
            "and if it persists, update the GPU driver")
    return ratio, valid


def _counter_notes(counter: _Series, period_s: float | None, read_cost_ms: float | None,
                   duration_s: float) -> list[str]:
    notes = []
    changes = len(counter.change_times_s())
    if counter.values and changes == 0:
        notes.append(f"the energy counter did not change in {duration_s:.1f} s: the sensor looks stuck; "
                     "re-run `wattson doctor --probe-s 5`, and if it persists, reload the GPU driver")
    elif 0 < changes < _MIN_CHANGES:
        notes.append(f"the energy counter changed only {changes} time(s) in {duration_s:.1f} s, too few to "
                     "time its updates: re-run `wattson doctor` with a longer --probe-s")
    if period_s is not None and period_s > _SLOW_COUNTER_PERIOD_S:
        notes.append(f"the energy counter updates only every {period_s:.2f} s: a measured window must last "
                     f"well over {10 * period_s:.0f} s, so give each run more repetitions")
    if read_cost_ms is not None and read_cost_ms > _SLOW_READ_MS:
        notes.append(f"one energy counter read costs {read_cost_ms:.0f} ms: another process may be polling "
                     "the GPU (monitoring agents); stop it while measuring")
    return notes


def _power_notes(power: _Series, period_s: float | None, duration_s: float) -> list[str]:
    if power.values and not power.change_times_s():
        return [f"instant power read {power.values[0] / 1000:.1f} W throughout {duration_s:.1f} s: the "
                "sensor looks stuck; re-run `wattson doctor --probe-s 5`, and if it persists, reload the "
                "GPU driver"]
    if period_s is not None and period_s > _SLOW_COUNTER_PERIOD_S:
        return [f"instant power updates only every {period_s:.2f} s: power timelines will be coarse and "
                "per-kernel energy unreliable for kernels shorter than that"]
    return []


# --- toolchains and sensor libraries -----------------------------------------------------------

def _version_output(exe: str | None) -> str | None:
    if not exe:
        return None
    try:
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=_VERSION_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout + done.stderr


def _first_existing(candidates: list[Path]) -> str | None:
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def _cuda_roots() -> list[Path]:
    roots = [Path(os.environ[v]) for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    nvcc = shutil.which("nvcc")
    if nvcc:
        roots.append(Path(nvcc).resolve().parent.parent)
    roots.append(Path("/usr/local/cuda"))
    return roots


def _nvcc_version() -> str | None:
    exe = shutil.which("nvcc") or _first_existing([r / "bin" / "nvcc" for r in _cuda_roots()])
    out = _version_output(exe)
    if out is None:
        return None
    match = re.search(r"release [\d.]+, V(\d+(?:\.\d+)+)", out) or re.search(r"release (\d+(?:\.\d+)+)", out)
    return match.group(1) if match else out.strip().splitlines()[-1]


def _hipcc_version() -> str | None:
    rocm = Path(os.environ.get("ROCM_PATH", "/opt/rocm"))
    exe = shutil.which("hipcc") or _first_existing([rocm / "bin" / "hipcc"])
    out = _version_output(exe)
    if out is None:
        return None
    match = re.search(r"HIP version:\s*(\S+)", out)
    lines = [line for line in out.splitlines() if line.strip()]
    return match.group(1) if match else (lines[0].strip() if lines else "unknown version")


def _cupti_path() -> str | None:
    """libcupti of the CUDA toolkit, as the kernel tracer finds it: needed for per-kernel energy."""
    try:
        return str(locate_cupti().library)
    except KernelTraceUnavailable:
        return None


def toolchains() -> dict[str, str | None]:
    """{"nvcc": "13.0.88" or None, "hipcc": version or None, "cupti": path to libcupti or None}."""
    return {"nvcc": _nvcc_version(), "hipcc": _hipcc_version(), "cupti": _cupti_path()}


def sensor_library_errors() -> dict[str, str | None]:
    """{"nvidia": why NVML is unusable, "amd": why AMD SMI is unusable}; None where the library starts.

    On a host with no GPU both say what to install; `wattson doctor` shows them when no GPU is found.
    """
    from . import amd, nvidia

    return {"nvidia": nvidia.library_error(), "amd": amd.library_error()}
