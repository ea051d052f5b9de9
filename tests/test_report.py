"""The optimize report: what a reviewer reads before taking a change."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from wattson.judge import Decision, JudgeVerdict
from wattson.llm import TokenAccount, Usage
from wattson.refactor.candidates import ACCEPTED, FAILED_BUILD, Candidate
from wattson.refactor.metrics import TrialOutcome, trial_metrics
from wattson.report import PLOT_OMITTED, OptimizeReport, power_plot, render_report, write_report
from wattson.verify import Finding


def est(median: float, low: float, high: float, n: int = 6) -> dict:
    return {"median": median, "ci_low": low, "ci_high": high, "n": n}


def side(energy: float, seconds: float) -> dict:
    return {
        "energy_j": est(energy, energy * 0.98, energy * 1.02),
        "duration_s": est(seconds, seconds, seconds),
        "avg_power_w": energy / seconds,
        "peak_power_w": 1.3 * energy / seconds,
        "edp_js": energy * seconds,
        "trials": [{"timeline": [[0.0, 80_000.0], [0.5, 300_000.0], [1.0, 90_000.0]], "stdout": "PASS\n"}]
        * 3,
    }


COMPARE = {
    "a": side(400.0, 3.0),
    "b": side(344.0, 2.2),
    "energy_ratio": {
        "kind": "less",
        "ratio": 0.86,
        "ci_low": 0.84,
        "ci_high": 0.88,
        "text": "B uses less energy: -14.0 % [-16.0 %, -12.0 %]",
    },
    "time_ratio": est(0.733, 0.72, 0.75),
    "power_ratio": est(1.17, 1.15, 1.19),
    "warnings": [],
    "host": {"cpus": 16, "load_1m_start": 0.3, "load_1m_end": 1.2, "steal_fraction": 0.0},
}
KERNELS_BEFORE = {
    "kernels": [
        {"name": "jacobi_sweep", "launches": 7000, "gpu_time_s": 2.5, "energy_share": 0.93},
        {"name": "[CUDA memcpy HtoD]", "launches": 2, "gpu_time_s": 0.01, "energy_share": 0.01},
    ]
}
KERNELS_AFTER = {
    "kernels": [{"name": "jacobi_sweep", "launches": 7000, "gpu_time_s": 0.7, "energy_share": 0.8}]
}


def candidates(folder: Path) -> tuple[Candidate, Candidate]:
    broken = Candidate(
        trial=1,
        iteration=1,
        attempt=0,
        temperature=0.2,
        source_text="bad",
        reply_text="...",
        status=FAILED_BUILD,
        failure_kind="compile error",
        failure_detail='relax.cu(12): error: identifier "quarter" is undefined\nmore',
        folder=folder / "trial-1" / "iteration-1",
    )
    best = Candidate(
        trial=1,
        iteration=1,
        attempt=1,
        temperature=0.2,
        source_text="good",
        reply_text="...",
        changes=["coalesced loads: less time at similar power"],
        status=ACCEPTED,
        findings=[Finding("tuning", "info", "kTileX added"), Finding("large-saving", "review", "saves 2.3x")],
        check_profile={"kernels": KERNELS_AFTER},
        compare=COMPARE,
        verdict=JudgeVerdict("accept", ["same arithmetic"], ["idle threads at the edge"]),
        decision=Decision(True, True, ["[review] large-saving: saves 2.3x"]),
        folder=folder / "trial-1" / "iteration-1-fix-1",
    )
    return broken, best


def report(tmp_path: Path, **overrides) -> OptimizeReport:
    broken, best = candidates(tmp_path)
    account = TokenAccount()
    account.record("anthropic", "claude-sonnet-5-5", Usage(12_000, 3_000))
    values = dict(
        source_path=tmp_path / "relax.cu",
        source_file="relax.cu",
        status="improved",
        message="relax.cu: -14.0 % energy",
        started_at=time.time() - 90,
        finished_at=time.time(),
        job_id=7,
        folder=tmp_path,
        device={"name": "NVIDIA H100 80GB HBM3"},
        host="gpu01",
        original_profile={"energy_j": est(400, 390, 410), "kernels": KERNELS_BEFORE},
        best=best,
        diff="--- a/relax.cu\n+++ b/relax.cu\n@@ -1 +1 @@\n-bad\n+good\n",
        candidates=[broken, best],
        trials=1,
        iterations=1,
        max_corrections=2,
        account=account,
        llm_label="anthropic (claude-sonnet-5-5)",
        schedule_text="temperature by iteration: 0.2",
        supports_temperature=False,
    )
    values.update(overrides)
    return OptimizeReport(**values)


def test_the_report_has_every_section_a_reviewer_needs(tmp_path):
    text = render_report(report(tmp_path), "power-timeline.png")
    for needle in (
        "# Wattson optimize: `relax.cu`",
        "NVIDIA H100 80GB HBM3 on gpu01",
        "| energy per run | 400 J [392, 408] | 344 J [337, 351] | −14.0 % [−16.0, −12.0] |",
        "| time | 3 s | 2.2 s | −26.7 % [−28.0, −25.0] |",
        "average power",
        "energy-delay product",
        "Host during the comparison: load average 0.3 -> 1.2 on 16 CPUs · hypervisor steal 0.0 %.",
        "![power timeline](power-timeline.png)",
        "| `jacobi_sweep` | 7000 → 7000 | 2500.0 ms → 700.0 ms | 93 % → 80 % |",
        "`[CUDA memcpy HtoD]` (gone)",
        "**A person must review this change before it is used:**",
        "large-saving: saves 2.3x",
        "Judge's verdict: **accept**",
        "- same arithmetic",
        "- idle threads at the edge",
        "[info] tuning: kTileX added",
        "- coalesced loads: less time at similar power",
        "```diff\n--- a/relax.cu",
        '| trial 1, iteration 1 | 0.2 | failed-build | – | relax.cu(12): error: identifier "quarter" is '
        "undefined | `trial-1/iteration-1` |",
        "trial 1, iteration 1, correction 1 ★",
        "takes no sampling temperature",
        "| anthropic | claude-sonnet-5-5 | 1 | 12,000 | 3,000 |",
    ):
        assert needle in text, needle
    assert "Cancelled" not in text and "fake GPU" not in text


def test_cancelled_and_failed_reports_say_where_and_why(tmp_path):
    broken, _ = candidates(tmp_path)
    text = render_report(
        report(
            tmp_path,
            status="cancelled",
            best=None,
            diff=None,
            candidates=[broken],
            stopped_at="trial 1: iteration 1: measuring",
            fake_sensors=True,
            errors=["the agent stopped"],
        ),
        None,
    )
    assert "**Cancelled** while trial 1: iteration 1: measuring" in text
    assert "scripted fake GPU" in text and "Error: the agent stopped" in text
    assert "No candidate used measurably less" in text and "## Review" not in text


def test_metrics_appear_when_trials_were_requested(tmp_path):
    metrics = trial_metrics([TrialOutcome(True, 0.8), TrialOutcome(False)], ks=[1, 2])
    text = render_report(report(tmp_path, metrics=metrics), None)
    assert "## pass@k and energy-reduction@k" in text and "| 2 | 100.0 % | 20.0 % |" in text


def test_the_plot_is_omitted_without_matplotlib_and_drawn_with_it(tmp_path):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert power_plot(COMPARE, tmp_path / "p.png") == PLOT_OMITTED
        path = write_report(report(tmp_path), tmp_path)
        assert PLOT_OMITTED in path.read_text()
        return
    pytest.importorskip("matplotlib")
    assert power_plot(COMPARE, tmp_path / "p.png") == "p.png"
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
