"""protocol.profile / compare end to end: real subprocesses of the fake GPU program, the fake sensors."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from wattson.profilers import stats
from wattson.profilers.device import DeviceState
from wattson.profilers.fake import FakeDevice
from wattson.profilers.protocol import (
    Budget,
    Cancelled,
    CompareResult,
    ProfileResult,
    ProgramFailed,
    compare,
    profile,
    settle_power,
    trial_flags,
)
from wattson.profilers.run import RunMeasurement, measured_run

HELPER = Path(__file__).parent / "helpers" / "fake_gpu_program.py"
SECONDS = 0.15  # busy time of one fake run: short, so the suite stays fast


@pytest.fixture
def gpu(tmp_path: Path):
    """Factory for a fake GPU (idle 0 W unless asked, so a run's energy is its busy work alone)."""
    made: list[FakeDevice] = []

    def make(**spec) -> FakeDevice:
        base = {"idle_w": 0, "busy_w": 300, "load_file": str(tmp_path / "load"), "settle_s": 0.005,
                "counter_period_s": 0.002, "noise_w": 0.5, "seed": 5}
        (tmp_path / "load").write_text("0")
        device = FakeDevice(len(made), {**base, **spec})
        made.append(device)
        return device

    yield make
    for d in made:
        d.close()


def runner(tmp_path: Path, device: FakeDevice | None, work: float = 1.0, seconds: float = SECONDS,
           exit_code: int = 0, text: str = "PASS", cancel: threading.Event | None = None):
    cmd = (f"{sys.executable} {HELPER} --load-file {tmp_path / 'load'} --seconds {seconds} --work {work} "
           f"--exit {exit_code} --print {text}")
    return lambda: measured_run(cmd, cwd=tmp_path, device=device, timeout_s=10, cancel=cancel)


def test_compare_x_with_x_finds_no_difference(tmp_path, gpu):
    device = gpu()
    run = runner(tmp_path, device)
    # Up to 10 pairs: on a busy host the runs get noisier and the protocol keeps going, as it should.
    result = compare(run, run, device, Budget(min_trials=5, max_trials=10))
    assert result.energy_ratio is not None
    assert result.energy_ratio.kind == "same", result.energy_ratio.text
    assert result.energy_ratio.text.startswith("no detectable difference (")
    assert result.order[:8] == list("ABBAABBA")
    assert len(result.a.trials) == len(result.b.trials) >= 5
    assert result.stopped_because in ("ci target reached", "max trials")
    assert result.time_ratio is not None and result.power_ratio is not None


def test_ten_percent_more_work_is_more_energy(tmp_path, gpu):
    device = gpu()
    result = compare(runner(tmp_path, device), runner(tmp_path, device, work=1.10), device,
                     Budget(min_trials=5, max_trials=10))
    v = result.energy_ratio
    assert v is not None and v.kind == "more", v.text
    assert v.text.startswith("B uses more energy: +")
    # The fake adds a fixed ~1 % per run (load-file latency and the power's decay after the load
    # drops), which pulls the true ratio a little under 1.10: allow that much beyond the interval.
    assert v.ci_low - 0.02 <= 1.10 <= v.ci_high + 0.02
    assert result.a.energy_j is not None and result.b.energy_j is not None
    assert result.b.energy_j.median > result.a.energy_j.median


def test_a_host_that_drifts_from_pair_to_pair_does_not_widen_the_ratio(tmp_path, gpu):
    # Each pair of trials (A B, then B A, ...) runs at its own host speed, as on a VM whose CPU is
    # slower for minutes at a time: both members of a pair do the same, so the pairs' resampling keeps
    # the drift out of the ratio's interval.
    device = gpu()
    speeds = [1.0, 1.4, 0.8, 1.2, 0.9, 1.3]
    calls = iter(range(100))

    def run() -> RunMeasurement:
        return runner(tmp_path, device, work=speeds[next(calls) // 2])()

    result = compare(run, run, device, Budget(warmup_runs=0, min_trials=6, max_trials=6,
                                              target_ci_half_width=0.001, cooldown_cap_s=0.05))
    a = [t.energy_mj for t in result.a.trials]
    b = [t.energy_mj for t in result.b.trials]
    assert len(a) == len(b) == 6
    v = result.energy_ratio
    assert v.kind == "same", v.text  # within the 1 % band: the fake's own jitter is a few tenths of a percent
    paired_half = (v.ci_high - v.ci_low) / 2
    assert paired_half < 0.05, v.text
    # The same trials resampled as separate runs would see the drift as spread.
    assert stats.ratio_of_medians(a, b).relative_half_width > 2 * paired_half
    # Time is resampled by pairs too.
    unpaired_time = stats.ratio_of_medians([t.duration_s for t in result.a.trials],
                                           [t.duration_s for t in result.b.trials])
    assert result.time_ratio.relative_half_width < unpaired_time.relative_half_width


def test_profile_stops_when_the_interval_is_narrow(tmp_path, gpu):
    device = gpu()
    notes: list[tuple[str, float]] = []
    result = profile(runner(tmp_path, device), device, Budget(min_trials=4, max_trials=12,
                                                              target_ci_half_width=0.05),
                     progress=lambda message, fraction: notes.append((message, fraction)))
    assert result.protocol == "wattson"
    assert result.stopped_because == "ci target reached"
    assert 4 <= len(result.trials) == len(result.conditions) <= 12
    e = result.energy_j
    assert e is not None and e.ci_low <= e.median <= e.ci_high and e.relative_half_width <= 0.05
    assert e.median == pytest.approx(300 * SECONDS, rel=0.1)  # joules of busy work
    assert result.energy_source == "counter"
    assert result.duration_s is not None and result.avg_power_w and result.peak_power_w
    assert result.edp_js == pytest.approx(e.median * result.duration_s.median, rel=0.1)
    assert result.idle_power_w is not None and result.idle_power_w < 3
    assert result.device and result.device["vendor"] == "fake"
    assert result.state_start is not None and result.state_end is not None
    assert any("warm-up" in m for m, _ in notes) and any(m.startswith("trial 4") for m, _ in notes)
    assert all(0.0 <= f <= 1.0 for _, f in notes)
    assert any("lasts" in w and "edge errors" in w for w in result.warnings)  # 0.2 s windows are short


def test_profile_reports_a_target_it_could_not_reach(tmp_path, gpu):
    device = gpu()
    result = profile(runner(tmp_path, device), device,
                     Budget(warmup_runs=0, min_trials=3, max_trials=3, target_ci_half_width=1e-9))
    assert result.stopped_because == "max trials" and len(result.trials) == 3
    assert any("wider than the" in w for w in result.warnings)


def test_time_budget_stops_early_and_says_so(tmp_path, gpu):
    device = gpu()
    result = profile(runner(tmp_path, device), device, Budget(min_trials=5, max_trials=30, max_wall_s=1.2))
    assert result.stopped_because == "time budget"
    assert 1 <= len(result.trials) < 5
    assert any("fit in the 1 s time budget" in w for w in result.warnings)


def test_failing_program_raises_with_its_output(tmp_path, gpu):
    device = gpu()
    with pytest.raises(ProgramFailed) as info:
        profile(runner(tmp_path, device, exit_code=3, text="FAIL"), device, Budget())
    assert info.value.measurement.exit_code == 3
    assert info.value.measurement.stdout == "FAIL\n"
    assert "exited with code 3 during warm-up" in str(info.value)
    with pytest.raises(ProgramFailed) as info:
        compare(runner(tmp_path, device), runner(tmp_path, device, exit_code=1), device,
                Budget(warmup_runs=0))
    assert info.value.label == "B"


def test_timeout_is_a_failure(tmp_path, gpu):
    device = gpu()
    slow = lambda: measured_run("sleep 5", cwd=tmp_path, device=device, timeout_s=0.2)  # noqa: E731
    with pytest.raises(ProgramFailed) as info:
        profile(slow, device, Budget(warmup_runs=0))
    assert info.value.measurement.timed_out
    assert "timed out" in str(info.value)


def test_cancel_keeps_the_finished_trials(tmp_path, gpu):
    device = gpu()
    cancel = threading.Event()

    def progress(message: str, fraction: float) -> None:
        if message.startswith("trial 2 of"):
            cancel.set()  # the third trial is never started, or is killed at once

    with pytest.raises(Cancelled) as info:
        profile(runner(tmp_path, device, cancel=cancel), device, Budget(), progress=progress, cancel=cancel)
    partial = info.value.partial
    assert isinstance(partial, ProfileResult)
    assert partial.stopped_because == "cancelled"
    assert len(partial.trials) == 2 and partial.energy_j is not None


def test_cancel_during_a_compare_keeps_balanced_pairs(tmp_path, gpu):
    device = gpu()
    cancel = threading.Event()

    def progress(message: str, fraction: float) -> None:
        if message.startswith("trial 2 of B"):
            cancel.set()

    with pytest.raises(Cancelled) as info:
        compare(runner(tmp_path, device, cancel=cancel), runner(tmp_path, device, cancel=cancel), device,
                Budget(warmup_runs=0), progress=progress, cancel=cancel)
    partial = info.value.partial
    assert isinstance(partial, CompareResult)
    assert partial.order == ["A", "B"]  # A B B: the unpaired third trial is left out
    assert len(partial.a.trials) == len(partial.b.trials) == 1


def test_throttling_mid_profile_is_flagged(tmp_path, gpu):
    device = gpu(throttle_after_s=1.6, throttle_reasons=["hw_thermal"])
    result = profile(runner(tmp_path, device), device, Budget(min_trials=8, max_trials=8))
    flags = [c.flags for c in result.conditions]
    assert "throttled: hw_thermal" not in flags[0]
    assert "throttled: hw_thermal" in flags[-1]
    assert any("trials of the program ran with the GPU throttling" in w for w in result.warnings)


def test_stuck_counter_is_a_warning_not_a_figure_of_zero(tmp_path, gpu):
    device = gpu(stuck_after_s=0)
    # 0.3 s runs: longer than any real counter's update period, so a counter that does not move is stuck.
    result = profile(runner(tmp_path, device, seconds=0.3), device,
                     Budget(warmup_runs=0, min_trials=3, max_trials=3))
    assert result.energy_j is not None and result.energy_j.median == pytest.approx(300 * 0.3, rel=0.15)
    assert result.energy_source == "instant-power-integral"
    assert any("did not advance" in w for w in result.warnings)


def test_outlier_is_reported_and_kept(tmp_path, gpu):
    device = gpu()
    normal, heavy = runner(tmp_path, device), runner(tmp_path, device, work=2.0)
    calls = []

    def run_once() -> RunMeasurement:
        calls.append(1)
        return heavy() if len(calls) == 4 else normal()  # warm-up, then trials 1, 2, 3 (heavy), ...

    result = profile(run_once, device, Budget(min_trials=6, max_trials=6))
    assert result.outliers == [2]
    assert result.conditions[2].outlier
    assert len(result.trials) == 6  # kept: the median absorbs it
    assert any("trial 3 of the program is an outlier" in w for w in result.warnings)


def test_cooldown_waits_for_the_power_to_come_down(tmp_path, gpu):
    device = gpu(idle_w=70, busy_w=350, settle_s=0.15, noise_w=0.0)
    result = profile(runner(tmp_path, device), device, Budget(warmup_runs=1, min_trials=2, max_trials=2))
    # After each run the fake decays from 350 W with a 0.15 s time constant: reaching idle + 5 %
    # takes ~0.6 s, and each trial starts only then.
    for cond in result.conditions:
        assert cond.cooldown_s >= 0.3
        assert cond.start_power_w is not None and cond.start_power_w <= 70 * 1.05 + 0.01
    assert result.idle_power_w == pytest.approx(70, abs=1)


def test_cooldown_is_capped(gpu):
    device = gpu(idle_w=70, busy_w=350)
    Path(device.spec["load_file"]).write_text("1")  # something else keeps the GPU busy
    time.sleep(0.05)
    settled = settle_power(device, idle_w=70.0, cap_s=0.2)
    assert not settled.settled and 0.2 <= settled.waited_s < 0.6
    assert settled.power_w == pytest.approx(350, rel=0.02)


def test_without_a_gpu_only_time_is_measured(tmp_path):
    run = lambda: measured_run("sleep 0.02", cwd=tmp_path, device=None, timeout_s=5)  # noqa: E731
    result = profile(run, None, Budget(min_trials=3, max_trials=3))
    assert result.energy_j is None and result.duration_s is not None
    assert result.energy_source == "none"
    assert any("no energy reading" in w for w in result.warnings)
    c = compare(run, run, None, Budget(warmup_runs=0, min_trials=2, max_trials=2))
    assert c.energy_ratio is None and c.time_ratio is not None


def _state(temp: float, clock: int, reasons: list[str] | None = None) -> DeviceState:
    return DeviceState(time_s=0.0, temperature_c=temp, sm_clock_mhz=clock, mem_clock_mhz=2619,
                       power_mw=70_000.0, throttle_reasons=reasons or [])


def _run(start: DeviceState, end: DeviceState, seen: list[str] | None = None) -> RunMeasurement:
    return RunMeasurement(exit_code=0, timed_out=False, cancelled=False, duration_s=1.0, energy_mj=1000.0,
                          energy_source="counter", avg_power_mw=1000.0, peak_power_mw=1000.0, timeline=[],
                          stdout="", stderr="", output_truncated=False, state_start=start, state_end=end,
                          start_monotonic_s=0.0, throttle_reasons_seen=seen or [])


def test_trial_flags_rules():
    runs = [
        _run(_state(40, 345), _state(55, 1980)),
        _run(_state(41, 345), _state(56, 1980), seen=["gpu_idle", "applications_clocks"]),  # benign
        _run(_state(42, 345), _state(57, 1980), seen=["sw_power_cap"]),  # throttled inside the run
        _run(_state(58, 345), _state(66, 1980)),  # started 17 C warmer than the median trial
        _run(_state(41, 345), _state(56, 1500, ["hw_slowdown"])),  # slow clock and a reason at its end
    ]
    flags = trial_flags(runs)
    assert flags[0] == [] and flags[1] == []
    assert flags[2] == ["throttled: sw_power_cap"]
    assert flags[3] == ["started at 58 C, +17 C from the median trial"]
    assert flags[4] == ["throttled: hw_slowdown", "SM clock 1500 MHz at the end, median trial 1980 MHz"]


def test_budget_validation_and_dicts():
    assert Budget.from_dict({"min_trials": 3, "max_trials": None, "future_field": 1}) == Budget(min_trials=3)
    with pytest.raises(ValueError, match="max_trials .* must be at least min_trials"):
        Budget(min_trials=10, max_trials=5)
    with pytest.raises(ValueError, match="wattson.toml"):
        Budget(target_ci_half_width=0)
    assert Budget.from_dict(Budget(max_wall_s=5).to_dict()) == Budget(max_wall_s=5)
    assert Budget.from_dict({"pin_cpus": 1.0, "min_trials": "4"}) == Budget(pin_cpus=1, min_trials=4)
    for bad in ({"pin_cpus": 0.5}, {"min_trials": True}, {"max_wall_s": float("inf")}, {"max_wall_s": "nan"}):
        with pytest.raises(ValueError):
            Budget.from_dict(bad)
    with pytest.raises(ValueError, match="pin_cpus must be 0"):
        Budget(pin_cpus=-1)


def test_results_round_trip_through_json(tmp_path, gpu):
    device = gpu()
    run = runner(tmp_path, device, seconds=0.05)
    p = profile(run, device, Budget(warmup_runs=0, min_trials=2, max_trials=2))
    back = ProfileResult.from_dict(json.loads(json.dumps(p.to_dict(max_timeline_points=None))))
    assert back == p
    small = p.to_dict(max_timeline_points=0)
    assert all(t["timeline"] == [] for t in small["trials"])
    c = compare(run, run, device, Budget(warmup_runs=0, min_trials=2, max_trials=2))
    back_c = CompareResult.from_dict(json.loads(json.dumps(c.to_dict(max_timeline_points=None))))
    assert back_c == c


def test_no_verdict_from_one_trial_each(tmp_path, gpu):
    """A budget that fits one run each must not produce 'less'/'more', however large the gap."""
    device = gpu()
    fast, slow = runner(tmp_path, device, work=1.0, seconds=0.3), runner(tmp_path, device, work=2.0, seconds=0.3)
    result = compare(fast, slow, device, Budget(warmup_runs=0, min_trials=5, max_trials=30, max_wall_s=0.9,
                                                 cooldown_cap_s=0.05))
    assert len(result.a.trials) < 2
    assert result.energy_ratio.kind == "same"
    assert "no verdict" in result.energy_ratio.text


def test_a_spread_that_follows_host_time_is_explained(tmp_path, gpu):
    # A CPU phase of varying length at idle power before steady GPU work: HeCBench's colorwheel and
    # floydwarshall behave so, and no number of sensor tricks narrows their interval.
    device = gpu(idle_w=60)
    cmd = (f"{sys.executable} {HELPER} --load-file {tmp_path / 'load'} --seconds {SECONDS} "
           f"--host-seconds 0.02:0.4")
    counter = iter(range(1000))

    def run() -> RunMeasurement:
        return measured_run(f"{cmd} --seed {next(counter)}", cwd=tmp_path, device=device, timeout_s=10)

    result = compare(run, run, device, Budget(warmup_runs=0, min_trials=6, max_trials=6,
                                              target_ci_half_width=0.001))
    assert result.stopped_because == "max trials"
    why = [w for w in result.warnings if "follows its wall time" in w]
    assert len(why) == 1, result.warnings
    assert "the GPU mostly waits" in why[0] and "host phase" in why[0]
    assert "trials per side" in why[0]


def test_no_explanation_once_the_interval_is_narrow(tmp_path, gpu):
    # Steady runs whose interval reaches the target: the note is only for intervals that stayed wide.
    device = gpu(idle_w=60)
    run = runner(tmp_path, device)
    result = profile(run, device, Budget(warmup_runs=0, min_trials=5, max_trials=12, target_ci_half_width=0.05))
    assert result.stopped_because == "ci target reached"
    assert not any("follows its wall time" in w for w in result.warnings), result.warnings


def test_a_program_that_never_loads_the_gpu_is_called_out(tmp_path, gpu):
    device = gpu(idle_w=70)
    cmd = f"{sys.executable} {HELPER} --load-file {tmp_path / 'load'} --seconds {SECONDS} --no-gpu --print PASS"
    result = profile(lambda: measured_run(cmd, cwd=tmp_path, device=device, timeout_s=10), device,
                     Budget(warmup_runs=0, min_trials=3, max_trials=3))
    said = [w for w in result.warnings if "idle power" in w]
    assert len(said) == 1 and "may not have used this GPU" in said[0], result.warnings
    # The same fake GPU under real load: no such note.
    busy = profile(runner(tmp_path, device), device, Budget(warmup_runs=0, min_trials=3, max_trials=3))
    assert not any("may not have used" in w for w in busy.warnings), busy.warnings
