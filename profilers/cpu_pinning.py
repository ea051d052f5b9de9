"""Which host CPUs a measured program is pinned to ([measure] pin_cpus), and pinning it there.

A single-threaded host phase that the scheduler moves between cores (or shares with other work) takes
a different time on every run, and the GPU waits through it at near-idle power: pinning the program
to one core steadied HeCBench's floydwarshall from 7.3 % to 1.3 % run-to-run wall-time variation on
an H200 host (docs/benchmarks.md). A program with a multi-threaded host side must get as many cores
as it has threads, or pinning slows it down; so it is off unless asked for.

Cores come from those the driver calls close to the GPU (its NUMA node), from the high end, where
the kernel puts less housekeeping work; where the driver does not say, from all the agent may use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def choose_cpus(count: int, near_gpu: Sequence[int] | None, allowed: Sequence[int] | None = None) -> list[int]:
    """`count` CPU ids to pin to (fewer when fewer are allowed); [] for count 0 (no pinning)."""
    if count <= 0:
        return []
    usable = sorted(allowed if allowed is not None else os.sched_getaffinity(0))
    near = [c for c in (near_gpu or []) if c in set(usable)]
    pool = near if len(near) >= count else usable
    return pool[-count:]


def pin_note(cpus: Sequence[int], asked: int, near_gpu: Sequence[int] | None) -> str:
    """How the runs were pinned, in words, for the result."""
    where = "near the GPU" if near_gpu and set(cpus) <= set(near_gpu) else "of those this agent may use"
    text = f"each run pinned to CPU{'s' if len(cpus) > 1 else ''} {', '.join(map(str, cpus))} ({where})"
    if len(cpus) < asked:
        text += f"; {asked} were asked for, only {len(cpus)} are available"
    return text


def pinning_preexec(cpus: Sequence[int]):
    """A preexec function that binds the child (and everything it starts) to `cpus`."""
    chosen = set(cpus)

    def pin() -> None:
        os.sched_setaffinity(0, chosen)

    return pin
