"""What else the host was doing while a measurement ran: load average and the hypervisor's steal time.

When a run's energy follows its wall time, the GPU waited through a host phase whose length varied
(spread.py). Two host figures over the same span say more about why: a load average above the
number of CPUs, besides the measured program, means other work competed for them (it is a one-minute
average, so a build just before counts too); steal time means a virtual machine's CPUs were
given to other guests. Neither is the only cause (a host CPU whose speed varies shows in neither),
so they are reported as what was seen, not as the explanation. Linux only: elsewhere both are None.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
STEAL_COLUMN = 8  # cpu user nice system idle iowait irq softirq steal ... (proc(5))
NOTABLE_STEAL_FRACTION = 0.02


def steal_by_cpu_s(stat_path: Path = PROC_STAT) -> dict[str, float]:
    """Cumulative steal time since boot (seconds) per /proc/stat line: "cpu" for all CPUs, "cpu3" for one;
    empty where it is not reported. One read for every figure a caller needs at that moment."""
    try:
        lines = stat_path.read_text().splitlines()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return {}
    steal = {}
    for fields in (line.split() for line in lines):
        if fields and fields[0].startswith("cpu") and len(fields) > STEAL_COLUMN:
            try:
                steal[fields[0]] = int(fields[STEAL_COLUMN]) / ticks
            except ValueError:
                continue
    return steal


def steal_s(stat_path: Path = PROC_STAT, cpu: int | None = None) -> float | None:
    """Cumulative steal time since boot (seconds), over all CPUs or of one; None where it is not reported."""
    return steal_by_cpu_s(stat_path).get("cpu" if cpu is None else f"cpu{cpu}")


def load_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return None


@dataclass(frozen=True)
class HostSnapshot:
    monotonic_s: float
    load_1m: float | None
    steal_s: float | None


def snapshot(stat_path: Path = PROC_STAT) -> HostSnapshot:
    return HostSnapshot(time.monotonic(), load_1m(), steal_s(stat_path))


@dataclass(frozen=True)
class HostLoad:
    cpus: int  # CPUs online: steal is summed over all of them
    load_1m_start: float | None
    load_1m_end: float | None
    steal_fraction: float | None  # share of all CPUs' time given to other guests between the snapshots

    def to_dict(self) -> dict:
        return {"cpus": self.cpus, "load_1m_start": self.load_1m_start, "load_1m_end": self.load_1m_end,
                "steal_fraction": self.steal_fraction}

    @classmethod
    def from_dict(cls, d: dict) -> HostLoad:
        return cls(cpus=int(d.get("cpus") or 0), load_1m_start=d.get("load_1m_start"),
                   load_1m_end=d.get("load_1m_end"), steal_fraction=d.get("steal_fraction"))


def between(start: HostSnapshot, end: HostSnapshot, cpus: int | None = None) -> HostLoad:
    cpus = cpus or os.cpu_count() or 1
    span_s = end.monotonic_s - start.monotonic_s
    fraction = None
    if start.steal_s is not None and end.steal_s is not None and span_s > 0:
        fraction = max(0.0, end.steal_s - start.steal_s) / (span_s * cpus)
    return HostLoad(cpus=cpus, load_1m_start=start.load_1m, load_1m_end=end.load_1m, steal_fraction=fraction)


def line(load: HostLoad) -> str:
    """'load average 0.3 -> 1.2 on 16 CPUs · hypervisor steal 0.0 %' (the parts that were read)."""
    parts = []
    if load.load_1m_start is not None and load.load_1m_end is not None:
        parts.append(f"load average {load.load_1m_start:.1f} -> {load.load_1m_end:.1f} on {load.cpus} CPUs")
    if load.steal_fraction is not None:
        parts.append(f"hypervisor steal {100 * load.steal_fraction:.1f} %")
    return " · ".join(parts)


def line_of(host: dict | None) -> str:
    """line() of a result's `host` dict; "" when the result has none (an older agent, lassi-ee)."""
    return line(HostLoad.from_dict(host)) if host else ""


def busy_note(load: HostLoad) -> str | None:
    """What about the host could lengthen a host phase, in words; None when nothing stood out."""
    notes = []
    loads = [x for x in (load.load_1m_start, load.load_1m_end) if x is not None]
    if loads and max(loads) >= load.cpus + 1:  # the program under measurement is one of them
        notes.append(f"the host was busy (load average up to {max(loads):.1f} on {load.cpus} CPUs)")
    if load.steal_fraction is not None and load.steal_fraction >= NOTABLE_STEAL_FRACTION:
        notes.append(f"the hypervisor gave {100 * load.steal_fraction:.0f} % of this machine's CPU time "
                     "to other guests")
    return " and ".join(notes) or None
