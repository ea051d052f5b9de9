"""The GPU backend interface: one class per vendor implements it (nvidia.py, amd.py, fake.py).

Every reading says its unit in its name. A reading a device cannot give returns None; callers
record which path they used instead of inventing a number.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field


class DeviceError(RuntimeError):
    """A sensor or library failure, worded for the user (what failed, what to do next)."""


@dataclass
class DeviceInfo:
    """What does not change while a program runs: for reports and for the LLM's hardware context."""

    index: int
    vendor: str  # "nvidia" | "amd" | "fake"
    name: str
    driver_version: str = ""
    uuid: str = ""
    memory_total_bytes: int | None = None
    sm_count: int | None = None  # SMs (NVIDIA) or compute units (AMD)
    power_limit_mw: float | None = None
    max_sm_clock_mhz: int | None = None
    max_mem_clock_mhz: int | None = None
    memory_bus_width_bits: int | None = None
    has_energy_counter: bool = False
    has_instant_power: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DeviceState:
    """A snapshot taken at a trial's edges, so trials that ran under different conditions show."""

    time_s: float  # time.monotonic() when taken
    temperature_c: float | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    power_mw: float | None = None  # instant power where available
    throttle_reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DeviceState:
        return cls(**d)


class GpuDevice(ABC):
    """One GPU. Implementations must be safe to read from a sampler thread and the main thread."""

    info: DeviceInfo

    # Counter range before it wraps, in mJ; None when it never wraps in practice (NVML's is 64-bit).
    energy_counter_wrap_mj: float | None = None

    # Findings about this GPU's sensors made when it was opened, in words (shown by `wattson doctor`).
    sensor_notes: list[str] = []  # vendors assign a new list per instance

    @abstractmethod
    def energy_mj(self) -> float | None:
        """Cumulative energy counter in mJ since an arbitrary origin; None if the GPU has none.

        Costs ~4 ms on an H100: read it at window edges, never in a hot loop."""

    @abstractmethod
    def power_instant_mw(self) -> float | None:
        """Instantaneous board power in mW (NVML field 186 / AMD socket power); None if absent."""

    @abstractmethod
    def power_average_mw(self) -> float | None:
        """The driver's averaged power in mW (nvmlDeviceGetPowerUsage: a 1 s average on Ampere+).

        Only the lassi-ee protocol uses this; it must not drive Wattson's own energy figures."""

    @abstractmethod
    def temperature_c(self) -> float | None: ...

    @abstractmethod
    def clocks_mhz(self) -> tuple[int | None, int | None]:
        """(SM clock, memory clock) in MHz."""

    @abstractmethod
    def throttle_reasons(self) -> list[str]:
        """Active clock-throttle reasons in words ("sw_power_cap", "hw_thermal", ...); [] if none."""

    def near_cpus(self) -> list[int] | None:
        """Host CPU ids close to this GPU (its NUMA node); None where the driver does not say."""
        return None

    def state(self) -> DeviceState:
        import time

        sm, mem = self.clocks_mhz()
        return DeviceState(
            time_s=time.monotonic(),
            temperature_c=self.temperature_c(),
            sm_clock_mhz=sm,
            mem_clock_mhz=mem,
            power_mw=self.power_instant_mw(),
            throttle_reasons=self.throttle_reasons(),
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release library handles; safe to call twice."""


def counter_delta_mj(start_mj: float, end_mj: float, wrap_mj: float | None) -> float:
    """Energy between two counter reads, allowing one wrap of a counter that wraps at wrap_mj."""
    delta = end_mj - start_mj
    if delta < 0 and wrap_mj:
        delta += wrap_mj
    if delta < 0:
        raise DeviceError(
            "the GPU energy counter went backwards between two reads (driver reset?); "
            "re-run the measurement"
        )
    return delta


FAKE_GPU_ENV = "WATTSON_FAKE_GPU"


def open_devices() -> list[GpuDevice]:
    """All GPUs on this host, NVIDIA first, then AMD. [] when there are none.

    WATTSON_FAKE_GPU=spec.json replaces the sensors with the scripted fake (tests, demos without a GPU).
    Library-missing errors are not raised here: `wattson doctor` reports them through probe.py.
    """
    spec = os.environ.get(FAKE_GPU_ENV)
    if spec:
        from .fake import open_fake_devices

        return open_fake_devices(spec)
    devices: list[GpuDevice] = []
    try:
        from .nvidia import open_nvidia_devices

        devices += open_nvidia_devices()
    except DeviceError:
        pass
    try:
        from .amd import open_amd_devices

        devices += open_amd_devices()
    except DeviceError:
        pass
    return devices
