"""Measurement quality on a real GPU: the figures behind docs/benchmarks.md.

Run on a GPU host (after `. bench/device_setup.sh` there, or with wattson installed):

    python bench/measurement_quality.py --phase xx      --programs all          --out results.jsonl
    python bench/measurement_quality.py --phase known   --programs layout,jacobi2d --repeat 5
    python bench/measurement_quality.py --phase lassi   --programs layout,jacobi2d --repeat 5
    python bench/measurement_quality.py --phase overhead --programs jacobi2d

Programs are our examples (examples/NAME/NAME.cu) and HeCBench apps (--hec DIR pointing at a
checkout's src/; fetched separately, never part of this repository). Each result is one JSON line,
appended as soon as it is known, so a run cut short keeps what it finished.

Phases:
  xx        `compare X X`: the verdict must be "no detectable difference", CI half-width <= 2 %, wall <= 90 s.
  known     A = X then a short burner run (bench/burner.cu), B = X then a longer one: B uses +5 % / +10 %
            more energy by the burner's calibrated per-iteration cost (the burner's fixed start-up cost
            is on both sides). The planted ratio must lie inside the CI, verdict "more".
  lassi     the same X and X+10 % with --protocol lassi-ee, one figure per run: spread, bias, wall time.
  overhead  the program's wall time with and without the power sampler thread, after one uncounted
            warm-up run (a failed run: an error record, no figure).

    python bench/measurement_quality.py --summarize bench/results/*/known-both-sides-*.jsonl

prints the known-answer records of earlier runs per program and level, and the share of all of them
whose CI held the planted size, with a Wilson 95 % interval. A correct 95 % CI holds it 95 % of the
time, so "5 of 5 in every cell" is not what to expect of it; the pooled share is the figure to read.
Records of one program share a calibration, and the planted size is itself uncertain (see
planted_interval_meets_ci), so the pooled share runs a little below 95 % even for a correct CI, and
the Wilson interval, which takes the records as independent, is somewhat too narrow. Given overhead
records (bench/results/*/overhead*.jsonl), it also prints one row per record: the overhead with its
interval recomputed from the raw run times, and whether that interval shows <= 1 %. Given lassi records
(bench/results/*/lassi*.jsonl), it prints one row per program: the paper's one-run figures (spread, bias
of the X+10 % ratio, share of the board's energy they read) beside the same runs' counter figures and
Wattson's own figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, median, stdev

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wattson.measure import Target, compare_targets, profile_target  # noqa: E402
from wattson.project import resolve_program  # noqa: E402
from wattson.runner import AgentClient  # noqa: E402

EXAMPLES = ("jacobi2d", "nbody", "histogram", "spmv")
HEC_APPS = {"jacobi": "main.cu", "floydwarshall": "main.cu", "layout": "main.cu", "colorwheel": "main.cu",
            "matrix-rotate": "main.cu", "stencil1d": "stencil_1d.cu"}
BURNER = (REPO / "bench" / "burner.cu").read_text()


def target_for(name: str, hec: Path | None) -> Target:
    if name in EXAMPLES:
        path = REPO / "examples" / name / f"{name}.cu"
    elif name in HEC_APPS and hec is not None:
        path = hec / f"{name}-cuda" / HEC_APPS[name]
    else:
        raise SystemExit(f"unknown program {name!r} (or --hec missing for a HeCBench app)")
    program = resolve_program(path, None)
    return Target(label=name, program=program)


def with_burner(target: Target, iterations: int) -> Target:
    p = json.loads(json.dumps(target.program))
    workdir = p.get("workdir") or "."
    key = "wattson_burner.cu" if workdir in ("", ".") else f"{workdir}/wattson_burner.cu"
    p["files"][key] = {"text": BURNER}
    build = p.get("build") or "true"
    p["build"] = f"({build}) && nvcc -O3 -arch=$WATTSON_ARCH -o wattson_burner wattson_burner.cu"
    p["run"] = f"{p['run']} && ./wattson_burner {iterations}"
    return Target(label=f"{target.label}+burner({iterations})", program=p)


def burner_alone(iterations: int) -> Target:
    program = {"name": "burner", "files": {"wattson_burner.cu": {"text": BURNER}},
               "build": "nvcc -O3 -arch=$WATTSON_ARCH -o wattson_burner wattson_burner.cu",
               "run": f"./wattson_burner {iterations}", "workdir": ".", "run_timeout_s": 120,
               "build_timeout_s": 300, "env": {}, "source_file": "wattson_burner.cu"}
    return Target(label=f"burner({iterations})", program=program)


def emit(out: Path, record: dict) -> None:
    record["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    with out.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def summary(result: dict) -> dict:
    def est(d):
        return {k: d.get(k) for k in ("median", "ci_low", "ci_high", "n")} if d else None

    out = {"wall_s": result.get("wall_s"), "warnings": result.get("warnings"),
           "pinned_cpus": (result.get("host_cpus") or {}).get("pinned"), "host": result.get("host")}
    if "energy_ratio" in result:
        v = result["energy_ratio"]
        out.update(ratio_estimator=PAIRED, kind=v.get("kind"), ratio=v.get("ratio"), ci_low=v.get("ci_low"),
                   ci_high=v.get("ci_high"), text=v.get("text"), a_energy=est(result["a"].get("energy_j")),
                   b_energy=est(result["b"].get("energy_j")), a_time=est(result["a"].get("duration_s")),
                   a_trials=len(result["a"].get("trials") or []),
                   b_trials=len(result["b"].get("trials") or []),
                   runs={side: [_run_record(t) for t in result[side].get("trials") or []] for side in ("a", "b")})
        if v.get("ci_low") is not None and v.get("ci_high") is not None:
            out["ci_half_width"] = (v["ci_high"] - v["ci_low"]) / 2
    else:
        out.update(energy=est(result.get("energy_j")), duration=est(result.get("duration_s")),
                   trials=len(result.get("trials") or []), energies_j=[t.get("energy_mj", 0) / 1000 for t in
                                                                      result.get("trials") or []])
    return out


def _run_record(trial: dict) -> dict:
    """One trial as the result files keep it, with the SM clock at its edges: a hint whether a slow run's
    GPU ran at lower clocks or waited on the host."""
    start, end = trial.get("state_start") or {}, trial.get("state_end") or {}
    return {"energy_j": trial["energy_mj"] / 1000 if trial.get("energy_mj") is not None else None,
            "duration_s": trial.get("duration_s"), "host_cpu_s": trial.get("host_cpu_s"),
            "sm_clock_start_mhz": start.get("sm_clock_mhz"), "sm_clock_end_mhz": end.get("sm_clock_mhz"),
            "throttle_reasons_seen": trial.get("throttle_reasons_seen") or []}


def phase_xx(agent, names, hec, budget, out):
    for name in names:
        t = target_for(name, hec)
        t0 = time.monotonic()
        r = compare_targets(agent, t, t, budget=budget)
        emit(out, {"phase": "xx", "program": name, "elapsed_s": time.monotonic() - t0, **summary(r)})


def calibrate_burner(agent, budget, out: Path | None = None) -> tuple[float, float, float, float]:
    """Energy of a burner run = a + b * iterations (J), from two measured points: (a, b, b_low, b_high).

    b_low and b_high bound the slope from the two medians' 95 % intervals (low end: e2's low minus
    e1's high; conservative, as if both errors pushed the same way), so a known-answer check can say
    how well the planted size itself is known."""
    points = []
    for n in (200, 4000):
        r = profile_target(agent, burner_alone(n), budget=budget)
        points.append((n, r["energy_j"]))
    (n1, e1), (n2, e2) = points
    span = n2 - n1
    b = (e2["median"] - e1["median"]) / span
    b_low, b_high = (e2["ci_low"] - e1["ci_high"]) / span, (e2["ci_high"] - e1["ci_low"]) / span
    if out is not None:
        emit(out, {"phase": "calibration-points", "points": [{"iterations": n, **e} for n, e in points],
                   "j_per_iteration": b, "j_per_iteration_low": b_low, "j_per_iteration_high": b_high})
    return e1["median"] - b * n1, b, b_low, b_high


def phase_known(agent, names, hec, budget, out, repeat, levels=(5, 10), base_iterations=1, calibration=None):
    """A = X then the burner with `base_iterations`; B = X then the burner with more iterations.

    Both sides pay the burner's fixed cost (its own process: CUDA start-up, ~45 J on the H100), so the
    planted difference is only the extra iterations, priced by the calibrated slope. That makes +5 %
    plantable on programs that use only ~150 J, where a burner after X alone would add +28 %."""
    a_j, b_j, b_low, b_high = calibration or calibrate_burner(agent, budget, out)
    emit(out, {"phase": "calibration", "burner_fixed_j": a_j, "burner_j_per_iteration": b_j,
               "burner_j_per_iteration_low": b_low, "burner_j_per_iteration_high": b_high,
               "reused": calibration is not None})
    for name in names:
        x = target_for(name, hec)
        a = with_burner(x, base_iterations)
        base_est = profile_target(agent, a, budget=budget)["energy_j"]
        base = base_est["median"]
        emit(out, {"phase": "known-baseline", "program": name, "base_iterations": base_iterations,
                   "a_energy_j": base})
        for pct in levels:
            extra = max(1, round(pct / 100 * base / b_j))
            planted = 1 + b_j * extra / base
            # How well the planted size itself is known: the slope's and E(A)'s intervals together.
            planted_low = 1 + b_low * extra / base_est["ci_high"]
            planted_high = 1 + b_high * extra / base_est["ci_low"]
            b = with_burner(x, base_iterations + extra)
            for i in range(repeat):
                t0 = time.monotonic()
                r = compare_targets(agent, a, b, budget=budget)
                s = summary(r)
                emit(out, {"phase": "known", "program": name, "target_pct": pct, "base_iterations": base_iterations,
                           "extra_iterations": extra, "planted_ratio": planted, "repeat": i,
                           "elapsed_s": time.monotonic() - t0, "detected": s.get("kind") == "more",
                           "planted_inside_ci": s.get("ci_low", 9) <= planted <= s.get("ci_high", 0),
                           "planted_low": planted_low, "planted_high": planted_high,
                           "planted_interval_meets_ci": s.get("ci_low", 9) <= planted_high
                           and planted_low <= s.get("ci_high", 0), **s})


def phase_lassi(agent, names, hec, budget, out, repeat, calibration=None):
    a_j, b_j, _, _ = calibration or calibrate_burner(agent, budget, out)
    for name in names:
        t = target_for(name, hec)
        base = profile_target(agent, t, budget=budget)
        base_j = base["energy_j"]["median"]
        iterations = max(1, round((0.10 * base_j - a_j) / b_j))
        planted = 1 + (a_j + b_j * iterations) / base_j
        plus = with_burner(t, iterations)
        emit(out, {"phase": "lassi-reference", "program": name, **summary(base)})
        for i in range(repeat):
            for label, tgt in (("x", t), ("x+10%", plus)):
                t0 = time.monotonic()
                r = profile_target(agent, tgt, budget=budget, protocol="lassi-ee")
                emit(out, {"phase": "lassi", "program": name, "variant": label, "repeat": i,
                           "planted_ratio": planted if label != "x" else 1.0,
                           "elapsed_s": time.monotonic() - t0, **summary(r)})


def phase_overhead(names, hec, out, repeat, sample_period_s=0.02, pin_cpus=0):
    """Wall time of the program alone vs under measured_run's sampler (interleaved, after one warm-up run)."""
    from wattson.profilers.cpu_pinning import choose_cpus
    from wattson.profilers.device import open_devices
    from wattson.profilers.jobs import JobDir, ProgramSpec, gpu_arch, job_env, run_build
    from wattson.profilers.stats import ratio_of_medians

    device = open_devices()[0]
    cpus = choose_cpus(pin_cpus, device.near_cpus())  # [] when not pinned
    arch = gpu_arch(device)
    for name in names:
        spec = ProgramSpec.from_dict(target_for(name, hec).program)
        with JobDir(spec) as job:  # the build and its runs, removed afterwards
            build = run_build(spec, job, arch=arch)
            if not build.ok:
                emit(out, {"phase": "overhead", "program": name, "error": build.output[-2000:]})
                continue
            env = {**os.environ, **job_env(spec, arch, device)}
            plain, sampled, failure = _timed_pairs(spec, job.run_dir, env, device, repeat, sample_period_s, cpus)
        if failure:
            # A run that failed says nothing about the sampler's cost: no figure rather than a wrong one.
            emit(out, {"phase": "overhead", "program": name, "error": failure})
            continue
        ratio = ratio_of_medians(plain, sampled)
        emit(out, {"phase": "overhead", "program": name, "sample_period_s": sample_period_s, "pinned_cpus": cpus,
                   "plain_s": plain, "sampled_s": sampled,
                   "overhead_pct": 100 * (ratio.median - 1), "ci_low_pct": 100 * (ratio.ci_low - 1),
                   "ci_high_pct": 100 * (ratio.ci_high - 1)})


def _timed_pairs(spec, cwd, env, device, repeat, sample_period_s=0.02,
                 cpus=()) -> tuple[list[float], list[float], str]:
    """`repeat` pairs of (plain wall time, sampled wall time); stops at the first failed run and says why.

    `cpus`: both runs of every pair are bound to these host CPUs (() leaves them free)."""
    from wattson.profilers.cpu_pinning import thread_bound_to
    from wattson.profilers.run import measured_run

    plain: list[float] = []
    sampled: list[float] = []
    # One run first, not counted: the first run of a fresh build is slower (file cache, driver state),
    # and it would otherwise land on the plain side of the first pair.
    with thread_bound_to(cpus):
        _, failure = _wall_s(spec.run, cwd, env, spec.run_timeout_s, label="the warm-up run")
    if failure:
        return plain, sampled, failure
    for i in range(repeat):
        # Alternate which goes first, so a drift over the pairs does not land on one side.
        for kind in ("plain", "sampled") if i % 2 == 0 else ("sampled", "plain"):
            if kind == "plain":
                with thread_bound_to(cpus):  # the program inherits this thread's CPUs, as in measured_run
                    wall_s, failure = _wall_s(spec.run, cwd, env, spec.run_timeout_s)
                plain.append(wall_s)
            else:
                m = measured_run(spec.run, cwd=Path(cwd), device=device, timeout_s=spec.run_timeout_s, env=env,
                                 sample_period_s=sample_period_s, cpus=cpus)
                sampled.append(m.duration_s)
                failure = f"the sampled run {m.failure_text()}: {(m.stdout + m.stderr)[-2000:]}" if m.failed else ""
            if failure:
                return plain, sampled, failure
    return plain, sampled, ""


def _wall_s(command: str, cwd, env, timeout_s: float, label: str = "the plain run") -> tuple[float, str]:
    """Wall time of one run of `command`, with nothing else around it, and why it failed ("" if it did not)."""
    t0 = time.monotonic()
    # Its own process group, so a timeout ends the program and not only the shell that started it.
    proc = subprocess.Popen(command, shell=True, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return time.monotonic() - t0, f"{label} timed out after {timeout_s:.0f} s"
    wall_s = time.monotonic() - t0
    if proc.returncode != 0:
        return wall_s, f"{label} exited with code {proc.returncode}: {output[-2000:]}"
    return wall_s, ""


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % interval of a proportion from hits of n (Wilson score: sane at 0 and n, unlike p +- z*se)."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ResultRecord:
    folder: str  # the results folder it came from, e.g. 2026-12-07-h100: the date and the device
    record: dict


def read_results(paths: list[Path]) -> list[ResultRecord]:
    """Every JSON-line record of these result files, in order, read once for all the summaries."""
    return [ResultRecord(path.parent.name, json.loads(line)) for path in paths
            for line in path.read_text().splitlines()]


def of_phases(results: list[ResultRecord], *phases: str) -> Iterator[dict]:
    return (r.record for r in results if r.record.get("phase") in phases)


XX_TARGET_HALF_WIDTH = 0.02
XX_TARGET_WALL_S = 90.0
PAIRED = "resampled by pairs"  # how a comparison's interval is made (profilers/stats.py) since 2026-12-07
MIN_VALUES_FOR_INTERVAL = 5  # the protocol's minimum: a bootstrap interval from fewer runs comes out too narrow


def median_of_pair_ratios(a, b, **resampling):
    """The median of the per-pair ratios b[k] / a[k] with its bootstrap interval (whole pairs only): the
    overhead phase's paired reading."""
    from wattson.profilers.stats import estimate

    return estimate([y / x for x, y in zip(a, b, strict=False)], **resampling)


def paired_from_runs(record: dict):
    """The ratio B/A with its interval resampled by pairs (A's k-th run with B's k-th), recomputed from a
    record's runs for records made before comparisons did so; None without at least one pair."""
    from wattson.profilers.stats import ratio_of_pairs

    runs = record.get("runs") or {}
    pairs = [(a["energy_j"], b["energy_j"]) for a, b in zip(runs.get("a") or [], runs.get("b") or [], strict=False)
             if a.get("energy_j") and b.get("energy_j")]
    return ratio_of_pairs(pairs) if pairs else None


def _xx_target_met(kind: str | None, half: float | None, trials: int, elapsed_s: float) -> bool:
    return kind == "same" and half is not None and half <= XX_TARGET_HALF_WIDTH \
        and trials >= MIN_VALUES_FOR_INTERVAL and elapsed_s <= XX_TARGET_WALL_S


def summarize_xx(results: list[ResultRecord]) -> str:
    """Each `compare X X` record against target (1): "no detectable difference", CI half-width <= 2 % from
    at least 5 trials per side, <= 90 s (the whole comparison, build included); then per program, how
    many comparisons met it. Records made before comparisons resampled by pairs also get that interval
    recomputed from their runs, marked as such, and a second count read that way (records without runs
    count as measured)."""
    from wattson.profilers.stats import verdict_from_ratio

    rows, met_by_program, met_paired_by_program, recomputed = [], {}, {}, 0
    for folder, r in ((x.folder, x.record) for x in results if x.record.get("phase") == "xx"):
        half = r.get("ci_half_width")
        trials = min(r["a_trials"], r["b_trials"])
        met = _xx_target_met(r.get("kind"), half, trials, r["elapsed_s"])
        met_by_program.setdefault(r["program"], []).append(met)
        if r.get("ratio_estimator") == PAIRED:
            paired_cell, met_paired = "(as measured)", met
        elif (paired := paired_from_runs(r)) is not None:
            recomputed += 1
            kind = verdict_from_ratio(paired.median, paired.ci_low, paired.ci_high).kind
            met_paired = _xx_target_met(kind, paired.relative_half_width, paired.n, r["elapsed_s"])
            paired_cell = f"{kind} {paired.median:.3f} [{paired.ci_low:.3f}, {paired.ci_high:.3f}] " \
                          f"{100 * paired.relative_half_width:.1f} % (recomputed)"
        else:
            paired_cell, met_paired = "— (no runs kept)", met
        met_paired_by_program.setdefault(r["program"], []).append(met_paired)
        pinned = ", ".join(map(str, r.get("pinned_cpus") or [])) or "no"
        width = f"{100 * half:.1f} %" if half is not None else "—"
        rows.append(f"| {r['program']} | {folder} | {pinned} | {r.get('kind')} | {r['ratio']:.3f} "
                    f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {width} | {r['a_trials']} | "
                    f"{r['elapsed_s']:.0f} s | {'yes' if met else 'no'} | {paired_cell} | "
                    f"{'yes' if met_paired else 'no'} |")
    if not rows:
        return ""

    def rollup(met_by: dict[str, list[bool]]) -> str:
        return "; ".join(f"{program} {sum(m)} of {len(m)}" for program, m in sorted(met_by.items()))

    lines = ["| program | results folder | pinned to | verdict | B/A [95 % CI] | half-width | trials per side "
             "| wall | target met | resampled by pairs: B/A [95 % CI] | target met, paired |",
             "|---|---|---|---|---|---:|---:|---:|---|---|---|", *rows, "",
             f"target (1) met (same, <= +-2 % from >= 5 trials per side, <= 90 s), comparisons per "
             f"program: {rollup(met_by_program)}"]
    if recomputed:
        lines.append(f"read resampled by pairs, recomputed after the fact for the {recomputed} records made "
                     f"before comparisons did so (records without runs as measured): "
                     f"{rollup(met_paired_by_program)}")
    return "\n".join(lines)


def summarize_known(results: list[ResultRecord]) -> str:
    """Per program and level: comparisons, "more" verdicts, planted inside the CI; then all pooled, and
    the earlier records re-read with the interval resampled by pairs."""
    from wattson.profilers.stats import verdict_from_ratio

    cells: dict[tuple[str, int], list[dict]] = {}
    earlier_design = 0
    for record in of_phases(results, "known"):
        if "extra_iterations" not in record:  # the burner on B's side only: another planted size
            earlier_design += 1
            continue
        cells.setdefault((record["program"], record["target_pct"]), []).append(record)
    if not cells:
        return ""
    lines = ["| program | target | comparisons | verdict \"more\" | planted inside CI | planted interval meets CI |",
             "|---|---|---:|---:|---:|---:|"]
    for (program, pct), records in sorted(cells.items()):
        meets = [r["planted_interval_meets_ci"] for r in records if "planted_interval_meets_ci" in r]
        lines.append(f"| {program} | +{pct} % | {len(records)} | {sum(r['detected'] for r in records)} | "
                     f"{sum(r['planted_inside_ci'] for r in records)} | "
                     f"{f'{sum(meets)} of {len(meets)}' if meets else 'not recorded'} |")
    records = [r for rs in cells.values() for r in rs]
    inside = sum(r["planted_inside_ci"] for r in records)
    low, high = wilson_interval(inside, len(records))
    lines.append("")
    share_pct = 100 * inside / max(1, len(records))
    lines.append(f"planted inside the 95 % CI: {inside} of {len(records)} = {share_pct:.0f} % "
                 f"[{100 * low:.0f} %, {100 * high:.0f} %] (Wilson 95 %); "
                 f"verdict \"more\": {sum(r['detected'] for r in records)} of {len(records)}")
    meets = [r["planted_interval_meets_ci"] for r in records if "planted_interval_meets_ci" in r]
    if meets:
        lines.append(f"planted size's own interval meets the CI: {sum(meets)} of {len(meets)} records that carry it")
    recomputed = [(r, e) for r in records if r.get("ratio_estimator") != PAIRED
                  if (e := paired_from_runs(r)) is not None and e.n >= 2]
    if recomputed:
        inside_paired = sum(e.ci_low <= r["planted_ratio"] <= e.ci_high for r, e in recomputed)
        more_paired = sum(verdict_from_ratio(e.median, e.ci_low, e.ci_high).kind == "more" for _, e in recomputed)
        lines.append(f"resampled by pairs, recomputed after the fact from the runs of the {len(recomputed)} earlier "
                     f"records that kept them: planted inside {inside_paired} of {len(recomputed)} (as measured: "
                     f"{sum(r['planted_inside_ci'] for r, _ in recomputed)}); \"more\" "
                     f"{more_paired} (as measured: "
                     f"{sum(r['detected'] for r, _ in recomputed)})")
    if earlier_design:
        lines.append(f"left out: {earlier_design} records of the earlier design (burner on B's side only)")
    return "\n".join(lines)


def _one_percent_shown(ratio, pairs: int) -> str:
    low_pct, high_pct = 100 * (ratio.ci_low - 1), 100 * (ratio.ci_high - 1)
    if high_pct <= 1:
        verdict = "yes"
    elif low_pct > 1:
        verdict = "no: above 1 %"
    else:
        verdict = "not shown: interval too wide"
    narrow = pairs < MIN_VALUES_FOR_INTERVAL
    return verdict + (f" (fewer than {MIN_VALUES_FOR_INTERVAL} pairs: the interval runs narrow)" if narrow else "")


def summarize_overhead(results: list[ResultRecord]) -> str:
    """Per overhead record: medians, the overhead with its interval recomputed from the raw run times (so
    records of the phase's first form, which stored no interval, read the same), and whether <= 1 % is shown.

    Twice: unpaired (median sampled / median alone, each side resampled on its own), and paired (the
    median of the per-pair ratios, pairs resampled), since the phase runs each pair back to back with
    the order alternating: a slow drift of the host then cancels within a pair instead of widening both
    sides. The paired column was added after the unpaired one had been read (docs/benchmarks.md)."""
    from wattson.profilers.stats import ratio_of_medians

    rows, failed = [], []
    for record in of_phases(results, "overhead"):
        if "error" in record:
            failed.append(f"{record['program']}: {record['error'].splitlines()[0] if record['error'] else ''}")
            continue
        plain, sampled = record["plain_s"], record["sampled_s"]
        pairs = min(len(plain), len(sampled))
        ratio = ratio_of_medians(plain, sampled)
        period = record.get("sample_period_s", 0.02)  # the phase's first form always sampled at 20 ms
        if "ci_low_pct" in record or "sample_period_s" in record:  # the alternating form: P S, S P, ...
            paired = median_of_pair_ratios(plain, sampled)
            paired_cells = (f"{100 * (paired.median - 1):+.2f} % [{100 * (paired.ci_low - 1):+.2f}, "
                            f"{100 * (paired.ci_high - 1):+.2f}] | {_one_percent_shown(paired, pairs)}")
        else:  # the first form ran the plain run first in every pair: its pairs carry the order, not only the sampler
            paired_cells = "— | — (first form: the plain run always first)"
        pinned = ", ".join(map(str, record.get("pinned_cpus") or [])) or "no"
        rows.append(f"| {record['program']} | {1000 * period:.0f} ms | {pinned} | {pairs} | "
                    f"{median(plain):.3f} | {median(sampled):.3f} | {100 * (ratio.median - 1):+.1f} % | "
                    f"[{100 * (ratio.ci_low - 1):+.1f}, {100 * (ratio.ci_high - 1):+.1f}] | "
                    f"{_one_percent_shown(ratio, pairs)} | {paired_cells} |")
    if not rows and not failed:
        return ""
    lines = ["| program | sampler period | pinned to | pairs | alone (median s) | sampled (median s) | overhead "
             "| 95 % CI (%) | <= 1 % shown? | paired: per-pair median [95 % CI] | <= 1 % shown, paired? |",
             "|---|---|---|---:|---:|---:|---:|---|---|---|---|", *rows]
    if failed:
        lines += ["", "failed, no figure: " + "; ".join(failed)]
    return "\n".join(lines)


def summarize_lassi(results: list[ResultRecord]) -> str:
    """Per program: the paper's one-run figures beside the same runs' counter and Wattson's own figure.

    Spread is the coefficient of variation of X's figures; bias is the median over repeats of
    (X+10 %'s figure / X's figure of the same repeat) minus the planted ratio, in points."""
    programs: dict[str, dict] = {}
    for record in of_phases(results, "lassi-reference", "lassi"):
        p = programs.setdefault(record["program"], {"references": [], "runs": {}})
        if record["phase"] == "lassi-reference":  # each run of the phase starts with one; repeats restart at 0
            p["references"].append(record)
            continue
        p["runs"].setdefault((len(p["references"]), record["repeat"]), {})[record["variant"]] = record
    rows = []
    for program, p in sorted(programs.items()):
        pairs = [r for r in p["runs"].values() if "x" in r and "x+10%" in r]
        if not pairs:
            continue
        planted = pairs[0]["x+10%"]["planted_ratio"]
        paper_x = [r["x"]["energy"]["median"] for r in pairs]
        counter_x = [r["x"]["energies_j"][0] for r in pairs]
        paper_bias = 100 * (median(r["x+10%"]["energy"]["median"] / r["x"]["energy"]["median"] for r in pairs)
                            - planted)
        counter_bias = 100 * (median(r["x+10%"]["energies_j"][0] / r["x"]["energies_j"][0] for r in pairs)
                              - planted)
        walls = [r[v]["elapsed_s"] for r in pairs for v in ("x", "x+10%")]
        ours = "; ".join(f"{r['energy']['median']:.0f} J [{r['energy']['ci_low']:.0f}, {r['energy']['ci_high']:.0f}],"
                         f" {r['trials']} trials, {r['wall_s']:.0f} s" for r in p["references"]) or "not recorded"
        rows.append(f"| {program} | {len(pairs)} | {median(paper_x):.0f} J | {100 * (cv(paper_x) or 0):.1f} % | "
                    f"{100 * median(paper_x) / median(counter_x):.0f} % | {planted:.3f} | {paper_bias:+.1f} | "
                    f"{median(counter_x):.0f} J | {100 * (cv(counter_x) or 0):.1f} % | {counter_bias:+.1f} | "
                    f"{min(walls):.1f}-{max(walls):.1f} s | {ours} |")
    if not rows:
        return ""
    return "\n".join([
        "| program | repeats | lassi-ee X (median) | spread (CV) | share of the counter's figure | planted ratio "
        "| lassi-ee bias (points) | counter X, same runs | spread (CV) | counter bias (points) "
        "| wall per lassi-ee figure | Wattson protocol, one figure per run of the phase |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|", *rows])


def cv(values: list[float]) -> float | None:
    """Coefficient of variation (0 for a single value); None when the mean is 0 (a counter that did not move)."""
    if len(values) < 2:
        return 0.0
    average = mean(values)
    return stdev(values) / average if average else None


def _calibration_arg(text: str) -> tuple[float, float, float, float]:
    values = [float(v) for v in text.split(",")]
    if len(values) == 2:
        values += [values[1], values[1]]
    if len(values) != 4:
        raise SystemExit("--burner-calibration takes FIXED_J,J_PER_ITERATION or FIXED_J,J_PER_ITERATION,LOW,HIGH")
    return values[0], values[1], values[2], values[3]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phase", choices=["xx", "known", "lassi", "overhead"])
    p.add_argument("--summarize", type=Path, nargs="+", metavar="JSONL",
                   help="print the compare X X records of these files against target (1), the known-answer "
                        "records per program and level and pooled, the overhead records and the lassi-ee ones")
    p.add_argument("--programs", default="all")
    p.add_argument("--hec", type=Path, default=None, help="HeCBench src/ folder (fetched separately)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("measurement_quality.jsonl"))
    p.add_argument("--max-wall-s", type=float, default=90)
    p.add_argument("--max-trials", type=int, default=30)
    p.add_argument("--levels", default="5,10", help="known: planted percentages")
    p.add_argument("--sample-period-s", type=float, default=0.02,
                   help="overhead: the instant-power sampler's period (measured_run's default: 0.02)")
    p.add_argument("--pin-cpus", type=int, default=0, help="bind each run to N host CPUs near the GPU (0: off)")
    p.add_argument("--burner-calibration", default=None, metavar="FIXED_J,J_PER_ITERATION[,LOW,HIGH]",
                   help="known, lassi: reuse a calibration printed by an earlier run instead of measuring one "
                        "(LOW,HIGH: the slope's interval; without them the slope counts as exact)")
    args = p.parse_args()
    if args.summarize:
        results = read_results(args.summarize)
        sections = [s for s in (summarize_xx(results), summarize_known(results), summarize_overhead(results),
                                summarize_lassi(results)) if s]
        print("\n\n".join(sections) or "nothing to summarize in these files: no compare X X records, no "
              "known-answer records of the burner-on-both-sides design, no overhead records, no lassi repeat "
              "with both X and X+10 %")
        return 0
    if args.phase is None:
        p.error("give --phase, or --summarize with result files")
    names = list(EXAMPLES) + (list(HEC_APPS) if args.hec else []) if args.programs == "all" \
        else args.programs.split(",")
    budget = {"min_trials": 5, "max_trials": args.max_trials, "max_wall_s": args.max_wall_s,
              "target_ci_half_width": 0.02, "pin_cpus": args.pin_cpus}
    if args.phase == "overhead":
        phase_overhead(names, args.hec, args.out, args.repeat, args.sample_period_s, args.pin_cpus)
        return 0
    calibration = _calibration_arg(args.burner_calibration) if args.burner_calibration else None
    with AgentClient.start(None) as agent:
        if args.phase == "xx":
            phase_xx(agent, names, args.hec, budget, args.out)
        elif args.phase == "known":
            phase_known(agent, names, args.hec, budget, args.out, args.repeat,
                        levels=tuple(int(v) for v in args.levels.split(",")), calibration=calibration)
        else:
            phase_lassi(agent, names, args.hec, budget, args.out, args.repeat, calibration=calibration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
