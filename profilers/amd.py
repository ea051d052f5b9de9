"""AMD GPUs through AMD SMI (the `amdsmi` Python package that ships with ROCm).

Untested on AMD hardware: written against amdsmi's documented Python API (ROCm 6.x) and tested
with a scripted `amdsmi` module. What AMD SMI gives, and its quirks:

- `amdsmi_get_energy_count`: an accumulator in ticks of `counter_resolution` uJ (15.3 uJ).
  Energy = accumulator x resolution (uJ). The key was "power" before amdsmi 6.2.1.
  MI200/MI300 keep a 64-bit accumulator; RDNA firmware keeps 32 bits, which wrap after
  2^32 x 15.3 uJ = 65.5 kJ (about 3.6 minutes at 300 W). Newer kernels report UINT_MAX where
  they consider the counter broken (RDNA3/4).
- Some GPUs report energy that disagrees with their power (ROCm/amdsmi issue 38), and the
  second die of an MI250 reports no power at all (its power is in the first die's). So the
  counter is checked against power when the device opens, and set aside if the two disagree.
- `amdsmi_get_power_info`: socket power in W; fields a GPU lacks read "N/A".
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from .device import DeviceError, DeviceInfo, GpuDevice

AMDSMI_MISSING_MESSAGE = (
    "AMD SMI library not found: install ROCm and its amdsmi Python package (the version matching "
    "ROCm), or run on a GPU host with --remote"
)

# Values amdsmi uses for "no reading": UINT32_MAX (newer kernels put it in a broken energy counter)
# and UINT64_MAX.
_NO_READING = frozenset({2**32 - 1, 2**64 - 1})
_NARROW_COUNTER_TICKS = 2**32

# The check at open is coarse (two power readings around a short sleep), so its bounds are loose:
# it catches counters that are off by large factors, as in issue 38. probe.py checks finely.
COUNTER_CHECK_BOUNDS = (0.5, 2.0)
COUNTER_CHECK_WINDOW_S = 0.5

# amdsmi status codes that mean "this GPU cannot give that": NOT_SUPPORTED, NOT_YET_IMPLEMENTED, NO_PERM.
_UNSUPPORTED_CODES = frozenset({2, 3, 10})

# Bit ranges of indep_throttle_status (SMU_THROTTLER_* in the kernel's amdgpu_smu.h).
_THROTTLE_RANGES: tuple[tuple[int, int, str], ...] = (
    (0, 16, "power_cap"),
    (16, 32, "current_limit"),
    (32, 56, "thermal"),
    (56, 64, "other"),
)

_init_lock = threading.Lock()
_init_users: dict[int, int] = {}


def decode_throttle_status(status: Any) -> list[str]:
    """Words for indep_throttle_status: a bitmask, or a bool in amdsmi versions that flatten it."""
    if isinstance(status, bool):
        return ["throttled"] if status else []
    if not isinstance(status, int) or status in _NO_READING:
        return []
    return [word for low, high, word in _THROTTLE_RANGES if status & (((1 << high) - 1) ^ ((1 << low) - 1))]


def _number(value: Any) -> float | None:
    """amdsmi reports what a GPU lacks as "N/A" (or an all-ones integer); those become None."""
    if isinstance(value, dict):  # some versions wrap values as {"value": ..., "unit": ...}
        value = value.get("value")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or value in _NO_READING:
        return None
    return float(value)


def _import_amdsmi() -> ModuleType:
    try:
        # amdsmi prints to stdout when it cannot find libamd_smi.so; keep the agent's stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            import amdsmi
    except ImportError as e:
        raise DeviceError(AMDSMI_MISSING_MESSAGE) from e
    except (OSError, AttributeError, KeyError) as e:  # library missing, or amdsmi and ROCm versions differ
        raise DeviceError(
            f"the amdsmi package does not match this ROCm installation ({e}): install the amdsmi "
            "version that ships with ROCm (/opt/rocm/share/amd_smi), or run on a GPU host with --remote"
        ) from e
    return amdsmi


def _errors(smi: ModuleType) -> tuple[type[BaseException], ...]:
    base = getattr(smi, "AmdSmiException", None)
    return (base,) if isinstance(base, type) else (RuntimeError,)


def _error_code(err: BaseException) -> int | None:
    getter = getattr(err, "get_error_code", None)
    code = getter() if callable(getter) else getattr(err, "err_code", None)
    return abs(code) if isinstance(code, int) else None


def _acquire_amdsmi(smi: ModuleType) -> None:
    with _init_lock:
        users = _init_users.get(id(smi), 0)
        if users == 0:
            flags = getattr(getattr(smi, "AmdSmiInitFlags", None), "INIT_AMD_GPUS", None)
            try:
                smi.amdsmi_init(flags) if flags is not None else smi.amdsmi_init()
            except _errors(smi) as e:
                raise DeviceError(
                    f"AMD SMI could not start ({e}): check that the amdgpu driver is loaded (`amd-smi "
                    "list`), or run on a GPU host with --remote") from e
        _init_users[id(smi)] = users + 1


def _release_amdsmi(smi: ModuleType) -> None:
    with _init_lock:
        users = _init_users.get(id(smi), 0)
        if users <= 0:
            return
        if users == 1:
            del _init_users[id(smi)]
            with contextlib.suppress(*_errors(smi)):
                smi.amdsmi_shut_down()
        else:
            _init_users[id(smi)] = users - 1


def library_error() -> str | None:
    """Why AMD SMI cannot be used on this host, worded for the user; None when it starts."""
    try:
        smi = _import_amdsmi()
        _acquire_amdsmi(smi)
    except DeviceError as e:
        return str(e)
    _release_amdsmi(smi)
    return None


def open_amd_devices(check_window_s: float = COUNTER_CHECK_WINDOW_S) -> list[GpuDevice]:
    """Every AMD GPU AMD SMI sees, with each energy counter checked against power over check_window_s."""
    smi = _import_amdsmi()
    _acquire_amdsmi(smi)
    try:
        try:
            handles = smi.amdsmi_get_processor_handles()
        except _errors(smi) as e:
            raise DeviceError(f"AMD SMI could not list the GPUs ({e}): check them with `amd-smi list`") from e
        devices: list[AmdDevice] = []
        try:
            for index, handle in enumerate(handles):
                devices.append(AmdDevice(smi, handle, index))
        except DeviceError:
            for device in devices:
                device.close()
            raise
    finally:
        _release_amdsmi(smi)
    check_counters(devices, check_window_s)
    opened: list[GpuDevice] = list(devices)
    return opened


def check_counters(devices: Sequence[AmdDevice], window_s: float) -> None:
    """Set aside every energy counter that disagrees with power over one shared window (as Zeus does)."""
    start = [(d, d.raw_energy_mj(), d.power_for_check_mw()) for d in devices if d.info.has_energy_counter]
    if not start:
        return
    t0 = time.monotonic()
    time.sleep(window_s)
    elapsed_s = time.monotonic() - t0
    for device, energy0_mj, power0_mw in start:
        energy1_mj, power1_mw = device.raw_energy_mj(), device.power_for_check_mw()
        device.judge_counter(energy0_mj, energy1_mj, power0_mw, power1_mw, elapsed_s)


class AmdDevice(GpuDevice):
    """One AMD GPU. AMD SMI serialises its own calls, so threads may share a device."""

    def __init__(self, smi: ModuleType, handle: Any, index: int):
        self._smi = smi
        self._handle = handle
        self._index = index
        self._errors = _errors(smi)
        self._closed = False
        self._close_lock = threading.Lock()
        self._resolution_uj: float | None = None
        # Findings while opening the device, in words, for `wattson doctor` (probe.py reads them).
        self.sensor_notes: list[str] = []
        _acquire_amdsmi(smi)
        self.info = self._read_info(index)

    # --- plumbing ----------------------------------------------------------------------------
    def _fn(self, name: str) -> Callable[..., Any] | None:
        """An amdsmi function, or None in versions that lack it."""
        fn = getattr(self._smi, name, None)
        return fn if callable(fn) else None

    def _enum(self, enum_name: str, member: str) -> Any:
        return getattr(getattr(self._smi, enum_name, None), member, None)

    def _optional(self, name: str, *args: Any) -> Any:
        """A fact for DeviceInfo: None when this amdsmi or GPU cannot give it."""
        fn = self._fn(name)
        if fn is None:
            return None
        try:
            return fn(self._handle, *args)
        except self._errors:
            return None

    def _read(self, what: str, name: str, *args: Any) -> Any:
        """A live reading: None when unsupported, DeviceError when the GPU fails."""
        fn = self._fn(name)
        if fn is None:
            return None
        try:
            return fn(self._handle, *args)
        except self._errors as e:
            if _error_code(e) in _UNSUPPORTED_CODES:
                return None
            raise DeviceError(
                f"AMD SMI could not read {what} on GPU {self._index} ({e}): "
                "check the GPU with `amd-smi`, then re-run") from e

    # --- what does not change ----------------------------------------------------------------
    def _read_info(self, index: int) -> DeviceInfo:
        asic = self._optional("amdsmi_get_gpu_asic_info") or {}
        driver = self._optional("amdsmi_get_gpu_driver_info") or {}
        vram = self._optional("amdsmi_get_gpu_vram_info") or {}
        cap = self._optional("amdsmi_get_power_cap_info") or {}
        gfx = self._optional("amdsmi_get_clock_info", self._enum("AmdSmiClkType", "GFX")) or {}
        mem = self._optional("amdsmi_get_clock_info", self._enum("AmdSmiClkType", "MEM")) or {}
        name = asic.get("market_name")
        vram_mb = _number(vram.get("vram_size"))
        cap_uw = _number(cap.get("power_cap"))
        compute_units = _number(asic.get("num_compute_units"))
        max_gfx = _number(gfx.get("max_clk"))
        max_mem = _number(mem.get("max_clk"))
        bus_bits = _number(vram.get("vram_bit_width"))
        info = DeviceInfo(
            index=index,
            vendor="amd",
            name=name if isinstance(name, str) and name and name != "N/A" else f"AMD GPU {index}",
            driver_version=str(driver.get("driver_version") or ""),
            uuid=str(self._optional("amdsmi_get_gpu_device_uuid") or ""),
            memory_total_bytes=int(vram_mb * 2**20) if vram_mb else None,  # vram_size is in MB
            sm_count=int(compute_units) if compute_units else None,
            power_limit_mw=cap_uw / 1000.0 if cap_uw else None,  # power_cap is in uW
            max_sm_clock_mhz=int(max_gfx) if max_gfx else None,
            max_mem_clock_mhz=int(max_mem) if max_mem else None,
            memory_bus_width_bits=int(bus_bits) if bus_bits else None,
        )
        try:
            info.has_instant_power = self._current_power_mw() is not None
        except DeviceError as e:
            self.sensor_notes.append(str(e))
        info.has_energy_counter = self._open_counter()
        return info

    def _open_counter(self) -> bool:
        try:
            reading = self._energy_reading()
        except DeviceError as e:
            self.sensor_notes.append(str(e))
            return False
        if reading is None:
            return False
        ticks, resolution_uj = reading
        self._resolution_uj = resolution_uj
        # A counter already past 2^32 ticks is 64-bit and never wraps in practice. Below that, assume the
        # 32-bit width: with a 64-bit counter the wrap is never applied, as its deltas never go negative.
        self.energy_counter_wrap_mj = None if ticks >= _NARROW_COUNTER_TICKS else (
            _NARROW_COUNTER_TICKS * resolution_uj / 1000.0)
        return True

    # --- the counter check -------------------------------------------------------------------
    def power_for_check_mw(self) -> float | None:
        """Power to check the counter against: the averaged socket power, else the current one."""
        info = self._read("power", "amdsmi_get_power_info") or {}
        average_w = _number(info.get("average_socket_power"))
        current_w = _number(info.get("current_socket_power"))
        watts = average_w if average_w is not None else current_w
        return watts * 1000.0 if watts is not None else None

    def judge_counter(self, energy0_mj: float | None, energy1_mj: float | None,
                      power0_mw: float | None, power1_mw: float | None, elapsed_s: float) -> None:
        """Keep or set aside the counter, from two counter reads and two power reads elapsed_s apart."""
        if energy0_mj is None or energy1_mj is None:
            self._set_counter_aside("the energy counter stopped answering while it was checked")
            return
        powers = [p for p in (power0_mw, power1_mw) if p is not None]
        if not powers:
            self.sensor_notes.append(
                "the energy counter could not be checked: this GPU reports no power; treat its energy "
                "figures with care")
            return
        expected_mj = sum(powers) / len(powers) * elapsed_s
        measured_mj = energy1_mj - energy0_mj
        if measured_mj < 0 and self.energy_counter_wrap_mj:
            measured_mj += self.energy_counter_wrap_mj
        if expected_mj <= 0:
            self.info.has_instant_power = False
            self._set_counter_aside(
                "this GPU reports zero power (the second die of an MI250 reports through the first): "
                "measure on the first die's index instead")
            return
        ratio = measured_mj / expected_mj
        low, high = COUNTER_CHECK_BOUNDS
        if not low <= ratio <= high:
            self._set_counter_aside(
                f"the energy counter disagrees with power ({measured_mj:.0f} mJ counted, "
                f"{expected_mj:.0f} mJ expected over {elapsed_s:.2f} s; see ROCm/amdsmi issue 38): "
                "energy is integrated from power instead; a newer ROCm or firmware may fix the counter")

    def _set_counter_aside(self, why: str) -> None:
        self.info.has_energy_counter = False
        self.sensor_notes.append(why)

    # --- readings ----------------------------------------------------------------------------
    def _energy_reading(self) -> tuple[int, float] | None:
        """(accumulator ticks, uJ per tick), or None when there is no usable counter."""
        reading = self._read("the energy counter", "amdsmi_get_energy_count")
        if not isinstance(reading, dict):
            return None
        ticks = reading.get("energy_accumulator", reading.get("power"))  # "power" before amdsmi 6.2.1
        resolution_uj = _number(reading.get("counter_resolution"))
        if not isinstance(ticks, int) or ticks in _NO_READING or not resolution_uj:
            return None
        return ticks, resolution_uj

    def raw_energy_mj(self) -> float | None:
        """The counter in mJ, whether or not it passed the check."""
        reading = self._energy_reading()
        if reading is None:
            return None
        ticks, resolution_uj = reading
        if ticks >= _NARROW_COUNTER_TICKS:
            self.energy_counter_wrap_mj = None  # proven wider than 32 bits
        return ticks * resolution_uj / 1000.0  # uJ -> mJ

    def energy_mj(self) -> float | None:
        if not self.info.has_energy_counter:
            return None
        return self.raw_energy_mj()

    def _current_power_mw(self) -> float | None:
        power = self._read("power", "amdsmi_get_power_info") or {}
        # "current_socket_power" on MI300 and RDNA3; "socket_power" in newer amdsmi versions.
        watts = _number(power.get("current_socket_power", power.get("socket_power")))
        return watts * 1000.0 if watts is not None else None

    def power_instant_mw(self) -> float | None:
        if not self.info.has_instant_power:
            return None
        return self._current_power_mw()

    def power_average_mw(self) -> float | None:
        power = self._read("power", "amdsmi_get_power_info") or {}
        watts = _number(power.get("average_socket_power"))
        return watts * 1000.0 if watts is not None else None

    def temperature_c(self) -> float | None:
        # Hotspot (junction) follows load more closely than edge; not every GPU reports it.
        metric = self._enum("AmdSmiTemperatureMetric", "CURRENT")
        for sensor in ("HOTSPOT", "EDGE"):
            kind = self._enum("AmdSmiTemperatureType", sensor)
            if kind is None or metric is None:
                continue
            value = _number(self._read("the temperature", "amdsmi_get_temp_metric", kind, metric))
            if value is not None:
                return value
        return None

    def clocks_mhz(self) -> tuple[int | None, int | None]:
        clocks: list[int | None] = []
        for kind in ("GFX", "MEM"):
            info = self._read("clocks", "amdsmi_get_clock_info", self._enum("AmdSmiClkType", kind)) or {}
            mhz = _number(info.get("clk"))
            clocks.append(int(mhz) if mhz is not None else None)
        return clocks[0], clocks[1]

    def throttle_reasons(self) -> list[str]:
        metrics = self._read("throttle status", "amdsmi_get_gpu_metrics_info") or {}
        status = metrics.get("indep_throttle_status")
        if status is None or status == "N/A":
            status = metrics.get("throttle_status")
        return decode_throttle_status(status)

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        _release_amdsmi(self._smi)
