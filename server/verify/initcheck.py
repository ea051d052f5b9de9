"""Judging compute-sanitizer initcheck runs: does the candidate read GPU memory that nothing wrote?

A candidate that skips a cudaMemset or a copy can print the right results by luck, when the
allocator hands back memory that still holds an earlier buffer's values. The agent runs the original
and the candidate under initcheck (profilers/sanitizer.py); this compares the two reports. Reads the
original makes too are reported for review, not as a failure: the candidate inherited them.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from ..profilers.sanitizer import InitcheckResult, SanitizerError
from .findings import Finding

CHECK = "uninitialised-read"
_SHOWN_ERRORS = 3  # distinct places quoted in a message; the count says how many there are


def _as_result(value: InitcheckResult | dict) -> InitcheckResult:
    return value if isinstance(value, InitcheckResult) else InitcheckResult.from_dict(value)


def _kernels(errors: list[SanitizerError]) -> list[str]:
    seen: list[str] = []
    for e in errors:
        name = e.kernel or "(host API call)"
        if name not in seen:
            seen.append(name)
    return seen


def _count_text(result: InitcheckResult, reads: list[SanitizerError]) -> str:
    """Like "12 uninitialised reads" when every printed error is one, else what was printed and the total."""
    if result.error_count is not None and len(reads) == len(result.errors):
        n = max(result.error_count, len(reads))
        return f"{n} uninitialised read{'s' if n != 1 else ''}"
    shown = f"{len(reads)} uninitialised read{'s' if len(reads) != 1 else ''} shown"
    if result.error_count is not None:
        return f"{shown} ({result.error_count} errors in all)"
    return shown


def _places(reads: list[SanitizerError]) -> str:
    """The first few distinct (kernel, line) places, one per line, for a person or an LLM."""
    lines: list[str] = []
    seen: set[tuple[str | None, str | None, str | None]] = set()
    for e in reads:
        key = (e.kernel, e.function, e.source)
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"  {e.describe()}")
        if len(lines) == _SHOWN_ERRORS:
            break
    return "\n".join(lines)


def _line_in(source_file: str | None, reads: list[SanitizerError]) -> int | None:
    """The line of the first read located in the candidate's own source file, if any."""
    if not source_file:
        return None
    name = PurePosixPath(source_file).name
    for e in reads:
        if e.source and ":" in e.source:
            path, _, line = e.source.rpartition(":")
            if PurePosixPath(path).name == name and line.isdigit():
                return int(line)
    return None


def check_initcheck(
    original: InitcheckResult | dict,
    candidate: InitcheckResult | dict,
    *,
    source_file: str | None = None,
) -> list[Finding]:
    """Findings from the initcheck reports of the original and the candidate (either as a dict).

    fail: the candidate reads uninitialised memory and the original, fully checked, does not.
    review: both do; or the check could not run or complete on the candidate; or the original could
    not be checked, so it is unknown whether the candidate's reads are new.
    source_file (the candidate's, relative or bare) sets the finding's line when a read is located in it.
    """
    o, c = _as_result(original), _as_result(candidate)
    c_reads, o_reads = c.uninitialized_reads, o.uninitialized_reads

    if c_reads:
        where = _places(c_reads)
        line = _line_in(source_file, c_reads)
        incomplete = "" if c.completed else f" (the check did not complete: {c.tool_failed})"
        if o_reads:
            new = [k for k in _kernels(c_reads) if k not in _kernels(o_reads)]
            new_text = f"; kernels with reads the original does not have: {', '.join(new)}" if new else ""
            return [
                Finding(
                    CHECK,
                    "review",
                    f"compute-sanitizer initcheck: the candidate reads GPU memory that nothing initialised, and so "
                    f"does the original ({_count_text(c, c_reads)} in the candidate, {_count_text(o, o_reads)} in the "
                    f"original{new_text}){incomplete}. First in the candidate:\n{where}",
                    line,
                )
            ]
        if not o.completed:
            return [
                Finding(
                    CHECK,
                    "review",
                    f"compute-sanitizer initcheck: the candidate reads GPU memory that nothing initialised "
                    f"({_count_text(c, c_reads)}){incomplete}; whether the original does too is unknown, because "
                    f"the check did not complete on the original ({o.tool_failed}). First:\n{where}",
                    line,
                )
            ]
        return [
            Finding(
                CHECK,
                "fail",
                f"compute-sanitizer initcheck: the candidate reads GPU memory that no kernel, cudaMemcpy or "
                f"cudaMemset wrote ({_count_text(c, c_reads)}); the original reads none{incomplete}. Its results "
                f"then depend on whatever the allocator hands back, such as an earlier buffer's values. "
                f"First:\n{where}\nInitialise every buffer before it is read, as the original does.",
                line,
            )
        ]

    if not c.completed:
        return [
            Finding(
                CHECK,
                "review",
                f"compute-sanitizer initcheck could not check the candidate for reads of uninitialised GPU memory: "
                f"{c.tool_failed}",
            )
        ]

    if (c.error_count or 0) > (o.error_count or 0):
        messages = list(dict.fromkeys(e.message for e in c.errors))[:_SHOWN_ERRORS]
        return [
            Finding(
                CHECK,
                "review",
                f"compute-sanitizer initcheck reported {c.error_count} errors in the candidate ({o.error_count or 0} "
                f"in the original), none of them a read of uninitialised memory: "
                f"{'; '.join(messages) or 'none was printed'}",
            )
        ]

    if o_reads:
        return [
            Finding(
                CHECK,
                "info",
                f"compute-sanitizer initcheck: the candidate no longer reads uninitialised GPU memory; the original "
                f"did ({_count_text(o, o_reads)}, first in kernel {_kernels(o_reads)[0]})",
            )
        ]
    return []
