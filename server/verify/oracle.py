"""The oracle: does a candidate's run produce what the original's run produced?

Checked in order, each failure worded so the LLM and the user can act on it:
time limit -> exit code -> PASS/FAIL markers -> stdout, line by line and number by number within
rtol/atol, volatile fields masked -> declared output files. Defaults: rtol 1e-5, atol 1e-8
(numpy's), overridden by `rtol`/`atol` in wattson.toml. docs/verification.md describes it all.
"""

from __future__ import annotations

from .findings import Finding, OracleResult
from .markers import DEFAULT_FAIL_REGEX, DEFAULT_PASS_REGEX, Patterns, check_markers
from .output_files import compare_file, validate_mode
from .outputs import RunOutput, describe_exit, tail_lines
from .text_compare import compare_text, output_size_finding
from .volatile import STDOUT, VolatileMask, volatile_mask

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-8


def _crashed(run: RunOutput) -> bool:
    return run.exit_code is None or run.exit_code < 0


def check_outputs(
    original: RunOutput,
    candidate: RunOutput,
    mask: VolatileMask | None = None,
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    pass_regex: Patterns | None = DEFAULT_PASS_REGEX,
    fail_regex: Patterns | None = DEFAULT_FAIL_REGEX,
    file_modes: dict[str, str] | None = None,
) -> OracleResult:
    """Compare one candidate run with the original's (the first run the mask was learned from).

    Raises ValueError, worded for the user, for settings that cannot work (bad regex, unknown mode).
    """
    file_modes = dict(file_modes or {})
    for name, mode in file_modes.items():
        if problem := validate_mode(mode):
            raise ValueError(f"output file {name}: {problem}")
    if rtol < 0 or atol < 0:
        raise ValueError(
            f"rtol and atol must not be negative (got rtol={rtol}, atol={atol}); fix wattson.toml"
        )
    if mask is None:
        mask = volatile_mask([original])
    findings: list[Finding] = []

    if original.timed_out:
        findings.append(
            Finding(
                "timeout",
                "fail",
                "the original program itself ran past its time limit, so there is no reference output; "
                "raise run_timeout_s in wattson.toml or run it on a smaller input",
            )
        )
        return OracleResult.from_findings(findings)
    if candidate.timed_out:
        findings.append(
            Finding(
                "timeout",
                "fail",
                "the candidate ran past its time limit and was killed (the original finished): "
                "it may hang, deadlock, or do far more work than the original",
            )
        )
        return OracleResult.from_findings(findings)

    if candidate.exit_code != original.exit_code:
        stderr = tail_lines(candidate.stderr)
        findings.append(
            Finding(
                "exit-code",
                "fail",
                f"the original {describe_exit(original.exit_code)}; "
                f"the candidate {describe_exit(candidate.exit_code)}"
                + (f". Its stderr ends with:\n{stderr}" if stderr else ""),
            )
        )
        if _crashed(candidate):
            return OracleResult.from_findings(findings)

    if oversized := output_size_finding(original.stdout, candidate.stdout, "stdout"):
        return OracleResult.from_findings([*findings, oversized])
    findings += check_markers(
        original.stdout,
        original.stderr,
        candidate.stdout,
        candidate.stderr,
        pass_regex=pass_regex,
        fail_regex=fail_regex,
    )
    findings += _check_truncation(original, candidate)
    findings += compare_text(
        original.stdout, candidate.stdout, mask.stream(STDOUT), rtol=rtol, atol=atol, label="stdout"
    )
    findings += _check_files(original, candidate, mask, file_modes, rtol=rtol, atol=atol)
    if mask.runs < 2:
        findings.append(
            Finding(
                "volatile-mask",
                "info",
                "the original was run once, so only numbers next to time or bandwidth units were treated as "
                "varying between runs; run it twice to learn the rest (addresses, seeds, dates)",
            )
        )
    return OracleResult.from_findings(findings)


def _check_truncation(original: RunOutput, candidate: RunOutput) -> list[Finding]:
    if candidate.stdout_truncated and not original.stdout_truncated:
        return [
            Finding(
                "output-size",
                "fail",
                "the candidate printed more than the output cap to stdout and was cut off; "
                "the original did not",
            )
        ]
    if candidate.stdout_truncated:
        return [
            Finding(
                "output-size", "info", "both programs exceeded the output cap; only what was kept is compared"
            )
        ]
    return []


def _auto_mode(original: bytes, candidate: bytes) -> str:
    try:
        original.decode("utf-8")
        candidate.decode("utf-8")
    except UnicodeDecodeError:
        return "hash"
    return "text"


def _check_files(
    original: RunOutput,
    candidate: RunOutput,
    mask: VolatileMask,
    file_modes: dict[str, str],
    *,
    rtol: float,
    atol: float,
) -> list[Finding]:
    findings: list[Finding] = []
    names = sorted(set(file_modes) | set(original.output_files) | set(candidate.output_files))
    for name in names:
        ours, theirs = original.output_files.get(name), candidate.output_files.get(name)
        if ours is None and theirs is None:
            findings.append(
                Finding(
                    "output-file",
                    "info",
                    f"declared output file {name} was written by neither program; "
                    "check `output_files` in wattson.toml",
                )
            )
            continue
        if theirs is None:
            findings.append(
                Finding("output-file", "fail", f"the original writes {name}; the candidate does not")
            )
            continue
        if ours is None:
            findings.append(
                Finding("output-file", "fail", f"the candidate writes {name}; the original does not")
            )
            continue
        mode = file_modes.get(name) or _auto_mode(ours, theirs)
        findings += compare_file(name, ours, theirs, mode, mask.stream(name), rtol=rtol, atol=atol)
    return findings
