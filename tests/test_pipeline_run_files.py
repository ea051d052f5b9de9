"""The optimize loop checks what runs leave behind: declared output files, files left in the run
folder, host CPU time.

End to end as in tests/test_pipeline.py: recorded model replies through the real anthropic SDK and
the loopback fake endpoint, the agent subprocess, real nvcc, the sandbox; fake GPU sensors. The
test project's run plays the program (tests/fixtures/transcripts/play.py) and writes the declared
output file `out.txt`; markers in a candidate's source change what it writes or leaves behind.
The checks' own wiring (skipped files, binary modes, host CPU medians) is tested on result dicts
shaped as the agent returns them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from llm_fake_server import FakeLlmServer
from script_module import load_script
from test_pipeline import push_transcript
from wattson.config import ConfigError, load_config
from wattson.project import resolve_program
from wattson.refactor.checks import CandidateChecks, Reference, Verification, checks_summary
from wattson.refactor.pipeline import OptimizeRequest, optimize

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPTS = REPO / "tests" / "fixtures" / "transcripts"
FAKE_PROGRAM = REPO / "tests" / "helpers" / "fake_gpu_program.py"
replay = load_script(TRANSCRIPTS / "replay.py")


def make_project_with_output_file(root: Path, load_file: Path, base_url: str, **options) -> Path:
    """The jacobi2d test project, whose run also writes out.txt, declared in [verify] output_files."""
    source = replay.make_test_project(root, FAKE_PROGRAM, load_file, replay.anthropic_llm(base_url), **options)
    toml = source.parent / "wattson.toml"
    text = toml.read_text()
    seconds = f"--seconds {options.get('seconds', replay.DEFAULT_RUN_S)}"
    assert seconds in text
    toml.write_text(text.replace(seconds, f"{seconds} --output-file out.txt", 1)
                    + '[verify]\noutput_files = ["out.txt"]\n')
    return source


def user_texts(server: FakeLlmServer) -> list[str]:
    out = []
    for r in server.requests:
        content = r.body["messages"][-1]["content"]
        out.append(content if isinstance(content, str) else json.dumps(content))
    return out



def test_a_different_output_file_is_fed_back_and_a_cache_left_behind_needs_review(
    tmp_path, fake_gpu, server, agent, history
):
    _, load = fake_gpu
    source = make_project_with_output_file(tmp_path, load, server.anthropic_base_url, max_corrections=1)
    push_transcript(server, "jacobi2d_output_file_and_cache", "jacobi2d.cu")
    config = load_config(source.parent / "wattson.toml")
    program = resolve_program(source, None, config)
    assert program["output_files"] == ["out.txt"]
    outcome = optimize(
        OptimizeRequest(source.resolve(), source.read_text(), program, config),
        agent=agent,
        history=history,
        max_parallel_trials=1,
    )

    assert server.pending() == 0
    first, second = history.candidates(outcome.job_id)
    # stdout was the original's; only the declared file differed, and the model was told so.
    assert first["status"] == "wrong-output"
    correction = user_texts(server)[3]
    assert "wrong output" in correction and "[fail] output-file" in correction
    assert "file out.txt" in correction and "expected 8.388608e+06, got 8.388000e+06" in correction

    # The fixed version writes the right file but leaves a cache: accepted, for a person to review.
    assert second["status"] == "accepted" and outcome.status == "improved", outcome.message
    assert outcome.label.endswith("(needs review)")
    created = [f for f in second["detail"]["findings"] if f["check"] == "created-files"]
    assert len(created) == 1 and created[0]["severity"] == "review"
    assert "results.cache" in created[0]["message"] and "out.txt" not in created[0]["message"]
    judge_request = user_texts(server)[4]
    assert "created-files" in judge_request and "results.cache" in judge_request
    assert "declared output files (out.txt)" in judge_request
    report = outcome.report_path.read_text()
    assert "A person must review this change" in report and "results.cache" in report

    # What is kept on disk holds the files' sizes, not their bytes.
    kept = json.loads((outcome.report_path.parent / "trial-1" / "iteration-1" / "result.json").read_text())
    trial = kept["check_profile"]["trials"][0]
    assert trial["output_files"] == {} and trial["output_file_sizes"] == {"out.txt": 22}


# --- the checks, on result dicts as the agent returns them ---------------------------------------------

VERIFY = '[verify]\noutput_files = ["out.txt", "grid.bin"]\noutput_file_modes = { "grid.bin" = "binary:float32" }\n'


def trial(stdout: str = "checksum 1.0\nPASS\n", *, files: dict[str, bytes] | None = None,
          skipped: dict[str, dict] | None = None, created: list[str] | None = None,
          cpu_s: float | None = 0.1, duration_s: float = 1.0) -> dict:
    record = {"exit_code": 0, "stdout": stdout, "stderr": "", "timed_out": False, "duration_s": duration_s,
              "host_cpu_s": cpu_s,
              "output_files": {k: base64.b64encode(v).decode() for k, v in (files or {}).items()},
              "output_files_skipped": skipped or {}}
    if created is not None:
        record["created_files"] = created
        record["created_files_more"] = 0
    return record


def floats(*values: float) -> bytes:
    import struct

    return struct.pack(f"<{len(values)}f", *values)


@pytest.fixture
def checks(tmp_path):
    (tmp_path / "wattson.toml").write_text(VERIFY)
    config = load_config(tmp_path / "wattson.toml")
    files = {"out.txt": b"grid 1.0\n", "grid.bin": floats(1.0, 2.0)}
    profile = {"trials": [trial(files=files, created=["out.txt"]), trial(files=files, created=["out.txt"])]}
    return CandidateChecks(config, Reference.from_profile(profile), "int main() {}", None)


def test_a_binary_output_is_compared_within_tolerance_and_a_missing_one_fails(checks):
    close = {"out.txt": b"grid 1.0\n", "grid.bin": floats(1.0, 2.0000001)}
    assert [f for f in checks.outputs({"trials": [trial(files=close), trial(files=close)]})
            if f.severity != "info"] == []
    wrong = {"out.txt": b"grid 1.0\n", "grid.bin": floats(1.0, 2.5)}
    fails = [f for f in checks.outputs({"trials": [trial(files=wrong)]}) if f.severity == "fail"]
    assert fails and fails[0].check == "output-file" and "element 1" in fails[0].message
    missing = [f for f in checks.outputs({"trials": [trial(files={"out.txt": b"grid 1.0\n"})]})
               if f.severity == "fail"]
    assert missing[0].message == "the original writes grid.bin; the candidate does not"


def test_a_binary_output_that_changes_between_runs_fails_the_repeat_check(checks):
    first = {"out.txt": b"grid 1.0\n", "grid.bin": floats(1.0, 2.0)}
    later = {"out.txt": b"grid 1.0\n", "grid.bin": floats(1.0, 2.0000001)}
    assert [f for f in checks.outputs({"trials": [trial(files=first), trial(files=later)]})
            if f.severity == "fail"] == []  # within rtol: run-to-run rounding is not a cache
    stale = {"out.txt": b"grid 1.0\n", "grid.bin": floats(1.0, 9.0)}
    [fail] = [f for f in checks.outputs({"trials": [trial(files=first), trial(files=stale)]})
              if f.severity == "fail"]
    assert fail.check == "repeat-runs" and "run 2 of the candidate wrote another grid.bin" in fail.message


def test_a_file_the_agent_left_out_is_a_review_finding_never_a_silent_pass(checks):
    skipped = {"grid.bin": {"size_bytes": 40 * 2**20, "reason": "it is larger than the 32 MiB the agent "
                            "returns per output file"}}
    result = {"trials": [trial(files={"out.txt": b"grid 1.0\n"}, skipped=skipped)]}
    findings = checks.outputs(result)
    assert [f for f in findings if f.severity == "fail"] == []  # not "the candidate does not write it"
    [review] = [f for f in findings if f.severity == "review"]
    assert review.check == "output-file" and "grid.bin was not compared" in review.message
    assert "the candidate's check run 1: it is larger than the 32 MiB" in review.message
    assert "(40.0 MiB)" in review.message
    verification = Verification()
    verification.add(findings)
    verification.add(findings)  # the same file left out at a later stage is said once
    assert len([f for f in verification.findings if f.severity == "review"]) == 1


def test_created_files_and_host_cpu_time_are_compared_with_the_original(checks):
    files = {"out.txt": b"grid 1.0\n", "grid.bin": floats(1.0, 2.0)}
    check = {"trials": [trial(files=files, created=["out.txt", "memo.bin"])]}
    [created] = checks.created(check)
    assert created.check == "created-files" and "memo.bin" in created.message
    assert checks.created({"trials": [trial(files=files)]}) == []  # an agent that does not record them
    a = {"trials": [trial(files=files, cpu_s=0.2), trial(files=files, cpu_s=0.3)]}
    b = {"trials": [trial(files=files, cpu_s=1.4), trial(files=files, cpu_s=1.6)]}
    [cpu] = [f for f in checks.measured({"a": a, "b": b}) if f.check == "host-cpu-time"]
    assert cpu.severity == "review" and "1.50 s of host CPU time, the original 0.25 s" in cpu.message
    old = {"trials": [trial(files=files, cpu_s=None)]}
    assert not [f for f in checks.measured({"a": old, "b": b}) if f.check == "host-cpu-time"]


def test_output_file_modes_are_checked_when_the_config_is_read(tmp_path):
    toml = tmp_path / "wattson.toml"
    toml.write_text('[verify]\noutput_files = ["a.bin"]\noutput_file_modes = { "a.bin" = "binary:float7" }\n')
    with pytest.raises(ConfigError, match=r"\[verify\] output_file_modes must be .*unknown output-file mode"):
        load_config(toml)
    toml.write_text('[verify]\noutput_files = ["a.bin"]\noutput_file_modes = { "b.bin" = "hash" }\n')
    with pytest.raises(ConfigError, match="names b.bin, which output_files does not list"):
        load_config(toml)
    toml.write_text('[verify]\noutput_files = ["a.bin"]\noutput_file_modes = { "a.bin" = "hash" }\n')
    config = load_config(toml)
    assert config.verify.output_file_modes == {"a.bin": "hash"}
    assert "declared output files (a.bin)" in checks_summary(config, 0, False)
