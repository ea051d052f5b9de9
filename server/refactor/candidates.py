"""Candidates: what one model reply became (built, checked, measured, judged), and where it is kept.

Every candidate is kept, whatever became of it: in the job's folder in the Wattson data directory
(`jobs/<id>-<name>/trial-T/iteration-I[-fix-N]/`: the source, the model's reply, result.json) and as
a row of the SQLite history (History.add_candidate). A failed candidate's record says which check
failed and what it reported, which is also what went back to the model.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..judge import Decision, JudgeVerdict
from ..verify import Finding

# Candidate statuses, as stored in History (candidates.status).
ACCEPTED = "accepted"  # passed every check, measured less energy, not vetoed by the judge
NOT_BETTER = "not-better"  # passed every check, measured no saving
FAILED_FORMAT = (
    "failed-format"  # no usable code in the reply (no file, abbreviated, cut off twice, unchanged)
)
FAILED_BUILD = "failed-build"
FAILED_RUN = "failed-run"  # crashed, exited non-zero, timed out
WRONG_OUTPUT = "wrong-output"
SHORTCUT = "suspected-shortcut"  # an anti-hack finding
JUDGE_REJECTED = "judge-rejected"
PASSING = frozenset({ACCEPTED, NOT_BETTER})

_MAX_DETAIL_CHARS = 20_000


@dataclass
class Candidate:
    trial: int
    iteration: int
    attempt: int  # 0 for the iteration's first version, N for its N-th correction
    temperature: float
    source_text: str | None  # None when the reply held no usable file
    reply_text: str
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the code was extracted, when unusual
    status: str = ""
    failure_kind: str | None = None  # the correction prompt's kind, or "format"
    failure_detail: str | None = None  # what went back to the model
    findings: list[Finding] = field(default_factory=list)  # every check's findings
    check_profile: dict | None = None  # the check runs (outputs, kernels)
    compare: dict | None = None  # the measurement against the original
    verdict: JudgeVerdict | None = None
    decision: Decision | None = None
    folder: Path | None = None
    history_id: int | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        fix = f"-fix-{self.attempt}" if self.attempt else ""
        return f"t{self.trial}i{self.iteration}{fix}"

    @property
    def title(self) -> str:
        fix = f", correction {self.attempt}" if self.attempt else ""
        return f"trial {self.trial}, iteration {self.iteration}{fix}"

    @property
    def passed(self) -> bool:
        """Correct and measured (whether or not it saved energy)."""
        return self.status in PASSING

    @property
    def energy_verdict(self) -> dict | None:
        return (self.compare or {}).get("energy_ratio")

    @property
    def energy_ratio(self) -> float | None:
        verdict = self.energy_verdict
        return float(verdict["ratio"]) if verdict and verdict.get("ratio") is not None else None

    @property
    def saves_energy(self) -> bool:
        verdict = self.energy_verdict
        return bool(verdict) and verdict.get("kind") == "less"

    @property
    def needs_review(self) -> bool:
        return bool(self.decision and self.decision.needs_review)

    def fail(self, status: str, kind: str, detail: str) -> None:
        self.status, self.failure_kind, self.failure_detail = status, kind, detail

    def summary(self) -> dict:
        """The candidate as the history and result.json keep it (sources stored beside it)."""
        return {
            "trial": self.trial,
            "iteration": self.iteration,
            "attempt": self.attempt,
            "temperature": self.temperature,
            "status": self.status,
            "failure_kind": self.failure_kind,
            "failure_detail": (self.failure_detail or "")[:_MAX_DETAIL_CHARS] or None,
            "changes": self.changes,
            "notes": self.notes,
            "findings": [f.to_dict() for f in self.findings],
            "energy_ratio": self.energy_verdict,
            "time_ratio": (self.compare or {}).get("time_ratio"),
            "power_ratio": (self.compare or {}).get("power_ratio"),
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "decision": self.decision.to_dict() if self.decision else None,
            "folder": str(self.folder) if self.folder else None,
        }


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "program"


class JobFolder:
    """The job's folder: the original, each candidate, the report."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def create(cls, data_dir: Path, job_id: int, name: str) -> JobFolder:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return cls(data_dir / "jobs" / f"{job_id:05d}-{_safe_name(name)}-{stamp}")

    def write_text(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def write_json(self, relative: str, value: object) -> Path:
        return self.write_text(relative, json.dumps(value, indent=2, default=str) + "\n")

    def save_original(self, source_file: str, text: str, profile: dict | None) -> None:
        self.write_text(f"original/{PurePosixPath(source_file).name}", text)
        if profile is not None:
            self.write_json("original/profile.json", profile)

    def save_candidate(self, candidate: Candidate, source_file: str) -> Path:
        fix = f"-fix-{candidate.attempt}" if candidate.attempt else ""
        folder = self.root / f"trial-{candidate.trial}" / f"iteration-{candidate.iteration}{fix}"
        folder.mkdir(parents=True, exist_ok=True)
        candidate.folder = folder
        if candidate.source_text is not None:
            (folder / PurePosixPath(source_file).name).write_text(candidate.source_text, encoding="utf-8")
        (folder / "reply.md").write_text(candidate.reply_text, encoding="utf-8")
        result = candidate.summary()
        result["check_profile"] = candidate.check_profile
        result["compare"] = candidate.compare
        (folder / "result.json").write_text(
            json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8"
        )
        return folder
