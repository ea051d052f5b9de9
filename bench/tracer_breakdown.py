"""Where the kernel tracer's wall time goes: variants of profilers/kernels/inject.c, interleaved.

Run on a GPU host (after `. bench/device_setup.sh` there):

    python bench/tracer_breakdown.py --dir HECBENCH/src/jacobi-cuda --build "make ARCH=sm_90" \\
        --run ./main --rounds 25 --out tracer_breakdown.jsonl

Each variant is the shipped tracer with one part switched off or on, built with gcc against this
host's CUPTI:

  empty     an injection library that does nothing: the driver's cost of loading one
  none      CUPTI loaded and its buffer callbacks registered, no activity enabled
  kernels   the tracer as shipped (kernel records)
  copies    the tracer with memcpy and memset records (what --kernel-copies asks for)

Every round runs the program once plainly and once under each variant, in a fresh random order.
The program's own timing line, when `--per-iteration-regex` finds one, separates a cost per launch
(inside the program's timed loop) from a fixed one (start-up, exit). One JSON line per run, appended
as it finishes; the summary goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wattson.profilers.kernels.build import COPIES_ENV, SOURCE, TRACE_ENV, compile_tracer  # noqa: E402

KERNEL_ENABLE = 'enable(&t, CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, "kernel")'
COPIES_ASKED = 'copies && strcmp(copies, "1") == 0'
EMPTY_LIBRARY = "int InitializeInjection(void) { return 1; }\n"


def variant_sources(source: str) -> dict[str, str]:
    """The C source of each variant; a change to inject.c that moves these lines fails here, loudly."""
    for needle in (KERNEL_ENABLE, COPIES_ASKED):
        if needle not in source:
            raise SystemExit(f"inject.c no longer contains {needle!r}: update bench/tracer_breakdown.py")
    return {
        "empty": EMPTY_LIBRARY,
        "none": source.replace(KERNEL_ENABLE, "1").replace(COPIES_ASKED, "0"),
        "kernels": source,
        "copies": source,  # the same library, run with the copies variable set
    }


def build_variants(work: Path) -> dict[str, Path]:
    libraries: dict[str, Path] = {}
    built: dict[str, Path] = {}
    for name, text in variant_sources(SOURCE.read_text()).items():
        if text in built:
            libraries[name] = built[text]
            continue
        c_file, library = work / f"{name}.c", work / f"lib{name}.so"
        c_file.write_text(text)
        if text == EMPTY_LIBRARY:  # no CUPTI: the driver's cost of loading any injection library
            subprocess.run(["gcc", "-shared", "-fPIC", "-O2", str(c_file), "-o", str(library)], check=True)
        else:
            compile_tracer(c_file, library)
        libraries[name] = built[text] = library
    return libraries


def run_once(variant: str, libraries: dict[str, Path], command: list[str], cwd: Path, trace: Path,
             regex: re.Pattern[str] | None) -> dict:
    env = dict(os.environ)
    for key in ("CUDA_INJECTION64_PATH", TRACE_ENV, COPIES_ENV):
        env.pop(key, None)
    trace.unlink(missing_ok=True)
    if variant != "plain":
        env["CUDA_INJECTION64_PATH"] = str(libraries[variant])
        env[TRACE_ENV] = str(trace)
        if variant == "copies":
            env[COPIES_ENV] = "1"
    start = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall_s = time.monotonic() - start
    found = regex.search(done.stdout) if regex else None
    lines = trace.read_text(errors="replace").splitlines() if trace.exists() else []
    return {"variant": variant, "wall_s": wall_s, "exit_code": done.returncode,
            "per_iteration_s": float(found.group(1)) if found else None,
            "records": {tag: sum(line.startswith(tag + "\t") for line in lines) for tag in "KMSDE"}}


def summary(rows: list[dict], variants: list[str]) -> list[str]:
    def med(variant: str, key: str) -> float | None:
        values = [r[key] for r in rows if r["variant"] == variant and r[key] is not None and r["exit_code"] == 0]
        return statistics.median(values) if values else None

    base_wall, base_iter = med("plain", "wall_s"), med("plain", "per_iteration_s")
    out = ["| variant | wall (median) | vs plain | per iteration (median) | vs plain | records (last run) |",
           "|---|---:|---:|---:|---:|---|"]
    for v in variants:
        wall, per_iter = med(v, "wall_s"), med(v, "per_iteration_s")
        last = [r["records"] for r in rows if r["variant"] == v][-1]
        records = ", ".join(f"{k} {n}" for k, n in last.items() if n) or "none"
        out.append(f"| {v} | {wall:.3f} s | {100 * (wall / base_wall - 1):+.1f} % | "
                   + (f"{1e6 * per_iter:.1f} µs | {100 * (per_iter / base_iter - 1):+.1f} % | "
                      if per_iter and base_iter else "— | — | ")
                   + f"{records} |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, required=True, help="the program's folder")
    p.add_argument("--build", default=None, help="build command, run once in --dir")
    p.add_argument("--run", required=True, help="run command, in --dir")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--per-iteration-regex", default=r"Average execution time per iteration: ([0-9.eE+-]+)",
                   help="a regex whose group 1 is the program's own seconds per loop iteration")
    p.add_argument("--out", type=Path, default=Path("tracer_breakdown.jsonl"))
    args = p.parse_args(argv)
    if args.build:
        subprocess.run(args.build, shell=True, cwd=args.dir, check=True)
    regex = re.compile(args.per_iteration_regex) if args.per_iteration_regex else None
    command = shlex.split(args.run)
    with tempfile.TemporaryDirectory(prefix="wattson-tracer-breakdown-") as tmp:
        work = Path(tmp)
        libraries = build_variants(work)
        variants = ["plain", *libraries]
        for v in ("plain", "kernels"):  # warm-up: page cache, GPU clocks
            run_once(v, libraries, command, args.dir, work / "trace.tsv", regex)
        rows: list[dict] = []
        with args.out.open("a") as out:
            for i in range(args.rounds):
                order = variants[:]
                random.shuffle(order)
                for v in order:
                    row = run_once(v, libraries, command, args.dir, work / "trace.tsv", regex)
                    row.update(round=i, program=args.dir.name)
                    rows.append(row)
                    out.write(json.dumps(row) + "\n")
                    out.flush()
    failed = [r for r in rows if r["exit_code"] != 0]
    print(f"{args.dir.name}: {args.rounds} rounds of {', '.join(variants)}"
          + (f"; {len(failed)} runs failed (left out)" if failed else ""))
    print("\n".join(summary(rows, variants)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
