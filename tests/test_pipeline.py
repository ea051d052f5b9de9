"""The whole optimize loop on our jacobi2d example, driven by recorded model replies.

Real: the anthropic SDK (talking to the loopback fake Messages API), the agent subprocess, nvcc
compiles of every candidate (a compile error in a recording reaches the model as nvcc wrote it), the
sandbox, the oracle, the static checks, SQLite. Fake: the model's replies (recorded transcripts)
and the GPU sensors. The test project's run plays the program on the fake GPU with the work factor
its source declares (tests/fixtures/transcripts/play.py), so a faster candidate really uses less
fake energy.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from agent_fixture import processes_mentioning
from llm_fake_server import FakeLlmServer, Reply
from script_module import load_script
from wattson.config import load_config
from wattson.project import resolve_program
from wattson.refactor.pipeline import OptimizeRequest, optimize

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPTS = REPO / "tests" / "fixtures" / "transcripts"
FAKE_PROGRAM = REPO / "tests" / "helpers" / "fake_gpu_program.py"
replay = load_script(TRANSCRIPTS / "replay.py")


def make_project(root: Path, load_file: Path, base_url: str, **options) -> Path:
    return replay.make_test_project(root, FAKE_PROGRAM, load_file, replay.anthropic_llm(base_url), **options)


def push_transcript(server: FakeLlmServer, name: str, source_file: str) -> int:
    replies = replay.load_replies(TRANSCRIPTS / name, source_file)
    for r in replies:
        if "tool_input" in r:
            server.push(Reply(tool_input=r["tool_input"]))
        else:
            server.push(Reply(text=r["text"], stop_reason=r["stop_reason"]))
    return len(replies)


def request_for(source: Path, **overrides) -> OptimizeRequest:
    config = load_config(source.parent / "wattson.toml")
    program = resolve_program(source, None, config)
    return OptimizeRequest(
        source_path=source.resolve(),
        source_text=source.read_text(),
        program=program,
        config=config,
        **overrides,
    )


def sent_user_texts(server: FakeLlmServer) -> list[str]:
    """The last user message of every request the model received, in order."""
    out = []
    for r in server.requests:
        content = r.body["messages"][-1]["content"]
        out.append(content if isinstance(content, str) else json.dumps(content))
    return out


def test_compile_error_goes_back_to_the_model_and_the_fix_saves_energy(
    tmp_path, fake_gpu, server, agent, history
):
    _, load = fake_gpu
    source = make_project(tmp_path, load, server.anthropic_base_url)
    push_transcript(server, "jacobi2d_compile_fix", "jacobi2d.cu")
    notes: list[str] = []
    fractions: list[float] = []
    outcome = optimize(
        request_for(source),
        agent=agent,
        history=history,
        progress=lambda m, f: (notes.append(m), fractions.append(f)),
        max_parallel_trials=1,
    )

    assert outcome.status == "improved", outcome.message
    assert server.pending() == 0
    texts = sent_user_texts(server)
    # The correction carried nvcc's own words about the undeclared identifier.
    correction = texts[3]
    assert "compile error" in correction and '"quarter" is undefined' in correction
    assert outcome.energy_ratio is not None and outcome.energy_ratio["kind"] == "less"
    assert 0.7 < outcome.energy_ratio["ratio"] < 0.95  # work 0.8 of the busy part, plus fixed start-up
    assert outcome.label.startswith("Wattson: −") and "energy" in outcome.label
    assert outcome.best_source is not None and "fake-gpu: work=0.8" in outcome.best_source
    assert outcome.diff.startswith("--- a/jacobi2d.cu\n+++ b/jacobi2d.cu\n")
    # The judge saw the diff, both outputs and the measurement.
    judge_request = texts[4]
    assert "## Diff" in judge_request and "checksum 8.388608e+06" in judge_request
    assert "less energy than the original" in judge_request

    stored = history.candidates(outcome.job_id)
    assert [c["status"] for c in stored] == ["failed-build", "accepted"]
    assert stored[1]["energy_ratio"] == pytest.approx(outcome.energy_ratio["ratio"])
    assert history.job(outcome.job_id)["status"] == "done"
    report = outcome.report_path.read_text()
    for needle in (
        "## Energy",
        "energy per run",
        "## Review",
        "Judge's verdict: **accept**",
        "relax() launches the same number of sweeps",
        "## The changes, as the model explains them",
        "coalesced loads and stores",
        "## Every candidate",
        "failed-build",
        "## Model, tokens and cost",
        "Sensors: scripted fake GPU",
        "```diff",
    ):
        assert needle in report, needle
    assert "power-timeline.png" in report  # matplotlib is a dependency: the plot is drawn
    folder = outcome.report_path.parent
    assert (folder / "trial-1" / "iteration-1" / "jacobi2d.cu").exists()
    assert (folder / "trial-1" / "iteration-1-fix-1" / "result.json").exists()
    assert (folder / "best.diff").read_text() == outcome.diff
    assert any("profiling the original" in n for n in notes) and any("measuring" in n for n in notes)
    # One trial of one iteration still moves the bar while the candidate is checked and measured.
    assert fractions == sorted(fractions) and fractions[-1] < 1
    during = {round(f, 2) for m, f in zip(notes, fractions, strict=True) if "trial 1 of B" in m}
    assert during and min(during) >= 0.28 and len(during) >= 2, during


def test_a_cut_off_reply_is_continued_and_joined(tmp_path, fake_gpu, server, agent, history):
    _, load = fake_gpu
    source = make_project(tmp_path, load, server.anthropic_base_url)
    push_transcript(server, "jacobi2d_truncated", "jacobi2d.cu")
    outcome = optimize(
        request_for(source, kernel="jacobi_sweep"), agent=agent, history=history, max_parallel_trials=1
    )

    assert outcome.status == "improved", outcome.message
    texts = sent_user_texts(server)
    assert "Focus: the user asked to optimize the kernel `jacobi_sweep`" in texts[1]
    assert "Your reply was cut off by the length limit" in texts[3]
    expected = "// fake-gpu: work=0.8\n" + (TRANSCRIPTS / "optimized" / "jacobi2d.cu").read_text()
    assert outcome.best_source == expected  # joined without a repeated or missing character
    # The continuation request carried the partial reply, then the model saw one joined reply.
    continued = server.requests[3].body["messages"]
    assert continued[-2]["role"] == "assistant" and "```cuda file=jacobi2d.cu" in continued[-2]["content"]


def test_wrong_output_and_a_shortcut_are_fed_back_then_a_costlier_version_is_not_offered(
    tmp_path, fake_gpu, server, agent, history
):
    _, load = fake_gpu
    source = make_project(tmp_path, load, server.anthropic_base_url, max_corrections=2)
    push_transcript(server, "jacobi2d_wrong_shortcut_more", "jacobi2d.cu")
    outcome = optimize(request_for(source), agent=agent, history=history, max_parallel_trials=1)

    texts = sent_user_texts(server)
    assert "wrong output" in texts[3] and "expected 8.388608e+06, got 8.388000e+06" in texts[3]
    assert "suspected shortcut" in texts[4] and "iteration-count" in texts[4]
    assert [c["status"] for c in history.candidates(outcome.job_id)] == [
        "wrong-output",
        "suspected-shortcut",
        "not-better",
    ]
    assert outcome.status == "no-improvement", outcome.message
    assert outcome.best_source is None and outcome.diff is None
    assert "none used measurably less energy" in outcome.message
    assert server.pending() == 0  # no judge for a candidate that saves nothing


def test_a_version_that_ignores_its_input_fails_on_the_alternate_arguments(
    tmp_path, fake_gpu, server, agent, history
):
    _, load = fake_gpu
    source = make_project(tmp_path, load, server.anthropic_base_url, alternate=True, max_corrections=0)
    push_transcript(server, "jacobi2d_alternate_input_hack", "jacobi2d.cu")
    outcome = optimize(request_for(source), agent=agent, history=history, max_parallel_trials=1)

    assert outcome.status == "failed"
    [stored] = history.candidates(outcome.job_id)
    assert stored["status"] == "wrong-output"
    assert "with arguments `97 5`" in stored["detail"]["failure_detail"]
    assert "no candidate passed the checks" in outcome.message


def test_a_judge_reject_vetoes_a_measured_saving(tmp_path, fake_gpu, server, agent, history):
    _, load = fake_gpu
    source = make_project(tmp_path, load, server.anthropic_base_url, max_corrections=0)
    push_transcript(server, "jacobi2d_judge_reject", "jacobi2d.cu")
    outcome = optimize(request_for(source), agent=agent, history=history, max_parallel_trials=1)

    assert outcome.status == "failed" and outcome.best_source is None
    [stored] = history.candidates(outcome.job_id)
    assert stored["status"] == "judge-rejected"
    assert stored["energy_ratio"] < 0.95  # it did save energy: the veto is the judge's alone
    assert stored["detail"]["verdict"]["reasons"] == [
        "The scratch-grid sweeps run on fewer points than before."
    ]
    assert "A reviewer rejected this version" in stored["detail"]["failure_detail"]


def test_measurements_are_fed_back_and_the_temperature_rises(tmp_path, fake_gpu, server, agent, history):
    _, load = fake_gpu
    source = make_project(tmp_path, load, server.anthropic_base_url, iterations=2)
    toml = source.parent / "wattson.toml"
    toml.write_text(
        toml.read_text().replace(
            'provider = "anthropic"\nbase_url = "' + server.anthropic_base_url,
            'provider = "openai-compatible"\nmodel = "local-coder"\nstructured_output = "tools"\nbase_url = "'
            + server.openai_base_url,
        )
    )
    push_transcript(server, "jacobi2d_two_iterations", "jacobi2d.cu")
    outcome = optimize(request_for(source), agent=agent, history=history, max_parallel_trials=1)

    assert outcome.status == "improved", outcome.message
    texts = sent_user_texts(server)
    feedback = texts[4]
    assert "Measured result of your version (iteration 1 of 2)" in feedback
    assert (
        "less energy than the original" in feedback
        and "Best so far in this run: trial 1, iteration 1" in feedback
    )
    temperatures = [r.body.get("temperature") for r in server.requests]
    assert temperatures == [0.2, 0.2, 0.2, 0.0, 1.0, 0.0]  # plan at the start value, judge at 0
    stored = history.candidates(outcome.job_id)
    assert [c["iteration"] for c in stored] == [1, 2]
    best = min(stored, key=lambda c: c["energy_ratio"])
    assert outcome.energy_ratio["ratio"] == pytest.approx(best["energy_ratio"])
    assert "work=0.6" in outcome.best_source


def test_cancel_while_measuring_stops_everything_and_keeps_finished_candidates(
    tmp_path, fake_gpu, server, agent, history
):
    _, load = fake_gpu
    source = make_project(tmp_path, load, server.anthropic_base_url)
    push_transcript(server, "jacobi2d_cancel", "jacobi2d.cu")
    cancel = threading.Event()

    def progress(message: str, fraction: float | None) -> None:
        if "trial 1 of B" in message:  # the comparison is running a candidate right now
            cancel.set()

    started = time.monotonic()
    outcome = optimize(
        request_for(source),
        agent=agent,
        history=history,
        progress=progress,
        cancel=cancel,
        max_parallel_trials=1,
    )
    assert time.monotonic() - started < 20
    assert outcome.status == "cancelled"
    assert [c["status"] for c in history.candidates(outcome.job_id)] == ["failed-build"]
    assert history.job(outcome.job_id)["status"] == "cancelled"
    report = outcome.report_path.read_text()
    assert "**Cancelled** while trial 1: iteration 1: measuring trial 1, iteration 1, correction 1" in report
    assert processes_mentioning(str(load)) == {}
    assert agent.alive()  # the agent stays usable for the next job


def test_a_missing_key_is_one_sentence_before_any_gpu_work(
    tmp_path, fake_gpu, server, agent, history, monkeypatch
):
    _, load = fake_gpu
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    source = make_project(tmp_path, load, server.anthropic_base_url)
    outcome = optimize(request_for(source), agent=agent, history=history)
    assert outcome.status == "failed"
    assert outcome.message.startswith("The language model could not be used: ANTHROPIC_API_KEY is not set")
    assert "Traceback" not in outcome.message and outcome.report_path is None and outcome.job_id is None
    assert history.latest_profile(str(source.resolve())) is None  # nothing was measured


def test_an_exhausted_quota_ends_the_job_with_the_providers_words(tmp_path, fake_gpu, server, agent, history):
    _, load = fake_gpu
    source = make_project(tmp_path, load, server.anthropic_base_url)
    server.push(
        Reply(
            status=400,
            error_type="invalid_request_error",
            message="Your credit balance is too low to access the Anthropic API.",
        )
    )
    outcome = optimize(request_for(source), agent=agent, history=history)
    assert outcome.status == "failed"
    assert "credit balance is too low" in outcome.message
    assert history.job(outcome.job_id)["status"] == "failed"
    assert "credit balance is too low" in outcome.report_path.read_text()
