"""The real NVML sensors of an NVIDIA GPU (run on a GPU host; skipped elsewhere).

Run with `pytest tests/gpu/test_sensors_gpu.py -q -s` to see the probes as JSON, the figures that
docs/sensors.md quotes. Keep the GPU otherwise idle: the idle probe reads idle power.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("pynvml")

from wattson.profilers.device import DeviceError, counter_delta_mj, open_devices  # noqa: E402
from wattson.profilers.nvidia import NvidiaDevice, open_nvidia_devices  # noqa: E402
from wattson.profilers.probe import COUNTER_TOLERANCE, SensorProbe, probe_device  # noqa: E402

PERIOD_RANGE_S = (0.02, 0.5)


@pytest.fixture(scope="module")
def device():
    try:
        devices = open_nvidia_devices()
    except DeviceError as e:
        pytest.skip(str(e))
    if not devices:
        pytest.skip("NVML found no GPU")
    yield devices[0]
    for d in devices:
        d.close()


@pytest.fixture(scope="module")
def idle_probe(device) -> SensorProbe:
    time.sleep(2.0)  # let the GPU settle after whatever ran before
    probe = probe_device(device, duration_s=3.0)
    print("\nidle probe:", json.dumps(probe.to_dict(), indent=2))
    return probe


def _is_h100(device: NvidiaDevice) -> bool:
    return "H100" in device.info.name or "H200" in device.info.name


def test_device_info_is_complete(device):
    info = device.info
    print("\ndevice info:", json.dumps(info.to_dict(), indent=2))
    assert info.vendor == "nvidia" and info.name and info.driver_version and info.uuid.startswith("GPU-")
    assert info.memory_total_bytes and info.memory_total_bytes > 2**30
    assert info.power_limit_mw and info.power_limit_mw > 50_000
    assert info.max_sm_clock_mhz and info.max_mem_clock_mhz and info.memory_bus_width_bits
    assert info.sm_count is not None
    if "H100" in info.name:
        assert info.sm_count in (114, 132)  # PCIe, SXM


def test_h100_has_counter_and_instant_power(device):
    if not _is_h100(device):
        pytest.skip(f"{device.info.name} is not an H100/H200")
    assert device.info.has_energy_counter
    assert device.info.has_instant_power
    assert device.energy_counter_wrap_mj is None


def test_readings_are_plausible(device):
    e0 = device.energy_mj()
    time.sleep(0.5)
    e1 = device.energy_mj()
    assert e0 is not None and e1 is not None and e1 > e0
    limit_mw = device.info.power_limit_mw or 1e6
    for power_mw in (device.power_instant_mw(), device.power_average_mw()):
        assert power_mw is not None and 10_000 < power_mw <= 1.2 * limit_mw
    temperature = device.temperature_c()
    assert temperature is not None and 10 < temperature < 100
    sm, mem = device.clocks_mhz()
    assert sm and mem
    assert all(isinstance(r, str) for r in device.throttle_reasons())
    assert "gpu_idle" not in device.throttle_reasons()


def test_idle_probe_times_the_sensors(idle_probe):
    low, high = PERIOD_RANGE_S
    assert idle_probe.energy_counter_period_s is not None
    assert low <= idle_probe.energy_counter_period_s <= high
    assert idle_probe.instant_power_period_s is not None
    assert low <= idle_probe.instant_power_period_s <= high


def test_idle_probe_records_the_read_cost(idle_probe):
    assert idle_probe.energy_read_cost_ms is not None and idle_probe.energy_read_cost_ms > 0


def test_idle_probe_validates_the_counter(idle_probe):
    assert idle_probe.counter_vs_power_ratio is not None
    assert abs(idle_probe.counter_vs_power_ratio - 1) <= COUNTER_TOLERANCE, idle_probe.notes
    assert idle_probe.counter_valid is True
    assert idle_probe.idle_power_w is not None and idle_probe.idle_power_w > 10


def test_counter_agrees_with_power_under_load(device):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    stop = threading.Event()

    def load():
        a = torch.randn(4096, 4096, device="cuda")
        while not stop.is_set():
            for _ in range(20):
                a = torch.tanh(a @ a)
            torch.cuda.synchronize()

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        time.sleep(0.5)  # past the clock ramp
        probe = probe_device(device, duration_s=3.0)
    finally:
        stop.set()
        worker.join()
    print("\nprobe under load:", json.dumps(probe.to_dict(), indent=2))
    assert probe.idle_power_w is not None and probe.idle_power_w > 150  # the median over the window
    assert probe.counter_valid is True, probe.notes
    low, high = PERIOD_RANGE_S
    assert probe.energy_counter_period_s is not None and low <= probe.energy_counter_period_s <= high


def test_devices_share_nvml(device):
    """Closing a second handle on the same GPU must leave NVML open for the first."""
    others = open_nvidia_devices()
    start_mj = device.energy_mj()
    for other in others:
        other.close()
    time.sleep(0.3)
    end_mj = device.energy_mj()
    assert start_mj is not None and end_mj is not None
    assert counter_delta_mj(start_mj, end_mj, device.energy_counter_wrap_mj) > 0


def test_open_devices_finds_this_gpu(monkeypatch):
    monkeypatch.delenv("WATTSON_FAKE_GPU", raising=False)
    devices = open_devices()
    try:
        assert any(isinstance(d, NvidiaDevice) for d in devices)
    finally:
        for d in devices:
            d.close()


def test_near_cpus_are_cpus_of_this_host(device):
    """NVML's CPU affinity, as pin_cpus uses it: host CPU ids, or None where the driver does not say."""
    import os

    cpus = device.near_cpus()
    if cpus is None:
        pytest.skip("the driver names no CPUs close to this GPU")
    assert cpus and all(0 <= c < (os.cpu_count() or 1) for c in cpus)
    print(json.dumps({"near_cpus": cpus}))
