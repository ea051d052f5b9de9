"""A workspace for language-server tests: a real .cu file that nvcc builds, run as a fake-GPU program.

The build compiles the CUDA source for real (`nvcc -c`), so build errors are real compiler output;
the run plays the program against the scripted fake GPU (the only fake: the sensors).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKE_PROGRAM = REPO / "tests" / "helpers" / "fake_gpu_program.py"

KERNEL_SOURCE = """\
// Two kernels of our own: a copy and an FMA loop.
#include <cstdio>

__global__ void copy_kernel(const float* in, float* out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i];
}

template <typename T>
__global__ void fma_kernel(T* x, int n, int reps)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    T v = x[i];
    for (int r = 0; r < reps; ++r) v = v * (T)1.0001 + (T)0.5;
    x[i] = v;
}

int main()
{
    float *a = nullptr, *b = nullptr;
    copy_kernel<<<1, 32>>>(a, b, 0);
    fma_kernel<float><<<1, 32>>>(b, 0, 10);
    printf("PASS\\n");
    return 0;
}
"""


def make_workspace(seconds: float = 0.3) -> dict:
    """Creates the workspace, a fake-GPU spec and a history path; returns them with the server env."""
    root = Path(tempfile.mkdtemp(prefix="wattson-lsp-"))
    load_file = root / "gpu-load"
    load_file.write_text("0")
    spec = {"devices": [{"name": "Fake H100", "idle_w": 70, "busy_w": 350, "load_file": str(load_file),
                         "settle_s": 0.05, "counter_period_s": 0.01, "noise_w": 0.5, "seed": 3}]}
    (root / "fake-gpu.json").write_text(json.dumps(spec))
    project = root / "project"
    project.mkdir()
    (project / "kern.cu").write_text(KERNEL_SOURCE)
    run = f"{sys.executable} {FAKE_PROGRAM} --load-file {load_file} --seconds {seconds} --print PASS"
    (project / "wattson.toml").write_text(
        "[build]\n"
        'command = "nvcc -arch=sm_90 -c kern.cu -o kern.o"\n'
        "[run]\n"
        f"command = {json.dumps(run)}\n"
        "timeout_s = 30\n"
        "[measure]\n"
        "min_trials = 3\nmax_trials = 4\nmax_wall_s = 20\ncooldown_cap_s = 0.2\n"
    )
    env = dict(os.environ)
    env.update({"WATTSON_FAKE_GPU": str(root / "fake-gpu.json"), "WATTSON_DB": str(root / "history.sqlite3"),
                "PYTHONUNBUFFERED": "1"})
    return {"root": root, "project": project, "source": project / "kern.cu", "env": env,
            "db": root / "history.sqlite3", "load_file": load_file}
