"""bench/measurement_quality.py --phase overhead without a GPU: the warm-up run, the order of the pairs, and
failed or timed-out runs giving an error record instead of a figure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from agent_fixture import wait_all_gone
from script_module import load_bench_script

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "measurement_quality.py"


mq = load_bench_script("measurement_quality")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_a_program_that_cannot_run_gets_an_error_record_and_no_overhead_figure(tmp_path, cli_env):
    out = tmp_path / "overhead.jsonl"
    env = {**cli_env, "CUDA_VISIBLE_DEVICES": ""}  # no GPU for the program, even on a host that has one
    done = subprocess.run([sys.executable, str(SCRIPT), "--phase", "overhead", "--programs", "histogram",
                           "--repeat", "3", "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["program"] == "histogram"
    assert "overhead_pct" not in record
    assert record["error"].startswith("the warm-up run exited with")
    assert "FAIL" in record["error"]  # the program's own words are kept


def test_a_plain_run_past_its_timeout_is_ended_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    t0 = time.monotonic()
    wall_s, failure = mq._wall_s(f"sleep 30 & echo $! > {pid_file}; wait", tmp_path, dict(os.environ), 0.5)
    assert time.monotonic() - t0 < 10
    assert failure.startswith("the plain run timed out")
    assert 0.5 <= wall_s < 10
    assert wait_all_gone([int(pid_file.read_text())], timeout_s=5) == []  # a zombie counts as gone


def test_a_plain_run_that_succeeds_has_no_failure(tmp_path):
    wall_s, failure = mq._wall_s("true", tmp_path, dict(os.environ), 10)
    assert failure == "" and 0 <= wall_s < 10


def test_the_warm_up_run_is_run_and_not_counted(tmp_path):
    log = tmp_path / "runs.log"
    spec = SimpleNamespace(run=f"echo run >> {log}", run_timeout_s=10)
    plain, sampled, failure = mq._timed_pairs(spec, tmp_path, dict(os.environ), None, 3)
    assert failure == ""
    assert len(plain) == 3 and len(sampled) == 3
    assert log.read_text().count("run") == 7


# Runs in order: warm-up; pair 1 plain, sampled; pair 2 sampled, plain; pair 3 plain, sampled.
@pytest.mark.parametrize(("failing_run", "who", "plain_runs", "sampled_runs"), [
    (1, "the warm-up run exited with code 3", 0, 0),
    (2, "the plain run exited with code 3", 1, 0),
    (3, "the sampled run exited with code 3", 1, 1),
    (4, "the sampled run exited with code 3", 1, 2),
    (5, "the plain run exited with code 3", 2, 2),
])
def test_pairs_alternate_and_stop_at_the_first_failed_run(tmp_path, failing_run, who, plain_runs, sampled_runs):
    count = tmp_path / "count"
    spec = SimpleNamespace(run=f"n=$(($(cat {count} 2>/dev/null || echo 0) + 1)); echo $n > {count}; "
                               f"if [ $n -eq {failing_run} ]; then echo broken; exit 3; fi", run_timeout_s=10)
    plain, sampled, failure = mq._timed_pairs(spec, tmp_path, dict(os.environ), None, 3)
    assert failure.startswith(who) and "broken" in failure
    assert (len(plain), len(sampled)) == (plain_runs, sampled_runs)


def test_pinned_pairs_run_every_run_on_the_chosen_cpu(tmp_path):
    before = os.sched_getaffinity(0)
    cpu = max(before)
    log = tmp_path / "cpus.log"
    spec = SimpleNamespace(run=f"grep Cpus_allowed_list /proc/self/status >> {log}", run_timeout_s=10)
    plain, sampled, failure = mq._timed_pairs(spec, tmp_path, dict(os.environ), None, 2, cpus=[cpu])
    assert failure == "" and len(plain) == len(sampled) == 2
    assert [line.split()[-1] for line in log.read_text().splitlines()] == [str(cpu)] * 5
    assert os.sched_getaffinity(0) == before  # the test's own thread is free again


def test_summary_recomputes_each_interval_and_says_whether_one_percent_is_shown(tmp_path):
    first_form = {"phase": "overhead", "program": "layout", "plain_s": [1.0, 1.0, 1.0],
                  "sampled_s": [1.005, 1.005, 1.005], "overhead_pct": 0.5}  # no interval, period or pinning
    current = [
        {"phase": "overhead", "program": "nbody", "sample_period_s": 0.02, "pinned_cpus": [15],
         "plain_s": [2.0] * 5, "sampled_s": [2.01] * 5},
        {"phase": "overhead", "program": "colorwheel", "sample_period_s": 0.1, "pinned_cpus": [],
         "plain_s": [1.0] * 5, "sampled_s": [1.05] * 5},
        {"phase": "overhead", "program": "floydwarshall", "sample_period_s": 0.02, "pinned_cpus": [],
         "plain_s": [1.0, 1.2, 0.8, 1.0, 1.0], "sampled_s": [1.0, 1.2, 0.8, 1.0, 1.0]},
        {"phase": "overhead", "program": "histogram", "error": "the warm-up run exited with code 1: FAIL\nmore"},
        {"phase": "overhead", "program": "drifting", "sample_period_s": 0.02, "pinned_cpus": [15],
         "plain_s": [1.0, 1.2, 0.8, 1.1, 0.9], "sampled_s": [1.003, 1.2036, 0.8024, 1.1033, 0.9027]},
        {"phase": "known", "program": "nbody"},  # another phase's record: not in this table
    ]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps(first_form) + "\n")
    b.write_text("\n".join(json.dumps(r) for r in current) + "\n")
    out = subprocess.run([sys.executable, str(SCRIPT), "--summarize", str(a), str(b)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in out.splitlines() if line.startswith("| ") and not line.startswith("| program")}
    assert rows["layout"] == ["layout", "20 ms", "no", "3", "1.000", "1.005", "+0.5 %", "[+0.5, +0.5]",
                              "yes (fewer than 5 pairs: the interval runs narrow)", "—",
                              "— (first form: the plain run always first)"]
    assert rows["nbody"][1:4] == ["20 ms", "15", "5"] and rows["nbody"][8] == rows["nbody"][10] == "yes"
    assert rows["colorwheel"][1] == "100 ms" and rows["colorwheel"][6:9] == ["+5.0 %", "[+5.0, +5.0]",
                                                                               "no: above 1 %"]
    assert rows["floydwarshall"][8] == "not shown: interval too wide"
    # A host that drifts between pairs: each pair's ratio is +0.3 %, the sides' medians are not comparable
    # alone. Unpaired, the interval is wide; paired, the drift cancels within each pair.
    assert rows["drifting"][8] == "not shown: interval too wide"
    assert rows["drifting"][9:] == ["+0.30 % [+0.30, +0.30]", "yes"]
    assert "failed, no figure: histogram: the warm-up run exited with code 1: FAIL" in out
    assert "known" not in out and "planted" not in out  # no known-answer section without current records
