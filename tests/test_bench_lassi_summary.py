"""bench/measurement_quality.py --summarize on lassi records: the paper's one-run figures beside the counter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "measurement_quality.py"


def reference(energy_j: float) -> dict:
    return {"phase": "lassi-reference", "program": "nbody", "wall_s": 28.4, "trials": 5,
            "energy": {"median": energy_j, "ci_low": energy_j - 2, "ci_high": energy_j + 3, "n": 5}}


def run(variant: str, repeat: int, paper_j: float, counter_j: float) -> dict:
    return {"phase": "lassi", "program": "nbody", "variant": variant, "repeat": repeat,
            "planted_ratio": 1.1 if variant != "x" else 1.0, "elapsed_s": 10.0 if variant == "x" else 11.5,
            "energy": {"median": paper_j}, "energies_j": [counter_j]}


def summary_row(tmp_path: Path, *files: list[dict]) -> list[str]:
    paths = []
    for i, records in enumerate(files):
        path = tmp_path / f"lassi-{i}.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
        paths.append(str(path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--summarize", *paths], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    (row,) = [line for line in out.splitlines() if line.startswith("| nbody")]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_repeats_of_two_runs_pair_within_their_own_run(tmp_path: Path):
    # Both runs number their repeats from 0; pairing X of one run with X+10 % of the other would be wrong.
    first = [reference(1000), run("x", 0, 500, 1000), run("x+10%", 0, 600, 1100)]
    second = [reference(1010), run("x", 0, 400, 1000), run("x+10%", 0, 480, 1100),
              run("x", 1, 500, 1000)]  # a repeat cut short: no X+10 %, left out
    cells = summary_row(tmp_path, first, second)
    repeats, paper_x, cv, share, planted, paper_bias, counter_x, counter_cv, counter_bias, wall, ours = cells[1:]
    assert repeats == "2"
    assert paper_x == "450 J"
    assert cv == "15.7 %"  # 400 and 500: sd 70.7 over a mean of 450
    assert share == "45 %"
    assert planted == "1.100"
    assert paper_bias == "+10.0"  # both repeats read 1.200 against 1.100 planted
    assert (counter_x, counter_cv, counter_bias) == ("1000 J", "0.0 %", "+0.0")
    assert wall == "10.0-11.5 s"
    assert ours == "1000 J [998, 1003], 5 trials, 28 s; 1010 J [1008, 1013], 5 trials, 28 s"


def test_a_program_with_no_complete_repeat_has_no_row(tmp_path: Path):
    path = tmp_path / "lassi.jsonl"
    path.write_text(json.dumps(reference(1000)) + "\n" + json.dumps(run("x", 0, 500, 1000)) + "\n")
    out = subprocess.run([sys.executable, str(SCRIPT), "--summarize", str(path)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "| nbody" not in out
    assert "no lassi repeat with both X and X+10 %" in out
