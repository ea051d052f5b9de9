"""Where a program's run-to-run energy spread comes from: host time, and whether CPU pinning narrows it.

Run on a GPU host (after `. bench/device_setup.sh`):

    python bench/host_noise.py --programs colorwheel,floydwarshall --hec HECBENCH/src --runs 8

Each program is built once in a scratch folder, then run `--runs` times in each mode, modes
interleaved (plain, pinned, plain, pinned, ...): *plain* = as Wattson runs it today, *pinned* = the
process bound to one CPU core of the GPU's NUMA node (NVML's CPU affinity for the device). Per run:
wall time, user and system CPU time (from wait4), and the energy counter over the process run (plain
edges: read right before launch and right after exit, no alignment; enough to see a spread of 10 %).
One JSON line per run, then one summary line per program and mode (median, coefficient of variation).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import pynvml  # noqa: E402
from measurement_quality import target_for  # noqa: E402


def near_gpu_cpus(handle) -> list[int]:
    """CPU ids NVML names as close to the GPU (its NUMA node), from the affinity bitmask."""
    words = pynvml.nvmlDeviceGetCpuAffinity(handle, 16)
    cpus = [w * 64 + b for w, mask in enumerate(words) for b in range(64) if mask >> b & 1]
    allowed = os.sched_getaffinity(0)
    return [c for c in cpus if c in allowed] or sorted(allowed)


def materialize(program: dict, root: Path) -> Path:
    for rel, entry in program["files"].items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(entry["text"])
    return root / (program.get("workdir") or ".")


def one_run(cmd: str, cwd: Path, env: dict, handle, cpus: list[int] | None) -> dict:
    def pin():
        if cpus:
            os.sched_setaffinity(0, cpus)

    e0 = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, shell=True, cwd=cwd, env=env, preexec_fn=pin,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.monotonic() - t0
    e1 = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    return {"wall_s": wall_s, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "energy_j": (e1 - e0) / 1000, "exit": os.waitstatus_to_exitcode(status),
            "minor_faults": usage.ru_minflt, "vol_switches": usage.ru_nvcsw, "invol_switches": usage.ru_nivcsw}


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--programs", required=True)
    ap.add_argument("--hec", type=Path)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("host_noise.jsonl"))
    args = ap.parse_args()

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    near = near_gpu_cpus(handle)
    pinned = [near[len(near) // 2]]
    arch = "sm_{}{}".format(*pynvml.nvmlDeviceGetCudaComputeCapability(handle))
    header = {"kind": "host", "cpus_allowed": len(os.sched_getaffinity(0)), "near_gpu_cpus": near,
              "pinned_to": pinned, "loadavg": os.getloadavg()}
    print(json.dumps(header), flush=True)
    with args.out.open("a") as f:
        f.write(json.dumps(header) + "\n")
    for name in args.programs.split(","):
        program = target_for(name, args.hec).program
        scratch = Path(tempfile.mkdtemp(prefix=f"noise-{name}-"))
        cwd = materialize(program, scratch)
        env = {**os.environ, **program.get("env", {}), "WATTSON_ARCH": arch}
        build = program["build"].replace("$WATTSON_ARCH", arch)
        subprocess.run(build, shell=True, cwd=cwd, env=env, check=True, capture_output=True)
        runs: dict[str, list[dict]] = {"plain": [], "pinned": []}
        one_run(program["run"], cwd, env, handle, None)  # warm-up, not kept
        for i in range(args.runs):
            for mode, cpus in (("plain", None), ("pinned", pinned)):
                r = one_run(program["run"], cwd, env, handle, cpus)
                runs[mode].append(r)
                rec = {"kind": "run", "program": name, "mode": mode, "i": i, **r}
                print(json.dumps(rec), flush=True)
                with args.out.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
        for mode, rs in runs.items():
            rec = {"kind": "summary", "program": name, "mode": mode, "n": len(rs)}
            for key in ("wall_s", "user_s", "sys_s", "energy_j"):
                vals = [r[key] for r in rs]
                rec[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "cv": cv(vals)}
            print(json.dumps(rec), flush=True)
            with args.out.open("a") as f:
                f.write(json.dumps(rec) + "\n")
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
