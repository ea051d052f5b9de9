"""bench/kernel_tracing.py without a GPU: its records and Markdown from real kernel reports.

The kernel reports come from profile_kernels on a trace file written in the tracer's format and a
simulated power sensor (as in test_attribution.py), or, end to end, from measured runs on the scripted
fake GPU of a program that plays a traced CUDA program: it drives the fake's load and writes its
kernels to WATTSON_KERNEL_TRACE the way the CUPTI tracer does. The builds are real (nvcc, CUPTI).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from script_module import load_bench_script
from wattson.profilers.fake import FakeDevice
from wattson.profilers.jobs import JobDir, ProgramSpec
from wattson.profilers.kernels import KernelReport
from wattson.profilers.run import RunMeasurement

REPO = Path(__file__).resolve().parents[1]


kt = load_bench_script("kernel_tracing")

KERNELS_CU = """\
__global__ void copy(const float* in, float* out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i];
}

template <typename T>
__global__ void burn(T* out, int iterations)
{
    T v = out[threadIdx.x];
    for (int i = 0; i < iterations; ++i) v = v * v + T(1);
    out[threadIdx.x] = v;
}

__global__ void scale(float* x, float a, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= a;
}
"""
SYMBOLS = {"copy": "_Z4copyPKfPfi", "burn": "_Z4burnIfEvPT_i", "scale": "_Z5scalePffi"}
POWER_W = {"copy": 230.0, "burn": 480.0, "scale": 340.0}
LAUNCH_S = {"copy": 0.002, "burn": 0.004, "scale": 0.003}
GAP_W = 110.0
T0 = 7000.0  # monotonic seconds at the first launch
EPOCH_NS = 1_795_000_000_000_000_000  # the tracer's (CUPTI's) clock at monotonic 0 of this test


# --- a synthetic traced run ------------------------------------------------------------------------------


def synthetic_launches(seed: int = 3) -> list[tuple[str, float, float, str]]:
    """(name, start_s, end_s, tag) on the monotonic clock: phases of back-to-back launches of one kernel,
    a memcpy first, and seven tiny one-launch kernels between phases (too short to fit alone)."""
    rng = random.Random(seed)
    launches = [("[memcpy]", T0, T0 + 0.001, "M")]
    t = T0 + 0.001
    for phase in range(36):
        name = rng.choice(sorted(LAUNCH_S))
        end = t + rng.uniform(0.05, 0.35)
        while t < end:
            launches.append((name, t, t + LAUNCH_S[name], "K"))
            t += LAUNCH_S[name]
        if phase % 5 == 0 and phase // 5 < 7:
            j = phase // 5
            launches.append((f"tiny{j}", t, t + 0.0001 * (j + 1), "K"))
            t += 0.0001 * (j + 1)
    return launches


def write_trace(path: Path, launches: list[tuple[str, float, float, str]]) -> None:
    """The file inject.c writes: header, clock pairs, one line per kernel or memcpy."""
    mono_ns = round((T0 - 1) * 1e9)
    lines = ["H\t9\t1\t130001", f"C\t9\tinit\t{mono_ns}\t{EPOCH_NS + mono_ns}\t{mono_ns}"]
    for i, (name, start, end, tag) in enumerate(launches):
        a, b = EPOCH_NS + round(start * 1e9), EPOCH_NS + round(end * 1e9)
        if tag == "M":
            lines.append(f"M\t9\t{a}\t{b}\t0\t1\t7\t{i}\t1\t4096")
        else:
            lines.append(f"K\t9\t{a}\t{b}\t0\t1\t7\t{i}\t64\t1\t1\t256\t1\t1\t{SYMBOLS.get(name, name)}")
    end_ns = round((launches[-1][2] + 1) * 1e9)
    lines.append(f"C\t9\texit\t{end_ns}\t{EPOCH_NS + end_ns}\t{end_ns}")
    path.write_text("\n".join(lines) + "\n")


def sensor_timeline(launches, run_start_s: float, run_end_s: float, seed: int) -> list[tuple[float, float]]:
    """(s since the run's start, mW) sampled every 10 ms of a sensor averaging the last 100 ms."""
    rng = random.Random(seed)
    fine = 0.0005
    steps = int((run_end_s - run_start_s) / fine)
    power, i = [], 0
    for k in range(steps):  # launches are sorted and never overlap: one sweep
        t = run_start_s + k * fine
        while i < len(launches) and launches[i][2] <= t:
            i += 1
        inside = i < len(launches) and launches[i][1] <= t
        power.append(POWER_W.get(launches[i][0], 300.0) if inside else GAP_W)
    timeline, reading = [], GAP_W
    per_update, per_sample = round(0.1 / fine), round(0.01 / fine)
    for k in range(steps):
        if k % per_update == 0 and k >= per_update:
            reading = sum(power[k - per_update : k]) / per_update + rng.gauss(0.0, 1.5)
        if k % per_sample == 0:
            timeline.append((k * fine, round(reading * 1000)))
    return timeline


def measurement(duration_s: float, *, exit_code: int = 0, start_s: float = 0.0, energy_j: float = 500.0,
                timeline: list[tuple[float, float]] | None = None, stderr: str = "") -> RunMeasurement:
    return RunMeasurement(exit_code=exit_code, timed_out=False, cancelled=False, duration_s=duration_s,
                          energy_mj=energy_j * 1000, energy_source="counter", avg_power_mw=None,
                          peak_power_mw=None, timeline=timeline or [], stdout="", stderr=stderr,
                          output_truncated=False, state_start=None, state_end=None, start_monotonic_s=start_s)


def truth_j(launches, name: str) -> float:
    return sum((end - start) * POWER_W[name] for n, start, end, _ in launches if n == name)


@pytest.fixture(scope="module")
def synthetic_record(tmp_path_factory) -> dict:
    """A program record as program_record makes it: 3 pairs, the last traced run failed."""
    tmp = tmp_path_factory.mktemp("traces")
    launches = synthetic_launches()
    run_start = T0 - 1.0
    run_end = launches[-1][2] + 1.0
    traced = []
    for pair, seed in ((0, 1), (1, 2)):
        path = tmp / f"run{pair}.tsv"
        write_trace(path, launches)
        m = measurement(run_end - run_start, start_s=run_start, energy_j=2960.0 + pair,
                        timeline=sensor_timeline(launches, run_start, run_end, seed))
        traced.append(kt.TracedRun(pair, m, path))
    traced.append(kt.TracedRun(2, measurement(1.0, exit_code=1, stderr="CUDA error: out of memory\n"),
                               tmp / "run2.tsv"))
    plain = [measurement(d, energy_j=2950.0) for d in (10.0, 10.2, 10.1)]
    runs = kt.ProgramRuns(plain=plain, traced=traced,
                          orders=["plain-traced", "traced-plain", "plain-traced"], warmup_exit_codes=[0])
    for t, d in zip(traced[:2], (10.3, 10.25), strict=True):
        t.measurement.duration_s = d
    spec = ProgramSpec(name="synth", run="./synth 100", files={"src/kernels.cu": {"text": KERNELS_CU}})
    record = kt.program_record("synth", spec, runs, repeat=3, warmup=1)
    return json.loads(json.dumps(record))  # as it travels through the JSONL file


def test_record_has_the_overhead_the_failure_and_real_kernel_reports(synthetic_record):
    r = synthetic_record
    assert r["pairs_ok"] == 2  # the pair with the failed traced run does not count
    assert r["plain_median_s"] == pytest.approx(10.1)
    assert r["traced_median_s"] == pytest.approx(10.275)
    assert r["overhead_pct"] == pytest.approx(100 * (10.275 / 10.1 - 1))
    assert [t["exit_code"] for t in r["traced"]] == [0, 0, 1]
    assert r["traced"][2]["failure"] == "exited with code 1"
    first, last, failed = r["kernel_runs"]
    assert "report" not in first and "report" in last and r["table_from_pair"] == 1
    assert failed["error"] == "the traced run exited with code 1"
    report = KernelReport.from_dict(last["report"])
    k = {e.name: e for e in report.kernels}
    launches = synthetic_launches()
    # The run's timeline counts from its start and the trace is monotonic: both line up.
    for name, signature in (("burn", "void burn<float>(float*, int)"), ("copy", "copy(float const*, float*, int)")):
        assert k[signature].attributable, k[signature].reason
        assert k[signature].energy_j == pytest.approx(truth_j(launches, name), rel=0.05)
        assert first["kernels"][signature] == pytest.approx(truth_j(launches, name), rel=0.05)
    assert k["void burn<float>(float*, int)"].source == "src/kernels.cu:7"
    assert not k["tiny3"].attributable and "too little GPU time" in k["tiny3"].reason
    assert last["launches"] == sum(tag == "K" for *_, tag in launches)
    assert last["process_energy_j"] == pytest.approx(2961.0)
    assert r["energy_ratio"] == pytest.approx(2960.5 / 2950.0)


def test_render_from_the_jsonl_file(synthetic_record, tmp_path, capsys):
    setup = {"kind": "setup", "time": "2026-11-22T10:00:00", "device": "NVIDIA H100 80GB HBM3",
             "driver": "580.1", "cupti": "CUPTI API 130001", "repeat": 3, "warmup": 1}
    broken = {"kind": "build", "program": "colorwheel", "ok": False, "exit_code": 2,
              "output": "nvcc fatal : Unsupported gpu architecture 'sm_'\n"}
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (setup, broken, synthetic_record)) + "\n{cut sh")
    assert kt.main(["--render", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("2026-11-22, NVIDIA H100 80GB HBM3 (driver 580.1), CUPTI API 130001; 3 interleaved")
    rows = [line for line in text.splitlines() if line.startswith("| synth |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    # Two good pairs: plain 10.0, 10.2 s, traced 10.3, 10.25 s; the bootstrap interval spans the
    # extreme ratios 10.25/10.2 and 10.3/10.0.
    assert cells[:6] == ["synth", "10.00, 10.20, 10.10", "10.30, 10.25, 1.00", "+1.7 %", "[+0.5, +3.0] %", "yes"]
    assert cells[8] == str(sum(tag == "K" for *_, tag in synthetic_launches()))
    assert "traced run exited with code 1 (1 of 3): CUDA error: out of memory" in cells[9]
    assert "colorwheel: the build failed (exit 2): nvcc fatal : Unsupported gpu architecture 'sm_'" in text

    table = text[text.index("#### synth"):]
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| kernel |"))
    body = []
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        body.append(line)
    names = [row.split("|")[1].strip() for row in body]
    energies = [float(row.split("|")[5].split()[0]) for row in body[:3]]
    # The three fitted kernels by energy; the tiny ones (< 1 % of GPU time, no figure) are "others".
    assert names == ["`burn<float>`", "`scale`", "`copy`", "others (8)"]
    assert energies == sorted(energies, reverse=True)
    assert body[3].split("|")[5].strip() == "— (8 without a figure)"
    burn = next(row for row in body if "`burn<float>`" in row)
    assert "`src/kernels.cu:7`" in burn and "[" in burn.split("|")[5]
    per_run = burn.split("|")[8].split(",")
    assert len(per_run) == 2  # the two traced runs that gave a report
    assert "the table is traced run 2 of 3" in table and "Whole process 2961 J" in table
    assert "not fitted on their own: [CUDA memcpy HtoD], tiny0" in table


def test_render_folds_all_but_the_top_kernels_into_others(synthetic_record):
    text = kt.render_markdown([synthetic_record], top_kernels=2)
    body = [line for line in text[text.index("#### synth"):].splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in body] == ["`burn<float>`", "`scale`", "others (9)"]
    others = body[2].split("|")
    copy_j = float(next(e for e in synthetic_record["kernel_runs"] if "report" in e)["kernels"][
        "copy(float const*, float*, int)"])
    assert others[2].strip() == str(1 + sum(n.startswith("copy") for n, *_ in synthetic_launches()) + 7)
    assert others[5].strip() == f"{copy_j:.0f} (+ 8 without a figure)"


def test_short_kernel_names():
    assert kt.short_kernel_name("void burn<float>(float*, int)") == "burn<float>"
    assert kt.short_kernel_name("copy(float const*, float*, int)") == "copy"
    assert kt.short_kernel_name("void ns::k<(int)3>(void (*)(int), float*)") == "ns::k<(int)3>"
    assert kt.short_kernel_name("tiny0") == "tiny0"


# --- end to end on the fake GPU ---------------------------------------------------------------------------

TRACED_PROGRAM = textwrap.dedent("""\
    # Plays a CUDA program under the tracer: drives the fake GPU's load and, when WATTSON_KERNEL_TRACE
    # is set, appends its kernels to it as inject.c would (CLOCK_REALTIME stamps, monotonic clock pairs).
    import os, sys, time
    load_file = sys.argv[1]

    def set_load(value):
        tmp = load_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(value)
        os.replace(tmp, load_file)

    def pair(tag):
        before = time.monotonic_ns(); now = time.time_ns(); after = time.monotonic_ns()
        return f"C\\t{os.getpid()}\\t{tag}\\t{before}\\t{now}\\t{after}"

    lines = [f"H\\t{os.getpid()}\\t1\\t130001", pair("init")]
    # Phases of unequal length: with a strict alternation, a sensor lag of one phase would fit as well.
    for phase, seconds in enumerate((0.12, 0.25, 0.09, 0.2, 0.15, 0.3, 0.1, 0.18)):
        name, load, launch_s = ("_Z3hotPf", "1", 0.005) if phase % 2 else ("_Z4coolPf", "0.4", 0.01)
        set_load(load)
        start = time.time_ns()
        time.sleep(seconds)
        end = time.time_ns()
        t = start
        while t < end:
            stop = min(end, t + int(launch_s * 1e9))
            lines.append(f"K\\t{os.getpid()}\\t{t}\\t{stop}\\t0\\t1\\t7\\t0\\t1\\t1\\t1\\t32\\t1\\t1\\t{name}")
            t = stop
    set_load("0")
    lines.append(pair("exit"))
    path = os.environ.get("WATTSON_KERNEL_TRACE")
    if path:
        with open(path, "a") as f:
            f.write("\\n".join(lines) + "\\n")
    print("PASS")
""")


def test_measure_program_on_the_fake_gpu(tmp_path):
    load_file = tmp_path / "load"
    load_file.write_text("0")
    device = FakeDevice(0, {"name": "Fake H100", "load_file": str(load_file), "settle_s": 0.0, "idle_w": 70,
                            "busy_w": 350,
                            "noise_w": 0.5, "counter_period_s": 0.01, "seed": 3})
    spec = ProgramSpec(name="played", run=f"{sys.executable} played.py {load_file}",
                       files={"played.py": {"text": TRACED_PROGRAM}, "played.cu": {"text": (
                           "__global__ void hot(float* x) { x[0] = 1; }\n"
                           "__global__ void cool(float* x) { x[0] = 2; }\n")}})
    messages: list[str] = []
    try:
        with JobDir(spec, base_dir=tmp_path) as job:
            record = kt.measure_program("played", spec, job.run_dir, device, tmp_path / "lib.so", None,
                                        repeat=1, warmup=0, log=messages.append)
    finally:
        device.close()
    assert [p["exit_code"] for p in record["plain"] + record["traced"]] == [0, 0]
    assert record["pairs_ok"] == 1 and record["overhead_pct"] is not None
    assert record["order"] == ["plain-traced"] and len(messages) == 2
    (entry,) = record["kernel_runs"]
    report = KernelReport.from_dict(entry["report"])
    k = {e.name: e for e in report.kernels}
    assert set(k) == {"hot(float*)", "cool(float*)"}
    assert k["hot(float*)"].source == "played.cu:1" and k["cool(float*)"].source == "played.cu:2"
    assert entry["launches"] == k["hot(float*)"].launches + k["cool(float*)"].launches
    # Sensor windows inside the busy window exist only if the run's timeline met the trace's clock.
    assert report.windows > 20 and report.busy_window_energy_j is not None, report.method_notes
    # The fake draws idle + (busy - idle) * load: 350 W at load 1, 182 W at load 0.4.
    assert k["hot(float*)"].avg_power_w == pytest.approx(350.0, rel=0.15)
    assert k["cool(float*)"].avg_power_w == pytest.approx(182.0, rel=0.15)
    text = kt.render_markdown([json.loads(json.dumps(record))])
    assert "| played |" in text and "`hot`" in text and "`cool`" in text


@pytest.mark.parametrize(("overhead", "ci", "verdict"), [
    (2.0, [1.0, 4.9], "yes"),
    (9.0, [5.5, 12.0], "**no**"),
    (4.0, [1.0, 8.0], "yes (point), CI reaches past"),
    (6.0, [3.0, 8.0], "**no** (point), CI reaches below"),
    (6.0, None, "**no**"),
    (None, None, "—"),
])
def test_overhead_verdict_needs_the_interval_on_one_side(overhead, ci, verdict):
    assert kt.overhead_verdict({"overhead_pct": overhead, "overhead_ci_pct": ci}) == verdict


COPIES_SEEN = """
import os, sys
with open("seen", "a") as f:
    f.write(os.environ.get("WATTSON_KERNEL_TRACE_COPIES", "-") + "\\n")
"""


def test_pairs_stop_at_their_time_budget_and_copies_reach_the_program(tmp_path):
    device = FakeDevice(0, {"name": "Fake H100", "settle_s": 0.0, "idle_w": 70, "busy_w": 350, "seed": 3})
    spec = ProgramSpec(name="quick", run=f"{sys.executable} seen.py", files={"seen.py": {"text": COPIES_SEEN}})
    messages: list[str] = []
    try:
        with JobDir(spec, base_dir=tmp_path) as job:
            record = kt.measure_program("quick", spec, job.run_dir, device, tmp_path / "lib.so", None, repeat=10,
                                        warmup=0, log=messages.append, pairs_wall_s=0.0, copies=True)
            seen = (job.run_dir / "seen").read_text().split()
    finally:
        device.close()
    assert len(record["order"]) == kt.MIN_PAIRS and record["copies"] is True
    assert any("--pairs-wall-s" in m for m in messages)
    # Plain runs see no tracer variables; traced runs are asked for copies.
    assert sorted(seen) == ["-"] * kt.MIN_PAIRS + ["1"] * kt.MIN_PAIRS


# --- the command line -----------------------------------------------------------------------------------


def test_dry_build_builds_programs_and_the_tracer(capsys):
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not on PATH")
    code = kt.main(["--dry-build", "--programs", "jacobi2d"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0, lines
    build, tracer = lines
    assert build["kind"] == "build" and build["program"] == "jacobi2d" and build["ok"]
    assert tracer["kind"] == "tracer" and Path(tracer["library"]).exists() and tracer["error"] is None


def test_render_of_a_missing_file_says_what_to_give(tmp_path, capsys):
    assert kt.main(["--render", str(tmp_path / "none.jsonl")]) == 2
    assert "give the --out file of a run" in capsys.readouterr().err


def test_many_runs_are_shown_as_count_and_range():
    assert kt._seconds([1.0, 2.0]) == "1.00, 2.00"
    assert kt._seconds([0.5 + i / 100 for i in range(40)]) == "40 runs, 0.50–0.89"


def test_many_runs_energies_are_shown_as_count_and_range():
    assert kt._per_run_j([None] * 40) == "none of 40 runs"
    assert kt._per_run_j([1200.0, None] + [1234.0] * 10) == "11 of 12 runs: 1200–1234"
