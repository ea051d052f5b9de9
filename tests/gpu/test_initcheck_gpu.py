"""compute-sanitizer initcheck on a real GPU, on two builds of one small program of our own.

The candidate reads a cudaMalloc'd input that nothing wrote; the original cudaMemsets it first. Both
print a sum, so output comparison alone cannot tell which one reads stale memory. Each run takes a
few seconds. Run with `pytest tests/gpu/test_initcheck_gpu.py -s` to see the times.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from wattson.profilers.sandbox import make_sandbox
from wattson.profilers.sanitizer import SanitizerUnavailable, locate_compute_sanitizer, run_initcheck
from wattson.verify.initcheck import check_initcheck

SOURCE_NAME = "initcheck_demo.cu"
SOURCE = r"""// out[i] = 2 * in[i], once. INITIALISE_INPUT=1 sets the input with cudaMemset first (the original);
// INITIALISE_INPUT=0 reads it as cudaMalloc left it (the candidate).
#include <cstdio>
#include <cuda_runtime.h>

__global__ void double_values(const float* in, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 2.0f * in[i];  // the read initcheck reports
}

int main() {
    const int n = 1 << 12;
    float *in = nullptr, *out = nullptr;
    if (cudaMalloc(&in, n * sizeof(float)) != cudaSuccess || cudaMalloc(&out, n * sizeof(float)) != cudaSuccess) {
        fprintf(stderr, "cudaMalloc failed\n");
        return 1;
    }
#if INITIALISE_INPUT
    cudaMemset(in, 0, n * sizeof(float));
#endif
    double_values<<<(n + 255) / 256, 256>>>(in, out, n);
    static float host[1 << 12];
    cudaError_t err = cudaMemcpy(host, out, sizeof(host), cudaMemcpyDeviceToHost);
    double sum = 0.0;
    for (int i = 0; i < n; ++i) sum += host[i];
    printf("sum %g\n", sum);
    cudaFree(in);
    cudaFree(out);
    return err == cudaSuccess ? 0 : 1;
}
"""
READ_LINE = next(i for i, line in enumerate(SOURCE.splitlines(), 1) if "the read initcheck reports" in line)
TIMEOUT_S = 180.0

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this GPU host")


@pytest.fixture(scope="module")
def sanitizer() -> Path:
    try:
        return locate_compute_sanitizer()
    except SanitizerUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> Path:
    """The folder holding `original` and `candidate`, built with line information."""
    where = tmp_path_factory.mktemp("initcheck")
    (where / SOURCE_NAME).write_text(SOURCE)
    for name, flag in (("original", 1), ("candidate", 0)):
        command = ["nvcc", "-O2", "-lineinfo", "-arch=native", f"-DINITIALISE_INPUT={flag}", "-o", name, SOURCE_NAME]
        result = subprocess.run(command, cwd=where, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    return where


@pytest.fixture(scope="module")
def reports(sanitizer, programs):
    """Both programs under initcheck, each through a shell that forks it (`&& echo`)."""
    out = {}
    for name in ("original", "candidate"):
        if name == "candidate" and "not supported" in (out["original"].tool_failed or "").lower():
            # Seen on gVisor GPU hosts: the tool refuses the device. Nothing of ours is being tested then.
            pytest.skip(f"compute-sanitizer cannot check programs on this GPU host: {out['original'].tool_failed}")
        out[name] = run_initcheck(f"./{name} && echo finished", cwd=programs, timeout_s=TIMEOUT_S, sanitizer=sanitizer)
        print(f"\ninitcheck of {name}: {out[name].duration_s:.2f} s, {out[name].error_count} errors")
    return out


def test_candidate_is_flagged_with_kernel_and_line(reports):
    candidate = reports["candidate"]
    assert candidate.completed, candidate.tool_failed
    reads = candidate.uninitialized_reads
    assert reads, candidate.to_dict()
    assert candidate.error_count >= len(reads)
    first = reads[0]
    assert first.kernel and "double_values" in first.kernel, first
    assert first.source and first.source.endswith(f"{SOURCE_NAME}:{READ_LINE}"), first
    assert first.thread and first.block, first


def test_original_is_clean(reports):
    original = reports["original"]
    assert original.completed, original.tool_failed
    assert original.error_count == 0 and original.errors == [], original.to_dict()


def test_check_fails_the_candidate_only(reports):
    original, candidate = reports["original"], reports["candidate"]
    (finding,) = check_initcheck(original, candidate, source_file=SOURCE_NAME)
    assert (finding.check, finding.severity, finding.line) == ("uninitialised-read", "fail", READ_LINE)
    assert "double_values" in finding.message
    # As the agent sends them: JSON dicts.
    wire = [json.loads(json.dumps(r.to_dict())) for r in (original, original)]
    assert check_initcheck(*wire) == []


def test_candidate_is_flagged_inside_the_sandbox(sanitizer, programs, reports):
    """The sandbox's network and PID namespaces must not stop the tool from attaching to the program."""
    sandbox = make_sandbox(programs)
    result = run_initcheck("./candidate", cwd=programs, timeout_s=TIMEOUT_S, sandbox=sandbox, sanitizer=sanitizer)
    print(f"\ninitcheck of candidate in the sandbox: {result.duration_s:.2f} s; sandbox warnings: {sandbox.warnings}")
    assert result.completed, result.tool_failed
    assert any("double_values" in (e.kernel or "") for e in result.uninitialized_reads), result.to_dict()


def test_time_limit_ends_the_check_without_a_clean_result(sanitizer, programs, reports):
    result = run_initcheck("./original; sleep 30", cwd=programs, timeout_s=2.0, sanitizer=sanitizer)
    assert not result.completed
    assert "time limit" in result.tool_failed


def test_agent_profile_returns_the_report(sanitizer):
    """Through the agent, as the optimize loop asks for it: sandboxed, after the measured trials."""
    from wattson.runner import AgentClient

    program = {"name": "initcheck-candidate", "files": {SOURCE_NAME: {"text": SOURCE}},
               "build": f"nvcc -O2 -lineinfo -arch=$WATTSON_ARCH -DINITIALISE_INPUT=0 -o candidate {SOURCE_NAME}",
               "run": "./candidate", "workdir": ".", "trusted": False}
    budget = {"warmup_runs": 0, "min_trials": 1, "max_trials": 1, "cooldown_cap_s": 2}
    with AgentClient.start(None) as agent:
        result = agent.call("profile", {"program": program, "budget": budget,
                                        "initcheck": {"timeout_s": TIMEOUT_S}}, timeout_s=600)
    report = result["initcheck"]
    assert report is not None, result["warnings"]
    original = {"error_count": 0, "errors": [], "summary_seen": True, "tool_failed": None}
    (finding,) = check_initcheck(original, report, source_file=SOURCE_NAME)
    assert finding.severity == "fail" and "double_values" in finding.message, report
