"""PASS/FAIL markers: the program's own verdict on its results, compared between original and candidate.

A marker is only evidence when it agrees with the rest of the output: the oracle still compares every
other line, so a candidate that prints PASS while its numbers differ fails. These rules catch what
line comparison words poorly: a candidate that prints FAIL, or that no longer prints PASS.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .findings import Finding

# Upper-case words as CUDA samples and benchmarks print them; "Verification failed" in any case.
DEFAULT_PASS_REGEX = r"\b(?:PASS(?:ED)?|SUCCESS(?:FUL)?)\b|(?i:\bverification (?:passed|successful)\b)"
DEFAULT_FAIL_REGEX = r"\bFAIL(?:ED|URE|S)?\b|(?i:\bverification failed\b)"


@dataclass(frozen=True)
class Marker:
    stream: str  # "stdout" | "stderr"
    line: int  # 1-based
    word: str
    text: str  # the whole line, shortened


@dataclass
class MarkerScan:
    passes: list[Marker]
    fails: list[Marker]


Patterns = str | Sequence[str]


def combine(patterns: Patterns) -> str:
    """One regex from one or several (wattson.toml may list several)."""
    if isinstance(patterns, str):
        return patterns
    return "|".join(f"(?:{p})" for p in patterns)


def compile_marker(patterns: Patterns, what: str) -> re.Pattern[str]:
    pattern = combine(patterns)
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(
            f"the {what} marker pattern {pattern!r} is not a valid regular expression ({e}); "
            "fix it in wattson.toml"
        ) from e


def scan_markers(
    stdout: str, stderr: str, pass_regex: Patterns | None, fail_regex: Patterns | None
) -> MarkerScan:
    """None for a pattern means the default one."""
    pass_re = compile_marker(DEFAULT_PASS_REGEX if pass_regex is None else pass_regex, "PASS")
    fail_re = compile_marker(DEFAULT_FAIL_REGEX if fail_regex is None else fail_regex, "FAIL")
    scan = MarkerScan([], [])
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        # finditer over the whole text runs at C speed; per-line searching of large outputs does not.
        for found, regex in ((scan.passes, pass_re), (scan.fails, fail_re)):
            last_line = -1
            for m in regex.finditer(text):
                start = text.rfind("\n", 0, m.start()) + 1
                if start == last_line:
                    continue  # one marker per line
                last_line = start
                end = text.find("\n", m.end())
                line = text[start : end if end >= 0 else len(text)]
                found.append(Marker(stream, text.count("\n", 0, start) + 1, m.group(), line.strip()[:160]))
    return scan


def _where(marker: Marker) -> str:
    return f"{marker.stream} line {marker.line}: {marker.text!r}"


def check_markers(
    original_stdout: str,
    original_stderr: str,
    candidate_stdout: str,
    candidate_stderr: str,
    *,
    pass_regex: Patterns | None = DEFAULT_PASS_REGEX,
    fail_regex: Patterns | None = DEFAULT_FAIL_REGEX,
) -> list[Finding]:
    original = scan_markers(original_stdout, original_stderr, pass_regex, fail_regex)
    candidate = scan_markers(candidate_stdout, candidate_stderr, pass_regex, fail_regex)
    findings: list[Finding] = []
    new_fail = candidate.fails[len(original.fails)] if len(candidate.fails) > len(original.fails) else None
    lost_pass = (
        original.passes[len(candidate.passes)] if len(candidate.passes) < len(original.passes) else None
    )
    if new_fail is not None:
        instead = f", where the original's passes ({_where(lost_pass)})" if lost_pass is not None else ""
        findings.append(
            Finding(
                "markers",
                "fail",
                f"the candidate's self-check fails ({_where(new_fail)}){instead}",
                new_fail.line if new_fail.stream == "stdout" else None,
            )
        )
    elif lost_pass is not None:
        findings.append(
            Finding(
                "markers",
                "fail",
                f"the candidate does not print the original's passed self-check ({_where(lost_pass)}): "
                f"{len(original.passes)} marker(s) in the original, {len(candidate.passes)} in the candidate",
            )
        )
    if len(candidate.passes) > len(original.passes):
        extra = candidate.passes[len(original.passes)]
        findings.append(
            Finding(
                "markers",
                "fail",
                f"the candidate prints a PASS marker the original does not ({_where(extra)})",
                extra.line if extra.stream == "stdout" else None,
            )
        )
    if original.fails and not original.passes:
        findings.append(
            Finding(
                "markers",
                "info",
                f"the original program's own self-check fails ({_where(original.fails[0])}); "
                "its output is still the reference, but it vouches for nothing",
                None,
            )
        )
    return findings
