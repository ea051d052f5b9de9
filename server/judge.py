"""The LLM judge: a second screen over a candidate that already passed the oracle and the anti-hack checks.

The judge is a separate conversation (prompts/judge_system.md, prompts/judge.md) that sees the
original and the candidate, their diff, both outputs, every automatic finding and the
measurements, and answers through a JSON schema: {verdict: accept|reject, reasons, risks}.
Its authority is one-sided: a reject vetoes a candidate; an accept never overrides the oracle
(`decide`). A judge that cannot answer (refusal, a broken endpoint) leaves the candidate to a person.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .llm import LlmCancelled, LlmError, LlmProvider, Message
from .prompt_render import JUDGE_SCHEMA, judge_context, render_prompt
from .verify import Finding, OracleResult

JUDGE_MAX_TOKENS = 8_000
JUDGE_TEMPERATURE = 0.0
_MAX_ITEMS = 20  # reasons/risks kept; a judge that writes a hundred says nothing more
_MAX_ITEM_CHARS = 600

VERDICT_ACCEPT = "accept"
VERDICT_REJECT = "reject"
VERDICT_UNAVAILABLE = "unavailable"  # the judge could not answer; a person decides


@dataclass
class JudgeVerdict:
    verdict: str  # "accept" | "reject" | "unavailable"
    reasons: list[str] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)
    error: str | None = None  # why the judge is unavailable

    @property
    def accepted(self) -> bool:
        return self.verdict == VERDICT_ACCEPT

    @property
    def rejected(self) -> bool:
        return self.verdict == VERDICT_REJECT

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> JudgeVerdict:
        return cls(
            verdict=str(d["verdict"]),
            reasons=list(d.get("reasons") or []),
            risks=list(d.get("risks") or []),
            error=d.get("error"),
        )

    def feedback(self) -> str:
        """For the optimizer, after a reject: the judge's reasons, as the failure detail."""
        lines = ["A reviewer rejected this version:"] + [f"- {r}" for r in self.reasons]
        if self.risks:
            lines += ["Risks it named:"] + [f"- {r}" for r in self.risks]
        return "\n".join(lines)


@dataclass
class JudgeMaterial:
    """What the judge reviews. Outputs are the text each program printed (stdout, then stderr)."""

    source_file: str
    language: str  # "CUDA" | "HIP"
    code_tag: str  # the fence language, "cuda"
    original_code: str
    candidate_code: str
    diff: str
    original_output: str
    candidate_output: str
    findings: list[Finding]  # oracle, static and run-time findings that did not fail the candidate
    checks_summary: str  # one line naming the checks that passed
    measurements: str  # the comparison, in words (prompt_render.compare_summary)


def parse_verdict(answer: object) -> JudgeVerdict:
    """The schema's answer as a JudgeVerdict; ValueError when it does not fit the schema.

    Providers already check the schema; this is the judge's own guard, because a verdict that is
    misread (a "Reject" read as anything but a reject) would let a hack through."""
    if not isinstance(answer, dict):
        raise ValueError(f"the judge's answer is not a JSON object: {answer!r:.200}")
    verdict = answer.get("verdict")
    if not isinstance(verdict, str) or verdict.strip().lower() not in (VERDICT_ACCEPT, VERDICT_REJECT):
        raise ValueError(f'the judge\'s verdict must be "accept" or "reject", got {verdict!r:.100}')
    lists: dict[str, list[str]] = {}
    for key in ("reasons", "risks"):
        value = answer.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"the judge's `{key}` must be a list of strings, got {value!r:.200}")
        lists[key] = [v.strip()[:_MAX_ITEM_CHARS] for v in value if v.strip()][:_MAX_ITEMS]
    return JudgeVerdict(verdict=verdict.strip().lower(), reasons=lists["reasons"], risks=lists["risks"])


def _checks_text(material: JudgeMaterial) -> str:
    lines = [material.checks_summary]
    if material.findings:
        lines.append("Findings that did not reject it (a person may need to look at `review` ones):")
        lines += [f"- {f.describe()}" for f in material.findings]
    else:
        lines.append("No findings.")
    return "\n".join(lines)


def judge_messages(material: JudgeMaterial) -> tuple[str, list[Message]]:
    """The judge's system prompt and its one user message, exactly as sent."""
    system = render_prompt("judge_system", {"language": material.language}).text
    context = judge_context(
        original_code=material.original_code,
        candidate_code=material.candidate_code,
        diff=material.diff,
        original_output=material.original_output,
        candidate_output=material.candidate_output,
        oracle_results=_checks_text(material),
        measurements=material.measurements,
        code_tag=material.code_tag,
    )
    context["source_file"] = material.source_file
    return system, [Message("user", render_prompt("judge", context).text)]


def judge_candidate(llm: LlmProvider, material: JudgeMaterial) -> JudgeVerdict:
    """Ask the judge. LlmCancelled propagates (the job is being cancelled); any other failure gives
    an "unavailable" verdict carrying the reason, so the candidate goes to a person instead."""
    system, messages = judge_messages(material)
    try:
        answer = llm.complete_json(
            system, messages, schema=JUDGE_SCHEMA, temperature=JUDGE_TEMPERATURE, max_tokens=JUDGE_MAX_TOKENS
        )
        return parse_verdict(answer)
    except LlmCancelled:
        raise
    except LlmError as e:
        return JudgeVerdict(VERDICT_UNAVAILABLE, error=f"the judge could not answer: {e}")
    except ValueError as e:
        return JudgeVerdict(VERDICT_UNAVAILABLE, error=str(e))


@dataclass
class Decision:
    accepted: bool  # may be offered to the user
    needs_review: bool  # offered only with a clear "a person must look at this"
    why: list[str]  # what decided, in words for the report

    def to_dict(self) -> dict:
        return asdict(self)


def decide(oracle: OracleResult, verdict: JudgeVerdict | None) -> Decision:
    """Oracle first, then the judge's veto. An accept never overrides a failed oracle."""
    if not oracle.passed:
        failed = [f.describe() for f in oracle.findings if f.severity == "fail"]
        return Decision(False, False, ["the automatic checks rejected it", *failed[:5]])
    if verdict is not None and verdict.rejected:
        return Decision(False, False, ["the judge rejected it", *verdict.reasons[:5]])
    why: list[str] = []
    needs_review = oracle.needs_review
    if needs_review:
        why += [f.describe() for f in oracle.findings if f.severity == "review"]
    if verdict is None:
        needs_review = True
        why.append("the judge was not asked")
    elif verdict.verdict == VERDICT_UNAVAILABLE:
        needs_review = True
        why.append(verdict.error or "the judge could not answer")
    else:
        why.append("the judge accepted it")
    return Decision(True, needs_review, why)
