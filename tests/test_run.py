"""run.measured_run with real subprocesses against the scripted fake GPU (the only fake: the sensors)."""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import pytest
from agent_fixture import pid_alive
from wattson.profilers.fake import FakeDevice
from wattson.profilers.run import (
    RunError,
    RunMeasurement,
    downsample_timeline,
    integrate_timeline_mj,
    measured_run,
)

HELPER = Path(__file__).parent / "helpers" / "fake_gpu_program.py"
# The fake's sensor thread shares this small host with everything else: when it is not scheduled
# for a few ms at a window's edge its counter lags, so energy is checked within 8 %, not exactly.
ENERGY_REL = 0.08


@pytest.fixture
def make_device(tmp_path: Path):
    """FakeDevice factory whose load file is tmp_path/load; every device is stopped at the end."""
    made: list[FakeDevice] = []

    def make(**spec) -> FakeDevice:
        load = tmp_path / "load"
        load.write_text("0")
        base = {"idle_w": 70, "busy_w": 350, "load_file": str(load), "settle_s": 0.01,
                "counter_period_s": 0.005, "seed": 3}
        device = FakeDevice(len(made), {**base, **spec})
        made.append(device)
        return device

    yield make
    for d in made:
        d.close()


def assert_busy_energy(m: RunMeasurement, busy_s: float, idle_w: float = 70.0, busy_w: float = 350.0,
                       margin: float = ENERGY_REL) -> None:
    """The run held the load for busy_s of its duration: its energy lies between busy_s at busy_w
    plus the rest at idle_w, and all of it at busy_w (shell start-up is slow on a loaded host)."""
    assert m.energy_mj is not None
    low_j = busy_w * busy_s + idle_w * (m.duration_s - busy_s)
    high_j = busy_w * m.duration_s
    assert low_j * (1 - margin) <= m.energy_mj / 1000.0 <= high_j * (1 + margin), (m.energy_mj, m.duration_s)


def busy_shell(tmp_path: Path, seconds: float) -> str:
    """A shell command that keeps the fake GPU fully loaded for its whole life (about `seconds`)."""
    load = tmp_path / "load"
    return f"echo 1 > {load}; sleep {seconds}; echo 0 > {load}"


def test_counter_window_energy_matches_the_fakes_power(tmp_path, make_device):
    device = make_device()
    m = measured_run(busy_shell(tmp_path, 0.3), cwd=tmp_path, device=device, timeout_s=10)
    assert m.exit_code == 0 and not m.timed_out and not m.cancelled
    assert m.energy_source == "counter"
    assert 0.3 <= m.duration_s < 1.0
    # The fake draws 350 W while loaded, 70 W otherwise; the window is the whole process.
    assert_busy_energy(m, 0.3)
    assert m.avg_power_mw is not None and 70_000 < m.avg_power_mw <= 350_000 * (1 + ENERGY_REL)
    assert m.peak_power_mw == pytest.approx(350_000, rel=0.01)
    assert len(m.timeline) >= 8
    assert all(0.0 <= t <= m.duration_s for t, _ in m.timeline)
    assert m.state_start is not None and m.state_end is not None
    assert m.start_monotonic_s <= time.monotonic() - m.duration_s
    assert m.warnings == []


def test_idle_run_costs_idle_power(tmp_path, make_device):
    device = make_device()
    m = measured_run("sleep 0.3", cwd=tmp_path, device=device, timeout_s=10)
    # The counter window opens before the fork and closes after the wait, so it may exceed the
    # process's own duration by the time the host takes to start and reap it (tens of ms when busy).
    assert 70.0 * m.duration_s * 1000.0 * 0.95 <= m.energy_mj <= 70.0 * (m.duration_s + 0.15) * 1000.0


def test_fake_program_exit_code_and_output(tmp_path, make_device):
    device = make_device()
    cmd = f"{sys.executable} {HELPER} --load-file {tmp_path / 'load'} --seconds 0.1 --exit 3 --print FAIL"
    m = measured_run(cmd, cwd=tmp_path, device=device, timeout_s=10)
    assert m.exit_code == 3 and m.failed
    assert m.failure_text() == "exited with code 3"
    assert m.stdout == "FAIL\n"
    assert m.energy_mj is not None and m.energy_mj >= 350 * 0.1 * 1000 * 0.95
    assert (tmp_path / "load").read_text() == "0"


def test_signal_exit_is_reported(tmp_path):
    m = measured_run("kill -9 $$", cwd=tmp_path, device=None, timeout_s=5)
    assert m.exit_code == -9
    assert m.failure_text() == "was killed by SIGKILL"


def test_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "pid"
    m = measured_run(f"sleep 100 & echo $! > {pid_file}; sleep 100", cwd=tmp_path, device=None, timeout_s=0.3)
    assert m.timed_out and m.exit_code is None and m.failed
    assert 0.3 <= m.duration_s < 2.0
    grandchild = int(pid_file.read_text())
    time.sleep(0.05)
    assert not pid_alive(grandchild)


def test_a_grandchild_that_ignores_sigterm_gets_sigkill(tmp_path):
    pid_file = tmp_path / "pid"
    cmd = f"sh -c 'trap \"\" TERM; sleep 100' & echo $! > {pid_file}; sleep 100"
    started = time.monotonic()
    m = measured_run(cmd, cwd=tmp_path, device=None, timeout_s=0.3)
    assert m.timed_out
    assert time.monotonic() - started < 3.0
    time.sleep(0.05)
    assert not pid_alive(int(pid_file.read_text()))


def test_processes_left_behind_are_killed_and_reported(tmp_path):
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    m = measured_run(f"sleep 100 & echo $! > {pid_file}", cwd=tmp_path, device=None, timeout_s=10)
    assert m.exit_code == 0
    assert time.monotonic() - started < 3.0  # the leftover held stdout open; we did not wait for it
    assert any("left 1 process" in w for w in m.warnings)
    time.sleep(0.05)
    assert not pid_alive(int(pid_file.read_text()))


def test_cancel_stops_the_run_at_once(tmp_path, make_device):
    device = make_device()
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    m = measured_run("sleep 10", cwd=tmp_path, device=device, timeout_s=30, cancel=cancel)
    assert m.cancelled and not m.timed_out and m.exit_code is None
    assert m.failure_text() == "was cancelled"
    assert 0.2 <= m.duration_s < 1.5
    assert m.energy_mj is not None  # what ran until then is still measured


def test_binary_output_is_capped_keeping_head_and_tail(tmp_path):
    script = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 4000); sys.stderr.write('note')"
    m = measured_run(f"{sys.executable} -c \"{script}\"", cwd=tmp_path, device=None, timeout_s=10,
                     output_cap_bytes=10_000)
    data = bytes(range(256)) * 4000
    assert m.output_truncated
    head = data[:5000].decode("utf-8", errors="replace")
    tail = data[-5000:].decode("utf-8", errors="replace")
    assert m.stdout.startswith(head)
    assert m.stdout.endswith(tail)
    assert f"[... {len(data) - 10_000} bytes of output omitted ...]" in m.stdout
    assert m.stderr == "note"


def test_no_counter_falls_back_to_the_power_timeline(tmp_path, make_device):
    device = make_device(no_energy_counter=True)
    m = measured_run(busy_shell(tmp_path, 0.3), cwd=tmp_path, device=device, timeout_s=10)
    assert m.energy_source == "instant-power-integral"
    assert_busy_energy(m, 0.3, margin=0.12)
    assert m.warnings == []  # no counter is a property of the GPU, not a fault


def test_no_sensors_at_all_gives_no_energy(tmp_path, make_device):
    device = make_device(no_energy_counter=True, no_instant_power=True)
    m = measured_run("sleep 0.05", cwd=tmp_path, device=device, timeout_s=10)
    assert (m.energy_mj, m.energy_source, m.avg_power_mw, m.timeline) == (None, "none", None, [])
    assert any("no energy reading" in w for w in m.warnings)
    bare = measured_run("sleep 0.05", cwd=tmp_path, device=None, timeout_s=10)
    assert (bare.energy_mj, bare.energy_source, bare.state_start) == (None, "none", None)
    assert bare.duration_s >= 0.05


def test_counter_wrap_is_undone(tmp_path, make_device):
    # Idle 0 W, so the counter sits 5 J below its wrap until the run loads the GPU.
    device = make_device(idle_w=0, wrap_mj=1_000_000, initial_energy_mj=995_000)
    time.sleep(0.02)
    before = device.energy_mj()
    m = measured_run(busy_shell(tmp_path, 0.3), cwd=tmp_path, device=device, timeout_s=10)
    assert device.energy_mj() < before  # the counter really wrapped inside the window
    assert m.energy_source == "counter" and m.warnings == []
    assert_busy_energy(m, 0.3, idle_w=0.0)


def test_stuck_counter_gives_a_warning_not_a_zero(tmp_path, make_device):
    device = make_device(stuck_after_s=0)
    m = measured_run(busy_shell(tmp_path, 0.3), cwd=tmp_path, device=device, timeout_s=10)
    assert any("did not advance" in w for w in m.warnings)
    assert m.energy_source == "instant-power-integral"
    assert_busy_energy(m, 0.3, margin=0.12)


def test_throttling_during_the_run_is_polled(tmp_path, make_device):
    device = make_device(throttle_after_s=0.0, throttle_reasons=["hw_thermal"])
    m = measured_run(busy_shell(tmp_path, 0.2), cwd=tmp_path, device=device, timeout_s=10)
    assert m.throttle_reasons_seen == ["hw_thermal"]


class ConfiningSandbox:
    """A real sandbox object in the shape profilers/sandbox.py provides: prefix, env, limits."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def argv(self, argv: list[str]) -> list[str]:
        self.calls.append("argv")
        return ["env", "CONFINED=yes", *argv]

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        self.calls.append("env")
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}

    def preexec(self) -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_sandbox_hooks_shape_the_process(tmp_path, monkeypatch):
    monkeypatch.setenv("WATTSON_TEST_SECRET", "do-not-leak")
    sandbox = ConfiningSandbox()
    m = measured_run('echo "$CONFINED $EXTRA ${WATTSON_TEST_SECRET:-scrubbed}"; ulimit -n', cwd=tmp_path,
                     device=None, timeout_s=10, env={"EXTRA": "added"}, sandbox=sandbox)
    assert m.stdout.split("\n")[:2] == ["yes added scrubbed", "64"]
    assert sandbox.calls == ["argv", "env"]
    plain = measured_run('echo "${WATTSON_TEST_SECRET:-scrubbed}"', cwd=tmp_path, device=None, timeout_s=10)
    assert plain.stdout == "do-not-leak\n"


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        measured_run("true", cwd=tmp_path / "nope", device=None, timeout_s=5)


def test_measurement_round_trips_through_json(tmp_path, make_device):
    device = make_device()
    m = measured_run(busy_shell(tmp_path, 0.1), cwd=tmp_path, device=device, timeout_s=10)
    back = RunMeasurement.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m
    assert RunMeasurement.from_dict(m.to_dict(include_timeline=False)).timeline == []
    assert len(m.to_dict(max_timeline_points=3)["timeline"]) <= 3


def test_timeline_helpers():
    timeline = [(0.1 * i, 100.0 + (50.0 if i == 37 else 0.0)) for i in range(100)]
    small = downsample_timeline(timeline, 10)
    assert len(small) <= 10 and small[0] == timeline[0] and small[-1] == timeline[-1]
    assert max(p for _, p in small) == 150.0  # the peak survives
    assert downsample_timeline(timeline, 0) == []
    # 100 mW held over 2 s is 200 mJ; the samples start late and stop early, the edges are held.
    assert integrate_timeline_mj([(0.5, 100.0), (1.5, 100.0)], 2.0) == pytest.approx(200.0)
    assert integrate_timeline_mj([(0.0, 0.0), (1.0, 100.0)], 1.0) == pytest.approx(50.0)
    assert integrate_timeline_mj([], 1.0) is None


def test_window_is_aligned_to_counter_updates(tmp_path, make_device):
    """With an H100-like 100 ms counter, plain edge reads of a 0.25 s busy run scatter by up to one
    update of busy energy (35 J here); aligned to updates, the runs agree within a few joules."""
    device = make_device(counter_period_s=0.1, settle_s=0.0)
    cmd = f"{sys.executable} {HELPER} --load-file {tmp_path / 'load'} --seconds 0.25"
    energies_j = []
    for _ in range(5):
        m = measured_run(cmd, cwd=tmp_path, device=device, timeout_s=10)
        assert m.energy_source == "counter"
        energies_j.append(m.energy_mj / 1000)
        # True energy: 0.25 s busy at 350 W plus the process's start-up and exit at 70 W.
        assert 350 * 0.25 * 0.97 <= m.energy_mj / 1000 <= 350 * 0.25 + 70 * (m.duration_s - 0.25) + 8
    assert max(energies_j) - min(energies_j) < 12, energies_j
