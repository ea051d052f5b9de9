"""amd.py against a scripted `amdsmi` module: the sensor boundary, shaped like amdsmi's Python API.

No AMD GPU or ROCm is here, so every case a real amdsmi can present is scripted: "N/A" fields,
a 32-bit accumulator that wraps, functions missing from older versions, broken counters.
"""

from __future__ import annotations

import enum
import sys
import time
import types

import pytest
from wattson.profilers import amd
from wattson.profilers.amd import AMDSMI_MISSING_MESSAGE, AmdDevice, decode_throttle_status
from wattson.profilers.device import DeviceError, counter_delta_mj
from wattson.profilers.probe import probe_device

CHECK_S = 0.05
RESOLUTION_UJ = 15.3


class AmdSmiException(Exception):
    pass


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code: int):
        super().__init__(err_code)
        self.err_code = err_code

    def get_error_code(self) -> int:
        return self.err_code


class ScriptedAmdGpu:
    """An MI300-like GPU drawing `power_w`; its counter counts `counter_scale` x the true energy."""

    def __init__(self, power_w: float = 140.0, start_ticks: int = 10_000_000, width_bits: int = 64,
                 counter_scale: float = 1.0, **fields):
        self.power_w = power_w
        self.start_ticks = start_ticks
        self.width_bits = width_bits
        self.counter_scale = counter_scale
        self.t0 = time.monotonic()
        self.fields = fields  # overrides: current_socket_power="N/A", energy_accumulator=..., ...
        self.errors: dict[str, int] = {}

    def ticks(self) -> int:
        energy_uj = self.power_w * (time.monotonic() - self.t0) * 1e6 * self.counter_scale
        return (self.start_ticks + int(energy_uj / RESOLUTION_UJ)) % (2**self.width_bits)


def scripted_amdsmi(gpus: list[ScriptedAmdGpu], drop: tuple[str, ...] = (), **overrides) -> types.ModuleType:
    smi = types.ModuleType("amdsmi")
    smi.AmdSmiException = AmdSmiException
    smi.AmdSmiLibraryException = AmdSmiLibraryException
    smi.AmdSmiInitFlags = enum.IntEnum("AmdSmiInitFlags", {"INIT_AMD_GPUS": 2})
    smi.AmdSmiClkType = enum.IntEnum("AmdSmiClkType", {"GFX": 1, "MEM": 5})
    smi.AmdSmiTemperatureType = enum.IntEnum("AmdSmiTemperatureType", {"EDGE": 0, "HOTSPOT": 1})
    smi.AmdSmiTemperatureMetric = enum.IntEnum("AmdSmiTemperatureMetric", {"CURRENT": 0})
    smi.calls = {"init": 0, "shutdown": 0}

    def checked(name, fn):
        def call(handle, *args):
            if name in handle.errors:
                raise AmdSmiLibraryException(handle.errors[name])
            return fn(handle, *args)
        return call

    def init(flags=None):
        smi.calls["init"] += 1

    def shut_down():
        smi.calls["shutdown"] += 1

    def energy(h):
        reading = {"energy_accumulator": h.ticks(), "counter_resolution": RESOLUTION_UJ, "timestamp": 0}
        if "energy_accumulator" in h.fields:
            reading["energy_accumulator"] = h.fields["energy_accumulator"]
        if h.fields.get("old_energy_key"):  # before amdsmi 6.2.1 the accumulator was called "power"
            reading["power"] = reading.pop("energy_accumulator")
        return reading

    def power(h):
        watts = int(h.power_w)
        info = {"current_socket_power": watts, "average_socket_power": watts, "gfx_voltage": 800,
                "soc_voltage": 700, "mem_voltage": 1100, "power_limit": 750}
        info.update({k: v for k, v in h.fields.items() if k in info})
        return info

    def temperature(h, kind, metric):
        if kind == smi.AmdSmiTemperatureType.HOTSPOT and h.fields.get("no_hotspot"):
            raise AmdSmiLibraryException(2)
        return 45 if kind == smi.AmdSmiTemperatureType.HOTSPOT else 38

    def asic(h):
        return {"market_name": h.fields.get("market_name", "AMD Instinct MI300X"),
                "num_compute_units": h.fields.get("num_compute_units", 304)}

    calls = {
        "amdsmi_init": init,
        "amdsmi_shut_down": shut_down,
        "amdsmi_get_processor_handles": lambda: list(gpus),
        "amdsmi_get_gpu_asic_info": asic,
        "amdsmi_get_gpu_driver_info": lambda h: {"driver_name": "amdgpu", "driver_version": "6.8.5"},
        "amdsmi_get_gpu_device_uuid": lambda h: "a1ff74a1-0000-1000-80a7-a1b2c3d4e5f6",
        "amdsmi_get_gpu_vram_info": lambda h: {"vram_size": 196_592, "vram_bit_width": 8192},
        "amdsmi_get_power_cap_info": lambda h: {"power_cap": 750_000_000},
        "amdsmi_get_clock_info": lambda h, kind: (
            {"clk": 132, "max_clk": 2100} if kind == smi.AmdSmiClkType.GFX
            else {"clk": 900, "max_clk": 1300}),
        "amdsmi_get_temp_metric": temperature,
        "amdsmi_get_power_info": power,
        "amdsmi_get_energy_count": energy,
        "amdsmi_get_gpu_metrics_info": lambda h: {
            "indep_throttle_status": h.fields.get("indep_throttle_status", 0)},
    }
    calls.update(overrides)
    for name, fn in calls.items():
        if name in drop:
            continue
        per_gpu = name.startswith("amdsmi_get_") and name != "amdsmi_get_processor_handles"
        setattr(smi, name, checked(name, fn) if per_gpu else fn)
    return smi


@pytest.fixture
def install_smi(monkeypatch):
    opened: list = []

    def install(gpus, drop=(), **overrides):
        smi = scripted_amdsmi(gpus, drop, **overrides)
        monkeypatch.setitem(sys.modules, "amdsmi", smi)
        return smi

    def open_all():
        devices = amd.open_amd_devices(check_window_s=CHECK_S)
        opened.extend(devices)
        return devices

    install.open = open_all
    yield install
    for device in opened:
        device.close()


def test_missing_amdsmi_is_a_worded_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # what `import amdsmi` meets without ROCm
    with pytest.raises(DeviceError) as caught:
        amd.open_amd_devices()
    assert str(caught.value) == AMDSMI_MISSING_MESSAGE
    assert amd.library_error() == AMDSMI_MISSING_MESSAGE


def test_info_and_readings_with_units(install_smi):
    gpu = ScriptedAmdGpu(indep_throttle_status=(1 << 0) | (1 << 33))
    install_smi([gpu])
    (device,) = install_smi.open()
    info = device.info
    assert (info.vendor, info.name, info.driver_version) == ("amd", "AMD Instinct MI300X", "6.8.5")
    assert info.memory_total_bytes == 196_592 * 2**20  # vram_size is MB
    assert info.sm_count == 304
    assert info.power_limit_mw == 750_000  # power_cap is uW
    assert (info.max_sm_clock_mhz, info.max_mem_clock_mhz, info.memory_bus_width_bits) == (2100, 1300, 8192)
    assert info.has_energy_counter and info.has_instant_power
    assert device.sensor_notes == []
    assert device.energy_mj() == pytest.approx(gpu.ticks() * RESOLUTION_UJ / 1000, rel=1e-3)
    assert device.power_instant_mw() == 140_000.0
    assert device.power_average_mw() == 140_000.0
    assert device.temperature_c() == 45.0  # hotspot first
    assert device.clocks_mhz() == (132, 900)
    assert device.throttle_reasons() == ["power_cap", "thermal"]


def test_energy_over_a_window_matches_power(install_smi):
    install_smi([ScriptedAmdGpu(power_w=200.0)])
    (device,) = install_smi.open()
    e0, t0 = device.energy_mj(), time.monotonic()
    time.sleep(0.1)
    e1, t1 = device.energy_mj(), time.monotonic()
    assert counter_delta_mj(e0, e1, device.energy_counter_wrap_mj) == pytest.approx(200 * (t1 - t0) * 1000,
                                                                                    rel=0.1)


def test_na_fields_become_none(install_smi):
    # An MI200: no current socket power, only the average; no hotspot sensor; unnamed in amdsmi.
    install_smi([ScriptedAmdGpu(current_socket_power="N/A", market_name="N/A", num_compute_units="N/A",
                                no_hotspot=True)])
    (device,) = install_smi.open()
    assert device.info.has_instant_power is False
    assert device.power_instant_mw() is None
    assert device.power_average_mw() == 140_000.0
    assert device.info.has_energy_counter  # checked against the average power instead
    assert device.info.name == "AMD GPU 0"
    assert device.info.sm_count is None
    assert device.temperature_c() == 38.0  # edge, as hotspot is not supported


def test_32_bit_counter_sets_its_wrap_and_survives_wrapping(install_smi):
    # 300 W: 2^32 ticks of 15.3 uJ last 219 s; start 30 ms of energy short of the wrap.
    short_ticks = int(300 * 0.03 * 1e6 / RESOLUTION_UJ)
    gpu = ScriptedAmdGpu(power_w=300.0, start_ticks=2**32 - short_ticks, width_bits=32)
    install_smi([gpu])
    (device,) = install_smi.open()  # the open check spans the wrap
    assert device.info.has_energy_counter, device.sensor_notes
    assert device.energy_counter_wrap_mj == pytest.approx(2**32 * RESOLUTION_UJ / 1000)
    gpu.t0 = time.monotonic()  # restart just short of the wrap, and measure across it
    e0, t0 = device.energy_mj(), time.monotonic()
    time.sleep(0.08)
    e1, t1 = device.energy_mj(), time.monotonic()
    assert e1 < e0
    assert counter_delta_mj(e0, e1, device.energy_counter_wrap_mj) == pytest.approx(
        300 * (t1 - t0) * 1000, rel=0.15)


def test_counter_past_32_bits_is_known_to_be_wide(install_smi):
    install_smi([ScriptedAmdGpu(start_ticks=2**40)])
    (device,) = install_smi.open()
    assert device.energy_counter_wrap_mj is None


def test_counter_that_disagrees_with_power_is_set_aside(install_smi):
    install_smi([ScriptedAmdGpu(counter_scale=0.01)])
    (device,) = install_smi.open()
    assert device.info.has_energy_counter is False
    assert device.energy_mj() is None
    assert any("disagrees with power" in n and "issue 38" in n for n in device.sensor_notes)
    probe = probe_device(device, duration_s=0.1)
    assert probe.counter_valid is None
    assert any("issue 38" in n for n in probe.notes)


def test_zero_power_die_has_neither_counter_nor_power(install_smi):
    install_smi([ScriptedAmdGpu(power_w=0.0, counter_scale=0.0)])
    (device,) = install_smi.open()
    assert device.info.has_energy_counter is False
    assert device.info.has_instant_power is False
    assert any("MI250" in n for n in device.sensor_notes)


def test_uint_max_accumulator_means_no_counter(install_smi):
    install_smi([ScriptedAmdGpu(energy_accumulator=2**32 - 1)])
    (device,) = install_smi.open()
    assert device.info.has_energy_counter is False
    assert device.energy_mj() is None


def test_old_energy_key_is_read(install_smi):
    install_smi([ScriptedAmdGpu(old_energy_key=True)])
    (device,) = install_smi.open()
    assert device.info.has_energy_counter
    assert device.energy_mj() is not None


def test_missing_functions_mean_missing_readings(install_smi):
    install_smi([ScriptedAmdGpu()], drop=("amdsmi_get_power_info", "amdsmi_get_gpu_metrics_info",
                                          "amdsmi_get_clock_info", "amdsmi_get_gpu_vram_info"))
    (device,) = install_smi.open()
    assert device.info.has_instant_power is False
    assert device.power_average_mw() is None
    assert device.info.has_energy_counter  # kept, but said to be unchecked
    assert any("could not be checked" in n for n in device.sensor_notes)
    assert device.throttle_reasons() == []
    assert device.clocks_mhz() == (None, None)
    assert device.info.memory_total_bytes is None


def test_no_energy_function_means_no_counter(install_smi):
    install_smi([ScriptedAmdGpu()], drop=("amdsmi_get_energy_count",))
    (device,) = install_smi.open()
    assert device.info.has_energy_counter is False
    assert device.energy_mj() is None


def test_unsupported_reading_is_none_and_a_failure_is_worded(install_smi):
    gpu = ScriptedAmdGpu()
    install_smi([gpu])
    (device,) = install_smi.open()
    gpu.errors["amdsmi_get_clock_info"] = 2  # AMDSMI_STATUS_NOT_SUPPORTED
    assert device.clocks_mhz() == (None, None)
    gpu.errors["amdsmi_get_energy_count"] = 8  # AMDSMI_STATUS_TIMEOUT
    with pytest.raises(DeviceError, match=r"energy counter on GPU 0 .*amd-smi"):
        device.energy_mj()


def test_init_failure_is_worded(install_smi):
    def failing_init(flags=None):
        raise AmdSmiLibraryException(34)  # driver not loaded

    install_smi([ScriptedAmdGpu()], amdsmi_init=failing_init)
    with pytest.raises(DeviceError, match="amdgpu driver"):
        install_smi.open()


def test_amdsmi_is_shut_down_after_the_last_device(install_smi):
    smi = install_smi([ScriptedAmdGpu(), ScriptedAmdGpu()])
    first, second = install_smi.open()
    assert smi.calls == {"init": 1, "shutdown": 0}
    first.close()
    first.close()
    assert smi.calls["shutdown"] == 0
    second.close()
    assert smi.calls == {"init": 1, "shutdown": 1}
    assert all(isinstance(d, AmdDevice) for d in (first, second))


def test_throttle_status_decoding():
    assert decode_throttle_status(0) == []
    assert decode_throttle_status("N/A") == []
    assert decode_throttle_status(True) == ["throttled"]  # amdsmi versions that flatten it to a bool
    assert decode_throttle_status(False) == []
    assert decode_throttle_status((1 << 17) | (1 << 40) | (1 << 57)) == ["current_limit", "thermal", "other"]
    assert decode_throttle_status(2**64 - 1) == []
