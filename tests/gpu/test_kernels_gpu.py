"""Per-kernel energy on a real GPU: the tracer, the clock alignment and the attribution, end to end.

A program of our own runs two kernels of very different power: a memory-bound copy and an FMA loop.
The truth comes from running each one alone while reading the energy counter; the attribution of a
run that mixes them in phases of random length must give each its share within ±10 points.
Run with `pytest tests/gpu/test_kernels_gpu.py -q -s` to see the figures (and the tracing overhead).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from wattson.profilers.device import counter_delta_mj, open_devices
from wattson.profilers.kernels import (
    KernelTraceUnavailable,
    attribute_energy,
    build_injection_library,
    kernel_trace_env,
    read_kernel_trace,
)
from wattson.profilers.kernels.source_map import kernel_base_name

TWO_KERNELS_CU = r"""
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cuda_runtime.h>

#define CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
    fprintf(stderr, "CUDA error %s at line %d\n", cudaGetErrorString(e_), __LINE__); exit(1); } } while (0)

static long long now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

__global__ void copy_kernel(const float4* __restrict__ in, float4* __restrict__ out, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += stride) out[i] = in[i];
}

__global__ void fma_kernel(float* out, int iterations) {
    float a = 1.0f + threadIdx.x * 1e-7f, b = a * 0.5f, c = a * 0.25f, d = a * 0.125f;
    const float m = 0.9999999f, k = 1e-7f;
    for (int i = 0; i < iterations; ++i) {
        a = fmaf(a, m, k); b = fmaf(b, m, k); c = fmaf(c, m, k); d = fmaf(d, m, k);
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = a + b + c + d;
}

static size_t n_vec;
static float4 *src, *dst;
static float* sink;
static int fma_blocks, fma_iterations;

static void launch(bool copy) {
    // A small grid keeps the copy latency-bound and the board far below the FMA loop's power
    // (a full-grid HBM copy drew about as much as the FMA loop on an H100: 361 W vs 346 W).
    if (copy) copy_kernel<<<16, 256>>>(src, dst, n_vec);
    else fma_kernel<<<fma_blocks, 256>>>(sink, fma_iterations);
}

// Launch one kind of kernel until `seconds` have passed; returns the phase's [start, end] in ns.
static void phase(bool copy, double seconds, const char* label) {
    long long t0 = now_ns(), deadline = t0 + (long long)(seconds * 1e9);
    while (now_ns() < deadline) {
        for (int i = 0; i < 8; ++i) launch(copy);
        CHECK(cudaDeviceSynchronize());
    }
    long long t1 = now_ns();
    if (label) printf("phase %s %lld %lld\n", label, t0, t1);
    fflush(stdout);
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s copy|fma|mixed SECONDS [SEED] | count N\n", argv[0]);
        return 2;
    }
    const char* mode = argv[1];
    int sms = 0;
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    n_vec = (size_t)1 << 26;  // 1 GiB of float4 each way
    CHECK(cudaMalloc(&src, n_vec * sizeof(float4)));
    CHECK(cudaMalloc(&dst, n_vec * sizeof(float4)));
    fma_blocks = sms * 16;
    CHECK(cudaMalloc(&sink, (size_t)fma_blocks * 256 * sizeof(float)));
    CHECK(cudaMemset(src, 0, n_vec * sizeof(float4)));
    // Size the FMA loop so that one launch takes about 2 ms.
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    fma_iterations = 1 << 14;
    launch(false);
    CHECK(cudaEventRecord(e0));
    launch(false);
    CHECK(cudaEventRecord(e1));
    CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, e0, e1));
    fma_iterations = (int)(fma_iterations * 2.0 / (ms > 0.01f ? ms : 0.01f));
    if (strcmp(mode, "count") == 0) {
        int n = atoi(argv[2]);
        for (int i = 0; i < n; ++i) { launch(true); launch(false); }
        CHECK(cudaDeviceSynchronize());
        printf("launched %d %d\n", n, n);
        return 0;
    }
    double seconds = atof(argv[2]);
    bool mixed = strcmp(mode, "mixed") == 0;
    phase(!mixed && strcmp(mode, "copy") == 0, 0.5, nullptr);  // warm-up: clocks and power settle
    printf("begin %lld\n", now_ns());
    fflush(stdout);
    if (!mixed) {
        phase(strcmp(mode, "copy") == 0, seconds, mode);
    } else {
        unsigned state = argc > 3 ? (unsigned)atoi(argv[3]) : 1u;
        long long end = now_ns() + (long long)(seconds * 1e9);
        while (now_ns() < end) {
            state = state * 1664525u + 1013904223u;
            bool copy = (state >> 16) & 1;
            double length = 0.1 + 0.4 * ((state >> 8) & 0xff) / 255.0;
            phase(copy, length, copy ? "copy" : "fma");
        }
    }
    printf("end %lld\n", now_ns());
    fflush(stdout);
    return 0;
}
"""


@dataclass
class Run:
    lines: list[tuple[float, str]]  # (time.monotonic() when read, line)
    timeline: list[tuple[float, float]] = field(default_factory=list)
    energy_at_mj: dict[str, float] = field(default_factory=dict)  # counter read at "begin"/"end"
    wall_s: float = 0.0


@pytest.fixture(scope="module")
def gpu():
    devices = [d for d in open_devices() if d.info.vendor == "nvidia"]
    if not devices:
        pytest.skip("no NVIDIA GPU")
    yield devices[0]
    for d in devices:
        d.close()


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not on PATH")
    work = tmp_path_factory.mktemp("two_kernels")
    (work / "two_kernels.cu").write_text(TWO_KERNELS_CU)
    subprocess.run(["nvcc", "-O3", "-arch=native", "-o", "two_kernels", "two_kernels.cu"], cwd=work,
                   check=True, timeout=300)
    return work / "two_kernels"


@pytest.fixture(scope="module")
def tracer(tmp_path_factory) -> Path:
    try:
        return build_injection_library(cache_dir=tmp_path_factory.mktemp("tracer"))
    except KernelTraceUnavailable as e:
        pytest.skip(str(e))


def run(program: Path, args: list[str], gpu, env: dict[str, str] | None = None) -> Run:
    """Run the program while sampling instant power every 10 ms; read the counter at its markers."""
    result = Run(lines=[])
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            p = gpu.power_instant_mw()
            if p is not None:
                result.timeline.append((time.monotonic(), p))
            stop.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.monotonic()
    proc = subprocess.Popen([str(program), *args], stdout=subprocess.PIPE, text=True, bufsize=1,
                            env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    for line in proc.stdout:
        marker = line.split()[0] if line.strip() else ""
        if marker in ("begin", "end"):
            result.energy_at_mj[marker] = gpu.energy_mj()
        result.lines.append((time.monotonic(), line.strip()))
    assert proc.wait(timeout=120) == 0
    result.wall_s = time.monotonic() - start
    stop.set()
    sampler.join()
    return result


def _marker_s(result: Run, name: str) -> float:
    return next(int(line.split()[1]) for _, line in result.lines if line.startswith(name + " ")) / 1e9


def solo_power_w(program: Path, gpu, kind: str) -> float:
    """Board power while one kernel runs alone: the energy counter over the program's own markers."""
    result = run(program, [kind, "4"], gpu)
    energy_j = counter_delta_mj(result.energy_at_mj["begin"], result.energy_at_mj["end"],
                                gpu.energy_counter_wrap_mj) / 1000.0
    return energy_j / (_marker_s(result, "end") - _marker_s(result, "begin"))


def test_attributed_shares_match_solo_runs(program: Path, tracer: Path, gpu, tmp_path: Path):
    truth_w = {kind: solo_power_w(program, gpu, kind) for kind in ("copy", "fma")}
    print(f"\nsolo board power: copy {truth_w['copy']:.0f} W, fma {truth_w['fma']:.0f} W")
    assert truth_w["fma"] > 1.2 * truth_w["copy"] or truth_w["copy"] > 1.2 * truth_w["fma"], (
        "the two kernels should differ in power for this test to mean anything")

    trace_path = tmp_path / "trace.tsv"
    mixed = run(program, ["mixed", "8", "7"], gpu, env=kernel_trace_env(trace_path, tracer))
    trace = read_kernel_trace(trace_path)
    assert trace.errors == [] and trace.dropped_records == 0
    records = [r for r in trace.records if r.kind == "kernel"]
    kinds = {r.name: kernel_base_name(r.name).removesuffix("_kernel") for r in records}
    assert set(kinds.values()) == {"copy", "fma"}

    # Clock alignment: every kernel lies inside a phase of its kind, as the program's own
    # CLOCK_MONOTONIC saw it, to within a millisecond.
    phases = [(p[1], int(p[2]) / 1e9, int(p[3]) / 1e9) for p in
              (line.split() for _, line in mixed.lines if line.startswith("phase "))]
    begin_s = _marker_s(mixed, "begin")
    tolerance_s = 1e-3
    outside = [r for r in records if r.start_s > begin_s and not any(
        kind == kinds[r.name] and t0 - tolerance_s <= r.start_s and r.end_s <= t1 + tolerance_s
        for kind, t0, t1 in phases)]
    assert not outside, f"{len(outside)} kernels outside their phase, e.g. {outside[0]}"
    print(f"clock pairs: error {1e6 * trace.clock_error_s:.1f} us, drift {1e6 * trace.clock_drift_s:.1f} us")

    report = attribute_energy(records, mixed.timeline)
    by_kind = {kinds[k.name]: k for k in report.kernels}
    for kind, k in by_kind.items():
        print(f"{kind}: {k.launches} launches, {k.charged_time_s:.2f} s, attributed {k.avg_power_w} W, "
              f"{k.energy_j} J {k.energy_ci_j}; {k.reason}")
    print("\n".join(report.method_notes))
    assert all(k.attributable for k in by_kind.values())
    true_j = {kind: truth_w[kind] * by_kind[kind].charged_time_s for kind in by_kind}
    attributed_j = {kind: by_kind[kind].energy_j for kind in by_kind}
    true_share = true_j["copy"] / sum(true_j.values())
    attributed_share = attributed_j["copy"] / sum(attributed_j.values())
    print(f"copy's share of the two kernels' energy: attributed {100 * attributed_share:.1f} %, "
          f"from solo runs {100 * true_share:.1f} %")
    assert abs(attributed_share - true_share) <= 0.10


def test_trace_counts_every_launch_and_tracing_overhead(program: Path, tracer: Path, gpu, tmp_path: Path):
    launches = 2000
    plain = min(run(program, ["count", str(launches)], gpu).wall_s for _ in range(2))
    trace_path = tmp_path / "count.tsv"
    traced_runs = []
    for _ in range(2):
        trace_path.unlink(missing_ok=True)
        env = kernel_trace_env(trace_path, tracer)
        traced_runs.append(run(program, ["count", str(launches)], gpu, env=env))
    traced = min(r.wall_s for r in traced_runs)
    print(f"\ntracing overhead, {2 * launches} launches of ~1-2 ms: {plain:.3f} s -> {traced:.3f} s "
          f"({100 * (traced / plain - 1):+.1f} % wall time, including CUDA start-up)")
    trace = read_kernel_trace(trace_path)
    counts: dict[str, int] = {}
    for r in trace.records:
        if r.kind == "kernel":
            base = kernel_base_name(r.name)
            counts[base] = counts.get(base, 0) + 1
    # The count mode also runs two FMA launches to size its loop.
    assert counts == {"copy_kernel": launches, "fma_kernel": launches + 2}
    assert re.fullmatch(r"copy_kernel\(float4 const\*, float4\*, unsigned long\)",
                        next(r.name for r in trace.records if r.name.startswith("copy")))


def test_copies_are_traced_only_on_request(program: Path, tracer: Path, gpu, tmp_path: Path):
    """The program clears its buffer with one cudaMemset: a record of it only with copies=True."""
    kinds = {}
    for copies in (False, True):
        trace_path = tmp_path / f"copies-{copies}.tsv"
        run(program, ["count", "10"], gpu, env=kernel_trace_env(trace_path, tracer, copies=copies))
        trace = read_kernel_trace(trace_path)
        assert trace.errors == []
        kinds[copies] = {r.kind for r in trace.records}
    assert kinds[False] == {"kernel"}
    assert kinds[True] >= {"kernel", "memset"}
