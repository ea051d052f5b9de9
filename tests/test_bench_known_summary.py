"""bench/measurement_quality.py --summarize, as run from the command line on known-answer records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "measurement_quality.py"


def record(program: str, pct: int, *, detected: bool, inside: bool, meets: bool | None = None) -> dict:
    r = {"phase": "known", "program": program, "target_pct": pct, "extra_iterations": 100, "detected": detected,
         "planted_inside_ci": inside}
    if meets is not None:
        r["planted_interval_meets_ci"] = meets
    return r


def test_summary_counts_each_cell_and_pools_coverage_with_its_interval(tmp_path: Path):
    first = tmp_path / "a.jsonl"
    first.write_text("\n".join(json.dumps(r) for r in [
        {"phase": "calibration", "burner_j_per_iteration": 0.05},
        record("nbody", 5, detected=True, inside=True, meets=True),
        record("nbody", 5, detected=True, inside=False, meets=True),
        record("nbody", 10, detected=True, inside=True, meets=True),
    ]) + "\n")
    second = tmp_path / "b.jsonl"
    earlier = {"phase": "known", "program": "layout", "target_pct": 5, "iterations": 900, "detected": True,
               "planted_inside_ci": True}  # the burner on B's side only: another planted size, left out
    second.write_text(json.dumps(record("layout", 5, detected=False, inside=False)) + "\n" + json.dumps(earlier))
    out = subprocess.run([sys.executable, str(SCRIPT), "--summarize", str(first), str(second)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line for line in out.splitlines()
            if line.startswith("| ") and "+" in line}
    assert rows[("nbody", "+5 %")].replace(" ", "") == "|nbody|+5%|2|2|1|2of2|"
    assert rows[("layout", "+5 %")].replace(" ", "") == "|layout|+5%|1|0|0|notrecorded|"
    # 2 of 4 inside: Wilson 95 % interval [15 %, 85 %].
    assert "planted inside the 95 % CI: 2 of 4 = 50 % [15 %, 85 %] (Wilson 95 %)" in out
    assert 'verdict "more": 3 of 4' in out
    assert "planted size's own interval meets the CI: 3 of 3 records that carry it" in out
    assert "left out: 1 records of the earlier design" in out


def test_earlier_records_with_runs_are_reread_resampled_by_pairs(tmp_path: Path):
    # +10 % planted; the host drifted from pair to pair. The interval as measured (A and B resampled
    # apart) was wide and missed nothing; resampled by pairs it is narrow and still holds +10 %.
    speeds = [1.0, 1.3, 0.8, 1.2, 0.9, 1.25]
    kept = {**record("spmv", 10, detected=False, inside=True), "planted_ratio": 1.1,
            "runs": {"a": [{"energy_j": 100 * v} for v in speeds],
                     "b": [{"energy_j": 110 * v * (1.001 if k % 2 else 0.999)} for k, v in enumerate(speeds)]}}
    measured_paired = {**record("spmv", 10, detected=True, inside=True), "planted_ratio": 1.1,
                       "ratio_estimator": "resampled by pairs", "runs": kept["runs"]}  # not re-read
    path = tmp_path / "known.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [kept, measured_paired, record("nbody", 5, detected=True,
                                                                                    inside=True)]) + "\n")
    out = subprocess.run([sys.executable, str(SCRIPT), "--summarize", str(path)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert ("resampled by pairs, recomputed after the fact from the runs of the 1 earlier records that kept them: "
            "planted inside 1 of 1 (as measured: 1); \"more\" 1 (as measured: 0)") in out


def test_files_without_current_records_say_so(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"phase": "calibration"}) + "\n")
    out = subprocess.run([sys.executable, str(SCRIPT), "--summarize", str(empty)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == ("nothing to summarize in these files: no compare X X records, no known-answer records "
                           "of the burner-on-both-sides design, no overhead records, no lassi repeat with both X and "
                           "X+10 %")


def test_without_a_phase_or_files_it_says_what_to_give():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "give --phase, or --summarize" in done.stderr


def test_a_comparisons_runs_keep_each_trials_clock_at_its_edges():
    from script_module import load_bench_script

    mq = load_bench_script("measurement_quality")
    trial = {"energy_mj": 368_000.0, "duration_s": 2.56, "host_cpu_s": 2.5,
             "state_start": {"sm_clock_mhz": 345}, "state_end": {"sm_clock_mhz": 1980},
             "throttle_reasons_seen": ["sw_power_cap"]}
    host = {"cpus": 16, "load_1m_start": 0.2, "load_1m_end": 1.1, "steal_fraction": 0.004}
    result = {"energy_ratio": {"kind": "same", "ratio": 1.0, "ci_low": 0.99, "ci_high": 1.01, "text": ""},
              "a": {"trials": [trial]}, "b": {"trials": [{"duration_s": 2.2}]}, "host": host}
    record = mq.summary(result)
    assert record["host"] == host  # what the host did over the comparison, kept beside the runs
    runs = record["runs"]
    assert runs["a"] == [{"energy_j": 368.0, "duration_s": 2.56, "host_cpu_s": 2.5, "sm_clock_start_mhz": 345,
                          "sm_clock_end_mhz": 1980, "throttle_reasons_seen": ["sw_power_cap"]}]
    # A trial without a reading keeps its place, with nothing made up.
    assert runs["b"] == [{"energy_j": None, "duration_s": 2.2, "host_cpu_s": None, "sm_clock_start_mhz": None,
                          "sm_clock_end_mhz": None, "throttle_reasons_seen": []}]
