"""The measurement engine on a real NVIDIA GPU: a small CUDA program of our own, built with nvcc here.

Run on a GPU host with `pytest tests/gpu/test_measurement_gpu.py -q -s`; -s prints the figures
(energy with its interval, trials, cooldowns, the lassi-ee figure next to the counter's) that
docs/measurement.md quotes. Keep the GPU otherwise idle while it runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("pynvml")

from wattson.profilers.device import GpuDevice, open_devices  # noqa: E402
from wattson.profilers.lassi_ee import profile_lassi_ee  # noqa: E402
from wattson.profilers.protocol import Budget, compare, profile  # noqa: E402
from wattson.profilers.run import measured_run  # noqa: E402

TARGET_RUN_S = 1.5  # the counter updates every ~100 ms: a window must last well over a second

FMA_PROGRAM = r"""
// A fixed amount of arithmetic: `launches` launches of a kernel whose threads run FMA chains.
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

__global__ void fma_chains(float* out, int iters) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float a = 1.0f + 1e-7f * i, b = 0.999999f, c = 1e-6f;
    for (int k = 0; k < iters; ++k) {
        a = fmaf(a, b, c);
        b = fmaf(b, a, -c);
    }
    out[i] = a + b;
}

int main(int argc, char** argv) {
    int launches = argc > 1 ? atoi(argv[1]) : 10;
    const int threads = 256, blocks = 4096, iters = 1 << 14;
    float* out;
    if (cudaMalloc(&out, sizeof(float) * threads * blocks) != cudaSuccess) {
        printf("FAIL: cudaMalloc\n");
        return 1;
    }
    for (int l = 0; l < launches; ++l) fma_chains<<<blocks, threads>>>(out, iters);
    cudaError_t err = cudaDeviceSynchronize();
    float first = 0.0f;
    cudaMemcpy(&first, out, sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(out);
    if (err != cudaSuccess) {
        printf("FAIL: %s\n", cudaGetErrorString(err));
        return 1;
    }
    printf("checksum %g\nPASS\n", first);
    return 0;
}
"""


@pytest.fixture(scope="module")
def device() -> GpuDevice:
    nvidia = [d for d in open_devices() if d.info.vendor == "nvidia"]
    if not nvidia:
        pytest.skip("no NVIDIA GPU on this machine; tests/gpu/ runs on a GPU host")
    yield nvidia[0]
    for d in nvidia:
        d.close()


@pytest.fixture(scope="module")
def program(tmp_path_factory, device) -> tuple[Path, str]:
    """(build dir, run command) sized so one run lasts about TARGET_RUN_S."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
    build = tmp_path_factory.mktemp("fma")
    (build / "fma.cu").write_text(FMA_PROGRAM)
    subprocess.run([nvcc, "-O3", "-arch=native", "-o", "fma", "fma.cu"], cwd=build, check=True,
                   capture_output=True, timeout=300)
    probe = measured_run("./fma 20", cwd=build, device=None, timeout_s=60)
    assert probe.exit_code == 0 and "PASS" in probe.stdout, probe.stdout + probe.stderr
    timed = measured_run("./fma 200", cwd=build, device=None, timeout_s=120)
    per_launch_s = max((timed.duration_s - probe.duration_s) / 180.0, 1e-5)
    launches = max(20, round(20 + (TARGET_RUN_S - probe.duration_s) / per_launch_s))
    print(f"\nfma: {per_launch_s * 1000:.3f} ms per launch; {launches} launches per run")
    return build, f"./fma {launches}"


def _run_once(build: Path, command: str, device: GpuDevice):
    return lambda: measured_run(command, cwd=build, device=device, timeout_s=60)


def _summary(result) -> dict:
    d = result.to_dict(max_timeline_points=0)
    for t in d.get("trials", []):
        t.pop("stdout", None)
        t.pop("stderr", None)
    return d


def test_profile_a_real_program(device, program):
    build, command = program
    result = profile(_run_once(build, command, device), device,
                     Budget(min_trials=5, max_trials=12, max_wall_s=90, cooldown_cap_s=5))
    print("\nprofile:", json.dumps(_summary(result), indent=1)[:6000])
    assert result.energy_source == "counter"
    e = result.energy_j
    assert e is not None and e.median > 0 and e.ci_low <= e.median <= e.ci_high
    assert e.relative_half_width < 0.10
    assert result.duration_s is not None and result.duration_s.median > 0.5
    assert result.idle_power_w is not None and result.avg_power_w is not None
    assert result.avg_power_w > result.idle_power_w  # the kernel draws more than an idle GPU
    assert result.peak_power_w is not None and result.peak_power_w >= result.avg_power_w
    assert all(len(t.timeline) > 10 for t in result.trials)
    # What the host did over the measurement, as read on a real GPU host (a VM shows its steal).
    assert result.host is not None and result.host.cpus > 0 and result.host.load_1m_start is not None
    print("host:", result.host.to_dict())


def test_compare_a_program_with_itself(device, program):
    build, command = program
    run = _run_once(build, command, device)
    result = compare(run, run, device,
                     Budget(min_trials=5, max_trials=12, max_wall_s=120, cooldown_cap_s=5, min_effect=0.02))
    print("\ncompare X X:", result.energy_ratio.text if result.energy_ratio else None,
          f"time {result.time_ratio}", f"trials {len(result.a.trials)}+{len(result.b.trials)}",
          f"stopped: {result.stopped_because}", json.dumps(result.warnings, indent=1))
    assert result.energy_ratio is not None
    assert result.energy_ratio.kind == "same", result.energy_ratio.text


def test_lassi_ee_next_to_the_counter(device, program):
    build, command = program
    result = profile_lassi_ee(command, cwd=build, device=device, timeout_s=60)
    counter_j = result.trials[0].energy_mj / 1000.0
    print(f"\nlassi-ee: {result.energy_j.median if result.energy_j else None} J idle-subtracted, "
          f"idle {result.idle_power_w} W; the same run's counter: {counter_j:.4g} J")
    assert result.protocol == "lassi-ee" and len(result.trials) == 1
    assert result.energy_j is not None and result.energy_j.median < counter_j
