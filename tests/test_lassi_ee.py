"""The paper's method (lassi_ee.py) on the fake GPU, and where it goes wrong next to the counter."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from wattson.profilers.fake import FakeDevice
from wattson.profilers.lassi_ee import (
    SINGLE_RUN_WARNING,
    LassiEEResult,
    compare_lassi_ee,
    idle_subtracted_energy_j,
    measure_lassi_ee,
    profile_lassi_ee,
)
from wattson.profilers.protocol import Cancelled, CompareResult, ProfileResult, ProgramFailed

HELPER = Path(__file__).parent / "helpers" / "fake_gpu_program.py"
IDLE_WINDOW_S = 0.2  # the paper uses 2 s; the method is the same


@pytest.fixture
def device(tmp_path: Path):
    (tmp_path / "load").write_text("0")
    d = FakeDevice(0, {"idle_w": 70, "busy_w": 350, "load_file": str(tmp_path / "load"), "settle_s": 0.01,
                       "counter_period_s": 0.005, "seed": 9})
    yield d
    d.close()


def command(tmp_path: Path, work: float = 1.0, exit_code: int = 0) -> str:
    return (f"{sys.executable} {HELPER} --load-file {tmp_path / 'load'} --seconds 0.2 --work {work} "
            f"--exit {exit_code}")


def test_idle_subtracted_integral_on_known_samples():
    samples = [(0.0, 50.0), (1.0, 50.0), (2.0, 150.0), (3.0, 150.0), (4.0, 50.0), (5.0, 40.0)]
    # Idle 50 W; above it 100 W held from t=2 to t=3, ramps on either side: 50 + 100 + 50 J.
    assert idle_subtracted_energy_j(samples, 1.0, 4.0, 50.0) == pytest.approx(200.0)
    # Negative differences are clamped to zero, not subtracted.
    assert idle_subtracted_energy_j(samples, 4.0, 5.0, 50.0) == pytest.approx(0.0)
    assert idle_subtracted_energy_j([], 0.0, 1.0, 10.0) is None


def test_measure_lassi_ee_subtracts_idle_and_keeps_the_counter_figure(tmp_path, device):
    r = measure_lassi_ee(command(tmp_path), cwd=tmp_path, device=device, timeout_s=10,
                         idle_window_s=IDLE_WINDOW_S)
    assert r is not None and r.measurement.exit_code == 0
    assert r.idle_before_w == pytest.approx(70.0, abs=1.0)
    # The window after the run starts while power still decays from 350 W: it reads above idle,
    # and the paper subtracts the pooled mean all the same.
    assert r.idle_after_w is not None and r.idle_after_w > r.idle_before_w
    assert r.idle_w == pytest.approx((r.idle_before_w + r.idle_after_w) / 2, rel=0.05)
    # 0.2 s busy at 350 W over a 70 W idle: 56 J above idle; the counter sees the whole process.
    assert r.energy_j == pytest.approx(0.2 * 280.0, rel=0.15)
    assert r.counter_energy_j is not None and r.counter_energy_j > r.energy_j
    assert len(r.samples) >= 30 and r.samples[0][0] < 0 < r.samples[-1][0]
    back = LassiEEResult.from_dict(json.loads(json.dumps(r.to_dict(max_samples=None))))
    assert back == r


def test_a_gpu_still_clocked_up_makes_the_papers_figure_collapse(tmp_path, device):
    slow = FakeDevice(1, {**device.spec, "settle_s": 5.0})  # stays near busy power long after work
    try:
        Path(slow.spec["load_file"]).write_text("1")
        time.sleep(0.3)
        Path(slow.spec["load_file"]).write_text("0")
        result = profile_lassi_ee(command(tmp_path), cwd=tmp_path, device=slow, timeout_s=10,
                                  idle_window_s=IDLE_WINDOW_S)
    finally:
        slow.close()
    counter_j = result.trials[0].energy_mj / 1000.0
    assert result.energy_j is not None and result.energy_j.median < 0.05 * counter_j
    assert any("near zero" in w for w in result.warnings)


def test_profile_lassi_ee_is_one_run_without_uncertainty(tmp_path, device):
    notes: list[str] = []
    result = profile_lassi_ee(command(tmp_path), cwd=tmp_path, device=device, timeout_s=10,
                              idle_window_s=IDLE_WINDOW_S, progress=lambda m, f: notes.append(m))
    assert result.protocol == "lassi-ee"
    assert len(result.trials) == 1 and result.stopped_because == "single run"
    e = result.energy_j
    assert e is not None and e.n == 1 and e.ci_low == e.median == e.ci_high
    assert SINGLE_RUN_WARNING in result.warnings
    assert any("energy counter read" in w for w in result.warnings)  # side by side with Wattson's figure
    assert result.energy_source == "power-average-idle-subtracted"
    assert result.idle_power_w == pytest.approx(70.0, abs=8.0)
    assert result.details and result.details["counter_energy_j"] > e.median
    assert any("idle window" in n for n in notes)
    assert ProfileResult.from_dict(json.loads(json.dumps(result.to_dict()))).energy_j == e


def test_compare_lassi_ee_gives_a_single_pair_verdict(tmp_path, device):
    result = compare_lassi_ee(command(tmp_path), command(tmp_path, work=1.5), cwd_a=tmp_path, cwd_b=tmp_path,
                              device=device, timeout_a_s=10, timeout_b_s=10, idle_window_s=IDLE_WINDOW_S)
    v = result.energy_ratio
    assert v is not None and v.single_pair and v.kind == "more"
    assert v.ci_low == v.ratio == v.ci_high
    assert v.ratio == pytest.approx(1.5, rel=0.15)
    assert "single pair of runs, no interval" in v.text
    assert result.order == ["A", "B"] and result.protocol == "lassi-ee"
    assert SINGLE_RUN_WARNING in result.warnings
    assert CompareResult.from_dict(json.loads(json.dumps(result.to_dict()))).energy_ratio == v


def test_failures_and_cancel(tmp_path, device):
    with pytest.raises(ProgramFailed) as info:
        profile_lassi_ee(command(tmp_path, exit_code=2), cwd=tmp_path, device=device, timeout_s=10,
                         idle_window_s=0.05)
    assert info.value.measurement.exit_code == 2
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled) as cancelled:
        compare_lassi_ee(command(tmp_path), command(tmp_path), cwd_a=tmp_path, cwd_b=tmp_path, device=device,
                         timeout_a_s=10, timeout_b_s=10, idle_window_s=2.0, cancel=cancel)
    assert time.monotonic() - started < 1.5
    assert cancelled.value.partial.order == []
