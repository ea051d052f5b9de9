"""NVIDIA GPUs through NVML (the `nvidia-ml-py` package, imported as `pynvml`).

What NVML gives, and what Wattson uses it for:

- `nvmlDeviceGetTotalEnergyConsumption`: a cumulative energy counter in mJ (Volta and newer). It is
  64-bit, so it never wraps in practice. It updates every ~100 ms and one read costs ~4 ms on an
  H100: read it at window edges only.
- Field `NVML_FI_DEV_POWER_INSTANT` (186): instantaneous board power in mW; cheap (~5 us a read),
  so it feeds power timelines.
- `nvmlDeviceGetPowerUsage`: a 1 s trailing average on Ampere and newer. Only the lassi-ee protocol
  reads it, to reproduce the paper's method.

Indices are NVML's (the order `nvidia-smi` shows), not CUDA's, which may differ when
CUDA_DEVICE_ORDER is not PCI_BUS_ID.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .device import DeviceError, DeviceInfo, GpuDevice

NVML_MISSING_MESSAGE = (
    "NVIDIA driver library not found: install the NVIDIA driver, or run on a GPU host with --remote"
)

_FIELD_POWER_INSTANT = 186  # NVML_FI_DEV_POWER_INSTANT, mW

# nvmlClocksEventReason* bits. GpuIdle (0x1) is left out on purpose: it only says nothing is
# running, and trial edges are idle by design, so reporting it would flag every trial.
_CLOCK_EVENT_REASONS: dict[int, str] = {
    0x2: "applications_clocks",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
    0x100: "display_clocks",
    0x200: "board_limit",
    0x400: "reliability",
}
_GPU_IDLE_BIT = 0x1

# FP32 cores per SM by compute capability, to turn nvmlDeviceGetNumGpuCores into SMs when
# nvmlDeviceGetAttributes refuses a full (non-MIG) GPU, as NVML documents it may.
_CORES_PER_SM: dict[tuple[int, int], int] = {
    (7, 0): 64, (7, 2): 64, (7, 5): 64,
    (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128,
    (9, 0): 128, (10, 0): 128, (12, 0): 128,
}

# NVML init/shutdown are refcounted per pynvml module object: every open device holds one reference,
# so closing one device never shuts NVML down under another (the sampler thread of a running trial).
_init_lock = threading.Lock()
_init_users: dict[int, int] = {}


def decode_clock_event_reasons(mask: int) -> list[str]:
    """Words for the bits of nvmlDeviceGetCurrentClocksEventReasons (or the older ThrottleReasons)."""
    words = []
    bit = 1
    remaining = mask & ~_GPU_IDLE_BIT
    while remaining:
        if remaining & bit:
            words.append(_CLOCK_EVENT_REASONS.get(bit, f"unknown_0x{bit:x}"))
            remaining &= ~bit
        bit <<= 1
    return words


def _error_code(nvml: ModuleType, name: str) -> int | None:
    value = getattr(nvml, name, None)
    return value if isinstance(value, int) else None


def _init_error_message(nvml: ModuleType, err: Exception) -> str:
    code = getattr(err, "value", None)
    if code == _error_code(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND"):
        return NVML_MISSING_MESSAGE
    if code == _error_code(nvml, "NVML_ERROR_DRIVER_NOT_LOADED"):
        return ("the NVIDIA driver is not loaded: check `nvidia-smi` (reboot after a driver update), "
                "or run on a GPU host with --remote")
    if code == _error_code(nvml, "NVML_ERROR_LIB_RM_VERSION_MISMATCH"):
        return ("NVML and the NVIDIA kernel driver have different versions (driver updated without a "
                "reboot?): reboot the GPU host, or run on another one with --remote")
    if code == _error_code(nvml, "NVML_ERROR_NO_PERMISSION"):
        return ("no permission to open the NVIDIA GPU: run as a user with access to /dev/nvidia*, "
                "or ask the administrator")
    return (f"NVML failed to start ({err}): check the GPU with `nvidia-smi`, "
            "or run on a GPU host with --remote")


def _acquire_nvml(nvml: ModuleType) -> None:
    with _init_lock:
        users = _init_users.get(id(nvml), 0)
        if users == 0:
            try:
                nvml.nvmlInit()
            except nvml.NVMLError as e:
                raise DeviceError(_init_error_message(nvml, e)) from e
        _init_users[id(nvml)] = users + 1


def _release_nvml(nvml: ModuleType) -> None:
    with _init_lock:
        users = _init_users.get(id(nvml), 0)
        if users <= 0:
            return
        if users == 1:
            del _init_users[id(nvml)]
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError:
                pass  # shutting down a library that is already gone is not the user's problem
        else:
            _init_users[id(nvml)] = users - 1


def _import_pynvml() -> ModuleType:
    try:
        import pynvml
    except ImportError as e:
        raise DeviceError("the nvidia-ml-py package is missing: pip install nvidia-ml-py") from e
    return pynvml


def library_error() -> str | None:
    """Why NVML cannot be used on this host, worded for the user; None when it starts."""
    try:
        nvml = _import_pynvml()
        _acquire_nvml(nvml)
    except DeviceError as e:
        return str(e)
    _release_nvml(nvml)
    return None


def open_nvidia_devices() -> list[GpuDevice]:
    """Every NVIDIA GPU NVML sees, in NVML order. Raises DeviceError when NVML is unusable."""
    nvml = _import_pynvml()
    _acquire_nvml(nvml)
    try:
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as e:
            raise DeviceError(f"NVML could not count the GPUs ({e}): check them with `nvidia-smi`") from e
        devices: list[GpuDevice] = []
        try:
            for index in range(count):
                devices.append(NvidiaDevice(nvml, index))
        except DeviceError:
            for device in devices:
                device.close()
            raise
        return devices
    finally:
        _release_nvml(nvml)  # each device holds its own reference


class NvidiaDevice(GpuDevice):
    """One NVIDIA GPU. NVML is thread-safe, so the sampler thread and the main thread share it."""

    energy_counter_wrap_mj = None  # 64-bit mJ counter

    def __init__(self, nvml: ModuleType, index: int):
        self._nvml = nvml
        self._index = index
        self._closed = False
        self._close_lock = threading.Lock()
        # Findings while opening the device, in words, for `wattson doctor` (probe.py reads them).
        self.sensor_notes: list[str] = []
        _acquire_nvml(nvml)
        try:
            self._handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except nvml.NVMLError as e:
            _release_nvml(nvml)
            raise DeviceError(f"NVML could not open GPU {index} ({e}): check it with `nvidia-smi`") from e
        self._unsupported_codes = {
            code for code in (_error_code(nvml, "NVML_ERROR_NOT_SUPPORTED"),
                              _error_code(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND"),
                              _error_code(nvml, "NVML_ERROR_NO_PERMISSION"))
            if code is not None
        }
        self._reasons_fns = [fn for fn in (getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None),
                                           getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))
                             if fn is not None]
        self.info = self._read_info(index)

    # --- what does not change ----------------------------------------------------------------
    def _optional(self, name: str, *args: Any) -> Any:
        """A fact for DeviceInfo: None when NVML cannot give it (old pynvml or driver, MIG, permissions)."""
        fn = getattr(self._nvml, name, None)
        if fn is None:
            return None
        try:
            return fn(*args)
        except self._nvml.NVMLError:
            return None

    def _read_info(self, index: int) -> DeviceInfo:
        nvml, h = self._nvml, self._handle
        memory = self._optional("nvmlDeviceGetMemoryInfo", h)
        power_limit_mw = self._optional("nvmlDeviceGetEnforcedPowerLimit", h)
        info = DeviceInfo(
            index=index,
            vendor="nvidia",
            name=self._optional("nvmlDeviceGetName", h) or f"NVIDIA GPU {index}",
            driver_version=self._optional("nvmlSystemGetDriverVersion") or "",
            uuid=self._optional("nvmlDeviceGetUUID", h) or "",
            memory_total_bytes=int(memory.total) if memory is not None else None,
            sm_count=self._sm_count(),
            power_limit_mw=float(power_limit_mw) if power_limit_mw is not None else None,
            max_sm_clock_mhz=self._optional("nvmlDeviceGetMaxClockInfo", h, nvml.NVML_CLOCK_SM),
            max_mem_clock_mhz=self._optional("nvmlDeviceGetMaxClockInfo", h, nvml.NVML_CLOCK_MEM),
            memory_bus_width_bits=self._optional("nvmlDeviceGetMemoryBusWidth", h),
        )
        info.has_energy_counter = self._probe_energy_counter()
        info.has_instant_power = self._probe_instant_power()
        return info

    def _sm_count(self) -> int | None:
        h = self._handle
        attrs = self._optional("nvmlDeviceGetAttributes", h)
        if attrs is not None and getattr(attrs, "multiprocessorCount", 0):
            return int(attrs.multiprocessorCount)
        # nvmlDeviceGetNumGpuCores counts FP32 cores, not SMs: divide by cores per SM, when exact.
        cores = self._optional("nvmlDeviceGetNumGpuCores", h)
        capability = self._optional("nvmlDeviceGetCudaComputeCapability", h)
        per_sm = _CORES_PER_SM.get(tuple(capability)) if capability is not None else None
        if cores and per_sm and cores % per_sm == 0:
            return cores // per_sm
        return None

    def _probe_energy_counter(self) -> bool:
        try:
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except self._nvml.NVMLError as e:
            if getattr(e, "value", None) not in self._unsupported_codes:
                self.sensor_notes.append(
                    f"the energy counter failed to read ({e}): energy is integrated from instant power "
                    "instead; check the GPU with `nvidia-smi`")
            return False
        return True

    def _probe_instant_power(self) -> bool:
        try:
            return self._instant_power_field() is not None
        except DeviceError as e:
            self.sensor_notes.append(str(e))
            return False

    # --- readings ----------------------------------------------------------------------------
    def _read(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """A live reading: None when this GPU cannot give it, DeviceError when the GPU fails."""
        try:
            return fn(*args)
        except self._nvml.NVMLError as e:
            if getattr(e, "value", None) in self._unsupported_codes:
                return None
            raise DeviceError(
                f"NVML could not read {what} on GPU {self._index} ({e}): "
                "check the GPU with `nvidia-smi`, then re-run") from e

    def _instant_power_field(self) -> float | None:
        values = self._read("instant power", self._nvml.nvmlDeviceGetFieldValues, self._handle,
                            [_FIELD_POWER_INSTANT])
        if not values:
            return None
        field = values[0]
        # The call can succeed while the field itself failed: each field carries its own return code.
        if field.nvmlReturn != self._nvml.NVML_SUCCESS:
            return None
        return _field_number(self._nvml, field)

    def energy_mj(self) -> float | None:
        if not self.info.has_energy_counter:
            return None
        value = self._read("the energy counter", self._nvml.nvmlDeviceGetTotalEnergyConsumption,
                           self._handle)
        return float(value) if value is not None else None

    def power_instant_mw(self) -> float | None:
        if not self.info.has_instant_power:
            return None
        return self._instant_power_field()

    def power_average_mw(self) -> float | None:
        value = self._read("average power", self._nvml.nvmlDeviceGetPowerUsage, self._handle)
        return float(value) if value is not None else None

    def temperature_c(self) -> float | None:
        value = self._read("the temperature", self._nvml.nvmlDeviceGetTemperature, self._handle,
                           self._nvml.NVML_TEMPERATURE_GPU)
        return float(value) if value is not None else None

    def clocks_mhz(self) -> tuple[int | None, int | None]:
        nvml = self._nvml
        sm = self._read("the SM clock", nvml.nvmlDeviceGetClockInfo, self._handle, nvml.NVML_CLOCK_SM)
        mem = self._read("the memory clock", nvml.nvmlDeviceGetClockInfo, self._handle, nvml.NVML_CLOCK_MEM)
        return sm, mem

    def throttle_reasons(self) -> list[str]:
        nvml = self._nvml
        while self._reasons_fns:
            try:
                mask = self._reasons_fns[0](self._handle)
                break
            except nvml.NVMLError as e:
                code = getattr(e, "value", None)
                # Drivers older than R535 only know the "ThrottleReasons" name of this call.
                if code == _error_code(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND") and len(self._reasons_fns) > 1:
                    self._reasons_fns = self._reasons_fns[1:]
                    continue
                if code in self._unsupported_codes:
                    return []
                raise DeviceError(
                    f"NVML could not read throttle reasons on GPU {self._index} ({e}): "
                    "check the GPU with `nvidia-smi`, then re-run") from e
        else:
            return []
        return decode_clock_event_reasons(int(mask))

    def near_cpus(self) -> list[int] | None:
        # A bitmask in 64-bit words; 16 words cover 1024 CPUs.
        words = self._optional("nvmlDeviceGetCpuAffinity", self._handle, 16)
        if not words:
            return None
        cpus = [64 * w + bit for w, mask in enumerate(words) for bit in range(64) if int(mask) >> bit & 1]
        return cpus or None

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        _release_nvml(self._nvml)


def _field_number(nvml: ModuleType, field: Any) -> float:
    """The number in an nvmlFieldValue_t, read through the member its valueType names."""
    member = {
        getattr(nvml, "NVML_VALUE_TYPE_DOUBLE", 0): "dVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_INT", 1): "uiVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_LONG", 2): "ulVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG", 3): "ullVal",
        getattr(nvml, "NVML_VALUE_TYPE_SIGNED_LONG_LONG", 4): "sllVal",
        getattr(nvml, "NVML_VALUE_TYPE_SIGNED_INT", 5): "siVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_SHORT", 6): "usVal",
    }.get(field.valueType, "uiVal")
    return float(getattr(field.value, member))
