"""Correctness before energy: the oracle that compares a candidate's run with the original's, the
static anti-hack checks on its source, and judges for what the agent observes at run time.

docs/verification.md describes every check and its defaults.
"""

from __future__ import annotations

from .findings import Finding, OracleResult, Severity, is_blocking
from .initcheck import check_initcheck
from .markers import DEFAULT_FAIL_REGEX, DEFAULT_PASS_REGEX
from .oracle import DEFAULT_ATOL, DEFAULT_RTOL, check_outputs
from .outputs import RunOutput
from .runtime_checks import (
    InputRuns,
    check_alternate_inputs,
    check_created_files,
    check_first_vs_later_durations,
    check_host_cpu_time,
    check_kernel_trace,
    check_repeat_runs,
    flag_large_saving,
    saving_ratio,
)
from .static_checks import check_candidate
from .volatile import VolatileMask, volatile_mask

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_FAIL_REGEX",
    "DEFAULT_PASS_REGEX",
    "DEFAULT_RTOL",
    "Finding",
    "InputRuns",
    "OracleResult",
    "RunOutput",
    "Severity",
    "VolatileMask",
    "check_alternate_inputs",
    "check_candidate",
    "check_created_files",
    "check_first_vs_later_durations",
    "check_host_cpu_time",
    "check_initcheck",
    "check_kernel_trace",
    "check_outputs",
    "check_repeat_runs",
    "flag_large_saving",
    "is_blocking",
    "saving_ratio",
    "volatile_mask",
]
