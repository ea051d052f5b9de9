"""The LLM judge: schema handling, its one-sided authority, and what it is shown (real SDK, fake endpoint)."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from llm_fake_server import FakeLlmServer, Reply
from wattson.judge import (
    JudgeMaterial,
    JudgeVerdict,
    decide,
    judge_candidate,
    judge_messages,
    parse_verdict,
)
from wattson.llm import LlmCancelled, RetryPolicy, make_provider
from wattson.verify import Finding, OracleResult

FAST = RetryPolicy(max_attempts=1)
ACCEPT = {"verdict": "accept", "reasons": ["same arithmetic, coalesced"], "risks": []}


def material(**overrides) -> JudgeMaterial:
    values = dict(
        source_file="relax.cu",
        language="CUDA",
        code_tag="cuda",
        original_code="__global__ void k(float* x) { x[threadIdx.x] += 1; }\n",
        candidate_code="__global__ void k(float* __restrict__ x) { x[threadIdx.x] += 1; }\n",
        diff="--- a/relax.cu\n+++ b/relax.cu\n@@ -1 +1 @@\n-old\n+new\n",
        original_output="checksum 1.5\nPASS\n",
        candidate_output="checksum 1.5\nPASS\n",
        findings=[Finding("tuning", "info", "BLOCK changed from 256 to 128")],
        checks_summary="Passed automatic checks: compiles, same exit code.",
        measurements="Your version uses 12.0 % less energy than the original.",
    )
    values.update(overrides)
    return JudgeMaterial(**values)


@pytest.fixture
def server():
    with FakeLlmServer() as s:
        yield s


@pytest.fixture
def provider(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "judge-test-key")
    return make_provider(
        {"provider": "anthropic", "base_url": server.anthropic_base_url, "timeout_s": 5}, policy=FAST
    )


def test_parse_verdict_normalises_and_refuses_what_does_not_fit():
    verdict = parse_verdict({"verdict": " Reject", "reasons": ["loop shortened", " "], "risks": []})
    assert verdict.rejected and verdict.reasons == ["loop shortened"]
    for bad in (
        {"verdict": "maybe", "reasons": [], "risks": []},
        {"verdict": "accept", "reasons": "fine", "risks": []},
        {"verdict": "accept", "reasons": [1], "risks": []},
        ["accept"],
        None,
    ):
        with pytest.raises(ValueError):
            parse_verdict(bad)


def test_a_reject_vetoes_and_an_accept_never_overrides_the_oracle():
    passed = OracleResult.from_findings([])
    failed = OracleResult.from_findings([Finding("stdout", "fail", "line 3 differs")])
    review = OracleResult.from_findings([Finding("large-saving", "review", "saves 3.0x")])
    accept, reject = JudgeVerdict("accept", ["ok"]), JudgeVerdict("reject", ["skips work"])

    assert not decide(failed, accept).accepted
    assert "line 3 differs" in " ".join(decide(failed, accept).why)
    assert not decide(passed, reject).accepted and "skips work" in decide(passed, reject).why
    ok = decide(passed, accept)
    assert ok.accepted and not ok.needs_review
    flagged = decide(review, accept)
    assert flagged.accepted and flagged.needs_review and "saves 3.0x" in " ".join(flagged.why)
    unavailable = decide(passed, JudgeVerdict("unavailable", error="the judge could not answer: 529"))
    assert unavailable.accepted and unavailable.needs_review
    assert decide(passed, None).needs_review


def test_the_judge_sees_everything_and_answers_through_the_schema(server, provider):
    server.push(Reply(tool_input=ACCEPT))
    verdict = judge_candidate(provider, material())
    assert verdict.accepted and verdict.reasons == ["same arithmetic, coalesced"]
    body = server.requests[0].body
    assert body["tool_choice"]["type"] == "tool"  # a forced tool call: the schema is enforced by the API
    sent = body["messages"][-1]["content"]
    for needle in (
        "## Original (relax.cu)",
        "float* __restrict__ x",
        "## Diff",
        "+new",
        "checksum 1.5",
        "Passed automatic checks: compiles",
        "[info] tuning: BLOCK changed from 256 to 128",
        "12.0 % less energy",
        '"verdict"',
    ):
        assert needle in sent, needle
    assert "did not write it" in body["system"]
    system, messages = judge_messages(material())
    assert messages[0].content == sent and system == body["system"]


def test_an_off_schema_answer_gets_one_repair_round(server, provider):
    server.push(Reply(tool_input={"verdict": "looks fine"}), Reply(tool_input=ACCEPT))
    assert judge_candidate(provider, material()).accepted
    assert len(server.requests) == 2


def test_a_judge_that_cannot_answer_leaves_the_candidate_to_a_person(server, provider):
    server.push(Reply(text="", stop_reason="refusal"))
    verdict = judge_candidate(provider, material())
    assert verdict.verdict == "unavailable" and "declined" in verdict.error
    server.push(Reply(status=401, message="invalid x-api-key"))
    verdict = judge_candidate(provider, material())
    assert verdict.verdict == "unavailable" and "judge-test-key" not in verdict.error


def test_cancel_reaches_through_the_judge(tmp_path):
    script = tmp_path / "slow_judge.py"
    script.write_text("import sys, time\nsys.stdin.read()\ntime.sleep(30)\n")
    cancel = threading.Event()
    llm = make_provider(
        {"provider": "command", "command": f"{sys.executable} {script}"}, cancel=cancel, policy=FAST
    )
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(LlmCancelled):
        judge_candidate(llm, material())
    assert time.monotonic() - started < 5
