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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def choose_cpus(count: int, near_gpu: Sequence[int] | None, allowed: Sequence[int] | None = None) -> list[int]:
    """`count` CPU ids to pin to (fewer when fewer are allowed); [] for count 0 (no pinning)."""
    if count <= 0:
        return []
    usable = sorted(allowed if allowed is not None else os.sched_getaffinity(0))
    near = [c for c in (near_gpu or []) if c in set(usable)]
    pool = near if len(near) >= count else usable
    return pool[-count:]


def pin_note(cpus: Sequence[int], asked: int, near_gpu: Sequence[int] | None,
             allowed: Sequence[int] | None = None) -> str:
    """How the runs were pinned, in words, for the result."""
    usable = set(allowed if allowed is not None else os.sched_getaffinity(0))
    if near_gpu and usable <= set(near_gpu):
        where = "the driver names every CPU here as near the GPU"
    elif near_gpu and set(cpus) <= set(near_gpu):
        where = "near the GPU"
    else:
        where = "of those this agent may use"
    text = f"each run pinned to CPU{'s' if len(cpus) > 1 else ''} {', '.join(map(str, cpus))} ({where})"
    if len(cpus) < asked:
        text += f"; {asked} were asked for, only {len(cpus)} are available"
    return text


class PinningError(Exception):
    """The chosen CPUs cannot be used (taken offline, or outside this process's cpuset)."""


@contextmanager
def thread_bound_to(cpus: Sequence[int]) -> Iterator[None]:
    """Binds the calling thread to `cpus` for the block; a process started inside inherits the binding.

    On Linux the affinity of pid 0 is the calling thread's, so the agent's other threads (sampler,
    output readers) keep theirs, and nothing runs in the child between fork and exec."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, set(cpus))
    except OSError as e:
        raise PinningError(f"cannot pin the run to CPU(s) {', '.join(map(str, cpus))}: {e.strerror or e}; "
                           "lower [measure] pin_cpus (--pin-cpus), or set it to 0") from e
    try:
        yield
    finally:
        try:
            os.sched_setaffinity(0, before)
        except OSError:
            pass  # the cpuset shrank meanwhile: this thread keeps the pinned CPUs, which it may still use
