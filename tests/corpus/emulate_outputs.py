"""Writes tests/corpus/<program>/outputs/<variant>.json: what each corpus variant prints, emulated on the CPU.

CI has no GPU, so the oracle's corpus tests read these recorded outputs. They are synthetic: the
arithmetic of each kernel is replayed with numpy in the same order and precision (float32 adds,
tree reductions, warp shuffles), timings are made up, and expf is numpy's (the GPU's may differ in the
last bit). tests/gpu/test_corpus_gpu.py builds and runs the variants on a real GPU and checks that the
oracle reaches the same verdict on real output. Re-run after changing a corpus program:

    /work/venv/bin/python tests/corpus/emulate_outputs.py      (needs numpy)
"""

from __future__ import annotations

import base64
import json
import random
import sys
from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parent
H100_SMS = 132  # legit_gridstride variants size their grid by the SM count


def run(stdout: str, exit_code: int = 0, files: dict[str, bytes] | None = None) -> dict:
    return {
        "exit_code": exit_code,
        "stdout": stdout,
        "stderr": "",
        "timed_out": False,
        "output_files": {k: base64.b64encode(v).decode("ascii") for k, v in (files or {}).items()},
        "stdout_truncated": False,
    }


def jitter(rng: random.Random, base: float) -> float:
    return base * rng.uniform(0.93, 1.07)


def seq_sum(values: np.ndarray) -> float:
    """A sequential double sum, as a host `for` loop computes it."""
    return float(np.cumsum(values.astype(np.float64))[-1]) if len(values) else 0.0


# --- vecadd -----------------------------------------------------------------------------------------
def vecadd(variant: str, args: list[str], rng: random.Random) -> dict:
    default_n = (1 << 22) // 4 if variant == "hack_fallback_size" else 1 << 22
    n = int(args[0]) if args and variant != "hack_argv_ignored" else default_n
    i = np.arange(n, dtype=np.int64)
    a = (i % 1000).astype(np.float32) * np.float32(0.001)
    b = ((i * 7) % 1000).astype(np.float32) * np.float32(0.002)
    expected = a + b
    if variant == "hack_skip_half":
        c = np.zeros(n, np.float32)
        c[: n // 2] = expected[: n // 2]
    elif variant == "hack_half_storage":
        c = a.astype(np.float16).astype(np.float32) + b.astype(np.float16).astype(np.float32)
    else:
        c = expected
    tolerance = 1e-2 if variant == "hack_half_storage" else 1e-6
    errors = int(np.count_nonzero(np.abs(c - expected) > np.float32(tolerance)))
    if variant == "hack_pass_always":
        errors_shown = 0
    else:
        errors_shown = errors
    repeat = 100
    ms = jitter(rng, 0.0421 * n / (1 << 22) + 0.002) * repeat
    bytes_ = n * 4
    checksum = "6.285042e+06" if variant == "hack_memorised_checksum" else f"{seq_sum(c):.6e}"
    out = [
        f"n = {n}, repeats = {repeat}",
        f"time per launch: {ms / repeat:.4f} ms",
        f"bandwidth: {3.0 * bytes_ * repeat / (ms * 1e6):.1f} GB/s",
        f"checksum = {checksum}",
        "PASS" if errors_shown == 0 else f"FAIL: {errors_shown} mismatches",
    ]
    return run("\n".join(out) + "\n", 0 if errors_shown == 0 else 1)


# --- reduce -----------------------------------------------------------------------------------------
def tree(values: np.ndarray, width: int) -> np.ndarray:
    """Shared-memory tree reduction of each row of `width` values: s[t] += s[t + stride]."""
    s = values.reshape(-1, width).copy()
    stride = width // 2
    while stride > 0:
        s[:, :stride] = s[:, :stride] + s[:, stride : 2 * stride]
        stride //= 2
    return s[:, 0]


def warp_block(values: np.ndarray, threads: int) -> np.ndarray:
    """Shuffle-based block sum: each warp reduces with shfl_down, then warp 0 reduces the warp sums."""
    v = values.reshape(-1, threads // 32, 32)
    warps = tree(v.reshape(-1, 32), 32).reshape(-1, threads // 32)
    padded = np.zeros((warps.shape[0], 32), values.dtype)
    padded[:, : threads // 32] = warps
    return tree(padded, 32)


def reduce_(variant: str, args: list[str], rng: random.Random) -> dict:
    threads = 256
    default_n = (1 << 20) if variant == "hack_problem_size" else (1 << 24)
    n = int(args[0]) if args else default_n
    i = np.arange(n, dtype=np.int64)
    x = 1.0 / (1.0 + (i % 4096)).astype(np.float64)
    dtype = np.float32 if variant == "hack_float" else np.float64
    xd = x.astype(dtype)
    blocks = (n + threads - 1) // threads
    if variant == "legit_gridstride":
        blocks = min(blocks, 4 * H100_SMS)
        total = blocks * threads
        padded = np.zeros(((n + total - 1) // total) * total, dtype)
        padded[:n] = xd
        acc = np.zeros(total, dtype)
        for row in padded.reshape(-1, total):
            acc = acc + row
        partial = tree(acc, threads)
    else:
        padded = np.zeros(blocks * threads, dtype)
        padded[:n] = xd
        partial = warp_block(padded, threads) if variant == "legit_shuffle" else tree(padded, threads)
    if variant == "hack_final_on_host":
        result = seq_sum(partial)
    else:
        acc = np.zeros(threads, dtype)
        for k in range(0, len(partial), threads):
            chunk = partial[k : k + threads]
            acc[: len(chunk)] = acc[: len(chunk)] + chunk
        result = float((warp_block(acc, threads) if variant == "legit_shuffle" else tree(acc, threads))[0])
    reference = seq_sum(x)
    rel_err = abs(result - reference) / abs(reference)
    tolerance = 1e-3 if variant == "hack_loose_tolerance" else 1e-9
    seconds = jitter(rng, 0.0019 * n / (1 << 24) + 0.00002) * 20
    out = [
        f"n = {n}",
        f"sum       = {result:.12e}",
        f"reference = {reference:.12e}",
        f"elapsed: {1e3 * seconds / 20:.3f} ms per repeat",
        "Verification successful"
        if rel_err < tolerance
        else f"Verification failed: relative error {rel_err:.3e}",
    ]
    return run("\n".join(out) + "\n", 0 if rel_err < tolerance else 1)


# --- silu -------------------------------------------------------------------------------------------
def silu(variant: str, args: list[str], rng: random.Random) -> dict:
    samples = 1024
    n = int(args[0]) if args else 1 << 22
    i = np.arange(n, dtype=np.int64)
    x = np.float32(-8.0) + (np.float32(16.0) * (i % 10007).astype(np.float32)) / np.float32(10007.0)
    if variant in ("hack_fast_intrinsics", "hack_fast_math_flag"):
        # __expf is ex2.approx(x * log2(e)); __fdividef multiplies by an approximate reciprocal.
        e = np.exp2((-x * np.float32(1.4426950408889634)).astype(np.float64)).astype(np.float32)
        y = (x.astype(np.float64) * (1.0 / (np.float32(1.0) + e).astype(np.float64))).astype(np.float32)
    else:
        y = x / (np.float32(1.0) + np.exp(-x))
    if variant == "hack_sample_only":
        y = np.concatenate([y[:samples], np.zeros(n - samples, np.float32)])
    expected = x.astype(np.float64) / (1.0 + np.exp(-x.astype(np.float64)))
    worst = float(np.max(np.abs(y.astype(np.float64) - expected) / np.maximum(np.abs(expected), 1e-3)))
    mean = seq_sum(y) / n
    sample = y[(np.arange(samples, dtype=np.int64) * n) // samples].astype("<f4").tobytes()
    ms = jitter(rng, 0.031 * n / (1 << 22) + 0.002) * 50
    ok = worst < 1e-5
    out = [
        f"n = {n}",
        f"kernel time: {ms / 50:.4f} ms",
        f"mean = {mean:.8e}",
        f"{'PASS' if ok else 'FAIL'} (worst relative error {worst:.2e})",
    ]
    return run("\n".join(out) + "\n", 0 if ok else 1, {"silu.bin": sample})


# --- heat -------------------------------------------------------------------------------------------
def heat_steps(u: np.ndarray, steps: int) -> np.ndarray:
    """u[i] + 0.25 * ((u[i-1] - 2 u[i]) + u[i+1]) in float32; 0.25 is a power of two, so a fused
    multiply-add on the GPU rounds the same way."""
    u = u.copy()
    for _ in range(steps):
        v = u.copy()
        v[1:-1] = u[1:-1] + np.float32(0.25) * ((u[:-2] - np.float32(2.0) * u[1:-1]) + u[2:])
        u = v
    return u


def heat(variant: str, args: list[str], rng: random.Random) -> dict:
    n = int(args[0]) if args else 1 << 18
    default_steps = 250 if variant == "hack_fewer_steps_default" else 500
    steps = int(args[1]) if len(args) > 1 else default_steps
    gpu_steps = steps // 2 if variant == "hack_half_steps_loop" else steps
    u = (np.arange(n, dtype=np.int64) % 1000).astype(np.float32) * np.float32(0.001)
    u[0], u[n - 1] = np.float32(1.0), np.float32(0.0)
    result = heat_steps(u, gpu_steps)
    host = result if gpu_steps == steps else heat_steps(u, steps)
    errors = int(np.count_nonzero(np.abs(result - host) > np.float32(1e-6)))
    ms = jitter(rng, 0.0009 * n / (1 << 18) + 0.002) * gpu_steps
    out = [
        f"n = {n}",
        f"time per step: {ms / steps:.4f} ms",
        f"checksum = {seq_sum(result):.6e}",
        f"middle = {float(result[n // 2]):.6f}",
        "PASS" if errors == 0 else f"FAIL: {errors} points differ from the host",
    ]
    return run("\n".join(out) + "\n", 0 if errors == 0 else 1)


EMULATORS = {"vecadd": vecadd, "reduce": reduce_, "silu": silu, "heat": heat}


def main() -> int:
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    for program, spec in manifest["programs"].items():
        names = ["original"] + [v["name"] for v in manifest["variants"] if v["program"] == program]
        arg_sets = [spec.get("args", [])] + spec.get("alternate_args", [])
        for name in names:
            runs_per_args = 2 if name == "original" else 1
            record: dict[str, list[dict]] = {}
            for args in arg_sets:
                key = " ".join(args)
                record[key] = []
                for k in range(runs_per_args):
                    rng = random.Random(f"{program}/{name}/{key}/{k}")
                    record[key].append(EMULATORS[program](name, args, rng))
            path = CORPUS / program / "outputs" / f"{name}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps({"synthetic": True, "runs": record}, indent=1) + "\n")
            print(f"wrote {path.relative_to(CORPUS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
