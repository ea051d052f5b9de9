"""What a real CUDA run leaves behind, through the agent on a real NVIDIA GPU: the declared output
file's bytes, the files it created in its sandboxed run folder, its host CPU time.

Skipped without a GPU (tests/gpu/conftest.py). The program is our own, written here.
"""

from __future__ import annotations

import base64
import shutil
import struct
from pathlib import Path

import pytest
from agent_fixture import agent_env
from wattson.runner import AgentClient

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")

N = 4096

# Squares 0..N-1 on the GPU and writes them as float32 to out.bin; prints a checksum and PASS.
PROGRAM = r"""
#include <cstdio>
#include <vector>
#include <cuda_runtime.h>

__global__ void square(float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = (float)i * (float)i;
}

int main() {
    const int n = N_VALUES;
    float *d = nullptr;
    if (cudaMalloc(&d, n * sizeof(float)) != cudaSuccess) { std::puts("FAIL malloc"); return 1; }
    square<<<(n + 255) / 256, 256>>>(d, n);
    std::vector<float> h(n);
    cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(d);
    double sum = 0;
    for (float v : h) sum += v;
    FILE *f = std::fopen("out.bin", "wb");
    if (!f) { std::puts("FAIL open"); return 1; }
    std::fwrite(h.data(), sizeof(float), n, f);
    std::fclose(f);
    std::printf("checksum %.6e\nPASS\n", sum);
    return cudaGetLastError() == cudaSuccess ? 0 : 1;
}
""".replace("N_VALUES", str(N))

BUDGET = {"warmup_runs": 0, "min_trials": 2, "max_trials": 2, "max_wall_s": 60.0, "cooldown_cap_s": 2.0}


def _program(build: str) -> dict:
    return {"name": "square", "files": {"square.cu": {"text": PROGRAM}}, "build": build, "run": "./square",
            "run_timeout_s": 60, "build_timeout_s": 300, "env": {}, "source_file": "square.cu",
            "output_files": ["out.bin"], "trusted": False}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = agent_env(None, tmp_path)
    e.pop("WATTSON_FAKE_GPU", None)
    return e


def test_a_native_build_returns_its_output_file_and_leaves_nothing_else(env):
    with AgentClient.start(env=env) as agent:
        result = agent.call("profile", {"program": _program("nvcc -O2 -arch=$WATTSON_ARCH -o square square.cu"),
                                        "budget": BUDGET}, timeout_s=600)
    for t in result["trials"]:
        data = base64.b64decode(t["output_files"]["out.bin"])
        values = struct.unpack(f"<{N}f", data)
        assert values[3] == 9.0 and values[N - 1] == float((N - 1) * (N - 1))
        assert t["created_files"] == ["out.bin"], t["created_files"]  # CUDA left nothing in HOME or TMPDIR
        assert t["host_cpu_s"] is not None and 0 < t["host_cpu_s"] < 60


def test_a_jit_compiled_build_leaves_only_its_output_file(env):
    """PTX only: the driver compiles at start-up and caches the result under HOME/.nv/ComputeCache, which
    the sandbox puts in the run folder. That cache is not the program's doing and must not show."""
    with AgentClient.start(env=env) as agent:
        desc = agent.call("describe", timeout_s=120)
        arch = desc["devices"][0]["arch"]  # sm_90
        compute = arch.replace("sm_", "compute_")
        build = f"nvcc -O2 -gencode arch={compute},code={compute} -o square square.cu"
        result = agent.call("profile", {"program": _program(build), "budget": BUDGET}, timeout_s=600)
    for t in result["trials"]:
        print("created by a JIT-compiled run:", t["created_files"])
        assert t["created_files"] == ["out.bin"], t["created_files"]
