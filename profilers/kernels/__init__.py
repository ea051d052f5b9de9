"""Per-kernel energy: which kernels cost the joules, and where they are defined.

    lib = build_injection_library()                        # build.py: CUPTI tracer, built once per host
    env = kernel_trace_env(trace_path, lib)                 # run the unmodified program with these
    report = profile_kernels(trace_path, timeline, sources) # trace.py + attribution.py + source_map.py

NVIDIA only: on AMD/HIP `check_vendor_supported("amd")` raises KernelTraceUnavailable with the reason.
docs/per-kernel-energy.md describes the method and its limits.
"""

from __future__ import annotations

from pathlib import Path

from .attribution import AttributionSettings, KernelEnergy, KernelGroupEnergy, KernelReport, attribute_energy
from .build import (
    KernelTraceUnavailable,
    build_injection_library,
    check_vendor_supported,
    kernel_trace_env,
    locate_cupti,
)
from .source_map import KernelDef, find_kernel_definitions, locate_kernel
from .trace import KernelRecord, KernelTrace, read_kernel_trace

__all__ = [
    "AttributionSettings", "KernelDef", "KernelEnergy", "KernelGroupEnergy", "KernelRecord", "KernelReport",
    "KernelTrace", "KernelTraceUnavailable", "attach_sources", "attribute_energy", "build_injection_library",
    "check_vendor_supported", "find_kernel_definitions", "kernel_trace_env", "locate_cupti", "locate_kernel",
    "profile_kernels", "read_kernel_trace",
]


def attach_sources(report: KernelReport, sources: dict[str, str]) -> None:
    """Fill each kernel's `source` ("path:line" of its __global__ definition) where one is found."""
    for k in report.kernels:
        if k.kind != "kernel":
            continue
        found = locate_kernel(k.symbol or k.name, sources)
        if found is not None:
            k.source = f"{found[0]}:{found[1]}"


def profile_kernels(trace_path: Path | str, timeline: list[tuple[float, float]],
                    sources: dict[str, str] | None = None, device: int | None = None,
                    settings: AttributionSettings | None = None,
                    timeline_origin_s: float = 0.0, copies_traced: bool | None = None) -> KernelReport:
    """Trace file + power timeline [(t_s, mW)] of one GPU -> per-kernel energy, with source lines.

    The timeline's times are time.monotonic() values, or offsets from `timeline_origin_s` (e.g.
    RunMeasurement's timeline, relative to its start_monotonic_s). `copies_traced=False` adds a note
    that memcpy/memset time counts as time between kernels."""
    trace = read_kernel_trace(trace_path)
    if timeline_origin_s:
        timeline = [(timeline_origin_s + t, p) for t, p in timeline]
    report = attribute_energy(trace.records, timeline, device=device, settings=settings)
    if trace.dropped_records:
        report.method_notes.append(f"CUPTI dropped {trace.dropped_records} records (buffers full): the "
                                   "kernel timeline has holes, so the figures are less certain")
    report.method_notes += [f"tracer: {e}" for e in trace.errors]
    if copies_traced is False:
        report.method_notes.append("memcpy and memset were not traced: their time counts as time between "
                                   "kernels (trace them with --kernel-copies)")
    if trace.clock_drift_s > 1e-3:
        report.method_notes.append(f"CUPTI's clock moved {1000 * trace.clock_drift_s:.2g} ms against the "
                                   "monotonic clock during the run (corrected between clock pairs)")
    if sources:
        attach_sources(report, sources)
    return report
