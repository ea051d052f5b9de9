"""bench/host_noise.py without a GPU: the SM-clock watch during a run, and its correlation with wall time."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from script_module import load_bench_script

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "host_noise.py"


hn = load_bench_script("host_noise")


class SteppingClock:
    """A GPU sensor boundary: the SM clock steps through these values, one per read."""

    def __init__(self, *values_mhz: int | None):
        self.values = itertools.cycle(values_mhz)
        self.reads = 0

    def clocks_mhz(self):
        self.reads += 1
        return next(self.values), 2619


def test_the_clock_is_read_while_the_block_runs_and_not_after():
    device = SteppingClock(345, 1980, None)  # None: a read that failed, left out
    with hn.watched_sm_clock(device, 0.02) as readings:
        time.sleep(0.3)
    reads_at_exit = device.reads
    time.sleep(0.1)
    assert device.reads == reads_at_exit  # the thread stopped with the block
    assert len(readings) >= 5 and set(readings) == {345, 1980}
    assert hn.clock_summary(readings) == {"median": hn.statistics.median(readings), "min": 345, "max": 1980,
                                          "samples": len(readings)}


def test_a_zero_period_reads_nothing():
    device = SteppingClock(1980)
    with hn.watched_sm_clock(device, 0) as readings:
        time.sleep(0.05)
    assert readings == [] and device.reads == 0
    assert hn.clock_summary(readings) is None


def run(wall_s: float, sm_mhz: float | None) -> dict:
    return {"wall_s": wall_s, "sm_clock_mhz": {"median": sm_mhz} if sm_mhz is not None else None}


def test_slow_runs_at_low_clocks_correlate_negatively():
    runs = [run(1.7, 1980), run(2.5, 1100), run(1.8, 1950), run(2.4, 1200), run(2.0, None)]
    assert hn.wall_clock_correlation(runs) < -0.95


def test_no_correlation_without_spread_or_enough_runs():
    assert hn.wall_clock_correlation([run(1.7, 1980), run(2.5, 1980), run(2.1, 1980)]) is None
    assert hn.wall_clock_correlation([run(1.7, 1980), run(2.5, 1100)]) is None


def test_the_probe_is_sized_once_to_about_the_asked_time():
    iterations = hn.probe_iterations(0.1)
    took_s = [hn.cpu_probe_s(iterations) for _ in range(3)]
    assert 0.03 < min(took_s) < 0.4, took_s  # a loaded CI host may run it slower, never 10x off
    assert hn.probe_iterations(0.2) > 1.5 * iterations  # twice the time, about twice the work


def test_the_probe_is_fixed_work():
    assert hn.cpu_work(1000) == hn.cpu_work(1000) != hn.cpu_work(1001)


def test_wall_times_that_follow_the_probe_correlate():
    # Fixed host work on a CPU whose speed varies: the wall time moves with the probe.
    assert hn.wall_correlation([(1.5, 0.10), (2.1, 0.14), (1.6, 0.11), (2.5, 0.17)]) > 0.95
    assert hn.wall_correlation([(1.5, 0.10), (2.1, 0.10), (1.6, 0.10)]) is None  # a steady probe


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="no /proc/stat here")
def test_steal_time_is_read_for_all_cpus_and_for_one():
    total, cpu0 = hn.steal_now([0])
    assert total is not None and cpu0 is not None and 0 <= cpu0 <= total
    assert hn.steal_now([0, 1])[1] is None  # not pinned to one CPU
    assert hn.steal_now([10**6])[1] is None  # no such CPU
    assert hn.steal_delta_s(total, total + 0.5) == pytest.approx(0.5) and hn.steal_delta_s(None, 1.0) is None


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_each_run_and_summary_carry_the_clock(tmp_path, cli_env):
    out = tmp_path / "host_noise.jsonl"
    env = {**cli_env, "CUDA_VISIBLE_DEVICES": ""}  # the program fails fast; the fake GPU's clock is still read
    done = subprocess.run([sys.executable, str(SCRIPT), "--programs", "histogram", "--runs", "2",
                           "--clock-period-s", "0.01", "--cpu-probe-s", "0.02", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    runs = [r for r in records if r["kind"] == "run"]
    assert len(runs) == 4 and all(r["sm_clock_mhz"]["samples"] >= 1 for r in runs)
    summaries = [r for r in records if r["kind"] == "summary"]
    assert [s["mode"] for s in summaries] == ["plain", "pinned"]
    assert all(s["failed"] == 2 for s in summaries)  # no GPU for the program: every run failed, and says so
    # The fake GPU idles at 345 MHz: no spread in the clock, so no correlation to report.
    assert all(s["sm_clock_mhz"]["median"] == 345 and s["sm_clock_mhz"]["r_with_wall_s"] is None
               for s in summaries)
    # The CPU probe ran before and after each run, and its summary leaves the failed runs out of r.
    assert records[0]["cpu_probe_iterations"] > 0
    assert all(0 < r["cpu_probe_before_s"] < 1 and 0 < r["cpu_probe_after_s"] < 1 for r in runs)
    # Steal time: over all CPUs for every run, and for the one CPU only where the run was pinned to it.
    assert all(r["steal_s"] >= 0 for r in runs)
    assert all((r["steal_pinned_cpu_s"] is None) == (r["mode"] == "plain") for r in runs)
    assert all(s["cpu_probe_s"]["min"] > 0 and s["cpu_probe_s"]["r_with_wall_s"] is None for s in summaries)
