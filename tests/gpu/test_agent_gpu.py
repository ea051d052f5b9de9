"""The agent on a real NVIDIA GPU: WATTSON_ARCH from NVML, the run pinned to the measured GPU,
a real CUDA program profiled end to end over stdio, and per-kernel energy through the agent.

Skipped without a GPU (tests/gpu/conftest.py). The program is our own, written here.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from agent_fixture import agent_env
from wattson.runner import AgentClient

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")

# Launches an FMA-heavy kernel until ~1 s (or argv[1] ms) has passed, then says which GPU it ran on.
PROGRAM = r"""
#include <chrono>
#include <cstdio>
#include <cuda_runtime.h>

__global__ void busy_fma(float *out, int rounds) {
    float a = threadIdx.x * 1e-3f, b = 0.999f;
    for (int i = 0; i < rounds; ++i) a = fmaf(a, b, 1e-4f);
    out[blockIdx.x * blockDim.x + threadIdx.x] = a;
}

#include <cstdlib>

int main(int argc, char **argv) {
    const int run_ms = argc > 1 ? std::atoi(argv[1]) : 1000;
    const int blocks = 1024, threads = 256;
    float *out = nullptr;
    if (cudaMalloc(&out, blocks * threads * sizeof(float)) != cudaSuccess) {
        std::puts("FAIL malloc");
        return 1;
    }
    auto start = std::chrono::steady_clock::now();
    int launches = 0;
    while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(run_ms)) {
        busy_fma<<<blocks, threads>>>(out, 20000);
        cudaDeviceSynchronize();
        ++launches;
    }
    cudaDeviceProp p;
    cudaGetDeviceProperties(&p, 0);
    const unsigned char *u = reinterpret_cast<const unsigned char *>(p.uuid.bytes);
    std::printf("ran on GPU-");
    for (int i = 0; i < 16; ++i) {
        bool dash = i == 4 || i == 6 || i == 8 || i == 10;  // GPU-8-4-4-4-12, as NVML writes it
        std::printf(dash ? "-%02x" : "%02x", u[i]);
    }
    std::printf("\n");
    std::printf("launches %d\nPASS\n", launches);
    cudaFree(out);
    return cudaGetLastError() == cudaSuccess ? 0 : 1;
}
"""

BUDGET = {"warmup_runs": 1, "min_trials": 2, "max_trials": 3, "max_wall_s": 60.0, "cooldown_cap_s": 3.0,
          "target_ci_half_width": 0.05}


def _program() -> dict:
    return {"name": "busy_fma", "files": {"busy.cu": {"text": PROGRAM}},
            "build": "nvcc -O3 -arch=$WATTSON_ARCH -o busy busy.cu", "run": "./busy",
            "run_timeout_s": 30, "build_timeout_s": 300, "env": {}, "source_file": "busy.cu"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = agent_env(None, tmp_path)
    e.pop("WATTSON_FAKE_GPU", None)
    return e


def test_describe_on_a_real_gpu(env):
    with AgentClient.start(env=env) as agent:
        desc = agent.call("describe", timeout_s=120)
    assert desc["fake"] is False and desc["devices"]
    gpu = desc["devices"][0]
    assert gpu["vendor"] == "nvidia" and re.fullmatch(r"sm_\d+", gpu["arch"] or "")
    assert desc["toolchains"].get("nvcc")
    print("describe:", {k: desc[k] for k in ("host", "agent_version", "toolchains")}, gpu)


def test_profile_a_cuda_program_pinned_to_the_measured_gpu(env):
    notes: list[dict] = []
    with AgentClient.start(env=env) as agent:
        gpu = agent.call("describe", timeout_s=120)["devices"][0]
        result = agent.call("profile", {"program": _program(), "budget": BUDGET, "device": gpu["index"]},
                            on_progress=notes.append, timeout_s=300)
    stages = {n["stage"] for n in notes}
    assert {"build", "measure", "trial"} <= stages
    assert result["energy_source"] == "counter"
    assert result["energy_j"]["median"] > 10  # ~1 s of a busy GPU
    for trial in result["trials"]:
        assert f"ran on {gpu['uuid']}" in trial["stdout"] and "PASS" in trial["stdout"]
    print("energy_j", result["energy_j"], "warnings", result["warnings"])


def test_per_kernel_energy_through_the_agent(env):
    if os.environ.get("CUDA_INJECTION64_PATH"):
        pytest.skip("another CUDA injection library is configured in this environment")
    with AgentClient.start(env=env) as agent:
        # 3 s of kernels: ~30 sensor windows, enough for the attribution to give figures.
        program = {**_program(), "run": "./busy 3000"}
        result = agent.call("profile", {"program": program, "budget": {**BUDGET, "max_trials": 2},
                                        "kernels": True}, timeout_s=300)
    report = result["kernels"]
    assert report is not None, result["warnings"]
    names = {k["name"]: k for k in report["kernels"]}
    [busy] = [k for n, k in names.items() if "busy_fma" in n]
    assert busy["launches"] > 0 and busy["gpu_time_s"] > 0.3
    assert busy["source"] and busy["source"].startswith("busy.cu:")
    # The power timeline must line up with the trace: windows inside the busy span, and a figure.
    assert report["windows"] > 0 and report["busy_window_energy_j"], report["method_notes"]
    # One kernel busy the whole window is inseparable from the constant term: its figure may come as
    # a group ("together: busy_fma + idle") rather than alone. Either way it must have one.
    grouped = [g for g in report["groups"] if any("busy_fma" in m for m in g["members"])]
    assert (busy["energy_j"] or 0) > 0 or (grouped and grouped[0]["energy_j"] > 0), report
    print("kernels:", report)
