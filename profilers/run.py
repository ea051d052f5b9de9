"""One measured execution of a shell command: energy, time, power timeline, output, device state.

The energy of the run is the GPU energy counter read right before the process starts and right
after it exits (the whole process: what the user pays for). The counter is read only at these two
edges because one read costs ~4 ms on an H100. A sampler thread reads instant power meanwhile for
the timeline (plots, peak power, per-kernel attribution). Where the GPU has no counter, or the
counter did not move, the timeline is integrated instead and the result says so.

The command runs under /bin/sh in its own session, so a timeout or a cancel kills its whole process
group, grandchildren included, and nothing it started outlives the measurement. Its host CPU time
(user + system, of every process reaped below it) comes from wait4's resource usage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .cpu_pinning import PinningError, thread_bound_to
from .device import DeviceError, DeviceState, GpuDevice, counter_delta_mj
from .run_files import RunFiles

TERM_GRACE_S = 0.5  # between SIGTERM and SIGKILL of the process group
# A counter that does not move over this long is stuck: H100 and AMD counters update every
# <= 100 ms, and a GPU never draws zero power.
STUCK_COUNTER_MIN_S = 0.25
THROTTLE_POLL_EVERY = 5  # samples between reads of the throttle reasons (~0.1 s at the default period)
# Counter and power timeline are compared on windows at least this long, where edge lag is small.
CROSS_CHECK_MIN_S = 1.0
# The energy counter only moves when the driver updates it (every ~100 ms on an H100). A window
# read at arbitrary times is off by up to one update period of energy at each edge: a 1 s program
# then reads as one of two values ~12 J apart. So the window is aligned to counter updates: the
# program starts right after an update, and the end is taken at the first update after exit, minus
# the tail between exit and that update, priced at the power the counter shows over the next update.
TICK_WAIT_CAP_S = 0.3
CROSS_CHECK_FACTOR = 2.0
_READ_CHUNK = 65536


class Sandbox(Protocol):
    """How an untrusted command is confined (profilers/sandbox.py implements it)."""

    def argv(self, argv: list[str]) -> list[str]: ...

    def env(self, extra: dict[str, str]) -> dict[str, str]: ...

    def preexec(self) -> None: ...


class RunError(RuntimeError):
    """The command could not be started at all (bad directory, missing shell); worded for the user."""


@dataclass
class RunMeasurement:
    exit_code: int | None  # None when we killed it (timeout/cancel); -N when signal N ended it
    timed_out: bool
    cancelled: bool
    duration_s: float  # wall time of the process, monotonic
    energy_mj: float | None
    energy_source: str  # "counter" | "instant-power-integral" | "none"
    avg_power_mw: float | None  # energy / duration
    peak_power_mw: float | None  # max of the instant-power timeline
    timeline: list[tuple[float, float]]  # (s since process start, instant power mW)
    stdout: str
    stderr: str
    output_truncated: bool
    state_start: DeviceState | None
    state_end: DeviceState | None
    start_monotonic_s: float  # time.monotonic() at process start; kernel timelines align to it
    warnings: list[str] = field(default_factory=list)  # sensor trouble, leftover processes
    throttle_reasons_seen: list[str] = field(default_factory=list)  # polled during the run, not just edges
    # user + system CPU time of the process and every descendant it reaped (os.wait4's rusage);
    # None when it could not be read (an older agent's record, a process reaped elsewhere)
    host_cpu_s: float | None = None
    files: RunFiles | None = None  # what the run left in its folder; None where nobody looked

    @property
    def failed(self) -> bool:
        return self.timed_out or self.cancelled or self.exit_code != 0

    def failure_text(self) -> str:
        """Why the run failed, in words; "" when it did not."""
        if self.cancelled:
            return "was cancelled"
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f} s and was killed"
        if self.exit_code is not None and self.exit_code < 0:
            try:
                name = signal.Signals(-self.exit_code).name
            except ValueError:
                name = f"signal {-self.exit_code}"
            return f"was killed by {name}"
        if self.exit_code:
            return f"exited with code {self.exit_code}"
        return ""

    def to_dict(self, include_timeline: bool = True, max_timeline_points: int | None = None) -> dict:
        timeline = self.timeline if include_timeline else []
        if max_timeline_points is not None:
            timeline = downsample_timeline(timeline, max_timeline_points)
        return {
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "cancelled": self.cancelled,
            "duration_s": self.duration_s,
            "energy_mj": self.energy_mj,
            "energy_source": self.energy_source,
            "avg_power_mw": self.avg_power_mw,
            "peak_power_mw": self.peak_power_mw,
            "timeline": [[t, p] for t, p in timeline],
            "stdout": self.stdout,
            "stderr": self.stderr,
            "output_truncated": self.output_truncated,
            "state_start": self.state_start.to_dict() if self.state_start else None,
            "state_end": self.state_end.to_dict() if self.state_end else None,
            "start_monotonic_s": self.start_monotonic_s,
            "warnings": list(self.warnings),
            "throttle_reasons_seen": list(self.throttle_reasons_seen),
            "host_cpu_s": self.host_cpu_s,
            **(self.files.to_dict() if self.files is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> RunMeasurement:
        return cls(
            exit_code=d.get("exit_code"),
            timed_out=bool(d.get("timed_out")),
            cancelled=bool(d.get("cancelled")),
            duration_s=float(d["duration_s"]),
            energy_mj=d.get("energy_mj"),
            energy_source=d.get("energy_source", "none"),
            avg_power_mw=d.get("avg_power_mw"),
            peak_power_mw=d.get("peak_power_mw"),
            timeline=[(float(t), float(p)) for t, p in d.get("timeline") or []],
            stdout=d.get("stdout", ""),
            stderr=d.get("stderr", ""),
            output_truncated=bool(d.get("output_truncated")),
            state_start=DeviceState.from_dict(d["state_start"]) if d.get("state_start") else None,
            state_end=DeviceState.from_dict(d["state_end"]) if d.get("state_end") else None,
            start_monotonic_s=float(d.get("start_monotonic_s", 0.0)),
            warnings=list(d.get("warnings") or []),
            throttle_reasons_seen=list(d.get("throttle_reasons_seen") or []),
            host_cpu_s=float(d["host_cpu_s"]) if d.get("host_cpu_s") is not None else None,
            files=RunFiles.from_dict(d),
        )


def downsample_timeline(timeline: list[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    """At most max_points samples, evenly spaced, keeping the first, the last and the peak."""
    n = len(timeline)
    if max_points <= 0 or n == 0:
        return []
    if n <= max_points:
        return list(timeline)
    peak = max(range(n), key=lambda i: timeline[i][1])
    if max_points == 1:
        return [timeline[peak]]
    idx = [round(i * (n - 1) / (max_points - 1)) for i in range(max_points)]
    if peak not in idx and max_points > 2:
        nearest = min(range(1, max_points - 1), key=lambda j: abs(idx[j] - peak))
        idx[nearest] = peak
    return [timeline[i] for i in sorted(set(idx))]


def integrate_timeline_mj(timeline: list[tuple[float, float]], duration_s: float) -> float | None:
    """Energy in mJ of a (s, mW) timeline over [0, duration_s], trapezoid rule.

    The first sample is held back to 0 and the last held on to duration_s, so the window is covered
    even though samples start a little after the process and stop a little before it ends."""
    points = [(min(max(t, 0.0), duration_s), p) for t, p in timeline]
    if not points:
        return None
    points.sort()
    points = [(0.0, points[0][1]), *points, (duration_s, points[-1][1])]
    return sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in zip(points, points[1:], strict=False))


class _CappedOutput:
    """Collects a stream's bytes, keeping the first and the last cap/2 bytes of anything longer."""

    def __init__(self, cap_bytes: int):
        self.head_cap = cap_bytes // 2
        self.tail_cap = cap_bytes - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self.tail_cap > 0:
            self.tail += chunk
            if len(self.tail) > self.tail_cap:
                del self.tail[: len(self.tail) - self.tail_cap]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", errors="replace")
        omitted = self.total - len(self.head) - len(self.tail)
        marker = f"\n[... {omitted} bytes of output omitted ...]\n"
        return (bytes(self.head).decode("utf-8", errors="replace") + marker
                + bytes(self.tail).decode("utf-8", errors="replace"))


def _drain(fd: int, sink: _CappedOutput) -> None:
    try:
        while chunk := os.read(fd, _READ_CHUNK):
            sink.add(chunk)
    except OSError:
        pass
    finally:
        os.close(fd)


class _PowerSampler:
    """Reads instant power every period on its own thread: (s since start, mW) pairs.

    Every few samples it also reads the throttle reasons, so throttling that starts and ends
    inside the run is seen, not only what the trial's edges show."""

    def __init__(self, device: GpuDevice | None, period_s: float):
        self.device = device
        self.period_s = max(period_s, 0.001)
        self.timeline: list[tuple[float, float]] = []
        self.throttle_reasons: set[str] = set()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, origin_s: float) -> None:
        if self.device is None or not self.device.info.has_instant_power:
            return
        self._thread = threading.Thread(target=self._loop, args=(origin_s,), name="power-sampler",
                                        daemon=True)
        self._thread.start()

    def _loop(self, origin_s: float) -> None:
        assert self.device is not None
        next_s = origin_s
        while True:
            try:
                power_mw = self.device.power_instant_mw()
            except DeviceError as e:
                self.error = str(e)
                return
            now = time.monotonic()
            if power_mw is None:
                return
            self.timeline.append((now - origin_s, power_mw))
            if len(self.timeline) % THROTTLE_POLL_EVERY == 1:
                try:
                    self.throttle_reasons.update(self.device.throttle_reasons())
                except DeviceError:
                    pass  # the edges' device states still record what they can
            next_s += self.period_s
            if next_s < now:  # fell behind (slow sensor, busy host): do not burst to catch up
                next_s = now + self.period_s
            if self._stop.wait(next_s - now):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class _ExitWaiter(threading.Thread):
    """Blocks in wait4, so the end edge (time, counter) is taken the instant the process is reaped.

    wait4 rather than Popen.wait: its rusage is the host CPU time of the process and of every
    descendant reaped below it (the shell's children; in the sandbox, everything under its PID-1
    shell), which shows work moved from the GPU to host threads. The exit status is handed to the
    Popen object, so Popen never waits for (or reaps) the pid again."""

    def __init__(self, proc: subprocess.Popen, device: GpuDevice | None):
        super().__init__(name="run-waiter", daemon=True)
        self.proc = proc
        self.device = device
        self.exited = threading.Event()
        self.end_s = 0.0
        self.energy_mj: float | None = None
        self.error: str | None = None
        self.host_cpu_s: float | None = None

    def run(self) -> None:
        try:
            _pid, status, usage = os.wait4(self.proc.pid, 0)
        except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): the status is lost, not the run
            self.proc.wait()
        else:
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.host_cpu_s = usage.ru_utime + usage.ru_stime
        self.end_s = time.monotonic()
        self.energy_mj, self.error = _read_counter(self.device)
        self.exited.set()


def _read_counter(device: GpuDevice | None) -> tuple[float | None, str | None]:
    if device is None or not device.info.has_energy_counter:
        return None, None
    try:
        return device.energy_mj(), None
    except DeviceError as e:
        return None, str(e)


def _next_counter_update(device: GpuDevice, after_mj: float,
                         cap_s: float = TICK_WAIT_CAP_S) -> tuple[float, float] | None:
    """Poll until the counter moves past `after_mj`: (new value, monotonic time seen), or None."""
    deadline = time.monotonic() + cap_s
    while time.monotonic() < deadline:
        try:
            value = device.energy_mj()
        except DeviceError:
            return None
        if value is None:
            return None
        if value != after_mj:
            return value, time.monotonic()
        time.sleep(0.0005)  # NVML reads take ~3 ms themselves; this only spares fast fakes a spin
    return None


def _tick_aligned_end_mj(device: GpuDevice, start_mj: float, exit_mj: float, exit_s: float) -> float:
    """The counter value at the program's exit, reconstructed from the next two counter updates.

    Falls back to the plain read at exit when the counter does not update within the cap (stuck
    sensors are then reported by _energy)."""
    first = _next_counter_update(device, exit_mj)
    if first is None:
        return exit_mj
    second = _next_counter_update(device, first[0])
    if second is None or second[1] <= first[1]:
        return exit_mj
    wrap = device.energy_counter_wrap_mj
    try:
        tail_power_mw = counter_delta_mj(first[0], second[0], wrap) / (second[1] - first[1])
        window_mj = counter_delta_mj(start_mj, first[0], wrap)
    except DeviceError:
        return exit_mj
    tail_mj = tail_power_mw * max(0.0, first[1] - exit_s)
    return start_mj + max(0.0, window_mj - tail_mj)


def _live_group_members(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies excluded: they hold no GPU and burn nothing)."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except (ProcessLookupError, PermissionError):
            return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) "
        if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_process_group(pgid: int, exited: threading.Event, grace_s: float = TERM_GRACE_S) -> None:
    """SIGTERM the group, give it grace_s to clean up, then SIGKILL whatever is left of it."""
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if exited.is_set() and not _live_group_members(pgid):
            return
        time.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)


def measured_run(command: str, *, cwd: Path, device: GpuDevice | None, timeout_s: float,
                 env: dict[str, str] | None = None, sandbox: Sandbox | None = None,
                 sample_period_s: float = 0.02, cancel: threading.Event | None = None,
                 output_cap_bytes: int = 4_000_000, cpus: Sequence[int] = ()) -> RunMeasurement:
    """Run `command` once under /bin/sh in `cwd` and measure it on `device` (None: time only).

    output_cap_bytes applies to stdout and stderr each; beyond it the head and the tail are kept.
    `cpus`: host CPUs the process and its children are bound to (cpu_pinning.py); () leaves them free.
    """
    argv = ["/bin/sh", "-c", command]
    preexec: Callable[[], None] | None = None
    if sandbox is not None:
        argv = sandbox.argv(argv)
        full_env = sandbox.env(dict(env or {}))
        preexec = sandbox.preexec
    else:
        full_env = {**os.environ, **(env or {})}
    if not Path(cwd).is_dir():
        raise RunError(f"cannot run `{command}`: the directory {cwd} does not exist")

    warnings: list[str] = []
    state_start = _state(device, warnings)
    energy_start, counter_error = _read_counter(device)
    if energy_start is not None:
        tick = _next_counter_update(device, energy_start)
        if tick is not None:
            energy_start = tick[0]
    sampler = _PowerSampler(device, sample_period_s)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    start_s = time.monotonic()
    try:
        with thread_bound_to(cpus):  # the child inherits this thread's CPUs
            proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out_w,
                                    stderr=err_w, start_new_session=True, preexec_fn=preexec)
    except (OSError, subprocess.SubprocessError, PinningError) as e:  # SubprocessError: the sandbox's preexec
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        if isinstance(e, PinningError):
            raise RunError(str(e)) from e  # it already says what to do
        reason = getattr(e, "strerror", None) or e
        raise RunError(f"cannot start `{command}` in {cwd}: {reason}; check the command, the sandbox "
                       "and that the directory is readable") from e
    os.close(out_w)
    os.close(err_w)
    sampler.start(start_s)

    stdout, stderr = _CappedOutput(output_cap_bytes), _CappedOutput(output_cap_bytes)
    readers = [threading.Thread(target=_drain, args=(fd, sink), daemon=True, name="run-output")
               for fd, sink in ((out_r, stdout), (err_r, stderr))]
    for r in readers:
        r.start()

    waiter = _ExitWaiter(proc, device)
    waiter.start()
    exited = waiter.exited
    timed_out = cancelled = False
    deadline = start_s + timeout_s
    while not exited.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
        if cancel is not None and cancel.is_set():
            cancelled = True
        elif time.monotonic() >= deadline:
            timed_out = True
        if timed_out or cancelled:
            kill_process_group(proc.pid, exited)
            exited.wait()
            break
    end_s, energy_end, end_error = waiter.end_s, waiter.energy_mj, waiter.error
    if energy_start is not None and energy_end is not None and not (timed_out or cancelled):
        energy_end = _tick_aligned_end_mj(device, energy_start, energy_end, end_s)
    sampler.stop()

    if not (timed_out or cancelled):
        left = _live_group_members(proc.pid)
        if left:
            warnings.append(f"the program left {len(left)} process(es) running after it exited; "
                            "they were killed so they cannot disturb the next measurement")
            kill_process_group(proc.pid, exited, grace_s=0.2)
    for r in readers:
        r.join(timeout=2.0)
    if any(r.is_alive() for r in readers):
        warnings.append("a process outside the program's process group still holds its output open; "
                        "output may be incomplete")
    state_end = _state(device, warnings)

    duration_s = end_s - start_s
    timeline = [(t, p) for t, p in sampler.timeline if t <= duration_s]
    if sampler.error:
        warnings.append(f"instant power could not be read: {sampler.error}")
    for err in (counter_error, end_error):
        if err:
            warnings.append(f"the energy counter could not be read: {err}")
    energy_mj, source = _energy(device, energy_start, energy_end, timeline, duration_s, warnings)
    return RunMeasurement(
        exit_code=None if (timed_out or cancelled) else proc.returncode,
        timed_out=timed_out,
        cancelled=cancelled,
        duration_s=duration_s,
        energy_mj=energy_mj,
        energy_source=source,
        avg_power_mw=energy_mj / duration_s if energy_mj is not None and duration_s > 0 else None,
        peak_power_mw=max((p for _, p in timeline), default=None),
        timeline=timeline,
        stdout=stdout.text(),
        stderr=stderr.text(),
        output_truncated=stdout.truncated or stderr.truncated,
        state_start=state_start,
        state_end=state_end,
        start_monotonic_s=start_s,
        warnings=warnings,
        throttle_reasons_seen=sorted(sampler.throttle_reasons),
        host_cpu_s=waiter.host_cpu_s,
    )


def _state(device: GpuDevice | None, warnings: list[str]) -> DeviceState | None:
    if device is None:
        return None
    try:
        return device.state()
    except DeviceError as e:
        warnings.append(f"the GPU state could not be read: {e}")
        return None


def _energy(device: GpuDevice | None, start_mj: float | None, end_mj: float | None,
            timeline: list[tuple[float, float]], duration_s: float,
            warnings: list[str]) -> tuple[float | None, str]:
    """Counter window if it is trustworthy, else the instant-power integral, else nothing."""
    if device is not None and start_mj is not None and end_mj is not None:
        try:
            delta = counter_delta_mj(start_mj, end_mj, device.energy_counter_wrap_mj)
        except DeviceError as e:
            warnings.append(str(e))
        else:
            if delta > 0:
                _cross_check(delta, timeline, duration_s, warnings)
                return delta, "counter"
            if duration_s >= STUCK_COUNTER_MIN_S:
                warnings.append("the GPU energy counter did not advance during the run (stuck sensor or "
                                "driver fault); its reading was not used")
            else:
                warnings.append("the run was shorter than the energy counter's update period (the counter "
                                "did not move)")
    integral = integrate_timeline_mj(timeline, duration_s)
    if integral is not None:
        if device is not None and device.info.has_energy_counter:
            warnings.append("energy comes from the instant-power timeline instead of the counter")
        return integral, "instant-power-integral"
    if device is not None:
        warnings.append("no energy reading: the GPU gave neither an energy counter nor instant power")
    return None, "none"


def _cross_check(counter_mj: float, timeline: list[tuple[float, float]], duration_s: float,
                 warnings: list[str]) -> None:
    """Warn when counter and power timeline disagree grossly: one of the two sensors is wrong."""
    if duration_s < CROSS_CHECK_MIN_S or len(timeline) < 10:
        return
    integral = integrate_timeline_mj(timeline, duration_s)
    if not integral or counter_mj <= 0:
        return
    if not 1 / CROSS_CHECK_FACTOR <= counter_mj / integral <= CROSS_CHECK_FACTOR:
        warnings.append(f"the energy counter ({counter_mj / 1000:.4g} J) and the instant-power timeline "
                        f"({integral / 1000:.4g} J) disagree by more than {CROSS_CHECK_FACTOR:g}x: a sensor "
                        "may be faulty; run `wattson doctor` to probe them")
