"""What a run leaves in its folder (profilers/run_files.py), and the agent returning it per trial.

Real files, real subprocesses, a real agent over JSON-RPC; the GPU sensors are the scripted fake."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import pytest
from agent_fixture import FAST_BUDGET, agent_env
from wattson.profilers.jobs import ProgramSpec, SpecError
from wattson.profilers.run import RunMeasurement
from wattson.profilers.run_files import (
    OutputBudget,
    RunFiles,
    RunFilesRecorder,
    SkippedFile,
    created_since,
    read_output_files,
    snapshot,
    without_file_bytes,
)
from wattson.runner import AgentClient


def write(path: Path, data: bytes | str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


# --- created files ---------------------------------------------------------------------------------

def test_created_files_are_the_regular_files_not_in_the_snapshot(tmp_path: Path):
    write(tmp_path / "app.cu")
    write(tmp_path / "build" / "app.o")
    before = snapshot(tmp_path)
    assert before == {"app.cu", "build/app.o"}
    write(tmp_path / "app.cu", "changed")  # an existing file rewritten is not a new file
    write(tmp_path / "cache.bin")
    write(tmp_path / "tmp" / "scratch")  # TMPDIR of a sandboxed run
    write(tmp_path / ".nv" / "ComputeCache" / "index")  # the driver's JIT cache under HOME: left out
    write(tmp_path / ".nv" / "notes")  # anything else under .nv is the program's
    (tmp_path / "empty-dir").mkdir()
    os.symlink("/etc/hostname", tmp_path / "link-out")
    os.symlink(tmp_path / "tmp", tmp_path / "link-dir")  # a linked folder is not walked twice
    names, more = created_since(tmp_path, before)
    assert names == [".nv/notes", "cache.bin", "tmp/scratch"]
    assert more == 0


def test_created_files_are_capped_and_the_rest_counted(tmp_path: Path):
    before = snapshot(tmp_path)
    for i in range(205):
        write(tmp_path / "many" / f"f{i:03d}")
    names, more = created_since(tmp_path, before, max_names=200)
    assert len(names) == 200 and more == 5
    assert names == sorted(names) and names[0] == "many/f000" and names[-1] == "many/f199"


def test_the_recorder_keeps_the_snapshot_of_before_the_first_run(tmp_path: Path):
    write(tmp_path / "prog")
    recorder = RunFilesRecorder(tmp_path, [], OutputBudget())
    recorder.before_run()
    write(tmp_path / "first-run.cache")
    assert recorder.after_run().created_files == ["first-run.cache"]
    recorder.before_run()  # the second run: still compared with the folder as the build left it
    write(tmp_path / "second-run.cache")
    assert recorder.after_run().created_files == ["first-run.cache", "second-run.cache"]


# --- output files ----------------------------------------------------------------------------------

def test_declared_outputs_are_read_and_missing_ones_are_neither_read_nor_skipped(tmp_path: Path):
    write(tmp_path / "out.txt", "checksum 42\n")
    write(tmp_path / "res" / "grid.bin", b"\x00\x01\x02")
    files, skipped = read_output_files(tmp_path, ["out.txt", "res/grid.bin", "never.txt"], OutputBudget())
    assert files == {"out.txt": b"checksum 42\n", "res/grid.bin": b"\x00\x01\x02"}
    assert skipped == {}


def test_a_file_over_the_per_file_cap_is_skipped_with_its_size(tmp_path: Path):
    write(tmp_path / "big.bin", b"a" * 2048)
    write(tmp_path / "small.txt", "ok")
    budget = OutputBudget(cap_bytes=10_000)
    files, skipped = read_output_files(tmp_path, ["big.bin", "small.txt"], budget, file_cap_bytes=1024)
    assert files == {"small.txt": b"ok"}
    assert skipped["big.bin"].size_bytes == 2048
    assert "per output file" in skipped["big.bin"].reason
    assert budget.used_bytes == 2  # what was skipped does not use the job's budget


def test_the_job_budget_is_shared_by_runs_and_spent_files_are_skipped(tmp_path: Path):
    write(tmp_path / "out.bin", b"b" * 600)
    budget = OutputBudget(cap_bytes=1000)
    first, _ = read_output_files(tmp_path, ["out.bin"], budget)
    second, skipped = read_output_files(tmp_path, ["out.bin"], budget)
    assert first == {"out.bin": b"b" * 600} and second == {}
    assert skipped["out.bin"].size_bytes == 600 and "per job" in skipped["out.bin"].reason


def test_links_out_of_the_folder_folders_and_fifos_are_not_read(tmp_path: Path):
    secret = write(tmp_path.parent / f"{tmp_path.name}-outside.txt", "not the program's")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.symlink(secret, run_dir / "out.txt")
    (run_dir / "out.d").mkdir()
    os.mkfifo(run_dir / "pipe")
    write(run_dir / "real.txt", "inside")
    os.symlink("real.txt", run_dir / "alias.txt")  # a link that stays inside is fine
    files, skipped = read_output_files(run_dir, ["out.txt", "out.d", "pipe", "alias.txt"], OutputBudget())
    assert files == {"alias.txt": b"inside"}
    assert "outside the run folder" in skipped["out.txt"].reason
    assert skipped["out.d"].reason == skipped["pipe"].reason == "it is not a regular file"


def test_records_round_trip_and_old_records_have_no_files():
    files = RunFiles(created_files=["cache.bin"], created_files_more=2, output_files={"o.bin": b"\xff\x00"},
                     output_files_skipped={"big.bin": SkippedFile(40 * 2**20, "too large")})
    d = files.to_dict()
    assert d["output_files"] == {"o.bin": base64.b64encode(b"\xff\x00").decode()}
    assert RunFiles.from_dict(d) == files
    assert RunFiles.from_dict({"exit_code": 0}) is None
    record = {"exit_code": 0, "duration_s": 0.1, **d}
    assert RunMeasurement.from_dict(record).files == files
    assert RunMeasurement.from_dict({"exit_code": 0, "duration_s": 0.1}).files is None


def test_stored_results_keep_sizes_not_bytes():
    trial = {"exit_code": 0, "output_files": {"o.txt": base64.b64encode(b"12345").decode()}}
    result = {"a": {"trials": [trial]}, "b": {"trials": [dict(trial)]}}
    stored = without_file_bytes(result)
    assert stored["a"]["trials"][0]["output_files"] == {}
    assert stored["b"]["trials"][0]["output_file_sizes"] == {"o.txt": 5}
    assert result["a"]["trials"][0]["output_files"]  # the original is left as it was


@pytest.mark.parametrize(("value", "words"), [(["../up.txt"], "'..'"), (["/etc/passwd"], "absolute"),
                                              ("out.txt", "a list")])
def test_the_spec_refuses_output_files_outside_the_run_folder(value, words):
    with pytest.raises(SpecError, match=words):
        ProgramSpec.from_dict({"run": "true", "output_files": value})
    assert ProgramSpec.from_dict({"run": "true", "output_files": ["a/b.txt"]}).output_files == ["a/b.txt"]


# --- through the agent -----------------------------------------------------------------------------

WRITER = """\
import os, sys
with open("out.txt", "w") as f:
    f.write("checksum 8.388608e+06\\n")
with open("cache.bin", "wb") as f:
    f.write(b"cached")
with open(os.path.join(os.environ.get("TMPDIR", "."), "scratch.tmp"), "w") as f:
    f.write("left behind")
print("PASS")
"""


def writer_spec(*, trusted: bool) -> dict:
    return {"name": "writer", "files": {"writer.py": {"text": WRITER}}, "build": None,
            "run": f"{sys.executable} writer.py", "workdir": ".", "run_timeout_s": 30,
            "output_files": ["out.txt", "not-written.txt"], "trusted": trusted}


@pytest.fixture
def agent(fake_gpu, tmp_path):
    spec_path, _ = fake_gpu
    with AgentClient.start(env=agent_env(spec_path, tmp_path)) as client:
        yield client


def test_the_agent_returns_output_files_and_created_files_with_every_trial(agent):
    result = agent.call("profile", {"program": writer_spec(trusted=False), "budget": FAST_BUDGET},
                        timeout_s=60)
    trials = result["trials"]
    assert len(trials) >= 2
    for t in trials:
        assert base64.b64decode(t["output_files"]["out.txt"]) == b"checksum 8.388608e+06\n"
        assert "not-written.txt" not in t["output_files"] and t["output_files_skipped"] == {}
        # HOME and TMPDIR of the sandboxed run are inside the run folder: what it leaves there shows.
        assert t["created_files"] == ["cache.bin", "out.txt", "tmp/scratch.tmp"]
        assert t["created_files_more"] == 0
        assert t["host_cpu_s"] is not None and t["host_cpu_s"] > 0


def test_a_comparison_returns_both_sides_files(agent):
    a, b = writer_spec(trusted=True), writer_spec(trusted=True)
    b["files"] = {"writer.py": {"text": WRITER.replace("8.388608e+06", "1.0e+00").replace(
        'with open("cache.bin", "wb") as f:\n    f.write(b"cached")\n', "")}}
    result = agent.call("compare", {"a": a, "b": b, "budget": FAST_BUDGET}, timeout_s=60)
    a_trial, b_trial = result["a"]["trials"][0], result["b"]["trials"][0]
    assert base64.b64decode(b_trial["output_files"]["out.txt"]) == b"checksum 1.0e+00\n"
    assert "cache.bin" in a_trial["created_files"] and "cache.bin" not in b_trial["created_files"]


def test_the_history_keeps_sizes_not_bytes_of_a_profile(agent, tmp_path: Path):
    """`wattson profile` stores what it measured; declared output files go in as sizes."""
    from wattson.measure import Target, profile_target
    from wattson.store import History, content_hash

    program = {"name": "writer", "files": {}, "build": None, "run": "echo PASS; printf 12345 > out.txt",
               "workdir": ".", "output_files": ["out.txt"]}
    target = Target(label="writer", program=program, source_path=tmp_path / "writer.cu", source_text="// w")
    budget = {"warmup_runs": 0, "min_trials": 2, "max_trials": 2, "cooldown_cap_s": 0}
    with History(tmp_path / "h.sqlite3") as history:
        result = profile_target(agent, target, budget=budget, history=history)
        stored = history.latest_profile(str(tmp_path / "writer.cu"))
    assert result["trials"][0]["output_files"]  # the caller gets the bytes (base64)
    assert stored is not None and not stored.is_stale_for(content_hash("// w"))
    for trial in stored.result["trials"]:
        assert trial["output_files"] == {} and trial["output_file_sizes"] == {"out.txt": 5}


BIG_OUTPUT_BYTES = 30 * 2**20


def big_writer() -> dict:
    return {"name": "big-writer", "files": {}, "build": None, "workdir": ".", "run_timeout_s": 30,
            "run": f"head -c {BIG_OUTPUT_BYTES} /dev/zero > out.bin && echo PASS", "output_files": ["out.bin"],
            "trusted": True}


def assert_every_trial_got_its_file(trials: list[dict]) -> None:
    assert len(trials) == 2
    for t in trials:
        assert t["output_files_skipped"] == {}
        assert len(base64.b64decode(t["output_files"]["out.bin"])) == BIG_OUTPUT_BYTES


def test_warm_ups_do_not_use_up_the_jobs_output_cap(agent):
    """Eight warm-ups of a program that writes 30 MiB would take 240 of the job's 256 MiB if their
    outputs were read; nothing of a warm-up is returned, so both trials must still get their file."""
    budget = {**FAST_BUDGET, "warmup_runs": 8, "min_trials": 2, "max_trials": 2}
    result = agent.call("profile", {"program": big_writer(), "budget": budget}, timeout_s=120)
    assert_every_trial_got_its_file(result["trials"])


def test_warm_ups_of_both_sides_do_not_use_up_the_comparisons_output_cap(agent):
    """A and B share one cap: 4 warm-ups a side would take 240 MiB of it before the first trial."""
    budget = {**FAST_BUDGET, "warmup_runs": 4, "min_trials": 2, "max_trials": 2}
    result = agent.call("compare", {"a": big_writer(), "b": big_writer(), "budget": budget}, timeout_s=120)
    assert_every_trial_got_its_file(result["a"]["trials"])
    assert_every_trial_got_its_file(result["b"]["trials"])
