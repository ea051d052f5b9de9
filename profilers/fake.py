"""Scripted GPU sensors: the one fake in Wattson, standing exactly where the hardware would.

Used by CI (which has no GPU) and by demos. Everything above the sensors runs for real.
Enabled with WATTSON_FAKE_GPU=spec.json, where spec.json is

    {"devices": [{"name": "Fake H100", "idle_w": 70, "busy_w": 350, "load_file": "/tmp/load", ...}]}

The "GPU load" is a number in a file (load_file) that the program under test writes: 0 idle,
1 fully busy. A background thread plays the hardware: it integrates power every few ms into an
energy counter that, like the H100's, only updates every `counter_period_s`. After load drops,
power decays towards idle with time constant `settle_s`, as real GPUs stay clocked up after work.

Scriptable faults, for tests of the layers above: `wrap_mj` (counter wraps), `initial_energy_mj`,
`stuck_after_s` (sensors freeze), `throttle_after_s` + `throttle_reasons`, `no_energy_counter`,
`no_instant_power`, `noise_w` (seeded Gaussian noise on instant power).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from pathlib import Path

from .device import DeviceError, DeviceInfo, GpuDevice

_TICK_S = 0.002


class FakeDevice(GpuDevice):
    def __init__(self, index: int, spec: dict):
        self.spec = spec
        self.idle_w = float(spec.get("idle_w", 70.0))
        self.busy_w = float(spec.get("busy_w", 350.0))
        self.settle_s = float(spec.get("settle_s", 0.5))
        self.noise_w = float(spec.get("noise_w", 0.0))
        self.counter_period_s = float(spec.get("counter_period_s", 0.1))
        self.load_file = Path(spec["load_file"]) if spec.get("load_file") else None
        self.energy_counter_wrap_mj = spec.get("wrap_mj")
        self.stuck_after_s = spec.get("stuck_after_s")
        self.throttle_after_s = spec.get("throttle_after_s")
        self.throttle_reason_list = list(spec.get("throttle_reasons", ["hw_thermal"]))
        self.info = DeviceInfo(
            index=index,
            vendor="fake",
            name=spec.get("name", "Fake GPU"),
            driver_version=spec.get("driver_version", "fake-1.0"),
            uuid=f"FAKE-{index}",
            memory_total_bytes=int(spec.get("memory_total_bytes", 80 * 2**30)),
            sm_count=int(spec.get("sm_count", 132)),
            power_limit_mw=float(spec.get("power_limit_w", 700.0)) * 1000,
            max_sm_clock_mhz=1980,
            max_mem_clock_mhz=2619,
            memory_bus_width_bits=5120,
            has_energy_counter=not spec.get("no_energy_counter", False),
            has_instant_power=not spec.get("no_instant_power", False),
        )
        self._rng = random.Random(spec.get("seed", index))
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._true_energy_mj = float(spec.get("initial_energy_mj", 0.0))
        self._reported_energy_mj = self._true_energy_mj
        self._last_counter_update_s = self._t0
        self._power_w = self.idle_w
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._hardware_loop, name="fake-gpu", daemon=True)
        self._thread.start()

    # --- the simulated hardware -------------------------------------------------------------
    def _load(self) -> float:
        if self.load_file is None:
            return 0.0
        try:
            return max(0.0, float(self.load_file.read_text().strip() or 0.0))
        except (OSError, ValueError):
            return 0.0

    def _hardware_loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(_TICK_S):
            now = time.monotonic()
            dt = now - last
            last = now
            target_w = self.idle_w + (self.busy_w - self.idle_w) * self._load()
            with self._lock:
                if target_w >= self._power_w or self.settle_s <= 0:
                    self._power_w = target_w  # GPUs clock up almost at once ...
                else:  # ... and come down slowly
                    self._power_w = target_w + (self._power_w - target_w) * math.exp(-dt / self.settle_s)
                if self._frozen(now):
                    continue
                self._true_energy_mj += self._power_w * dt * 1000.0  # W * s = J = 1000 mJ
                if now - self._last_counter_update_s >= self.counter_period_s:
                    self._reported_energy_mj = self._true_energy_mj
                    self._last_counter_update_s = now

    def _frozen(self, now: float) -> bool:
        return self.stuck_after_s is not None and now - self._t0 >= float(self.stuck_after_s)

    # --- GpuDevice ---------------------------------------------------------------------------
    def energy_mj(self) -> float | None:
        if not self.info.has_energy_counter:
            return None
        with self._lock:
            value = self._reported_energy_mj
        if self.energy_counter_wrap_mj:
            value = math.fmod(value, float(self.energy_counter_wrap_mj))
        return value

    def power_instant_mw(self) -> float | None:
        if not self.info.has_instant_power:
            return None
        with self._lock:
            power_w = self._power_w
        noise = self._rng.gauss(0.0, self.noise_w) if self.noise_w else 0.0
        return max(0.0, power_w + noise) * 1000.0

    def power_average_mw(self) -> float | None:
        with self._lock:
            return self._power_w * 1000.0

    def temperature_c(self) -> float | None:
        with self._lock:
            return round(30.0 + 0.1 * (self._power_w - self.idle_w), 1)

    def clocks_mhz(self) -> tuple[int | None, int | None]:
        with self._lock:
            busy = self._power_w > self.idle_w + 5
        return (1980 if busy else 345, 2619)

    def throttle_reasons(self) -> list[str]:
        if self.throttle_after_s is not None and time.monotonic() - self._t0 >= float(self.throttle_after_s):
            return list(self.throttle_reason_list)
        return []

    def close(self) -> None:
        self._stop.set()


def open_fake_devices(spec_path: str) -> list[GpuDevice]:
    try:
        spec = json.loads(Path(spec_path).read_text())
    except (OSError, ValueError) as e:
        raise DeviceError(f"cannot read the fake GPU spec {spec_path}: {e}") from e
    return [FakeDevice(i, d) for i, d in enumerate(spec.get("devices", []))]
