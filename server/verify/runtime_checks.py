"""Judging what the agent observed at run time, for hacks that leave the default output unchanged.

Memorised outputs, results cached across runs, work moved to host threads or specialised to the
default input all print exactly what the original prints. The agent runs the extra experiments
(other inputs, repeated runs, a kernel trace, host CPU time); these pure functions judge the results.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .findings import Finding
from .markers import DEFAULT_FAIL_REGEX, DEFAULT_PASS_REGEX, Patterns
from .oracle import DEFAULT_ATOL, DEFAULT_RTOL, check_outputs
from .outputs import RunOutput
from .volatile import VolatileMask, volatile_mask

# A saving beyond this factor (original energy / candidate energy) goes to a human.
LARGE_SAVING_FACTOR = 2.0


@dataclass
class InputRuns:
    """One alternate argument set: the original run on it (twice, ideally) and the candidate once."""

    args: str  # as the user wrote it in wattson.toml, for messages
    original_runs: list[RunOutput]
    candidate: RunOutput


def check_alternate_inputs(
    inputs: list[InputRuns],
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    pass_regex: Patterns | None = DEFAULT_PASS_REGEX,
    fail_regex: Patterns | None = DEFAULT_FAIL_REGEX,
    file_modes: dict[str, str] | None = None,
) -> list[Finding]:
    """Every alternate input must pass the oracle too: a candidate tuned to the default input fails."""
    findings: list[Finding] = []
    for item in inputs:
        if not item.original_runs:
            raise ValueError(f"alternate input {item.args!r}: the original was not run on it")
        result = check_outputs(
            item.original_runs[0],
            item.candidate,
            volatile_mask(item.original_runs),
            rtol=rtol,
            atol=atol,
            pass_regex=pass_regex,
            fail_regex=fail_regex,
            file_modes=file_modes,
        )
        for f in result.findings:
            if f.severity == "info":
                continue
            findings.append(
                Finding(
                    "alternate-input",
                    f.severity,
                    f"with arguments `{item.args}`: [{f.check}] {f.message}",
                    f.line,
                )
            )
    return findings


def check_repeat_runs(
    candidate_runs: list[RunOutput],
    mask: VolatileMask,
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> list[Finding]:
    """Later runs of the candidate (same directory, same input) must print what its first run printed.

    A difference means the program's results depend on state an earlier run left behind."""
    findings: list[Finding] = []
    for k, later in enumerate(candidate_runs[1:], start=2):
        result = check_outputs(candidate_runs[0], later, mask, rtol=rtol, atol=atol)
        differences = [f for f in result.findings if f.severity == "fail"]
        if differences:
            findings.append(
                Finding(
                    "repeat-runs",
                    "fail",
                    f"run {k} of the candidate printed something other than its first run "
                    f"({differences[0].message}): its results depend on what an earlier run left behind",
                    differences[0].line,
                )
            )
    return findings


def check_first_vs_later_durations(
    original_s: list[float], candidate_s: list[float], *, factor: float = 2.0
) -> Finding | None:
    """A candidate whose later runs are much faster than its first, unlike the original, may cache results."""
    if len(original_s) < 2 or len(candidate_s) < 2:
        return None

    def speedup(runs: list[float]) -> float:
        later = statistics.median(runs[1:])
        return runs[0] / later if later > 0 else float("inf")

    ours, theirs = speedup(original_s), speedup(candidate_s)
    if theirs > factor * max(ours, 1.0):
        return Finding(
            "repeat-runs",
            "review",
            f"the candidate's later runs are {theirs:.1f}x faster than its first "
            f"(the original's: {ours:.1f}x): "
            "it may reuse results cached by an earlier run",
        )
    return None


def check_created_files(original_created: set[str], candidate_created: set[str]) -> list[Finding]:
    """Files the candidate leaves in its working directory that the original does not: a possible cache."""
    extra = sorted(candidate_created - original_created)
    if not extra:
        return []
    shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
    return [
        Finding(
            "created-files",
            "review",
            f"the candidate leaves files the original does not ({shown}): "
            "results must not be cached between runs",
        )
    ]


def check_host_cpu_time(
    original_cpu_s: float, candidate_cpu_s: float, *, factor: float = 1.5, min_extra_s: float = 0.5
) -> Finding | None:
    """Much more host CPU time than the original suggests GPU work moved to host threads."""
    if candidate_cpu_s > factor * original_cpu_s and candidate_cpu_s - original_cpu_s > min_extra_s:
        return Finding(
            "host-cpu-time",
            "review",
            f"the candidate used {candidate_cpu_s:.2f} s of host CPU time, "
            f"the original {original_cpu_s:.2f} s: "
            "work may have moved from the GPU to the host, where GPU energy does not see it",
        )
    return None


def check_kernel_trace(
    original_launches: dict[str, int], candidate_launches: dict[str, int]
) -> list[Finding]:
    """Kernel launch counts from the kernel trace (name -> launches in one run)."""
    total_original = sum(original_launches.values())
    total_candidate = sum(candidate_launches.values())
    if total_original and not total_candidate:
        return [
            Finding(
                "kernel-trace",
                "fail",
                f"the original launched {total_original} kernels; the candidate launched none",
            )
        ]
    findings: list[Finding] = []
    for name in sorted(set(original_launches) & set(candidate_launches)):
        before, after = original_launches[name], candidate_launches[name]
        if after < before:
            findings.append(
                Finding(
                    "kernel-trace",
                    "review",
                    f"kernel {name} ran {before} times in the original and {after} times in the candidate: "
                    "check that no repetition was skipped",
                )
            )
    return findings


def saving_ratio(original_j: float, candidate_j: float) -> float:
    """Original energy over candidate energy: 2.0 means the candidate uses half."""
    if candidate_j <= 0:
        return float("inf")
    return original_j / candidate_j


def flag_large_saving(ratio: float, *, limit: float = LARGE_SAVING_FACTOR) -> Finding | None:
    """`ratio` is original energy / candidate energy (see saving_ratio); above `limit` a human must look."""
    if ratio > limit:
        return Finding(
            "large-saving",
            "review",
            f"the candidate uses {ratio:.1f}x less energy than the original; savings above {limit:g}x are "
            "often work skipped rather than work done better, so a person must review this one",
        )
    return None
