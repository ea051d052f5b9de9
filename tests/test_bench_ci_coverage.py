"""bench/ci_coverage.py as run from the command line: fixed trial counts and the stop-when-narrow rule."""

from __future__ import annotations

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


def test_adaptive_rule_stops_at_the_minimum_when_trials_are_tight():
    # CV 0.2 %: the interval is narrower than 2 % from the first allowed stop.
    rows = run("--adaptive", "5,7", "--cv", "0.002", "--repeats", "10")
    assert [(r[1], r[3]) for r in rows] == [("5", "5.0"), ("7", "7.0")]
    assert all(float(r[2].removesuffix(" %")) >= 80.0 for r in rows)
