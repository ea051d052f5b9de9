"""Plays a GPU program against the scripted fake GPU (profilers/fake.py).

    python fake_gpu_program.py --load-file F --seconds S [--work 1.05] [--exit N] [--print PASS]
                               [--host-seconds LO:HI --seed K]

Sets the fake GPU's load to 1 by writing "1" to F, stays busy for S * work seconds, sets the load
back to 0, prints, and exits with code N. With --host-seconds it first spins the CPU for a duration
drawn from [LO, HI] with the GPU idle, as a CPU-side input generator or reference check does.
The fake's counter and power follow the load file, so a run's true energy is known: busy_w * S *
work, plus whatever idle time surrounds it.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time


def set_load(path: str, value: str) -> None:
    # Replace the file atomically: the fake reads it every 2 ms and must never see it half written.
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(value)
    os.replace(tmp, path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--load-file", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--work", type=float, default=1.0, help="multiplies --seconds: 1.10 is 10 %% more work")
    p.add_argument("--exit", type=int, default=0, dest="exit_code")
    p.add_argument("--print", default=None, dest="text", help="printed after the work")
    p.add_argument("--host-seconds", default=None, help="LO:HI, a CPU-only phase before the GPU work")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-gpu", action="store_true", help="do the work without loading the GPU (a kernel "
                   "that never launched)")
    args = p.parse_args()
    if args.host_seconds:
        lo, hi = (float(v) for v in args.host_seconds.split(":"))
        until = time.monotonic() + random.Random(args.seed).uniform(lo, hi)
        while time.monotonic() < until:  # spin: the CPU time must grow with the phase, as real work's does
            pass
    if not args.no_gpu:
        set_load(args.load_file, "1")
    try:
        time.sleep(args.seconds * args.work)
    finally:
        set_load(args.load_file, "0")
    if args.text is not None:
        print(args.text, flush=True)
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
