"""bench/pipeline_overhead.py without a GPU: its projects, and its records made from real optimize runs.

The examples' CUDA programs cannot run here, so the runs use the CI project (our jacobi2d source,
compiled by nvcc, played on the fake GPU by play.py, the replayed model as a `command` provider):
the same `wattson optimize --json` subprocess, job folder and history the benchmark reads on a GPU.
"""

from __future__ import annotations

import ctypes.util
import json
import tomllib
from pathlib import Path

import pytest
from agent_fixture import processes_mentioning
from script_module import load_bench_script, load_script
from wattson.config import ConfigError, OptimizeConfig, load_config

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPTS = REPO / "tests" / "fixtures" / "transcripts"
FAKE_PROGRAM = REPO / "tests" / "helpers" / "fake_gpu_program.py"


bench = load_bench_script("pipeline_overhead")
replay = load_script(TRANSCRIPTS / "replay.py", "pipeline_overhead_replay")


def ci_project(tmp_path: Path, load_file: Path, *, k: int, iterations: int) -> Path:
    llm = replay.replay_llm(TRANSCRIPTS / "optimized" / "jacobi2d.cu", "jacobi2d.cu", "work=0.8")
    return replay.make_test_project(tmp_path / "projects", FAKE_PROGRAM, load_file, llm, k=k, iterations=iterations)


def bench_env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return dict(cli_env, WATTSON_LOCK_DIR=str(tmp_path / "locks"))


def test_the_project_is_the_example_with_k_the_replaying_model_and_the_budget_override(tmp_path):
    settings = bench.BenchSettings(k=3, measure=bench.parse_measure_overrides(["max_wall_s=60", "min_trials=3"]))
    source = bench.make_project("jacobi2d", tmp_path, settings)
    config = load_config(source.parent / "wattson.toml")
    example = tomllib.loads((REPO / "examples" / "jacobi2d" / "wattson.toml").read_text())
    assert config.run.args == tuple(example["run"]["args"])
    assert config.build.command == example["build"]["command"]
    assert config.optimize.k == 3
    assert config.optimize.iterations == OptimizeConfig().iterations  # the user's default, untouched
    assert config.measure.max_wall_s == 60 and config.measure.min_trials == 3
    assert config.llm.provider == "command"
    assert "replay.py" in config.llm.command and str(TRANSCRIPTS / "optimized" / "jacobi2d.cu") in config.llm.command

    with pytest.raises(ConfigError, match="max_wal"):
        bench.make_project("jacobi2d", tmp_path, bench.BenchSettings(measure={"max_wal": 60}))
    with pytest.raises(ValueError, match="KEY=VALUE"):
        bench.parse_measure_overrides(["max_wall_s"])


def test_dry_run_prints_the_toml_and_the_command_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    code = bench.main(["--dry-run", "--examples", "histogram", "--iterations", "1", "--work-dir",
                       str(tmp_path / "work"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "[optimize]\nk = 3\niterations = 1\n" in printed
    assert f"optimize {tmp_path / 'work' / 'histogram' / 'histogram.cu'} --json --trials 3" in printed
    assert not out.exists()
    assert bench.main(["--dry-run", "--examples", "nbody", "--work-dir", str(tmp_path / "w2")]) == 2
    assert "recorded optimized version" in capsys.readouterr().err


def test_a_finished_run_becomes_a_record_and_a_table_row(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    source = ci_project(tmp_path, load, k=1, iterations=1)
    record = bench.run_example("jacobi2d", source, 60, bench_env(cli_env, tmp_path))

    assert record["status"] == "improved", record.get("stderr_tail")
    assert record["finished"] and not record["stopped_by_bench"] and record["exit_code"] == 0
    assert record["k"] == 1 and record["iterations"] == 1 and record["target_met"] is True
    assert record["best"]["kind"] == "less" and record["best"]["ci_high"] < 1
    assert record["metrics"]["n"] == 1
    assert record["candidates"]["recorded"] == 1 and record["candidates"]["by_status"] == {"accepted": 1}
    assert record["llm_calls"] == 4  # describe, plan, code, judge
    b = record["breakdown"]
    assert b["fake_sensors"] and b["device"] == "Fake H100"
    assert b["check_sessions"] == 1 and b["compare_sessions"] == 1
    assert 0 < b["program_runs_s"] < b["measurement_sessions_s"] < record["wall_s"]
    assert b["outside_measurement_s"] == pytest.approx(record["wall_s"] - b["measurement_sessions_s"], abs=0.02)
    assert Path(record["report_path"]).is_file()

    out = tmp_path / "results.jsonl"
    bench.append_record(out, record)
    bench.append_record(out, record)
    assert bench.read_records(out) == [record, record]  # JSON lines, appended
    table = bench.render_markdown(bench.read_records(out))
    row = next(line for line in table.splitlines() if line.startswith("| jacobi2d |"))
    assert row.startswith("| jacobi2d | 1 | 1 | ")
    assert "| yes |" in row and bench.ratio_with_ci(record["best"]) in row
    assert "1 comparison" in row and "fake sensors" in row and "iterations 1 (user default 3)" in row
    assert "Fake H100" in table.splitlines()[0]


def test_a_run_past_its_share_is_cancelled_cleanly_and_recorded_as_such(tmp_path, cli_env, fake_gpu, capsys):
    _, load = fake_gpu
    source = ci_project(tmp_path, load, k=1, iterations=3)
    record = bench.run_example("jacobi2d", source, 2.5, bench_env(cli_env, tmp_path))

    assert record["stopped_by_bench"] and not record["finished"]
    assert record["exit_code"] == 130 and record["status"] == "cancelled", record.get("stderr_tail")
    assert record["target_met"] is None and 2.5 <= record["wall_s"] < 2.5 + bench.CANCEL_GRACE_S
    assert record["candidates"]["planned_first_versions"] == 3
    assert "Traceback" not in record["stderr_tail"]
    leftovers = list(processes_mentioning(str(load)))
    assert leftovers == []

    out = tmp_path / "results.jsonl"
    bench.append_record(out, record)
    assert bench.main(["--render", str(out)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| jacobi2d |"))
    assert "not known (stopped at" in row and "| cancelled |" in row and "of 3 planned" in row


@pytest.mark.skipif(ctypes.util.find_library("cuda") is not None, reason="a CUDA driver is here: the example would run")
def test_main_on_the_real_example_records_why_the_run_failed(tmp_path, cli_env, monkeypatch, capsys):
    """The benchmark as the lead runs it, on jacobi2d: nvcc builds it, and without a CUDA driver the
    original fails; the record and the table say so instead of a traceback."""
    for key, value in bench_env(cli_env, tmp_path).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "results.jsonl"
    assert bench.main(["--examples", "jacobi2d", "--work-dir", str(tmp_path / "work"), "--out", str(out)]) == 0
    (record,) = bench.read_records(out)
    assert record["status"] == "failed" and record["exit_code"] == 1 and not record["finished"]
    assert record["k"] == 3 and record["iterations"] == OptimizeConfig().iterations
    assert record["measure"]["max_wall_s"] == 90  # the example's own budget: the defaults
    assert "original fails when it runs" in record["message"]
    assert Path(record["report_path"]).is_file()
    assert bench.main(["--render", str(out)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| jacobi2d |"))
    assert "not known (the run failed)" in row and "The original fails when it runs" in row


def test_render_of_a_file_without_records_says_so(tmp_path, capsys):
    empty = tmp_path / "other.jsonl"
    empty.write_text(json.dumps({"phase": "xx"}) + "\n")
    assert bench.main(["--render", str(empty)]) == 2
    assert "no pipeline_overhead records" in capsys.readouterr().err
