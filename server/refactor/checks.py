"""Correctness before energy, for one candidate: which checks ran on what, and what their findings mean.

The checks themselves live in wattson.verify; this module feeds them the loop's runs (the
original's reference runs, the candidate's check runs, alternate inputs, the comparison's trials)
and sorts their findings into the failure kinds the correction prompt knows: "wrong output" for
results that differ, "suspected shortcut" for signs of skipped, cached or faked work.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace

from ..config import Config
from ..verify import (
    Finding,
    InputRuns,
    OracleResult,
    RunOutput,
    VolatileMask,
    check_alternate_inputs,
    check_candidate,
    check_created_files,
    check_first_vs_later_durations,
    check_host_cpu_time,
    check_initcheck,
    check_kernel_trace,
    check_outputs,
    check_repeat_runs,
    flag_large_saving,
    saving_ratio,
    volatile_mask,
)
from ..verify.output_files import compare_file
from .runs import (
    created_files,
    host_cpu_times_s,
    kernel_launches,
    run_durations_s,
    run_outputs,
    skipped_output_files,
)

WRONG_OUTPUT = "wrong output"
SHORTCUT = "suspected shortcut"
# Findings from these checks mean the candidate games the measurement rather than miscomputes.
_SHORTCUT_CHECKS = frozenset(
    {"repeat-runs", "kernel-trace", "created-files", "host-cpu-time", "large-saving", "uninitialised-read"}
)


def without_files(runs: list[RunOutput], names: set[str] | dict[str, str]) -> list[RunOutput]:
    """The runs with these output files taken out: a file one side did not return is compared on neither."""
    if not names:
        return list(runs)
    return [replace(r, output_files={k: v for k, v in r.output_files.items() if k not in names}) for r in runs]


def not_compared(skipped: dict[str, str]) -> list[Finding]:
    """A review finding per declared output file that was left out: an unchecked file never passes silently."""
    return [
        Finding(
            "output-file",
            "review",
            f"output file {name} was not compared with the original's, so nothing checked its contents "
            f"({why}); compare it by hand, or have the program write a smaller file",
        )
        for name, why in sorted(skipped.items())
    ]


@dataclass
class Reference:
    """What the original did, once per job: the runs every candidate is compared with."""

    runs: list[RunOutput]
    mask: VolatileMask
    durations_s: list[float]
    kernels: dict | None
    alternates: list[tuple[str, str, list[RunOutput]]] = field(default_factory=list)  # (args, run, runs)
    # Declared output files that some run of the original did not return (too large): name -> why.
    skipped_files: dict[str, str] = field(default_factory=dict)
    created_files: set[str] | None = None  # left in the run folder by the original's runs; None: unknown
    initcheck: dict | None = None  # the original's compute-sanitizer initcheck report; None: not run

    @classmethod
    def from_profile(cls, profile: dict) -> Reference:
        skipped = skipped_output_files(profile, "the original's")
        runs = without_files(run_outputs(profile), skipped)
        if not runs:
            raise ValueError("the original's profile has no runs to compare candidates with")
        return cls(
            runs=runs,
            mask=volatile_mask(runs),
            durations_s=run_durations_s(profile),
            kernels=profile.get("kernels"),
            skipped_files=skipped,
            created_files=created_files(profile),
            initcheck=profile.get("initcheck"),
        )

    def add_alternate(self, args: str, run: str, result: dict) -> None:
        """The original's runs with the alternate arguments `args` (a profile result)."""
        for name, why in skipped_output_files(result, f"the original's (arguments `{args}`)").items():
            self.skipped_files.setdefault(name, why)
        self.alternates.append((args, run, run_outputs(result)))


@dataclass
class Verification:
    """The findings so far; `failed` once any is a fail."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, findings: list[Finding] | Finding | None) -> None:
        """Adds findings; one already present (the same file left out at two stages) is not repeated."""
        if findings is None:
            return
        for f in [findings] if isinstance(findings, Finding) else findings:
            if f not in self.findings:
                self.findings.append(f)

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

    def _oracle_settings(self, dropped: dict[str, str]) -> dict:
        v = self.config.verify
        modes = {name: mode for name, mode in v.output_file_modes.items() if name not in dropped}
        return {"rtol": v.rtol, "atol": v.atol, "pass_regex": v.pass_regex, "fail_regex": v.fail_regex,
                "file_modes": modes}

    def _dropped(self, result: dict, whose: str) -> dict[str, str]:
        """Output files left out of the original's runs or of `result`'s: compared on neither side."""
        return {**skipped_output_files(result, whose), **self.reference.skipped_files}

    def initcheck(self, check_profile: dict, source_file: str | None) -> list[Finding]:
        """Reads of uninitialised GPU memory that the original does not make (compute-sanitizer)."""
        ours, theirs = self.reference.initcheck, check_profile.get("initcheck")
        if ours is None:
            return []
        if theirs is None:
            return [Finding("uninitialised-read", "review", "compute-sanitizer initcheck did not run on the "
                            "candidate: " + "; ".join(check_profile.get("warnings") or ["no reason given"]))]
        return check_initcheck(ours, theirs, source_file=source_file)

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
        """The oracle on the first check run (stdout and declared output files), and later runs
        against the first."""
        ref = self.reference
        dropped = self._dropped(check_profile, "the candidate's check")
        runs = without_files(run_outputs(check_profile), dropped)
        if not runs:
            return [Finding("exit-code", "fail", "the candidate's check run recorded no runs")]
        original = without_files(ref.runs[:1], dropped)[0]
        result = check_outputs(original, runs[0], ref.mask, **self._oracle_settings(dropped))
        findings = list(result.findings) + not_compared(dropped)
        if result.passed:
            findings += self._repeat_runs(runs, dropped)
        return findings

    def _repeat_runs(self, runs: list[RunOutput], dropped: dict[str, str]) -> list[Finding]:
        """Later check runs against the first. Files with a binary mode are compared in that mode
        (within rtol/atol); check_repeat_runs would compare them byte for byte."""
        v, mask = self.config.verify, self.reference.mask
        binary = {n: m for n, m in v.output_file_modes.items() if m.startswith("binary") and n not in dropped}
        findings = check_repeat_runs(without_files(runs, binary), mask, rtol=v.rtol, atol=v.atol)
        first = runs[0].output_files
        for k, later in enumerate(runs[1:], start=2):
            for name, mode in sorted(binary.items()):
                ours, theirs = first.get(name), later.output_files.get(name)
                if ours is None or theirs is None:
                    problems = [] if ours is theirs else [f"only one of the two runs wrote {name}"]
                else:
                    failed = compare_file(name, ours, theirs, mode, mask.stream(name), rtol=v.rtol, atol=v.atol)
                    problems = [f.message for f in failed if f.severity == "fail"]
                if problems:
                    findings.append(
                        Finding(
                            "repeat-runs",
                            "fail",
                            f"run {k} of the candidate wrote another {name} than its first run ({problems[0]}): "
                            "its results depend on what an earlier run left behind",
                        )
                    )
        return findings

    def created(self, check_profile: dict) -> list[Finding]:
        """Files the candidate's check runs leave in their folder that the original's runs do not."""
        before, after = self.reference.created_files, created_files(check_profile)
        if before is None or after is None:  # an agent that does not record them
            return []
        return check_created_files(before, after)

    def alternates(self, candidate_runs: list[tuple[str, dict]]) -> list[Finding]:
        """Each alternate argument set, run by the candidate once (a profile result), against the
        original's runs."""
        by_args = {args: runs for args, _, runs in self.reference.alternates}
        dropped = dict(self.reference.skipped_files)
        chosen: list[tuple[str, RunOutput]] = []
        for args, result in candidate_runs:
            outputs = run_outputs(result)
            if args in by_args and outputs:
                for name, why in skipped_output_files(result, f"the candidate's (arguments `{args}`)").items():
                    dropped.setdefault(name, why)
                chosen.append((args, outputs[0]))
        if not chosen:
            return []
        inputs = [
            InputRuns(args, without_files(by_args[args], dropped), without_files([run], dropped)[0])
            for args, run in chosen
        ]
        return check_alternate_inputs(inputs, **self._oracle_settings(dropped)) + not_compared(dropped)

    def kernels(self, candidate_kernels: dict | None) -> list[Finding]:
        before, after = kernel_launches(self.reference.kernels), kernel_launches(candidate_kernels)
        if not before or candidate_kernels is None:
            return []
        return check_kernel_trace(before, after)

    def measured(self, compare: dict) -> list[Finding]:
        """What the comparison shows: results that change in later runs, a cache, work moved to the
        host, a saving too large."""
        a_side, b_side = compare.get("a") or {}, compare.get("b") or {}
        ref = self.reference
        dropped = self._dropped(b_side, "the candidate's measured")
        findings: list[Finding] = not_compared(dropped)
        b_runs = without_files(run_outputs(b_side), dropped)
        original = without_files(ref.runs[:1], dropped)[0]
        for k, run in enumerate(b_runs, start=1):
            result = check_outputs(original, run, ref.mask, **self._oracle_settings(dropped))
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
        durations = check_first_vs_later_durations(run_durations_s(a_side), run_durations_s(b_side))
        if durations is not None:
            findings.append(durations)
        # Host CPU time from the trials of one comparison: both sides ran under the same conditions.
        a_cpu_s, b_cpu_s = host_cpu_times_s(a_side), host_cpu_times_s(b_side)
        if a_cpu_s and b_cpu_s:
            cpu = check_host_cpu_time(statistics.median(a_cpu_s), statistics.median(b_cpu_s))
            if cpu is not None:
                findings.append(cpu)
        a_energy = ((compare.get("a") or {}).get("energy_j") or {}).get("median")
        b_energy = ((compare.get("b") or {}).get("energy_j") or {}).get("median")
        if a_energy and b_energy:
            large = flag_large_saving(saving_ratio(float(a_energy), float(b_energy)))
            if large is not None:
                findings.append(large)
        return findings


def checks_summary(config: Config, alternates: int, kernels_checked: bool, initcheck: bool = False) -> str:
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
    if v.output_files:
        parts.append("declared output files (" + ", ".join(v.output_files) + ")")
    if alternates:
        parts.append(f"{alternates} alternate input(s)")
    if kernels_checked:
        parts.append("kernel launch counts")
    if initcheck:
        parts.append("no new reads of uninitialised GPU memory (compute-sanitizer initcheck)")
    text = "Passed automatic checks: " + ", ".join(parts) + "."
    return text + (" Also compared with the original's: files left in the run folder and host CPU time "
                   "(review findings, if any, are listed below).")
