"""Per-kernel attribution on synthetic timelines whose answers are known.

A simulated sensor stands where the H100's is: it updates every 100 ms with the average power of the
last 100 ms (plus noise), and a sampler reads it every 10 ms. The true power is the kernels' power
model (docs/per-kernel-energy.md): while kernels overlap, each counts for its share of the time.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random

import pytest
from wattson.profilers.kernels import profile_kernels
from wattson.profilers.kernels.attribution import GAP, AttributionSettings, KernelReport, attribute_energy
from wattson.profilers.kernels.nnls import nnls_gram, solve_linear
from wattson.profilers.kernels.timeline import ChargedTime
from wattson.profilers.kernels.trace import KernelRecord

T0 = 5000.0  # monotonic seconds at the first launch


class TruePower:
    """Board power over time from the kernels' powers: the ground truth of a synthetic run."""

    def __init__(self, records: list[KernelRecord], power_w: dict[str, float], gap_w: float):
        self.gap_w = gap_w
        charged = ChargedTime(records)
        cuts = sorted({t for r in records for t in (r.start_s, r.end_s)})
        self.times = cuts
        self.energy_before = [0.0]
        for a, b in itertools.pairwise(cuts):
            busy = sum(charged.between_s(n, a, b) for n in charged.names)
            e = sum(power_w[n] * charged.between_s(n, a, b) for n in charged.names) + gap_w * ((b - a) - busy)
            self.energy_before.append(self.energy_before[-1] + e)
        self.kernel_energy_j = {n: power_w[n] * charged.total_s(n) for n in charged.names}

    def energy_until(self, t: float) -> float:
        if t <= self.times[0]:
            return (t - self.times[0]) * self.gap_w
        i = bisect.bisect_right(self.times, t) - 1
        if i >= len(self.times) - 1:
            return self.energy_before[-1] + (t - self.times[-1]) * self.gap_w
        slope = (self.energy_before[i + 1] - self.energy_before[i]) / (self.times[i + 1] - self.times[i])
        return self.energy_before[i] + slope * (t - self.times[i])

    def busy_window_j(self) -> float:
        return self.energy_before[-1]


def sensor_timeline(truth: TruePower, period_s: float = 0.1, sample_s: float = 0.01, lag_s: float = 0.0,
                    noise_w: float = 2.0, seed: int = 1) -> list[tuple[float, float]]:
    """What the sampler records: (t_s, mW) every sample_s of a sensor updating every period_s."""
    rng = random.Random(seed)
    start, end = truth.times[0] - 1.0, truth.times[-1] + 1.0
    updates, u = [], start + 0.0371
    while u < end:
        mean_w = (truth.energy_until(u) - truth.energy_until(u - period_s)) / period_s
        updates.append((u + lag_s, mean_w + rng.gauss(0.0, noise_w)))
        u += period_s
    timeline, j, t = [], 0, start
    while t < end:
        while j + 1 < len(updates) and updates[j + 1][0] <= t:
            j += 1
        timeline.append((t, round(updates[j][1] * 1000.0)))
        t += sample_s
    return timeline


def phased_run(kinds: dict[str, float], phases: int, seed: int = 0, gap_s: float = 0.0,
               stream: int = 0) -> list[KernelRecord]:
    """Phases of 50–400 ms, each launching one kernel back to back (launch length kinds[name])."""
    rng = random.Random(seed)
    records, t = [], T0
    names = sorted(kinds)
    for _ in range(phases):
        name = rng.choice(names)
        end = t + rng.uniform(0.05, 0.4)
        while t < end:
            records.append(KernelRecord(name=name, start_s=t, end_s=t + kinds[name], stream=stream))
            t += kinds[name] + gap_s
    return records


def by_name(report: KernelReport):
    return {k.name: k for k in report.kernels}


def covers(ci: tuple[float, float] | None, true_j: float, slack: float = 0.01) -> bool:
    """The CI holds the truth, give or take 1 %: the simulated sampler's timing is not the model's."""
    assert ci is not None
    return ci[0] - slack * true_j <= true_j <= ci[1] + slack * true_j


def test_two_kernels_of_known_power_and_split():
    records = phased_run({"copy": 0.002, "fma": 0.005}, phases=40)
    truth = TruePower(records, {"copy": 250.0, "fma": 450.0}, gap_w=120.0)
    report = attribute_energy(records, sensor_timeline(truth))
    k = by_name(report)
    assert report.busy_window_energy_j == pytest.approx(truth.busy_window_j(), rel=0.01)
    for name, power_w in (("copy", 250.0), ("fma", 450.0)):
        assert k[name].attributable, k[name].reason
        assert k[name].avg_power_w == pytest.approx(power_w, rel=0.03)
        true_j = truth.kernel_energy_j[name]
        assert k[name].energy_j == pytest.approx(true_j, rel=0.03)
        assert covers(k[name].energy_ci_j, true_j)
        assert k[name].energy_share == pytest.approx(true_j / truth.busy_window_j(), abs=0.02)
    assert k["fma"].launches == sum(r.name == "fma" for r in records)
    assert k["copy"].time_share + k["fma"].time_share == pytest.approx(1.0)
    assert report.windows > 50 and report.fit_rms_w < 10


def test_kernels_far_shorter_than_a_sensor_period():
    """Launches of 0.2–0.6 ms mixed in proportions that change from phase to phase."""
    rng = random.Random(4)
    lengths = {"a": 0.0002, "b": 0.0004, "c": 0.0006}
    power = {"a": 200.0, "b": 320.0, "c": 520.0}
    records, t = [], T0
    for _ in range(60):
        weights = {n: rng.random() for n in lengths}
        end = t + rng.uniform(0.05, 0.3)
        while t < end:
            name = rng.choices(list(weights), weights=list(weights.values()))[0]
            records.append(KernelRecord(name=name, start_s=t, end_s=t + lengths[name]))
            t += lengths[name]
    truth = TruePower(records, power, gap_w=100.0)
    report = attribute_energy(records, sensor_timeline(truth, noise_w=1.0))
    k = by_name(report)
    assert max(r.duration_s for r in records) < 0.01 * (report.sensor_period_s or 0)
    for name in lengths:
        assert k[name].attributable, k[name].reason
        assert k[name].avg_power_w == pytest.approx(power[name], rel=0.05)
        assert covers(k[name].energy_ci_j, truth.kernel_energy_j[name])


def test_launch_gaps_count_with_the_kernels_around_them():
    """0.1 ms between launches: too little, and too tied to the kernels, to fit as idle time."""
    records = phased_run({"copy": 0.002, "fma": 0.005}, phases=40, gap_s=0.0001)
    truth = TruePower(records, {"copy": 250.0, "fma": 450.0}, gap_w=120.0)
    report = attribute_energy(records, sensor_timeline(truth))
    k = by_name(report)
    gap_j = {name: 120.0 * 0.0001 * k[name].launches for name in ("copy", "fma")}
    for name in ("copy", "fma"):
        assert k[name].attributable, k[name].reason
        assert covers(k[name].energy_ci_j, truth.kernel_energy_j[name] + gap_j[name])
    assert report.gap_energy_j is None
    assert any("GPU idle between kernels" in note for note in report.method_notes)
    assert report.model_energy_j == pytest.approx(truth.busy_window_j(), rel=0.01)


def test_overlapping_streams_split_the_overlap():
    """A runs on stream 1 all along; B, on stream 2, overlaps it in phases of varying length."""
    rng = random.Random(7)
    records = [KernelRecord(name="A", start_s=T0 + i * 0.01, end_s=T0 + (i + 1) * 0.01, stream=1)
               for i in range(800)]
    t = T0
    while t < T0 + 7.5:
        t += rng.uniform(0.05, 0.4)  # B idle
        end = t + rng.uniform(0.05, 0.4)
        while t < end:
            records.append(KernelRecord(name="B", start_s=t, end_s=t + 0.003, stream=2))
            t += 0.003
    records.sort(key=lambda r: r.start_s)
    truth = TruePower(records, {"A": 200.0, "B": 600.0}, gap_w=90.0)
    report = attribute_energy(records, sensor_timeline(truth))
    k = by_name(report)
    # GPU time counts each launch; charged time splits the overlap, and adds up to the busy time.
    assert k["A"].gpu_time_s == pytest.approx(8.0)
    assert k["A"].charged_time_s < k["A"].gpu_time_s
    assert k["A"].charged_time_s + k["B"].charged_time_s == pytest.approx(report.busy_time_s)
    assert report.busy_time_s == pytest.approx(8.0)
    for name in ("A", "B"):
        assert k[name].attributable, k[name].reason
        assert k[name].energy_j == pytest.approx(truth.kernel_energy_j[name], rel=0.03)
    assert report.model_energy_j == pytest.approx(report.busy_window_energy_j, rel=0.02)


def test_collinear_kernels_are_unattributable_but_measured_together():
    """A and B always alternate 1 ms each: every window sees them half and half."""
    rng = random.Random(3)
    records, t = [], T0
    for phase in range(40):
        end = t + rng.uniform(0.05, 0.4)
        while t < end:
            if phase % 2 == 0:
                records += [KernelRecord("A", t, t + 0.001), KernelRecord("B", t + 0.001, t + 0.002)]
                t += 0.002
            else:
                records.append(KernelRecord("C", t, t + 0.003))
                t += 0.003
    truth = TruePower(records, {"A": 300.0, "B": 500.0, "C": 200.0}, gap_w=100.0)
    report = attribute_energy(records, sensor_timeline(truth))
    k = by_name(report)
    assert k["C"].attributable
    assert k["C"].energy_j == pytest.approx(truth.kernel_energy_j["C"], rel=0.03)
    for name in ("A", "B"):
        assert not k[name].attributable
        assert k[name].energy_j is None and k[name].energy_share is None
        assert "cannot be told apart" in k[name].reason
    (group,) = report.groups
    assert sorted(group.members) == ["A", "B"]
    assert group.energy_j == pytest.approx(truth.kernel_energy_j["A"] + truth.kernel_energy_j["B"], rel=0.03)


def test_kernel_in_step_with_the_idle_gaps_is_unattributable():
    """1 ms on, 1 ms off for the whole run: its power cannot be told from the idle gaps' power."""
    records = [KernelRecord("pulse", T0 + i * 0.002, T0 + i * 0.002 + 0.001) for i in range(3000)]
    truth = TruePower(records, {"pulse": 400.0}, gap_w=100.0)
    report = attribute_energy(records, sensor_timeline(truth))
    (pulse,) = report.kernels
    assert not pulse.attributable and pulse.energy_j is None
    (group,) = report.groups
    assert set(group.members) == {"pulse", GAP}
    assert group.energy_j == pytest.approx(truth.busy_window_j(), rel=0.02)


def test_kernel_with_too_little_time_is_not_fitted():
    records = phased_run({"big": 0.004, "other": 0.002}, phases=30, seed=2)
    t = records[-1].end_s
    records += [KernelRecord("tiny", t + i * 0.001, t + i * 0.001 + 0.0005) for i in range(40)]  # 20 ms
    truth = TruePower(records, {"big": 400.0, "other": 250.0, "tiny": 300.0}, gap_w=100.0)
    k = by_name(attribute_energy(records, sensor_timeline(truth)))
    assert not k["tiny"].attributable and "too little GPU time" in k["tiny"].reason
    assert k["big"].attributable and k["other"].attributable


def test_sensor_lag_is_found():
    records = phased_run({"x": 0.003, "y": 0.003}, phases=50, seed=5)
    truth = TruePower(records, {"x": 180.0, "y": 520.0}, gap_w=100.0)
    report = attribute_energy(records, sensor_timeline(truth, lag_s=0.06))
    assert report.sensor_lag_s == pytest.approx(0.065, abs=0.015)  # + half the sampler's 10 ms
    k = by_name(report)
    assert k["x"].avg_power_w == pytest.approx(180.0, rel=0.05)
    assert k["y"].avg_power_w == pytest.approx(520.0, rel=0.05)


def alternating_run(phase_s: float, seconds: float, start_s: float, launch_s: float = 0.005) -> list[KernelRecord]:
    """A and B in strict alternation, each phase exactly phase_s of back-to-back launches."""
    records, t, phase = [], start_s, 0
    while t < start_s + seconds:
        name, end = "AB"[phase % 2], t + phase_s
        while t < end - 1e-9:
            records.append(KernelRecord(name=name, start_s=t, end_s=min(end, t + launch_s)))
            t = records[-1].end_s
        phase += 1
    return records


@pytest.mark.parametrize("seed", range(6))
def test_equal_alternating_phases_are_not_swapped_by_the_lag(seed):
    """With equal phases a lag one phase longer trades A's and B's shares in every window inside the
    busy window. When the power timeline ends with the program, as it does when the sampler stops at
    exit, only the step at the first kernel tells the true lag from its twin."""
    rng = random.Random(seed)
    lag_s = rng.choice([0.025, 0.03, 0.045, 0.05]) + rng.uniform(-0.002, 0.002)
    records = alternating_run(0.15, 4.0, T0 + rng.uniform(0.0, 0.1))
    truth = TruePower(records, {"A": 350.0, "B": 200.0}, gap_w=70.0)
    stop_s = records[-1].end_s + rng.uniform(0.0, 0.05)
    timeline = [(t, p) for t, p in sensor_timeline(truth, lag_s=lag_s, noise_w=5.0, seed=seed) if t <= stop_s]
    report = attribute_energy(records, timeline, settings=AttributionSettings(bootstrap_replicates=50))
    k = by_name(report)
    assert report.sensor_lag_s == pytest.approx(lag_s + 0.005, abs=0.01)  # + half the sampler's 10 ms
    for name, power_w in (("A", 350.0), ("B", 200.0)):
        assert k[name].attributable, k[name].reason
        assert k[name].avg_power_w == pytest.approx(power_w, rel=0.03)
        assert k[name].energy_j == pytest.approx(truth.kernel_energy_j[name], rel=0.03)


def test_short_run_and_missing_timeline_give_reasons_not_numbers():
    records = phased_run({"x": 0.003, "y": 0.003}, phases=3, seed=1)
    truth = TruePower(records, {"x": 200.0, "y": 400.0}, gap_w=100.0)
    short = attribute_energy(records, sensor_timeline(truth))
    assert all(not k.attributable and "run the program longer" in k.reason for k in short.kernels)
    blind = attribute_energy(records, [])
    assert all(not k.attributable and "no power timeline" in k.reason for k in blind.kernels)
    assert blind.busy_window_energy_j is None


def test_several_gpus_need_the_timeline_device():
    records = [KernelRecord("k", T0, T0 + 1, device=0), KernelRecord("k", T0, T0 + 1, device=1)]
    with pytest.raises(ValueError, match="device="):
        attribute_energy(records, [])
    report = attribute_energy(records, [], device=1)
    assert report.kernels[0].launches == 1 and report.device == 1


def test_report_round_trips_through_json():
    records = phased_run({"copy": 0.002, "fma": 0.005}, phases=20, seed=9)
    truth = TruePower(records, {"copy": 250.0, "fma": 450.0}, gap_w=120.0)
    settings = AttributionSettings(bootstrap_replicates=50)
    report = attribute_energy(records, sensor_timeline(truth), settings=settings)
    again = KernelReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report


def test_charged_time_splits_overlaps_and_counts_union():
    charged = ChargedTime([KernelRecord("a", 0.0, 4.0), KernelRecord("b", 2.0, 6.0),
                           KernelRecord("a", 3.0, 5.0)])
    # [0,2] a; [2,3] a,b; [3,4] a,a,b; [4,5] a,b; [5,6] b
    assert charged.total_s("a") == pytest.approx(2 + 0.5 + 2 / 3 + 0.5)
    assert charged.total_s("b") == pytest.approx(0.5 + 1 / 3 + 0.5 + 1)
    assert charged.busy_s == pytest.approx(6.0)
    assert charged.between_s("b", 2.5, 5.5) == pytest.approx(0.25 + 1 / 3 + 0.5 + 0.5)


def test_nnls_matches_exhaustive_search():
    rng = random.Random(11)
    for _ in range(100):
        n, m = rng.randint(1, 5), rng.randint(6, 15)
        x = [[rng.random() if rng.random() < 0.7 else 0.0 for _ in range(n)] for _ in range(m)]
        y = [rng.gauss(0.5, 1.0) for _ in range(m)]
        g = [[sum(r[i] * r[j] for r in x) for j in range(n)] for i in range(n)]
        b = [sum(r[i] * yi for r, yi in zip(x, y, strict=True)) for i in range(n)]

        def rss(coef, x=x, y=y):
            fitted = (sum(c * v for c, v in zip(coef, r, strict=True)) for r in x)
            return sum((f - yi) ** 2 for f, yi in zip(fitted, y, strict=True))

        best = rss([0.0] * n)
        for k in range(1, n + 1):
            for support in itertools.combinations(range(n), k):
                try:
                    sol = solve_linear([[g[i][j] for j in support] for i in support], [b[i] for i in support])
                except ValueError:
                    continue
                if min(sol) >= 0:
                    coef = [0.0] * n
                    for i, v in zip(support, sol, strict=True):
                        coef[i] = v
                    best = min(best, rss(coef))
        got = nnls_gram(g, b)
        assert min(got) >= 0
        assert rss(got) == pytest.approx(best, abs=1e-9)
        warm = nnls_gram(g, b, start=rng.sample(range(n), rng.randint(1, n)))  # any guess, same answer
        assert rss(warm) == pytest.approx(best, abs=1e-9)


SAXPY_CU = """\
__global__ void saxpy(int n, float a, const float* x, float* y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

template <typename T>
__global__ void burn(T* out, int iterations)
{
    T v = out[threadIdx.x];
    for (int i = 0; i < iterations; ++i) v = v * v + T(1);
    out[threadIdx.x] = v;
}
"""


def test_profile_kernels_from_a_trace_file(tmp_path):
    """The trace file as the tracer writes it, a timeline relative to the run's start, the sources."""
    symbols = {"saxpy": "_Z5saxpyifPKfPf", "burn": "_Z4burnIfEvPT_i"}
    records = phased_run({"saxpy": 0.001, "burn": 0.004}, phases=40, seed=8)
    truth = TruePower(records, {"saxpy": 260.0, "burn": 480.0}, gap_w=110.0)
    run_start_s = T0 - 2.0
    timeline = [(t - run_start_s, p) for t, p in sensor_timeline(truth)]
    epoch_ns, mono0_ns = 1_795_000_000_000_000_000, round(T0 * 1e9) - 10**9
    lines = ["H\t7\t1\t130001", f"C\t7\tinit\t{mono0_ns}\t{epoch_ns}\t{mono0_ns}"]
    for i, r in enumerate(records):
        start = epoch_ns + round(r.start_s * 1e9) - mono0_ns
        end = epoch_ns + round(r.end_s * 1e9) - mono0_ns
        lines.append(f"K\t7\t{start}\t{end}\t0\t1\t7\t{i}\t64\t1\t1\t256\t1\t1\t{symbols[r.name]}")
    lines += ["D\t7\t3", f"C\t7\texit\t{mono0_ns + 10**11}\t{epoch_ns + 10**11}\t{mono0_ns + 10**11}"]
    trace_path = tmp_path / "trace.tsv"
    trace_path.write_text("\n".join(lines) + "\n")

    report = profile_kernels(trace_path, timeline, sources={"app/saxpy.cu": SAXPY_CU},
                             timeline_origin_s=run_start_s)
    k = {e.name: e for e in report.kernels}
    assert set(k) == {"saxpy(int, float, float const*, float*)", "void burn<float>(float*, int)"}
    saxpy, burn = k["saxpy(int, float, float const*, float*)"], k["void burn<float>(float*, int)"]
    assert (saxpy.source, burn.source) == ("app/saxpy.cu:1", "app/saxpy.cu:7")
    assert saxpy.symbol == "_Z5saxpyifPKfPf"
    assert saxpy.attributable and burn.attributable
    assert saxpy.avg_power_w == pytest.approx(260.0, rel=0.03)
    assert burn.avg_power_w == pytest.approx(480.0, rel=0.03)
    assert any("dropped 3 records" in note for note in report.method_notes)
