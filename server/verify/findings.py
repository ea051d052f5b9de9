"""What the verifier says about a candidate: findings, and the verdict built from them.

A finding is one specific observation ("line 12, number 3: expected ..., got ..."). Its severity
decides what happens to the candidate: "fail" rejects it (and the message goes back to the LLM),
"review" keeps it from being accepted without a human looking, "info" is only reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Severity = Literal["fail", "review", "info"]

SEVERITIES: tuple[Severity, ...] = ("fail", "review", "info")

# Feedback goes into an LLM prompt and a report: a few hundred findings help nobody.
_MAX_FEEDBACK_FINDINGS = 30


@dataclass
class Finding:
    check: str  # stable name of the check, e.g. "stdout", "kernel-launch"; docs/verification.md lists them
    severity: Severity
    message: str  # says what differed and where, in words a user and an LLM can act on
    line: int | None = None  # 1-based line in the candidate (source or output) where it applies

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Finding:
        return cls(check=d["check"], severity=d["severity"], message=d["message"], line=d.get("line"))

    def describe(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"[{self.severity}] {self.check}{where}: {self.message}"


def is_blocking(finding: Finding) -> bool:
    """True when the finding keeps a candidate from being accepted automatically."""
    return finding.severity in ("fail", "review")


@dataclass
class OracleResult:
    passed: bool  # no "fail" finding; "review" findings still need a human (see needs_review)
    findings: list[Finding] = field(default_factory=list)

    @classmethod
    def from_findings(cls, findings: list[Finding]) -> OracleResult:
        return cls(passed=not any(f.severity == "fail" for f in findings), findings=list(findings))

    @property
    def needs_review(self) -> bool:
        return any(f.severity == "review" for f in self.findings)

    @property
    def accepted(self) -> bool:
        """Passed and nothing a human must look at first."""
        return self.passed and not self.needs_review

    def merged(self, more: list[Finding]) -> OracleResult:
        return OracleResult.from_findings(self.findings + list(more))

    def feedback(self) -> str:
        """LLM-ready text: what failed, where, and what to keep in mind when fixing it."""
        ordered = sorted(self.findings, key=lambda f: SEVERITIES.index(f.severity))
        if not ordered:
            return "The candidate's output matches the original's."
        head = (
            "The candidate was rejected: its results differ from the original program's."
            if not self.passed
            else "The candidate's output matches, but a reviewer must check the points below."
            if self.needs_review
            else "The candidate's output matches the original's. Notes:"
        )
        lines = [head]
        for f in ordered[:_MAX_FEEDBACK_FINDINGS]:
            lines.append(f"- {f.describe()}")
        if len(ordered) > _MAX_FEEDBACK_FINDINGS:
            lines.append(f"- ... and {len(ordered) - _MAX_FEEDBACK_FINDINGS} more findings not shown")
        if not self.passed:
            lines.append(
                "Fix the candidate so it computes the same results as the original on every input; "
                "do not change what the program prints, how it checks itself, or how much work it does."
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "findings": [f.to_dict() for f in self.findings]}

    @classmethod
    def from_dict(cls, d: dict) -> OracleResult:
        return cls(passed=bool(d["passed"]), findings=[Finding.from_dict(f) for f in d.get("findings", [])])
