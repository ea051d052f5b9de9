"""probe.py against the scripted fake GPU (the sensor boundary), and toolchains() against the real nvcc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wattson.profilers.device import GpuDevice
from wattson.profilers.fake import FakeDevice
from wattson.profilers.probe import (
    COUNTER_TOLERANCE,
    SensorProbe,
    _integrate_mj,
    probe_device,
    sensor_library_errors,
    toolchains,
)


@pytest.fixture
def make_device():
    opened: list[GpuDevice] = []

    def make(**spec) -> FakeDevice:
        spec.setdefault("noise_w", 0.5)  # a real sensor never reads the same milliwatt twice
        device = FakeDevice(0, spec)
        opened.append(device)
        time.sleep(0.02)  # let the simulated hardware tick once
        return device

    yield make
    for device in opened:
        device.close()


class _ScaledCounter(FakeDevice):
    """A GPU whose counter runs at a fraction of its power, as some AMD counters do."""

    scale = 0.5

    def energy_mj(self) -> float | None:
        value = super().energy_mj()
        return None if value is None else value * self.scale


def test_finds_the_counter_update_period_and_validates_it(make_device):
    probe = probe_device(make_device(counter_period_s=0.1), duration_s=1.0)
    assert probe.energy_counter_period_s == pytest.approx(0.1, abs=0.03)
    assert probe.instant_power_period_s is not None and probe.instant_power_period_s < 0.02
    assert probe.energy_read_cost_ms is not None and probe.energy_read_cost_ms < 5
    assert probe.counter_vs_power_ratio == pytest.approx(1.0, abs=0.05)
    assert probe.counter_valid is True
    assert probe.idle_power_w == pytest.approx(70, abs=1)
    assert probe.notes == []


def test_a_slower_counter_is_timed_as_slower(make_device):
    probe = probe_device(make_device(counter_period_s=0.25), duration_s=1.2)
    assert probe.energy_counter_period_s == pytest.approx(0.25, abs=0.04)


def test_stuck_counter_is_invalid_and_said_so(make_device):
    probe = probe_device(make_device(stuck_after_s=0.0), duration_s=0.6)
    assert probe.energy_counter_period_s is None
    assert probe.counter_valid is False
    assert probe.counter_vs_power_ratio == 0.0
    assert any("did not change" in n and "stuck" in n and "--probe-s" in n for n in probe.notes)


def test_stuck_power_sensor_is_said_so(make_device):
    probe = probe_device(make_device(noise_w=0.0), duration_s=0.5)
    assert probe.instant_power_period_s is None
    assert any(n.startswith("instant power read 70.0 W throughout") and "stuck" in n for n in probe.notes)


def test_no_counter_gives_none_and_a_note(make_device):
    probe = probe_device(make_device(no_energy_counter=True), duration_s=0.4)
    assert probe.energy_counter_period_s is None
    assert probe.energy_read_cost_ms is None
    assert probe.counter_vs_power_ratio is None
    assert probe.counter_valid is None
    assert probe.idle_power_w == pytest.approx(70, abs=1)
    assert any("no usable energy counter" in n for n in probe.notes)


def test_without_instant_power_the_counter_is_checked_against_averaged_power(make_device):
    probe = probe_device(make_device(no_instant_power=True, counter_period_s=0.05), duration_s=0.6)
    assert probe.instant_power_period_s is None
    assert probe.counter_valid is True
    assert any("no instant power" in n and "driver" in n for n in probe.notes)


def test_counter_that_disagrees_with_power_is_invalid(make_device):
    device = _ScaledCounter(0, {"counter_period_s": 0.05, "noise_w": 0.5})
    try:
        time.sleep(0.02)
        probe = probe_device(device, duration_s=0.6)
    finally:
        device.close()
    assert probe.counter_vs_power_ratio == pytest.approx(0.5, abs=0.05)
    assert probe.counter_valid is False
    assert any("disagrees" in n and f"±{COUNTER_TOLERANCE:.0%}" in n for n in probe.notes)


def test_counter_that_wraps_during_the_probe_is_still_valid(make_device):
    # 70 W idle: a 100 J counter starting 0.5 J short of its wrap wraps once, early in the window.
    device = make_device(wrap_mj=100_000.0, initial_energy_mj=99_500.0, counter_period_s=0.05)
    probe = probe_device(device, duration_s=0.6)
    assert probe.counter_valid is True
    assert probe.counter_vs_power_ratio == pytest.approx(1.0, abs=0.05)


def test_device_findings_are_carried_into_notes(make_device):
    device = make_device(counter_period_s=0.05)
    device.sensor_notes = ["the energy counter could not be checked: this GPU reports no power"]
    probe = probe_device(device, duration_s=0.3)
    assert probe.notes[0] == device.sensor_notes[0]


def test_probe_round_trips_through_json(make_device):
    probe = probe_device(make_device(counter_period_s=0.05), duration_s=0.3)
    again = SensorProbe.from_dict(json.loads(json.dumps(probe.to_dict())))
    assert again == probe
    assert again.device.name == "Fake GPU"


def test_integration_of_power_is_exact_for_lines():
    times_s = [0.0, 1.0, 2.0, 3.0]
    assert _integrate_mj(times_s, [1000.0] * 4, 0.5, 2.5) == pytest.approx(2000.0)
    ramp_mw = [0.0, 1000.0, 2000.0, 3000.0]  # 1 W/s: integral over [1, 3] is 4 J
    assert _integrate_mj(times_s, ramp_mw, 1.0, 3.0) == pytest.approx(4000.0)
    assert _integrate_mj(times_s, ramp_mw, 0.5, 1.5) == pytest.approx(1000.0)
    assert _integrate_mj(times_s, ramp_mw, 5.0, 6.0) == 0.0


# --- toolchains ----------------------------------------------------------------------------------

def _real_nvcc_version() -> str:
    out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split(", V")[1].split()[0]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH")
def test_toolchains_reports_the_real_nvcc_and_cupti():
    found = toolchains()
    assert found["nvcc"] == _real_nvcc_version()
    assert found["cupti"] is not None and Path(found["cupti"]).is_file()
    assert Path(found["cupti"]).name.startswith("libcupti.so")
    if shutil.which("hipcc") is None and not Path("/opt/rocm/bin/hipcc").exists():
        assert found["hipcc"] is None


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH")
def test_doctor_reports_the_cupti_the_kernel_tracer_links():
    """One search for CUPTI: what `wattson doctor` shows is what build_injection_library would use."""
    from wattson.profilers.kernels.build import locate_cupti

    assert toolchains()["cupti"] == str(locate_cupti().library)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH")
def test_toolchains_finds_nvcc_through_cuda_home_when_not_on_path(monkeypatch, tmp_path):
    cuda_root = next((r for r in (Path(os.environ.get("CUDA_HOME", "")), Path("/usr/local/cuda"))
                      if (r / "bin" / "nvcc").is_file()), None)
    if cuda_root is None:
        pytest.skip("no CUDA root with bin/nvcc")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_HOME", str(cuda_root))
    assert toolchains()["nvcc"] == subprocess.run(
        [str(cuda_root / "bin" / "nvcc"), "--version"], capture_output=True, text=True
    ).stdout.split(", V")[1].split()[0]


def test_sensor_library_errors_say_what_to_install_where_libraries_are_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # as on a host without ROCm
    errors = sensor_library_errors()
    assert "amdsmi" in errors["amd"] and "--remote" in errors["amd"]
    assert set(errors) == {"nvidia", "amd"}
