"""Correctness before energy, for one candidate: which checks ran on what, and what their findings mean.

The checks themselves live in wattson.verify; this module feeds them the loop's runs (the
original's reference runs, the candidate's check runs, alternate inputs, the comparison's trials)
and sorts their findings into the failure kinds the correction prompt knows: "wrong output" for
results that differ, "suspected shortcut" for signs of skipped, cached or faked work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config
from ..verify import (
    Finding,
    InputRuns,
    OracleResult,
    RunOutput,
    VolatileMask,
    check_alternate_inputs,
    check_candidate,
    check_first_vs_later_durations,
    check_kernel_trace,
    check_outputs,
    check_repeat_runs,
    flag_large_saving,
    saving_ratio,
    volatile_mask,
)
from .runs import kernel_launches, run_durations_s, run_outputs

WRONG_OUTPUT = "wrong output"
SHORTCUT = "suspected shortcut"
# Findings from these checks mean the candidate games the measurement rather than miscomputes.
_SHORTCUT_CHECKS = frozenset(
    {"repeat-runs", "kernel-trace", "created-files", "host-cpu-time", "large-saving"}
)


@dataclass
class Reference:
    """What the original did, once per job: the runs every candidate is compared with."""

    runs: list[RunOutput]
    mask: VolatileMask
    durations_s: list[float]
    kernels: dict | None
    alternates: list[tuple[str, str, list[RunOutput]]] = field(default_factory=list)  # (args, run, runs)

    @classmethod
    def from_profile(cls, profile: dict) -> Reference:
        runs = run_outputs(profile)
        if not runs:
            raise ValueError("the original's profile has no runs to compare candidates with")
        return cls(
            runs=runs,
            mask=volatile_mask(runs),
            durations_s=run_durations_s(profile),
            kernels=profile.get("kernels"),
        )


@dataclass
class Verification:
    """The findings so far; `failed` once any is a fail."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, findings: list[Finding] | Finding | None) -> None:
        if findings is None:
            return
        self.findings += [findings] if isinstance(findings, Finding) else list(findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "fail"]

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def result(self) -> OracleResult:
        return OracleResult.from_findings(self.findings)

    def failure_kind(self) -> str:
        """The correction prompt's kind for the failures: shortcut when any is one."""
        static = {
            "iteration-count",
            "problem-size",
            "argv-parsing",
            "kernel-launch",
            "unguarded-pass",
            "verification-changed",
            "memorised-output",
            "timing-changed",
            "precision-lowered",
            "device-limits",
            "escape",
            "file-io",
        }
        if any(f.check in _SHORTCUT_CHECKS or f.check in static for f in self.failures):
            return SHORTCUT
        return WRONG_OUTPUT

    def feedback(self) -> str:
        return self.result().feedback()


class CandidateChecks:
    """The checks of one job, with the settings of its wattson.toml [verify]."""

    def __init__(self, config: Config, reference: Reference, original_source: str, build: str | None):
        self.config = config
        self.reference = reference
        self.original_source = original_source
        self.build = build or ""

    @property
    def _oracle_settings(self) -> dict:
        v = self.config.verify
        return {"rtol": v.rtol, "atol": v.atol, "pass_regex": v.pass_regex, "fail_regex": v.fail_regex}

    def static(self, candidate_source: str) -> list[Finding]:
        return check_candidate(
            self.original_source,
            candidate_source,
            original_build=self.build,
            candidate_build=self.build,
            pass_regex=self.config.verify.pass_regex,
            tolerance_allows_lower_precision=False,
        )

    def outputs(self, check_profile: dict) -> list[Finding]:
        """The oracle on the first check run, and later runs against the first."""
        runs = run_outputs(check_profile)
        if not runs:
            return [Finding("exit-code", "fail", "the candidate's check run recorded no runs")]
        ref = self.reference
        result = check_outputs(ref.runs[0], runs[0], ref.mask, **self._oracle_settings)
        findings = list(result.findings)
        if result.passed:
            findings += check_repeat_runs(
                runs, ref.mask, rtol=self.config.verify.rtol, atol=self.config.verify.atol
            )
        return findings

    def alternates(self, candidate_runs: list[tuple[str, RunOutput]]) -> list[Finding]:
        """Each alternate argument set, run by the candidate once, against the original's runs."""
        by_args = {args: runs for args, _, runs in self.reference.alternates}
        inputs = [InputRuns(args, by_args[args], run) for args, run in candidate_runs if args in by_args]
        return check_alternate_inputs(inputs, **self._oracle_settings) if inputs else []

    def kernels(self, candidate_kernels: dict | None) -> list[Finding]:
        before, after = kernel_launches(self.reference.kernels), kernel_launches(candidate_kernels)
        if not before or candidate_kernels is None:
            return []
        return check_kernel_trace(before, after)

    def measured(self, compare: dict) -> list[Finding]:
        """What the comparison shows: results that change in later runs, a cache, a saving too large."""
        findings: list[Finding] = []
        b_runs = run_outputs(compare.get("b") or {})
        ref = self.reference
        for k, run in enumerate(b_runs, start=1):
            result = check_outputs(ref.runs[0], run, ref.mask, **self._oracle_settings)
            failed = [f for f in result.findings if f.severity == "fail"]
            if failed:
                findings.append(
                    Finding(
                        failed[0].check,
                        "fail",
                        f"measured run {k} of the candidate differs from the original: {failed[0].message}",
                        failed[0].line,
                    )
                )
                break
        durations = check_first_vs_later_durations(
            run_durations_s(compare.get("a") or {}), run_durations_s(compare.get("b") or {})
        )
        if durations is not None:
            findings.append(durations)
        a_energy = ((compare.get("a") or {}).get("energy_j") or {}).get("median")
        b_energy = ((compare.get("b") or {}).get("energy_j") or {}).get("median")
        if a_energy and b_energy:
            large = flag_large_saving(saving_ratio(float(a_energy), float(b_energy)))
            if large is not None:
                findings.append(large)
        return findings


def checks_summary(config: Config, alternates: int, kernels_checked: bool) -> str:
    """One line naming what a candidate passed, for the judge and the report."""
    v = config.verify
    parts = [
        "compiles",
        "runs within its time limit",
        "same exit code",
        "PASS/FAIL markers",
        f"stdout within rtol {v.rtol:g} / atol {v.atol:g} (volatile fields masked)",
        "same output on repeated runs",
        "static anti-hack checks on the source",
    ]
    if alternates:
        parts.append(f"{alternates} alternate input(s)")
    if kernels_checked:
        parts.append("kernel launch counts")
    return "Passed automatic checks: " + ", ".join(parts) + "."
