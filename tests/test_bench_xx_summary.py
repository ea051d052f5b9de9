"""bench/measurement_quality.py --summarize on `compare X X` records: each against target (1), then per program."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "measurement_quality.py"


def xx(program: str, *, kind: str = "same", half: float = 0.01, trials: int = 5, elapsed_s: float = 50.0,
       pinned: list[int] | None = None) -> dict:
    r = {"phase": "xx", "program": program, "kind": kind, "ratio": 1.0, "ci_low": 1 - half, "ci_high": 1 + half,
         "ci_half_width": half, "a_trials": trials, "b_trials": trials, "elapsed_s": elapsed_s, "wall_s": elapsed_s - 3}
    if pinned:
        r["pinned_cpus"] = pinned
    return r


def test_each_comparison_is_held_to_every_part_of_the_target(tmp_path: Path):
    folder = tmp_path / "2026-12-07-h100"
    folder.mkdir()
    path = folder / "xx.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        xx("jacobi2d"),
        xx("colorwheel", half=0.088, trials=14, elapsed_s=88, pinned=[15]),  # too wide
        xx("matrix-rotate", half=0.013, trials=2, elapsed_s=63),  # narrow from 2 runs: not an interval to trust
        xx("layout", half=0.004, elapsed_s=95),  # over 90 s
        xx("layout", kind="less", half=0.004),  # a false verdict
        # Made before comparisons resampled by pairs: each pair drifted, B = A within it.
        {**xx("colorwheel", half=0.05, trials=6, elapsed_s=80),
         "runs": {"a": [{"energy_j": e} for e in (300.0, 360.0, 310.0, 350.0, 320.0, 340.0)],
                  "b": [{"energy_j": e} for e in (301.0, 359.0, 311.0, 349.0, 321.0, 339.0)]}},
        {**xx("nbody"), "ratio_estimator": "resampled by pairs"},
        {"phase": "known", "program": "layout", "target_pct": 5, "extra_iterations": 1, "detected": True,
         "planted_inside_ci": True},
    ]) + "\n")
    out = subprocess.run([sys.executable, str(SCRIPT), "--summarize", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.replace(" ", "") for line in out.splitlines() if line.startswith("| ") and "2026-12-07-h100" in line]
    assert rows[0] == "|jacobi2d|2026-12-07-h100|no|same|1.000[0.990,1.010]|1.0%|5|50s|yes|—(norunskept)|yes|"
    assert rows[1].startswith("|colorwheel|2026-12-07-h100|15|same|") and "|8.8%|14|88s|no|" in rows[1]
    assert [row.split("|")[9] for row in rows] == ["yes", "no", "no", "no", "no", "no", "yes"]
    assert ("comparisons per program: colorwheel 0 of 2; jacobi2d 1 of 1; layout 0 of 2; matrix-rotate 0 of 1; "
            "nbody 1 of 1" in out)
    # Resampled by pairs, the drift cancels: the earlier record would have met the target.
    recomputed = rows[5].split("|")
    assert recomputed[10].startswith("same1.000[") and recomputed[10].endswith("(recomputed)")
    assert recomputed[11] == "yes"
    assert rows[6].split("|")[10:12] == ["(asmeasured)", "yes"]
    assert ("read resampled by pairs, recomputed after the fact for the 1 records made before comparisons did so "
            "(records without runs as measured): colorwheel 1 of 2;" in out)
    assert "planted inside the 95 % CI: 1 of 1" in out  # the other sections still follow
