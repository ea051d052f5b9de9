"""spread: when the energy per run follows its wall time, and what that is taken to mean."""

from __future__ import annotations

import random

from wattson.profilers.spread import Run, explain, time_bound_spread, trials_needed


def host_bound_runs(seed: int, n: int = 8, gpu_j: float = 150.0, gpu_s: float = 0.45,
                    waiting_w: float = 90.0) -> list[Run]:
    """colorwheel-like: steady GPU work, then a CPU phase of 1-2 s while the GPU waits near idle."""
    rng = random.Random(seed)
    runs = []
    for _ in range(n):
        host_s = rng.uniform(1.0, 2.0)
        runs.append(Run(energy_j=gpu_j + waiting_w * host_s + rng.gauss(0, 0.5), duration_s=gpu_s + host_s))
    return runs


def test_a_host_phase_of_varying_length_is_named():
    found = time_bound_spread([host_bound_runs(1), host_bound_runs(2)])
    assert found is not None and found.correlation > 0.99
    assert 85 < found.joules_per_extra_s < 95
    assert 140 < found.average_power_w < 170
    text = explain(found, idle_w=79, trials_done=8, half_width=0.10, target_half_width=0.02,
                   seconds_per_trial=5.0)
    assert "the GPU mostly waits" in text and "host phase" in text and "pin_cpus = 1" in text
    assert "79 W idle" in text and "median run power of" in text
    assert "about 200 trials per side (~17 min: max_trials = 200, max_wall_s = 1020)" in text


def test_post_work_waiting_above_idle_still_counts_as_waiting():
    # floydwarshall on the H200: the GPU waits at ~120 W after its work (idle 79 W), runs average 160 W.
    found = time_bound_spread([host_bound_runs(3, gpu_j=150, gpu_s=0.3, waiting_w=120)])
    assert found is not None
    text = explain(found, idle_w=79, trials_done=8, half_width=0.03, target_half_width=0.02,
                   seconds_per_trial=5.0)
    assert "the GPU mostly waits" in text


def test_a_real_difference_between_sides_is_not_read_as_correlation():
    # B uses 30 % more than A on every run, with tiny independent noise: centring each side on its own
    # mean leaves nothing that follows time.
    rng = random.Random(3)
    a = [Run(100 + rng.gauss(0, 0.5), 1.0 + rng.gauss(0, 0.01)) for _ in range(6)]
    b = [Run(130 + rng.gauss(0, 0.5), 1.3 + rng.gauss(0, 0.01)) for _ in range(6)]
    assert time_bound_spread([a, b]) is None


def test_longer_gpu_work_is_not_blamed_on_the_host():
    rng = random.Random(4)
    runs = []
    for _ in range(8):
        t = rng.uniform(2.0, 2.4)  # the whole run stretches at ~400 W: the GPU work took longer
        runs.append(Run(400 * t + rng.gauss(0, 1), t))
    found = time_bound_spread([runs])
    assert found is not None
    text = explain(found, idle_w=70, trials_done=8, half_width=0.05, target_half_width=0.02,
                   seconds_per_trial=3.0)
    assert "GPU work itself took longer" in text and "host phase" not in text


def test_too_few_runs_or_no_relation_says_nothing():
    assert time_bound_spread([host_bound_runs(1, n=3), host_bound_runs(2, n=3)]) is None  # 4 degrees of freedom
    assert time_bound_spread([host_bound_runs(1, n=3), host_bound_runs(2, n=4)]) is not None  # 5
    rng = random.Random(5)
    unrelated = [Run(100 + rng.gauss(0, 5), 1 + rng.gauss(0, 0.1)) for _ in range(12)]
    assert time_bound_spread([unrelated]) is None


def test_without_an_idle_level_the_idle_clause_is_left_out():
    found = time_bound_spread([host_bound_runs(6)])
    assert found is not None
    text = explain(found, idle_w=None, trials_done=8, half_width=0.1, target_half_width=0.02, seconds_per_trial=5)
    assert "the GPU mostly waits" in text and "idle" not in text


def test_trials_needed_follows_one_over_root_n():
    assert trials_needed(8, 0.04, 0.02) == 32
    assert trials_needed(8, 0.021, 0.02) == 9  # always at least one more than done


def test_runs_already_pinned_are_not_told_to_pin():
    found = time_bound_spread([host_bound_runs(7)])
    assert found is not None
    text = explain(found, idle_w=79, trials_done=8, half_width=0.04, target_half_width=0.02,
                   seconds_per_trial=5, pinned_cpus=1)
    assert "even with each run pinned to 1 CPU" in text and "pin_cpus = 1" not in text
