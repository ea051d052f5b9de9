"""Where a program's run-to-run energy spread comes from: host time, and whether CPU pinning narrows it.

Run on a GPU host (after `. bench/device_setup.sh`):

    python bench/host_noise.py --programs colorwheel,floydwarshall --hec HECBENCH/src --runs 8

Each program is built once in a scratch folder, then run `--runs` times in each mode, modes
interleaved (plain, pinned, plain, pinned, ...): *plain* = as Wattson runs it today, *pinned* = the
process bound to one CPU core of the GPU's NUMA node (NVML's CPU affinity for the device, the
middle one of that list). Per run:
wall time, user and system CPU time (from wait4), the hypervisor's steal time during it (/proc/stat:
all CPUs, and the pinned CPU alone; a vCPU that was descheduled shows it there, not in user time),
and the energy counter over the process run (plain
edges: read right before launch and right after exit, no alignment; enough to see a spread of 10 %).
One JSON line per run, then one summary line per program and mode (median, coefficient of variation).

With `--clock-period-s P` (0.1 by default, 0: off) a thread also reads the GPU's SM clock every P
seconds during each run (median, min, max per run), and each summary gives the correlation of the
runs' wall times with their median SM clock: strongly negative says the slow runs are slow because
the GPU ran at lower clocks, near zero says the time goes elsewhere (the host, or waiting).

With `--cpu-probe-s S` (0: off, the default) the script also times a fixed piece of CPU work right
before and right after each run, on the same CPUs as the run (its size fixed once, to take about S
seconds here). If the host's CPU speed varies from run to run, the probe's time varies with it, and
the summary's correlation of the runs' wall times with their probe times says whether that is what
sets the program's pace: a program whose host phase is fixed work shows r near 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from measurement_quality import cv, target_for  # noqa: E402
from wattson.profilers.cpu_pinning import thread_bound_to  # noqa: E402
from wattson.profilers.device import GpuDevice, open_devices  # noqa: E402
from wattson.profilers.host_load import steal_by_cpu_s  # noqa: E402
from wattson.profilers.jobs import JobDir, ProgramSpec, gpu_arch, job_env, run_build  # noqa: E402


@contextmanager
def watched_sm_clock(device: GpuDevice, period_s: float) -> Iterator[list[int]]:
    """Reads the SM clock every `period_s` while the block runs; the readings (MHz) fill the yielded list."""
    readings: list[int] = []
    if period_s <= 0:
        yield readings
        return
    stop = threading.Event()

    def poll() -> None:
        while True:
            sm_mhz = device.clocks_mhz()[0]
            if sm_mhz is not None:
                readings.append(sm_mhz)
            if stop.wait(period_s):
                return

    thread = threading.Thread(target=poll, name="sm-clock", daemon=True)
    thread.start()
    try:
        yield readings
    finally:
        stop.set()
        thread.join()


def clock_summary(readings: list[int]) -> dict | None:
    if not readings:
        return None
    return {"median": statistics.median(readings), "min": min(readings), "max": max(readings),
            "samples": len(readings)}


def steal_now(cpus: list[int]) -> tuple[float | None, float | None]:
    """Steal so far over all CPUs, and on the one CPU a pinned run is bound to (None when not pinned to one)."""
    steal = steal_by_cpu_s()
    return steal.get("cpu"), (steal.get(f"cpu{cpus[0]}") if len(cpus) == 1 else None)


def steal_delta_s(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


def cpu_work(iterations: int) -> int:
    """Fixed, single-threaded integer work: its time is the host CPU's speed at that moment."""
    acc = 0
    for i in range(iterations):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def probe_iterations(target_s: float) -> int:
    """The probe's size, fixed once: iterations that take about `target_s` on this host now."""
    iterations = 100_000
    while True:
        took_s = cpu_probe_s(iterations)
        if took_s >= 0.05 or iterations >= 1 << 30:
            return max(1, round(iterations * target_s / took_s))
        iterations *= 4


def cpu_probe_s(iterations: int) -> float:
    t0 = time.perf_counter()
    cpu_work(iterations)
    return time.perf_counter() - t0


def one_run(cmd: str, cwd: Path, env: dict, device: GpuDevice, cpus: list[int], clock_period_s: float = 0,
            probe_size: int = 0) -> dict:
    probe = {}
    if probe_size:
        with thread_bound_to(cpus):
            probe["cpu_probe_before_s"] = cpu_probe_s(probe_size)
    steal0 = steal_now(cpus)
    e0 = device.energy_mj()
    t0 = time.monotonic()
    with watched_sm_clock(device, clock_period_s) as sm_clock_mhz:
        with thread_bound_to(cpus):  # the child inherits the binding; [] leaves it free
            proc = subprocess.Popen(cmd, shell=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.monotonic() - t0
    e1 = device.energy_mj()
    steal1 = steal_now(cpus)
    if probe_size:
        with thread_bound_to(cpus):
            probe["cpu_probe_after_s"] = cpu_probe_s(probe_size)
        probe["cpu_probe_s"] = (probe["cpu_probe_before_s"] + probe["cpu_probe_after_s"]) / 2
    return {**probe, "wall_s": wall_s, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "energy_j": (e1 - e0) / 1000 if e0 is not None and e1 is not None else None,
            "exit": os.waitstatus_to_exitcode(status), "minor_faults": usage.ru_minflt,
            "vol_switches": usage.ru_nvcsw, "invol_switches": usage.ru_nivcsw,
            "sm_clock_mhz": clock_summary(sm_clock_mhz),
            "steal_s": steal_delta_s(steal0[0], steal1[0]), "steal_pinned_cpu_s": steal_delta_s(steal0[1], steal1[1])}


def wall_clock_correlation(runs: list[dict]) -> float | None:
    """Pearson r of the runs' wall times and median SM clocks (None: fewer than 3 runs, or no spread)."""
    return wall_correlation([(r["wall_s"], r["sm_clock_mhz"]["median"]) for r in runs if r.get("sm_clock_mhz")])


def wall_correlation(pairs: list[tuple[float, float]]) -> float | None:
    """Pearson r of (wall time, other) pairs (None: fewer than 3, or either side constant)."""
    walls, others = [w for w, _ in pairs], [c for _, c in pairs]
    # Checked here, not left to statistics: floats like 0.1 leave rounding residue around their mean,
    # and a constant side then reads as r = 0 instead of "no spread".
    if len(pairs) < 3 or len(set(walls)) < 2 or len(set(others)) < 2:
        return None
    return statistics.correlation(walls, others)


def emit(out: Path, record: dict) -> None:
    print(json.dumps(record), flush=True)
    with out.open("a") as f:
        f.write(json.dumps(record) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--programs", required=True)
    ap.add_argument("--hec", type=Path)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("host_noise.jsonl"))
    ap.add_argument("--clock-period-s", type=float, default=0.1,
                    help="read the SM clock this often during each run (0: off)")
    ap.add_argument("--cpu-probe-s", type=float, default=0,
                    help="time a fixed CPU loop of about this length before and after each run (0: off)")
    args = ap.parse_args()

    device = open_devices()[0]
    near = [c for c in device.near_cpus() or [] if c in os.sched_getaffinity(0)] or sorted(os.sched_getaffinity(0))
    pinned = [near[len(near) // 2]]
    arch = gpu_arch(device)
    iterations = probe_iterations(args.cpu_probe_s) if args.cpu_probe_s > 0 else 0
    emit(args.out, {"kind": "host", "cpus_allowed": len(os.sched_getaffinity(0)), "near_gpu_cpus": near,
                    "pinned_to": pinned, "loadavg": os.getloadavg(), "cpu_probe_iterations": iterations})
    for name in args.programs.split(","):
        spec = ProgramSpec.from_dict(target_for(name, args.hec).program)
        with JobDir(spec) as job:
            build = run_build(spec, job, arch=arch)
            if not build.ok:
                raise SystemExit(f"{name}: the build failed:\n{build.output[-2000:]}")
            env = {**os.environ, **job_env(spec, arch, device)}
            runs: dict[str, list[dict]] = {"plain": [], "pinned": []}
            one_run(spec.run, job.run_dir, env, device, [])  # warm-up, not kept
            for i in range(args.runs):
                for mode, cpus in (("plain", []), ("pinned", pinned)):
                    r = one_run(spec.run, job.run_dir, env, device, cpus, args.clock_period_s, iterations)
                    runs[mode].append(r)
                    emit(args.out, {"kind": "run", "program": name, "mode": mode, "i": i, **r})
        for mode, rs in runs.items():
            # A run that failed did not do the program's work: counted here, so its figures are not read as noise.
            rec = {"kind": "summary", "program": name, "mode": mode, "n": len(rs),
                   "failed": sum(r["exit"] != 0 for r in rs)}
            for key in ("wall_s", "user_s", "sys_s", "energy_j", "cpu_probe_s", "steal_s", "steal_pinned_cpu_s"):
                vals = [r[key] for r in rs if r.get(key) is not None]
                if vals:
                    rec[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
                                "cv": cv(vals)}
            clocks = [r["sm_clock_mhz"]["median"] for r in rs if r.get("sm_clock_mhz")]
            if clocks:
                rec["sm_clock_mhz"] = {"median": statistics.median(clocks), "min": min(clocks), "max": max(clocks),
                                       "r_with_wall_s": wall_clock_correlation(rs)}
            if "cpu_probe_s" in rec:
                rec["cpu_probe_s"]["r_with_wall_s"] = wall_correlation(
                    [(r["wall_s"], r["cpu_probe_s"]) for r in rs if r["exit"] == 0 and "cpu_probe_s" in r])
            emit(args.out, rec)


if __name__ == "__main__":
    main()
