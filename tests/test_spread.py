"""spread: when the energy per run follows its wall time, and what that is taken to mean."""

from __future__ import annotations

import random

from wattson.profilers.spread import Run, explain, time_bound_spread, trials_needed


def host_bound_runs(seed: int, n: int = 8, gpu_j: float = 100.0, idle_w: float = 70.0) -> list[Run]:
    rng = random.Random(seed)
    runs = []
    for _ in range(n):
        host_s = rng.uniform(1.0, 2.0)
        runs.append(Run(energy_j=gpu_j + idle_w * host_s + rng.gauss(0, 0.5), duration_s=0.45 + host_s,
                        host_cpu_s=host_s * 0.98))
    return runs


def test_host_phase_of_varying_length_is_named():
    found = time_bound_spread([host_bound_runs(1), host_bound_runs(2)])
    assert found is not None and found.correlation > 0.99
    assert 65 < found.joules_per_extra_s < 75
    text = explain(found, idle_w=70, trials_done=8, half_width=0.10, target_half_width=0.02,
                   seconds_per_trial=5.0)
    assert "host side" in text and "CPU time varies with it" in text
    assert "about 200 trials per side" in text and "(~17 min)" in text


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
        t = rng.uniform(2.0, 2.4)  # the whole run stretches at ~400 W: slower clocks, not idling
        runs.append(Run(400 * t + rng.gauss(0, 1), t))
    found = time_bound_spread([runs])
    assert found is not None
    text = explain(found, idle_w=70, trials_done=8, half_width=0.05, target_half_width=0.02,
                   seconds_per_trial=3.0)
    assert "GPU work itself took longer" in text and "host side" not in text


def test_too_few_runs_or_no_relation_says_nothing():
    assert time_bound_spread([host_bound_runs(1, n=2), host_bound_runs(2, n=3)]) is None
    rng = random.Random(5)
    unrelated = [Run(100 + rng.gauss(0, 5), 1 + rng.gauss(0, 0.1)) for _ in range(12)]
    assert time_bound_spread([unrelated]) is None


def test_unknown_cpu_time_leaves_the_cpu_clause_out():
    runs = [Run(r.energy_j, r.duration_s, None) for r in host_bound_runs(6)]
    found = time_bound_spread([runs])
    assert found is not None and found.host_cpu_correlation is None
    text = explain(found, idle_w=70, trials_done=8, half_width=0.1, target_half_width=0.02,
                   seconds_per_trial=5)
    assert "host side" in text and "CPU time" not in text


def test_trials_needed_follows_one_over_root_n():
    assert trials_needed(8, 0.04, 0.02) == 32
    assert trials_needed(8, 0.021, 0.02) == 9  # always at least one more than done
