"""nvidia.py: against the real pynvml where no driver is installed, and a scripted NVML elsewhere.

The scripted NVML stands exactly at the sensor boundary: it keeps the real pynvml's constants,
error classes and ctypes structures, and replaces only the calls into libnvidia-ml.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
import types

import pynvml
import pytest
from wattson.profilers import nvidia
from wattson.profilers.device import DeviceError, open_devices
from wattson.profilers.nvidia import NVML_MISSING_MESSAGE, NvidiaDevice, decode_clock_event_reasons
from wattson.profilers.probe import probe_device


def _nvml_loadable() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


class ScriptedGpu:
    """One H100-like GPU: 70 W idle; counter and power both step every 100 ms, as on the real card."""

    def __init__(self, **faults):
        self.t0 = time.monotonic()
        self.faults = faults
        self.throttle_mask = 0x1 | 0x4  # idle + software power cap
        self.energy_reads = 0

    def step(self) -> int:
        return int((time.monotonic() - self.t0) / 0.1)

    def energy_mj(self) -> int:
        self.energy_reads += 1
        return 5_000_000 + self.step() * 7_000  # 70 W x 0.1 s per step

    def power_mw(self) -> int:
        return 70_000 + (self.step() % 5) - 2  # a few mW of jitter, changing with each update


def scripted_nvml(gpus: list[ScriptedGpu], **overrides) -> types.ModuleType:
    """A pynvml module whose library calls answer from `gpus`; overrides replace single calls."""
    nvml = types.ModuleType("pynvml")
    nvml.__dict__.update({k: v for k, v in vars(pynvml).items() if not k.startswith("nvml")})
    err = pynvml.NVMLError
    nvml.calls = {"init": 0, "shutdown": 0}

    def fault(gpu: ScriptedGpu, name: str) -> None:
        if name in gpu.faults:
            raise err(gpu.faults[name])

    def init():
        nvml.calls["init"] += 1

    def shutdown():
        nvml.calls["shutdown"] += 1

    def field_values(handle, ids):
        values = (pynvml.c_nvmlFieldValue_t * len(ids))()
        for i, field_id in enumerate(ids):
            values[i].fieldId = field_id
            if "field_186" in handle.faults:
                values[i].nvmlReturn = handle.faults["field_186"]
                continue
            values[i].nvmlReturn = pynvml.NVML_SUCCESS
            values[i].valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
            values[i].value.uiVal = handle.power_mw()
        return values

    def energy(handle):
        fault(handle, "energy")
        return handle.energy_mj()

    def attributes(handle):
        fault(handle, "attributes")
        attrs = pynvml.c_nvmlDeviceAttributes()
        attrs.multiprocessorCount = 114
        return attrs

    def event_reasons(handle):
        fault(handle, "event_reasons")
        return handle.throttle_mask

    def clock(handle, kind):
        fault(handle, "clock")
        return {pynvml.NVML_CLOCK_SM: 345, pynvml.NVML_CLOCK_MEM: 2619}[kind]

    calls = {
        "nvmlInit": init,
        "nvmlShutdown": shutdown,
        "nvmlDeviceGetCount": lambda: len(gpus),
        "nvmlDeviceGetHandleByIndex": lambda i: gpus[i],
        "nvmlDeviceGetName": lambda h: "NVIDIA H100 80GB HBM3",
        "nvmlSystemGetDriverVersion": lambda: "580.65.06",
        "nvmlDeviceGetUUID": lambda h: "GPU-0b1c2d3e",
        "nvmlDeviceGetMemoryInfo": lambda h: types.SimpleNamespace(total=85_520_809_984),
        "nvmlDeviceGetEnforcedPowerLimit": lambda h: 700_000,
        "nvmlDeviceGetMaxClockInfo": lambda h, kind: {pynvml.NVML_CLOCK_SM: 1980,
                                                      pynvml.NVML_CLOCK_MEM: 2619}[kind],
        "nvmlDeviceGetMemoryBusWidth": lambda h: 5120,
        "nvmlDeviceGetAttributes": attributes,
        "nvmlDeviceGetNumGpuCores": lambda h: 16896,
        "nvmlDeviceGetCudaComputeCapability": lambda h: (9, 0),
        "nvmlDeviceGetTotalEnergyConsumption": energy,
        "nvmlDeviceGetFieldValues": field_values,
        "nvmlDeviceGetPowerUsage": lambda h: 71_000,
        "nvmlDeviceGetTemperature": lambda h, sensor: 33,
        "nvmlDeviceGetClockInfo": clock,
        "nvmlDeviceGetCurrentClocksEventReasons": event_reasons,
        "nvmlDeviceGetCurrentClocksThrottleReasons": lambda h: h.throttle_mask,
    }
    calls.update(overrides)
    nvml.__dict__.update(calls)
    return nvml


@pytest.fixture
def install_nvml(monkeypatch):
    """Put a scripted pynvml in sys.modules; close every device opened through it afterwards."""
    opened: list = []

    def install(gpus: list[ScriptedGpu], **overrides) -> types.ModuleType:
        nvml = scripted_nvml(gpus, **overrides)
        monkeypatch.setitem(sys.modules, "pynvml", nvml)
        return nvml

    def open_all():
        devices = nvidia.open_nvidia_devices()
        opened.extend(devices)
        return devices

    install.open = open_all
    yield install
    for device in opened:
        device.close()


# --- the real library on a machine without the NVIDIA driver --------------------------------------

@pytest.mark.skipif(_nvml_loadable(), reason="this machine has the NVIDIA driver")
def test_without_the_driver_the_error_says_what_to_do():
    with pytest.raises(DeviceError) as caught:
        nvidia.open_nvidia_devices()
    assert str(caught.value) == NVML_MISSING_MESSAGE
    assert nvidia.library_error() == NVML_MISSING_MESSAGE


# --- the scripted NVML -------------------------------------------------------------------------------

def test_device_info_is_filled(install_nvml):
    install_nvml([ScriptedGpu(attributes=pynvml.NVML_ERROR_NOT_SUPPORTED)])
    (device,) = install_nvml.open()
    info = device.info
    assert (info.vendor, info.name, info.driver_version, info.uuid) == (
        "nvidia", "NVIDIA H100 80GB HBM3", "580.65.06", "GPU-0b1c2d3e")
    assert info.memory_total_bytes == 85_520_809_984
    assert info.sm_count == 132  # 16896 FP32 cores / 128 per Hopper SM, as attributes are refused
    assert info.power_limit_mw == 700_000
    assert (info.max_sm_clock_mhz, info.max_mem_clock_mhz, info.memory_bus_width_bits) == (1980, 2619, 5120)
    assert info.has_energy_counter and info.has_instant_power
    assert device.energy_counter_wrap_mj is None


def test_sm_count_comes_from_attributes_where_nvml_gives_them(install_nvml):
    install_nvml([ScriptedGpu()])
    (device,) = install_nvml.open()
    assert device.info.sm_count == 114


def test_sm_count_is_none_for_an_unknown_architecture(install_nvml):
    install_nvml([ScriptedGpu(attributes=pynvml.NVML_ERROR_NOT_SUPPORTED)],
                 nvmlDeviceGetCudaComputeCapability=lambda h: (99, 0))
    (device,) = install_nvml.open()
    assert device.info.sm_count is None


def test_calls_missing_from_an_older_pynvml_leave_facts_empty(install_nvml):
    nvml = install_nvml([ScriptedGpu(attributes=pynvml.NVML_ERROR_NOT_SUPPORTED)])
    del nvml.nvmlDeviceGetMemoryBusWidth, nvml.nvmlDeviceGetNumGpuCores, nvml.nvmlDeviceGetAttributes
    (device,) = install_nvml.open()
    assert device.info.memory_bus_width_bits is None
    assert device.info.sm_count is None
    assert device.info.name == "NVIDIA H100 80GB HBM3"


def test_a_gpu_failing_to_open_releases_the_others(install_nvml):
    def handle(index):
        if index == 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpus[index]

    gpus = [ScriptedGpu(), ScriptedGpu()]
    nvml = install_nvml(gpus, nvmlDeviceGetHandleByIndex=handle)
    with pytest.raises(DeviceError, match="could not open GPU 1"):
        install_nvml.open()
    assert nvml.calls == {"init": 1, "shutdown": 1}


def test_readings_have_their_units(install_nvml):
    gpu = ScriptedGpu()
    install_nvml([gpu])
    (device,) = install_nvml.open()
    assert device.energy_mj() == pytest.approx(5_000_000 + gpu.step() * 7_000, abs=7_000)
    assert isinstance(device.energy_mj(), float)
    assert device.power_instant_mw() == pytest.approx(70_000, abs=3)
    assert device.power_average_mw() == 71_000.0
    assert device.temperature_c() == 33.0
    assert device.clocks_mhz() == (345, 2619)
    assert device.throttle_reasons() == ["sw_power_cap"]
    state = device.state()
    assert state.power_mw == pytest.approx(70_000, abs=3) and state.sm_clock_mhz == 345


def test_no_energy_counter_before_volta(install_nvml):
    gpu = ScriptedGpu(energy=pynvml.NVML_ERROR_NOT_SUPPORTED)
    install_nvml([gpu])
    (device,) = install_nvml.open()
    assert device.info.has_energy_counter is False
    reads = gpu.energy_reads
    assert device.energy_mj() is None
    assert gpu.energy_reads == reads  # no NVML call for a counter known to be absent
    assert device.sensor_notes == []


def test_instant_power_field_failing_alone_means_no_instant_power(install_nvml):
    install_nvml([ScriptedGpu(field_186=pynvml.NVML_ERROR_NOT_SUPPORTED)])
    (device,) = install_nvml.open()
    assert device.info.has_instant_power is False
    assert device.power_instant_mw() is None
    assert device.power_average_mw() == 71_000.0


def test_a_lost_gpu_is_a_worded_error_not_a_traceback(install_nvml):
    gpu = ScriptedGpu()
    install_nvml([gpu])
    (device,) = install_nvml.open()
    gpu.faults["energy"] = pynvml.NVML_ERROR_GPU_IS_LOST
    with pytest.raises(DeviceError, match=r"energy counter on GPU 0 .*nvidia-smi"):
        device.energy_mj()
    gpu.faults["clock"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    assert device.clocks_mhz() == (None, None)


def test_throttle_reasons_fall_back_to_the_older_call(install_nvml):
    gpu = ScriptedGpu(event_reasons=pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
    gpu.throttle_mask = 0x40 | 0x80
    install_nvml([gpu])
    (device,) = install_nvml.open()
    assert device.throttle_reasons() == ["hw_thermal", "hw_power_brake"]
    assert device.throttle_reasons() == ["hw_thermal", "hw_power_brake"]


def test_clock_event_reasons_decode_to_words():
    assert decode_clock_event_reasons(0) == []
    assert decode_clock_event_reasons(0x1) == []  # idle is not a throttle
    assert decode_clock_event_reasons(0x4 | 0x20 | 0x40) == ["sw_power_cap", "sw_thermal", "hw_thermal"]
    assert decode_clock_event_reasons(0x8000) == ["unknown_0x8000"]


@pytest.mark.parametrize(("code", "words"), [
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, NVML_MISSING_MESSAGE),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver is not loaded"),
    (pynvml.NVML_ERROR_NO_PERMISSION, "no permission"),
    (pynvml.NVML_ERROR_UNKNOWN, "nvidia-smi"),
])
def test_init_failures_are_worded(install_nvml, code, words):
    def failing_init():
        raise pynvml.NVMLError(code)

    install_nvml([ScriptedGpu()], nvmlInit=failing_init)
    with pytest.raises(DeviceError) as caught:
        install_nvml.open()
    assert words in str(caught.value)


def test_nvml_is_initialised_once_and_shut_down_after_the_last_device(install_nvml):
    nvml = install_nvml([ScriptedGpu(), ScriptedGpu()])
    first, second = install_nvml.open()
    assert nvml.calls == {"init": 1, "shutdown": 0}
    first.close()
    first.close()
    assert nvml.calls["shutdown"] == 0
    assert second.energy_mj() is not None
    second.close()
    assert nvml.calls == {"init": 1, "shutdown": 1}


def test_threads_opening_and_closing_devices_keep_the_refcount(install_nvml):
    nvml = install_nvml([ScriptedGpu()])

    def churn():
        for _ in range(20):
            for device in nvidia.open_nvidia_devices():
                device.energy_mj()
                device.close()

    keeper = install_nvml.open()  # holds NVML open while the threads churn
    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert nvml.calls == {"init": 1, "shutdown": 0}
    keeper[0].close()
    assert nvml.calls == {"init": 1, "shutdown": 1}


def test_open_devices_lists_nvidia_gpus_when_amd_is_absent(install_nvml, monkeypatch):
    install_nvml([ScriptedGpu()])
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.delenv("WATTSON_FAKE_GPU", raising=False)
    devices = open_devices()
    try:
        assert [type(d) for d in devices] == [NvidiaDevice]
    finally:
        for d in devices:
            d.close()


def test_probe_times_the_scripted_sensors(install_nvml):
    install_nvml([ScriptedGpu()])
    (device,) = install_nvml.open()
    probe = probe_device(device, duration_s=0.8)
    assert probe.energy_counter_period_s == pytest.approx(0.1, abs=0.03)
    assert probe.instant_power_period_s == pytest.approx(0.1, abs=0.03)
    assert probe.counter_valid is True
    assert probe.idle_power_w == pytest.approx(70, abs=0.1)
