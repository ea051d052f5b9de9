"""Reads the kernel tracer's file (inject.c) into records on Python's time.monotonic() clock.

CUPTI stamps activity with its own clock (CLOCK_REALTIME on Linux). The tracer writes clock pairs:
CLOCK_MONOTONIC read just before and just after cuptiGetTimestamp(), at start-up, after every
buffer and at exit. Each pair gives an offset (monotonic midpoint − CUPTI time); a record's time is
mapped with the offset interpolated linearly between the pairs around it, which follows a slow
drift between the clocks (NTP slewing) and holds the nearest offset outside them. Python's
time.monotonic() reads the same CLOCK_MONOTONIC, so the records line up with the power timeline.
The alignment error is half the widest bracket (typically well under a microsecond) plus whatever
the clocks do between two pairs; `clock_drift_s` reports the spread of the offsets so a clock step
during a run shows.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .build import KernelTraceUnavailable

FORMAT_VERSION = 1
_MEMCPY_KINDS = {1: "HtoD", 2: "DtoH", 3: "HtoA", 4: "AtoH", 5: "AtoA", 6: "AtoD", 7: "DtoA", 8: "DtoD",
                 9: "HtoH", 10: "PtoP"}


@dataclass
class KernelRecord:
    """One execution on the GPU: a kernel, or a memcpy/memset (kind), in monotonic seconds."""

    name: str  # demangled kernel signature, or "[CUDA memcpy HtoD]" / "[CUDA memset]"
    start_s: float
    end_s: float
    grid: tuple[int, int, int] = (0, 0, 0)
    block: tuple[int, int, int] = (0, 0, 0)
    stream: int = 0
    device: int = 0
    kind: str = "kernel"  # "kernel" | "memcpy" | "memset"
    symbol: str = ""  # the name as CUPTI reported it (mangled for C++ kernels)
    correlation_id: int = 0
    pid: int = 0
    size_bytes: int = 0  # memcpy/memset size

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> KernelRecord:
        d = dict(d)
        d["grid"] = tuple(d.get("grid", (0, 0, 0)))
        d["block"] = tuple(d.get("block", (0, 0, 0)))
        return cls(**d)


@dataclass
class KernelTrace:
    """Everything one traced run left: records sorted by start, and what went wrong."""

    records: list[KernelRecord]
    processes: list[int] = field(default_factory=list)
    dropped_records: int = 0  # CUPTI ran out of buffer space: the timeline has holes
    errors: list[str] = field(default_factory=list)
    malformed_lines: int = 0
    clock_error_s: float = 0.0  # half the widest monotonic bracket around a CUPTI clock read
    clock_drift_s: float = 0.0  # spread of the CUPTI->monotonic offsets over the run


@dataclass
class _ClockPair:
    cupti_ns: int
    offset_ns: int  # monotonic midpoint - CUPTI
    half_bracket_ns: int


class _ClockMap:
    """CUPTI ns -> monotonic s for one process, interpolating the offset between clock pairs."""

    def __init__(self, pairs: list[_ClockPair]):
        self.pairs = sorted(pairs, key=lambda p: p.cupti_ns)
        self.keys = [p.cupti_ns for p in self.pairs]

    def offset_ns(self, cupti_ns: int) -> int:
        # Integers throughout: offsets are ~1.8e18 ns (CUPTI counts from 1970), beyond a float's
        # 2^53, where a double would be off by hundreds of nanoseconds.
        i = bisect.bisect_left(self.keys, cupti_ns)
        if i == 0:
            return self.pairs[0].offset_ns
        if i == len(self.pairs):
            return self.pairs[-1].offset_ns
        a, b = self.pairs[i - 1], self.pairs[i]
        span = b.cupti_ns - a.cupti_ns
        if span <= 0:
            return b.offset_ns
        return a.offset_ns + ((b.offset_ns - a.offset_ns) * (cupti_ns - a.cupti_ns) + span // 2) // span

    def to_monotonic_s(self, cupti_ns: int) -> float:
        return (cupti_ns + self.offset_ns(cupti_ns)) / 1e9


def read_kernel_trace(path: Path | str, demangle_names: bool = True) -> KernelTrace:
    """Parse a trace file; raises KernelTraceUnavailable when the tracer never wrote one."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError as e:
        raise KernelTraceUnavailable(
            f"no kernel trace was written ({path}): the program made no CUDA calls, or the CUDA driver "
            "did not load the tracer (is CUDA_INJECTION64_PATH overridden by the program's environment?)"
        ) from e
    except OSError as e:
        raise KernelTraceUnavailable(f"cannot read the kernel trace {path}: {e}") from e
    return parse_kernel_trace(text, demangle_names=demangle_names)


def parse_kernel_trace(text: str, demangle_names: bool = True) -> KernelTrace:
    pairs: dict[int, list[_ClockPair]] = {}
    raw: list[tuple[int, int, int, dict]] = []  # (pid, start_ns, end_ns, fields)
    trace = KernelTrace(records=[])
    headers: set[int] = set()
    for line in text.splitlines():
        if not line:
            continue
        parts = line.split("\t")
        try:
            tag, pid = parts[0], int(parts[1])
            if tag == "H":
                headers.add(pid)
                if int(parts[2]) != FORMAT_VERSION:
                    trace.errors.append(f"process {pid}: trace format {parts[2]}, expected {FORMAT_VERSION}")
            elif tag == "C":
                before, cupti, after = int(parts[3]), int(parts[4]), int(parts[5])
                pair = _ClockPair(cupti_ns=cupti, offset_ns=(before + after) // 2 - cupti,
                                  half_bracket_ns=(after - before) // 2)
                pairs.setdefault(pid, []).append(pair)
            elif tag in ("K", "M", "S"):
                raw.append((pid, int(parts[2]), int(parts[3]), _record_fields(tag, parts)))
            elif tag == "D":
                trace.dropped_records += int(parts[2])
            elif tag == "E":
                trace.errors.append(f"process {pid}: {parts[2]}")
            else:
                trace.malformed_lines += 1
        except (IndexError, ValueError):
            trace.malformed_lines += 1  # a line cut short when a process was killed mid-write

    maps = {pid: _ClockMap(p) for pid, p in pairs.items()}
    names: dict[str, str] = {}
    for pid, start_ns, end_ns, fields in raw:
        clock = maps.get(pid)
        if clock is None:
            continue
        if end_ns < start_ns or start_ns == 0:
            trace.malformed_lines += 1  # CUPTI leaves 0 for activity it could not time
            continue
        symbol = fields["symbol"]
        if fields["kind"] == "kernel" and demangle_names:
            if symbol not in names:
                names[symbol] = _demangle(symbol)
            fields["name"] = names[symbol]
        trace.records.append(KernelRecord(start_s=clock.to_monotonic_s(start_ns),
                                          end_s=clock.to_monotonic_s(end_ns), pid=pid, **fields))
    missing = {pid for pid, *_ in raw} - set(maps)
    for pid in sorted(missing):
        trace.errors.append(f"process {pid}: no clock pair in the trace; its records were skipped")
    trace.records.sort(key=lambda r: (r.start_s, r.end_s))
    trace.processes = sorted(headers | set(maps))
    all_pairs = [p for ps in pairs.values() for p in ps]
    if all_pairs:
        trace.clock_error_s = max(p.half_bracket_ns for p in all_pairs) / 1e9
        for ps in pairs.values():
            offsets = [p.offset_ns for p in ps]
            trace.clock_drift_s = max(trace.clock_drift_s, (max(offsets) - min(offsets)) / 1e9)
    return trace


def _record_fields(tag: str, parts: list[str]) -> dict:
    common = {"device": int(parts[4]), "stream": int(parts[6]), "correlation_id": int(parts[7])}
    if tag == "K":
        symbol = "\t".join(parts[14:])
        return {**common, "kind": "kernel", "symbol": symbol, "name": symbol,
                "grid": (int(parts[8]), int(parts[9]), int(parts[10])),
                "block": (int(parts[11]), int(parts[12]), int(parts[13]))}
    if tag == "M":
        name = f"[CUDA memcpy {_MEMCPY_KINDS.get(int(parts[8]), 'other')}]"
        return {**common, "kind": "memcpy", "symbol": name, "name": name, "size_bytes": int(parts[9])}
    return {**common, "kind": "memset", "symbol": "[CUDA memset]", "name": "[CUDA memset]",
            "size_bytes": int(parts[8])}


def _demangle(symbol: str) -> str:
    from .source_map import demangle

    return demangle(symbol)
