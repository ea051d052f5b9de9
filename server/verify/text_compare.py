"""Comparing a text stream of the candidate with the original's, line by line and number by number.

Lines are paired by alignment.py: a missing line is reported as missing rather than as every later
line differing.
Every difference names its line and number, with both values, e.g.
"line 12, number 3: expected 1.2345e+03, got 1.2301e+03 (rel. diff 3.6e-03 > rtol 1e-05)".
"""

from __future__ import annotations

from .alignment import Opcode, align, paired
from .findings import Finding
from .numbers import compare_number, split_lines, tokenize, unit_volatile_indices
from .outputs import looks_binary
from .volatile import MAX_COMPARED_LINES, StreamMask

# Differences reported one by one; the rest are counted in one summary finding.
MAX_REPORTED_DIFFERENCES = 12
# A candidate may print somewhat more than the original (a longer error message); not gigabytes.
_SIZE_FACTOR = 4
_SIZE_SLACK_CHARS = 2**20


def _quote(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _first_difference(a: str, b: str) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _size(chars: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if chars >= scale:
            return f"{chars / scale:.1f} {unit}"
    return f"{chars} bytes"


def _line_name(i: int, j: int) -> str:
    return f"line {j + 1}" if i == j else f"line {j + 1} (line {i + 1} of the original)"


def output_size_finding(original: str, candidate: str, label: str, check: str = "stdout") -> Finding | None:
    """A candidate may print somewhat more than the original (a longer message), not orders of magnitude."""
    if len(candidate) > _SIZE_FACTOR * len(original) + _SIZE_SLACK_CHARS:
        return Finding(
            check,
            "fail",
            f"the candidate wrote {_size(len(candidate))} to {label}, the original {_size(len(original))}",
        )
    return None


def compare_text(
    original: str,
    candidate: str,
    mask: StreamMask,
    *,
    rtol: float,
    atol: float,
    label: str = "stdout",
    check: str = "stdout",
) -> list[Finding]:
    """Findings for every way `candidate` differs from `original` outside the volatile mask."""
    if looks_binary(original) or looks_binary(candidate):
        if original == candidate:
            return []
        at = _first_difference(original, candidate)
        return [
            Finding(
                check,
                "fail",
                f"{label} is not text (binary or not UTF-8), so it is compared exactly: it first differs "
                f"at character {at} (the original wrote {_size(len(original))}, "
                f"the candidate {_size(len(candidate))})",
            )
        ]
    if oversized := output_size_finding(original, candidate, label, check):
        return [oversized]
    findings: list[Finding] = []
    all_ours, all_theirs = split_lines(original), split_lines(candidate)
    ours, theirs = all_ours[:MAX_COMPARED_LINES], all_theirs[:MAX_COMPARED_LINES]
    if max(len(all_ours), len(all_theirs)) > MAX_COMPARED_LINES:
        findings.append(
            Finding(
                check,
                "info",
                f"{label} has more than {MAX_COMPARED_LINES} lines; only the first were compared",
            )
        )
    ops = align(ours, theirs)
    if len(all_ours) != len(all_theirs):
        findings.append(_count_finding(ours, theirs, ops, len(all_ours), len(all_theirs), label, check))
    differences = _compare_pairs(
        ours, theirs, paired(ops), mask, rtol=rtol, atol=atol, label=label, check=check
    )
    findings.extend(differences[:MAX_REPORTED_DIFFERENCES])
    if len(differences) > MAX_REPORTED_DIFFERENCES:
        lines = {f.line for f in differences}
        findings.append(
            Finding(
                check,
                "fail",
                f"... and {len(differences) - MAX_REPORTED_DIFFERENCES} more differences in {label} "
                f"({len(lines)} lines differ in all)",
            )
        )
    return findings


def _count_finding(
    ours: list[str],
    theirs: list[str],
    ops: list[Opcode],
    count_ours: int,
    count_theirs: int,
    label: str,
    check: str,
) -> Finding:
    fewer_more = "fewer" if count_theirs < count_ours else "more"
    gap, line = "past the compared lines", None
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            continue
        line = j1 + 1
        if tag == "delete":
            gap = f"line {i1 + 1} of the original ({_quote(ours[i1])}) is missing"
        elif tag == "insert":
            gap = f"the candidate's line {j1 + 1} ({_quote(theirs[j1])}) is not in the original"
        else:
            gap = (
                f"lines {i1 + 1}-{i2} of the original ({_quote(ours[i1])} ...) became "
                f"{j2 - j1} line(s) ({_quote(theirs[j1]) if j2 > j1 else 'nothing'} ...)"
            )
        break
    return Finding(
        check,
        "fail",
        f"the candidate printed {abs(count_ours - count_theirs)} lines {fewer_more} to {label} than the "
        f"original ({count_theirs} vs {count_ours}); first difference: {gap}",
        line,
    )


def _compare_pairs(
    ours: list[str],
    theirs: list[str],
    pairs: list[tuple[int, int]],
    mask: StreamMask,
    *,
    rtol: float,
    atol: float,
    label: str,
    check: str,
) -> list[Finding]:
    differences: list[Finding] = []
    for i, j in pairs:
        if ours[i] == theirs[j] or i in mask.lines:
            continue
        a, b = tokenize(ours[i]), tokenize(theirs[j])
        where = _line_name(i, j)
        if a.shape != b.shape or len(a.numbers) != len(b.numbers):
            differences.append(
                Finding(
                    check, "fail", f"{label} {where}: expected {_quote(a.text)}, got {_quote(b.text)}", j + 1
                )
            )
            continue
        by_units: set[int] | None = None  # computed only when a number differs: it costs more than comparing
        for k, (x, y) in enumerate(zip(a.numbers, b.numbers, strict=True)):
            reason = compare_number(x, y, rtol, atol)
            if reason is None or mask.masks_number(i, k):
                continue
            if by_units is None:
                by_units = unit_volatile_indices(a)
            if k not in by_units:
                differences.append(
                    Finding(
                        check,
                        "fail",
                        f"{label} {where}, number {k + 1}: expected {x.text}, got {y.text} ({reason})",
                        j + 1,
                    )
                )
    return differences
