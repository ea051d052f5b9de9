"""Choosing what to offer: the best candidate of a trial and of the job, and each trial's outcome.

A candidate can be offered only when it passed every automatic check, the judge did not veto it,
and the comparison says it uses less energy (the verdict's interval lies below 1 - min_effect).
Among those, the lowest median energy ratio wins; ties go to the narrower interval's upper end,
then to the earlier candidate. Candidates that need a person's review stay eligible: the diff
is only ever applied after a person saw it, and the report and label say what to look at.
"""

from __future__ import annotations

from .candidates import ACCEPTED, Candidate
from .metrics import TrialOutcome


def offerable(candidate: Candidate) -> bool:
    return candidate.status == ACCEPTED and candidate.saves_energy and candidate.source_text is not None


def rank(candidate: Candidate) -> tuple[float, float, float]:
    verdict = candidate.energy_verdict or {}
    ratio = float(verdict.get("ratio", 1.0))
    upper = float(verdict.get("ci_high", ratio))
    return (ratio, upper, candidate.created_at)


def best_candidate(candidates: list[Candidate]) -> Candidate | None:
    eligible = [c for c in candidates if offerable(c)]
    return min(eligible, key=rank, default=None)


def trial_outcome(candidates: list[Candidate]) -> TrialOutcome:
    """Passed when any candidate of the trial passed every check and was measured; its ratio is the
    best such candidate's (only offerable ones count as savings)."""
    passing = [c for c in candidates if c.passed]
    if not passing:
        return TrialOutcome(passed=False)
    best = best_candidate(passing)
    return TrialOutcome(passed=True, energy_ratio=best.energy_ratio if best else 1.0)


def percent_change(ratio: float) -> str:
    """0.877 -> "−12.3 %" (a real minus sign, as in the editor's label)."""
    value = (ratio - 1.0) * 100.0
    sign = "−" if value < 0 else "+"
    return f"{sign}{abs(value):.1f} %"


def ratio_with_ci(verdict: dict) -> str:
    """ "−12.3 % [−14.0, −10.6]" from a Verdict dict."""
    text = percent_change(float(verdict["ratio"]))
    low, high = verdict.get("ci_low"), verdict.get("ci_high")
    if low is not None and high is not None:
        text += f" [{percent_change(float(low))[:-2]}, {percent_change(float(high))[:-2]}]"
    return text


def energy_label(verdict: dict) -> str:
    """The refactor preview's label: "Wattson: −12.3 % energy [−14.0, −10.6]"."""
    text = f"Wattson: {percent_change(float(verdict['ratio']))} energy"
    low, high = verdict.get("ci_low"), verdict.get("ci_high")
    if low is not None and high is not None:
        text += f" [{percent_change(float(low))[:-2]}, {percent_change(float(high))[:-2]}]"
    return text


def best_so_far_text(best: Candidate | None) -> str:
    """For the measure_feedback prompt."""
    if best is None or best.energy_verdict is None:
        return "no version has used measurably less energy than the original yet."
    return f"{best.title}: {ratio_with_ci(best.energy_verdict)} energy against the original."
