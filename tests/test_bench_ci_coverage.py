"""bench/ci_coverage.py as run from the command line: fixed trial counts and the stop-when-narrow rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "ci_coverage.py"


def run(*args: str) -> list[list[str]]:
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    return [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()[2:]]


def test_fixed_counts_give_one_row_per_count():
    rows = run("--trials", "3,5", "--repeats", "30")
    assert [r[:2] for r in rows] == [["1 %", "3"], ["1 %", "5"]]
    assert all(0.0 <= float(r[2].removesuffix(" %")) <= 100.0 for r in rows)


def test_a_drifting_host_widens_only_the_unpaired_interval():
    # Each pair shares a host speed drawn with CV 5 %: the pair's ratio cancels it, the ratio of
    # separately resampled medians does not.
    drift = ("--trials", "8", "--cv", "0.005", "--drift-cv", "0.05", "--repeats", "200")
    out = subprocess.run([sys.executable, str(SCRIPT), *drift], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert "coverage of the 95 % interval (pairs)" in out
    (paired,) = run(*drift)
    (unpaired,) = run(*drift, "--estimator", "unpaired")
    # Near its nominal 95 % (a percentile bootstrap of a median from few values runs a little short).
    assert 85.0 <= float(paired[2].removesuffix(" %")) <= 99.0, paired
    paired_width, unpaired_width = (float(r[3].removesuffix(" %")) for r in (paired, unpaired))
    assert paired_width < 1.0 < 3 * paired_width < unpaired_width, (paired, unpaired)


def test_adaptive_rule_stops_at_the_minimum_when_trials_are_tight():
    # CV 0.2 %: the interval is narrower than 2 % from the first allowed stop.
    rows = run("--adaptive", "5,7", "--cv", "0.002", "--repeats", "10")
    assert [(r[1], r[3]) for r in rows] == [("5", "5.0"), ("7", "7.0")]
    assert all(float(r[2].removesuffix(" %")) >= 80.0 for r in rows)


def comparison(program: str, a_j: list[float], b_j: list[float]) -> str:
    return json.dumps({"phase": "known", "program": program,
                       "runs": {"a": [{"energy_j": e} for e in a_j], "b": [{"energy_j": e} for e in b_j]}})


def test_measured_runs_are_pooled_per_side_around_one_and_drive_the_verdicts(tmp_path: Path):
    results = tmp_path / "known.jsonl"
    tight = [1000.0, 1001.0, 999.0, 1000.5, 999.5, 1000.2]
    results.write_text("\n".join([
        comparison("nbody", tight, [1.1 * e for e in tight]),  # B at +10 %: divided by its own median
        comparison("other", [5.0, 9.0, 1.0], [5.0, 9.0, 1.0]),  # another program: not pooled
    ]) + "\n")
    out = subprocess.run([sys.executable, str(SCRIPT), "--from-runs", str(results), "--program", "nbody",
                          "--ratio", "1.0,1.1", "--repeats", "20"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert out.startswith("12 runs of nbody, each divided by its comparison side's median: spread (CV) 0.1 %, "
                          "range 0.999-1.001")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()[4:]]
    # ±0.1 %: every comparison stops at the 5-trial minimum and calls it right.
    assert rows == [["1.000", "5", "100.0 %", "0.0 %", "100.0 %", "0.0 %", "5.0"],
                    ["1.100", "5", "100.0 %", "0.0 %", "0.0 %", "100.0 %", "5.0"]]


def test_a_wide_spread_runs_to_the_trial_cap_and_misses_small_differences(tmp_path: Path):
    results = tmp_path / "known.jsonl"
    two_clusters = [800.0, 810.0, 1190.0, 1200.0, 805.0, 1195.0, 815.0, 1185.0]
    results.write_text(comparison("colorwheel", two_clusters, two_clusters) + "\n")
    out = subprocess.run([sys.executable, str(SCRIPT), "--from-runs", str(results), "--program", "colorwheel",
                          "--ratio", "1.05", "--max-trials", "8", "--repeats", "30"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    (row,) = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()[4:]]
    assert float(row[-1]) > 7.0  # seldom narrow enough to stop before the cap
    assert float(row[5].removesuffix(" %")) < 50.0  # +5 % mostly not detected in 8 trials per side


def test_from_runs_says_what_is_missing(tmp_path: Path):
    results = tmp_path / "known.jsonl"
    results.write_text(comparison("nbody", [1.0, 2.0], [1.0, 2.0]) + "\n")
    no_program = subprocess.run([sys.executable, str(SCRIPT), "--from-runs", str(results)], capture_output=True,
                                text=True, timeout=60)
    assert no_program.returncode == 2 and "--from-runs needs --program" in no_program.stderr
    too_few = subprocess.run([sys.executable, str(SCRIPT), "--from-runs", str(results), "--program", "nbody"],
                             capture_output=True, text=True, timeout=60)
    assert too_few.returncode == 2 and "only 4 measured runs of 'nbody' in these files" in too_few.stderr
    several = subprocess.run([sys.executable, str(SCRIPT), "--ratio", "1.0,1.1"], capture_output=True, text=True,
                             timeout=60)
    assert several.returncode == 2 and "several --ratio values are for --from-runs" in several.stderr


def test_late_trials_take_a_real_savings_verdict_away_and_a_bad_late_is_refused():
    # A 20 % saving with ±0.5 % trials is called "less" every time, until some trials run 50 % long.
    steady = ("--trials", "5", "--cv", "0.005", "--ratio", "0.8", "--repeats", "60")
    (clean,) = run(*steady)
    (late,) = run(*steady, "--late", "0.3,0.5")
    assert clean[4] == "100.0 %", clean
    assert float(late[4].removesuffix(" %")) < 80.0, late
    bad = subprocess.run([sys.executable, str(SCRIPT), "--late", "0.3"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--late takes P,X" in bad.stderr
