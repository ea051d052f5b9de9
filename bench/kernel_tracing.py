"""Per-kernel tracing on a real GPU: its overhead on wall time, and the per-kernel tables it gives.

Run on a GPU host (after `. bench/device_setup.sh` there, or with wattson installed):

    python bench/kernel_tracing.py --programs all --hec HECBENCH/src --repeat 3 --out results.jsonl
    python bench/kernel_tracing.py --render results.jsonl          # Markdown for docs/benchmarks.md
    python bench/kernel_tracing.py --dry-build --programs jacobi2d,layout --hec HECBENCH/src

Programs are those of bench/measurement_quality.py: our examples (examples/NAME/NAME.cu) and the six
HeCBench apps (--hec DIR pointing at a checkout's src/; fetched separately, never part of this
repository). All programs and the CUPTI tracer are built first, in parallel; then, one program at a
time on the GPU:

  overhead  after `--warmup` untimed runs, R interleaved pairs (plain first, then traced first, ...) of
            measured_run without and with the tracer's environment (CUDA_INJECTION64_PATH). Overhead =
            median traced wall time / median plain - 1, over the pairs where both runs succeeded. Every
            raw duration, exit code and whole-process energy is kept; a traced run that fails is recorded
            with its exit code and output tail, not dropped.
  kernels   profile_kernels on EVERY successful traced run's trace: the full report (to_dict) of the
            last one, and each run's per-kernel energies, so the tables show the spread across runs
            beside the bootstrap CI of one run.

Each program's result is one JSON line, appended and flushed as soon as it is known, so a run cut
short keeps what it finished (`--stop-after-s` starts no new program after that many seconds).
`--render` turns the lines into Markdown tables in the style of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measurement_quality, when imported by tests

from wattson.profilers.device import GpuDevice  # noqa: E402
from wattson.profilers.jobs import BuildResult, JobDir, ProgramSpec, gpu_arch, job_env, run_build  # noqa: E402
from wattson.profilers.kernels import (  # noqa: E402
    KernelTraceUnavailable,
    build_injection_library,
    kernel_trace_env,
    locate_cupti,
    profile_kernels,
)
from wattson.profilers.run import RunError, RunMeasurement, measured_run  # noqa: E402
from wattson.profilers.stats import ratio_of_medians  # noqa: E402

OVERHEAD_TARGET_PCT = 5.0
MIN_PAIRS = 3  # the least --pairs-wall-s cuts a program's pairs down to
SECONDS_LISTED = 8  # runs listed one by one in the tables
TOP_KERNELS = 8
# Kernels without an energy figure get a row of their own only from this share of GPU time up; the
# many tiny ones (folded into their neighbours by the fit) are counted in "others".
UNFITTED_ROW_MIN_SHARE = 0.01
OUTPUT_TAIL_CHARS = 1500
DRY_BUILD_ARCH = "sm_90"  # the H100's, for building where no GPU answers
SOURCE_SUFFIXES = (".cu", ".cuh", ".hip", ".cpp", ".cc", ".cxx", ".c", ".h", ".hpp")


# --- programs and builds ----------------------------------------------------------------------------


def program_names(programs: str, hec: Path | None) -> list[str]:
    from measurement_quality import EXAMPLES, HEC_APPS

    if programs == "all":
        return list(EXAMPLES) + (list(HEC_APPS) if hec else [])
    return [n.strip() for n in programs.split(",") if n.strip()]


def program_spec(name: str, hec: Path | None) -> ProgramSpec:
    from measurement_quality import target_for

    return ProgramSpec.from_dict(target_for(name, hec).program)


@dataclass
class BuiltProgram:
    name: str
    spec: ProgramSpec
    job: JobDir
    build: BuildResult


def build_programs(names: list[str], hec: Path | None, arch: str | None, jobs: int,
                   base_dir: Path | None = None) -> tuple[list[BuiltProgram], Path | None, str | None]:
    """Every program's build, and the tracer's, in parallel: ([built], tracer library, tracer error).

    The builds are CPU work; doing them all before the first GPU run keeps the GPU's time for runs."""
    specs = [(n, program_spec(n, hec)) for n in names]  # unknown names fail here, before any build

    def build_one(name: str, spec: ProgramSpec) -> BuiltProgram:
        job = JobDir(spec, base_dir=base_dir)
        return BuiltProgram(name, spec, job, run_build(spec, job, arch=arch))

    def build_tracer() -> tuple[Path | None, str | None]:
        try:
            return build_injection_library(), None
        except KernelTraceUnavailable as e:
            return None, str(e)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        tracer = pool.submit(build_tracer)
        futures = [pool.submit(build_one, n, s) for n, s in specs]
        built, failure = [], None
        for f in futures:
            try:
                built.append(f.result())
            except Exception as e:  # noqa: BLE001 - re-raised below, once the other job folders are gone
                failure = failure or e
        library, error = tracer.result()
    if failure is not None:
        for b in built:
            b.job.cleanup()
        raise failure
    return built, library, error


def build_record(b: BuiltProgram) -> dict[str, Any]:
    record: dict[str, Any] = {"kind": "build", "program": b.name, "ok": b.build.ok,
                              "duration_s": b.build.duration_s, "exit_code": b.build.exit_code,
                              "arch": b.build.arch, "command": b.spec.build}
    if not b.build.ok:
        record["output"] = b.build.output[-OUTPUT_TAIL_CHARS:]
    return record


# --- the measurement of one program ---------------------------------------------------------------------


def source_texts(spec: ProgramSpec) -> dict[str, str]:
    """The program's sources by path, so kernels map back to file:line."""
    return {name: content["text"] for name, content in spec.files.items()
            if name.endswith(SOURCE_SUFFIXES) and isinstance(content.get("text"), str)}


@dataclass
class TracedRun:
    pair: int  # 0-based index of the interleaved pair it belongs to
    measurement: RunMeasurement
    trace_path: Path


@dataclass
class ProgramRuns:
    """What the GPU produced for one program: R plain and R traced runs, in pairs."""

    plain: list[RunMeasurement]
    traced: list[TracedRun]
    orders: list[str]  # "plain-traced" or "traced-plain", per pair
    warmup_exit_codes: list[int | None]


def run_pairs(spec: ProgramSpec, run_dir: Path, device: GpuDevice | None, library: Path, arch: str | None,
              repeat: int, warmup: int, trace_dir: Path, log: Callable[[str], None] | None = None,
              pairs_wall_s: float | None = None, copies: bool = False) -> ProgramRuns:
    """Warm-up runs, then `repeat` interleaved pairs (plain first, then traced first, ...) of measured runs.

    With `pairs_wall_s`, no new pair starts once the pairs have taken that long (after MIN_PAIRS), so a
    10 s program does not hold the GPU for as many pairs as a 1 s one."""
    env = job_env(spec, arch, device)

    def run(extra: dict[str, str]) -> RunMeasurement:
        return measured_run(spec.run, cwd=run_dir, device=device, timeout_s=spec.run_timeout_s,
                            env={**env, **extra})

    runs = ProgramRuns(plain=[], traced=[], orders=[], warmup_exit_codes=[])
    runs.warmup_exit_codes = [run({}).exit_code for _ in range(warmup)]
    started = time.monotonic()
    for i in range(repeat):
        if pairs_wall_s is not None and i >= MIN_PAIRS and time.monotonic() - started > pairs_wall_s:
            if log:
                log(f"{spec.name}: {i} pairs took {time.monotonic() - started:.0f} s (--pairs-wall-s): no more")
            break
        order = ("plain", "traced") if i % 2 == 0 else ("traced", "plain")
        runs.orders.append("-".join(order))
        for side in order:
            if side == "plain":
                m = run({})
                runs.plain.append(m)
            else:
                trace_path = trace_dir / f"run{i}.tsv"  # the tracer appends: one file per run
                m = run(kernel_trace_env(trace_path, library, copies))
                runs.traced.append(TracedRun(i, m, trace_path))
            if log:
                log(f"{spec.name}: pair {i + 1}/{repeat} {side} {m.duration_s:.2f} s"
                    + (f" ({m.failure_text()})" if m.failed else ""))
    return runs


def run_summary(m: RunMeasurement) -> dict[str, Any]:
    out: dict[str, Any] = {"duration_s": m.duration_s, "exit_code": m.exit_code, "timed_out": m.timed_out,
                           "energy_j": m.energy_mj / 1000 if m.energy_mj is not None else None,
                           "energy_source": m.energy_source, "warnings": m.warnings}
    if m.failed:
        out["failure"] = m.failure_text()
        out["stdout_tail"] = m.stdout[-OUTPUT_TAIL_CHARS:]
        out["stderr_tail"] = m.stderr[-OUTPUT_TAIL_CHARS:]
    return out


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def overhead_summary(plain: list[dict[str, Any]], traced: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the pairs where both runs succeeded; overhead = traced / plain - 1, in %, with the
    same bootstrap interval of a ratio of medians that `wattson compare` gives."""
    ok = [(p, t) for p, t in zip(plain, traced, strict=True) if "failure" not in p and "failure" not in t]
    plain_s = _median([p["duration_s"] for p, _ in ok])
    traced_s = _median([t["duration_s"] for _, t in ok])
    plain_j = _median([p["energy_j"] for p, _ in ok if p["energy_j"] is not None])
    traced_j = _median([t["energy_j"] for _, t in ok if t["energy_j"] is not None])
    ci = (ratio_of_medians([p["duration_s"] for p, _ in ok], [t["duration_s"] for _, t in ok])
          if len(ok) >= 2 else None)
    return {"pairs_ok": len(ok), "plain_median_s": plain_s, "traced_median_s": traced_s,
            "overhead_pct": 100 * (traced_s / plain_s - 1) if plain_s and traced_s else None,
            "overhead_ci_pct": [100 * (ci.ci_low - 1), 100 * (ci.ci_high - 1)] if ci else None,
            "energy_ratio": traced_j / plain_j if plain_j and traced_j else None}


def overhead_verdict(record: dict[str, Any]) -> str:
    """yes / no when the interval is on one side of the target; otherwise the runs were too noisy to say."""
    overhead, ci = record.get("overhead_pct"), record.get("overhead_ci_pct")
    if overhead is None:
        return "—"
    if ci is None:  # one pair, or a record from before intervals were kept
        return "yes" if overhead <= OVERHEAD_TARGET_PCT else "**no**"
    if ci[1] <= OVERHEAD_TARGET_PCT:
        return "yes"
    if ci[0] > OVERHEAD_TARGET_PCT:
        return "**no**"
    return "yes (point), CI reaches past" if overhead <= OVERHEAD_TARGET_PCT else "**no** (point), CI reaches below"


def kernel_run_entry(run: TracedRun, sources: dict[str, str], copies: bool = False) -> dict[str, Any]:
    """One traced run's kernel report (profile_kernels on its trace and power timeline), or why not."""
    m, path = run.measurement, run.trace_path
    entry: dict[str, Any] = {"pair": run.pair, "trace_bytes": path.stat().st_size if path.exists() else 0}
    if m.failed:
        entry["error"] = f"the traced run {m.failure_text()}"
        return entry
    try:
        # The run's timeline counts from its start; the trace is on the monotonic clock.
        report = profile_kernels(path, m.timeline, sources=sources, timeline_origin_s=m.start_monotonic_s,
                                 copies_traced=copies)
    except (KernelTraceUnavailable, ValueError) as e:
        # Without its temporary path, the same reason from several runs reads as one.
        entry["error"] = str(e).replace(f" ({path.resolve()})", "").replace(f" ({path})", "")
        return entry
    entry.update(
        process_energy_j=m.energy_mj / 1000 if m.energy_mj is not None else None, duration_s=m.duration_s,
        busy_window_energy_j=report.busy_window_energy_j, busy_window_s=report.busy_window_s,
        launches=sum(k.launches for k in report.kernels if k.kind == "kernel"),
        kernels={k.name: k.energy_j for k in report.kernels},
        groups={g.name: g.energy_j for g in report.groups},
        report=report.to_dict(),
    )
    return entry


def program_record(name: str, spec: ProgramSpec, runs: ProgramRuns, repeat: int, warmup: int,
                   copies: bool = False) -> dict[str, Any]:
    """The JSON line of one program: raw runs, the overhead, and the kernel reports of every traced run.

    The full report is kept for the last traced run that gave one; the others keep their per-kernel
    energies, which the table shows as the spread across runs."""
    record: dict[str, Any] = {"kind": "program", "program": name, "run": spec.run, "repeat": repeat,
                              "warmup": warmup, "copies": copies, "warmup_exit_codes": runs.warmup_exit_codes,
                              "order": runs.orders,
                              "plain": [run_summary(m) for m in runs.plain],
                              "traced": [run_summary(t.measurement) for t in runs.traced]}
    # Pairs are matched by index: run_pairs appends one plain and one traced run per pair.
    record.update(overhead_summary(record["plain"], record["traced"]))
    t0 = time.monotonic()
    sources = source_texts(spec)
    per_run = [kernel_run_entry(t, sources, copies) for t in runs.traced]
    record["attribution_s"] = time.monotonic() - t0
    reported = [e for e in per_run if "report" in e]
    for e in reported[:-1]:
        del e["report"]
    record["kernel_runs"] = per_run
    record["table_from_pair"] = reported[-1]["pair"] if reported else None
    return record


def measure_program(name: str, spec: ProgramSpec, run_dir: Path, device: GpuDevice | None, library: Path,
                    arch: str | None, repeat: int, warmup: int,
                    log: Callable[[str], None] | None = None, pairs_wall_s: float | None = None,
                    copies: bool = False) -> dict[str, Any]:
    """Runs one built program on the GPU and returns its record (run_pairs + program_record)."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wattson-kernel-traces-") as trace_dir:
        try:
            runs = run_pairs(spec, run_dir, device, library, arch, repeat, warmup, Path(trace_dir), log,
                             pairs_wall_s=pairs_wall_s, copies=copies)
        except RunError as e:
            return {"kind": "program", "program": name, "run": spec.run, "repeat": repeat, "warmup": warmup,
                    "error": str(e), "elapsed_s": time.monotonic() - t0}
        record = program_record(name, spec, runs, repeat, warmup, copies)
    record["elapsed_s"] = time.monotonic() - t0
    return record


# --- rendering (a pure function of the records) -----------------------------------------------------------


def short_kernel_name(name: str) -> str:
    """`void burn<float>(float*, int)` -> `burn<float>`: the table shows names, the JSON keeps signatures."""
    text = name.strip()
    if text.endswith(")"):
        depth = 0
        for i in range(len(text) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(text[i], 0)
            if depth == 0:
                text = text[:i]
                break
    if text.startswith("void "):
        text = text[len("void "):]
    return text or name


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _j(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.1f} %"


def _seconds(values: list[float]) -> str:
    """Every run's seconds; beyond a few runs, their count and range (the table stays readable)."""
    if not values:
        return "—"
    if len(values) > SECONDS_LISTED:
        return f"{len(values)} runs, {min(values):.2f}–{max(values):.2f}"
    return ", ".join(f"{v:.2f}" for v in values)


def _failures(record: dict[str, Any]) -> str:
    texts = []
    for side in ("plain", "traced"):
        bad = [r for r in record.get(side, []) if "failure" in r]
        if bad:
            said = (bad[0].get("stderr_tail") or bad[0].get("stdout_tail") or "").strip().splitlines()[-1:]
            texts.append(f"{side} run {bad[0]['failure']} ({len(bad)} of {len(record[side])})"
                         + (f": {said[0][:160]}" if said else ""))
    if record.get("error"):
        texts.append(record["error"])
    return "; ".join(texts).replace("|", "\\|")  # program output must not split the table's cells


def overhead_table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"| program | plain (s) | traced (s) | overhead (medians) | 95 % CI | ≤ {OVERHEAD_TARGET_PCT:g} %? "
        "| plain runs' spread | energy traced/plain | kernel launches traced | failures |",
        "|---|---|---|---:|---|---|---:|---:|---:|---|",
    ]
    for r in records:
        plain = [p["duration_s"] for p in r.get("plain", [])]
        traced = [t["duration_s"] for t in r.get("traced", [])]
        overhead, ci = r.get("overhead_pct"), r.get("overhead_ci_pct")
        shown = "—" if overhead is None else f"{overhead:+.1f} %"
        shown_ci = f"[{ci[0]:+.1f}, {ci[1]:+.1f}] %" if ci else "—"
        ok_plain = [p["duration_s"] for p in r.get("plain", []) if "failure" not in p]
        spread = (f"{100 * (max(ok_plain) - min(ok_plain)) / statistics.median(ok_plain):.1f} %"
                  if len(ok_plain) > 1 else "—")
        ratio = r.get("energy_ratio")
        launches = [e["launches"] for e in r.get("kernel_runs", []) if "launches" in e]
        failures = _failures(r)
        lines.append(
            f"| {r['program']} | {_seconds(plain)} | {_seconds(traced)} | {shown} | {shown_ci} | "
            f"{overhead_verdict(r)} | {spread} | "
            f"{f'{ratio:.3f}' if ratio else '—'} | {launches[-1] if launches else '—'} | "
            f"{'**' + failures + '**' if failures else ''} |")
    return lines


def _row_entries(report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kernels and inseparable groups with an energy figure, by energy; kernels without one, by GPU
    time). Members of a group appear only in the group's row."""
    with_energy, without = [], []
    for k in report.get("kernels", []):
        if k.get("group"):
            continue
        (with_energy if k.get("energy_j") is not None else without).append(k)
    for g in report.get("groups", []):
        with_energy.append({"name": g["name"], "is_group": True, "members": g["members"],
                            "energy_j": g["energy_j"], "energy_ci_j": g["energy_ci_j"],
                            "avg_power_w": g["avg_power_w"], "charged_time_s": g["charged_time_s"]})
    with_energy.sort(key=lambda e: -e["energy_j"])
    without.sort(key=lambda e: -e.get("charged_time_s", 0.0))
    return with_energy, without


def _group_totals(report: dict[str, Any], members: list[str]) -> tuple[int, float, float]:
    kernels = {k["name"]: k for k in report.get("kernels", [])}
    chosen = [kernels[m] for m in members if m in kernels]
    return (sum(k["launches"] for k in chosen), sum(k["gpu_time_s"] for k in chosen),
            sum(k["time_share"] for k in chosen))


def kernel_table(record: dict[str, Any], top_kernels: int = TOP_KERNELS) -> list[str]:
    """One program's per-kernel table from its record, with the run's figures above and notes below."""
    runs = record.get("kernel_runs", [])
    full = next((e for e in runs if "report" in e), None)
    name = record["program"]
    lines = [f"#### {name}", ""]
    if full is None:
        reasons = sorted({e.get("error", "") for e in runs if e.get("error")}) or [
            _failures(record) or "no traced run finished"]
        lines += [f"No per-kernel table: {'; '.join(reasons)}.", ""]
        return lines
    report = full["report"]
    reported = [e for e in runs if "kernels" in e]
    busy_j, process_j = full.get("busy_window_energy_j"), full.get("process_energy_j")
    share = f" ({100 * busy_j / process_j:.0f} % of the process)" if busy_j and process_j else ""
    lines.append(
        f"`{record['run']}`; the table is traced run {full['pair'] + 1} of {len(runs)} (the last that gave "
        f"a report; {len(reported)} did). Whole process {_j(process_j)} J in {full.get('duration_s', 0):.2f} s; "
        f"GPU busy window {_j(busy_j)} J{share} over {report['busy_window_s']:.2f} s, kernels running "
        f"{report.get('busy_time_s', 0):.2f} s of it"
        + (f"; idle gaps {_j(report['gap_energy_j'])} J. " if report.get("gap_energy_j") is not None else ". ")
        + f"{report.get('windows', 0)} sensor windows, lag {_ms(report.get('sensor_lag_s'))}, "
        f"fit residual {_w(report.get('fit_rms_w'))} RMS.")
    lines += [
        "",
        "| kernel | launches | GPU time (s) | time share | energy (J) [95 % CI] | energy share [95 % CI] "
        "| avg power (W) | energy per traced run (J) | source |",
        "|---|---:|---:|---:|---|---|---:|---|---|",
    ]
    fitted, unfitted = _row_entries(report)
    candidates = fitted + [k for k in unfitted if k.get("time_share", 0.0) >= UNFITTED_ROW_MIN_SHARE]
    rest = candidates[top_kernels:] + [k for k in unfitted if k.get("time_share", 0.0) < UNFITTED_ROW_MIN_SHARE]
    notes: list[str] = []
    for entry in candidates[:top_kernels]:
        lines.append(_kernel_row(entry, report, reported, notes))
    if rest:
        lines.append(_others_row(rest, report))
    if report.get("gap_energy_j") is not None:
        gap_w = report.get("gap_power_w")
        lines.append(f"| (GPU idle between kernels) | | | | {_j(report['gap_energy_j'])} | | "
                     f"{f'{gap_w:.0f}' if gap_w is not None else '—'} | | |")
    lines.append("")
    for note in notes:
        lines.append(f"- {note}")
    for note in report.get("method_notes", []):
        lines.append(f"- {note}")
    lines.append("")
    return lines


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{1000 * seconds:.0f} ms"


def _w(watts: float | None) -> str:
    return "—" if watts is None else f"{watts:.0f} W" if watts >= 10 else f"{watts:.2g} W"


def _ci(ci: list[float] | None, fmt: Any) -> str:
    return f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""


def _per_run_j(values: list[float | None]) -> str:
    """Each traced run's figure; beyond a few runs, how many had one and their range."""
    if len(values) <= SECONDS_LISTED:
        return ", ".join(_j(v) for v in values)
    known = [v for v in values if v is not None]
    if not known:
        return f"none of {len(values)} runs"
    return f"{len(known)} of {len(values)} runs: {_j(min(known))}–{_j(max(known))}"


def _kernel_row(entry: dict[str, Any], report: dict[str, Any], runs: list[dict[str, Any]],
                notes: list[str]) -> str:
    if entry.get("is_group"):
        launches, gpu_time_s, time_share = _group_totals(report, entry["members"])
        label = "together: " + " + ".join(_code(short_kernel_name(m)) for m in entry["members"])
        per_run = [e.get("groups", {}).get(entry["name"]) for e in runs]
        busy = report.get("busy_window_energy_j")
        share = entry["energy_j"] / busy if busy else None
        share_ci = [entry["energy_ci_j"][0] / busy, entry["energy_ci_j"][1] / busy] if busy else None
        source = ""
    else:
        launches, gpu_time_s, time_share = entry["launches"], entry["gpu_time_s"], entry["time_share"]
        label = _code(short_kernel_name(entry["name"]))
        if entry.get("kind", "kernel") != "kernel":
            label = entry["name"]
        per_run = [e.get("kernels", {}).get(entry["name"]) for e in runs]
        share, share_ci = entry.get("energy_share"), entry.get("energy_share_ci")
        source = _code(entry["source"]) if entry.get("source") else ""
    if entry.get("energy_j") is None:
        notes.append(f"{label}: unattributable: {entry.get('reason') or 'no figure'}")
        energy = "unattributable"
    else:
        energy = _j(entry["energy_j"]) + _ci(entry.get("energy_ci_j"), _j)
    share_text = _pct(share) + _ci(share_ci, lambda v: f"{100 * v:.1f}") if share is not None else "—"
    power = entry.get("avg_power_w")
    return (f"| {label} | {launches} | {gpu_time_s:.3f} | {_pct(time_share)} | {energy} | {share_text} | "
            f"{f'{power:.0f}' if power is not None else '—'} | {_per_run_j(per_run)} | {source} |")


def _others_row(rest: list[dict[str, Any]], report: dict[str, Any]) -> str:
    launches = gpu_time_s = time_share = energy_j = 0.0
    without = 0
    for entry in rest:
        if entry.get("is_group"):
            n, g, s = _group_totals(report, entry["members"])
        else:
            n, g, s = entry["launches"], entry["gpu_time_s"], entry["time_share"]
        launches, gpu_time_s, time_share = launches + n, gpu_time_s + g, time_share + s
        if entry.get("energy_j") is None:
            without += 1
        else:
            energy_j += entry["energy_j"]
    if without == len(rest):
        energy = f"— ({without} without a figure)"
    else:
        energy = _j(energy_j) + (f" (+ {without} without a figure)" if without else "")
    busy = report.get("busy_window_energy_j")
    share = _pct(energy_j / busy) if busy and without < len(rest) else "—"
    return (f"| others ({len(rest)}) | {int(launches)} | {gpu_time_s:.3f} | {_pct(time_share)} | {energy} | "
            f"{share} | | | |")


def render_markdown(records: list[dict[str, Any]], top_kernels: int = TOP_KERNELS) -> str:
    """The overhead table and one per-kernel table per program, from the JSON lines of a run."""
    setups = [r for r in records if r.get("kind") == "setup"]
    programs = [r for r in records if r.get("kind") == "program"]
    failed_builds = [r for r in records if r.get("kind") == "build" and not r.get("ok")]
    lines: list[str] = []
    if setups:
        s = setups[-1]
        lines += [f"{s.get('time', '')[:10]}, {s.get('device', '?')} (driver {s.get('driver', '?')}), "
                  f"{s.get('cupti', '?')}; {s.get('repeat')} interleaved pairs per program after "
                  f"{s.get('warmup')} warm-up run(s).", ""]
    lines += ["### Tracing overhead on wall time", ""]
    lines += overhead_table(programs) if programs else ["No program finished."]
    lines.append("")
    for b in failed_builds:
        last = (b.get("output") or "").strip().splitlines()[-1:] or ["no output"]
        lines += [f"- {b['program']}: the build failed (exit {b.get('exit_code')}): {last[0]}", ""]
    lines += ["### Per-kernel energy", "",
              f"Top {top_kernels} by energy; kernels without an energy figure follow when they took at least "
              f"{100 * UNFITTED_ROW_MIN_SHARE:g} % of GPU time; the rest are \"others\". CIs are one run's "
              "block bootstrap; the per-run column shows the spread across the traced runs.", ""]
    for r in programs:
        lines += kernel_table(r, top_kernels)
    return "\n".join(lines).rstrip() + "\n"


def read_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"{path}:{n}: not a JSON line (a run cut mid-write?); skipped", file=sys.stderr)
    return records


# --- the command ----------------------------------------------------------------------------------------


def emit(out: Path, record: dict[str, Any]) -> None:
    record["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    with out.open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
    brief = {k: record[k] for k in ("kind", "program", "ok", "overhead_pct", "pairs_ok", "error",
                                    "attribution_s", "elapsed_s") if k in record}
    print(json.dumps(brief), flush=True)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _cupti_text() -> str:
    try:
        return locate_cupti().describe()
    except KernelTraceUnavailable as e:
        return str(e)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--programs", default="all", help="all, or a comma list (jacobi2d,layout,...)")
    p.add_argument("--hec", type=Path, default=None, help="HeCBench src/ folder (fetched separately)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved plain/traced pairs per program")
    p.add_argument("--warmup", type=int, default=1, help="untimed plain runs before the pairs")
    p.add_argument("--copies", action="store_true", help="trace memcpy and memset too (--kernel-copies)")
    p.add_argument("--pairs-wall-s", type=float, default=None,
                   help=f"per program: start no new pair after this many seconds of pairs (at least {MIN_PAIRS})")
    p.add_argument("--out", type=Path, default=Path("kernel_tracing.jsonl"))
    p.add_argument("--render", type=Path, default=None, metavar="FILE.jsonl",
                   help="print the Markdown tables of an earlier run and exit")
    p.add_argument("--dry-build", action="store_true",
                   help="build the programs and the CUPTI tracer, run nothing (no GPU needed)")
    p.add_argument("--arch", default=None, help=f"nvcc arch (default: the GPU's; {DRY_BUILD_ARCH} without one)")
    p.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1), help="parallel builds")
    p.add_argument("--stop-after-s", type=float, default=None,
                   help="start no new program after this many seconds (the finished ones are kept)")
    args = p.parse_args(argv)

    if args.render is not None:
        if not args.render.exists():
            print(f"{args.render} does not exist: give the --out file of a run", file=sys.stderr)
            return 2
        sys.stdout.write(render_markdown(read_records(args.render)))
        return 0
    if args.repeat < 1 or args.warmup < 0:
        print("--repeat must be at least 1 and --warmup at least 0", file=sys.stderr)
        return 2

    from wattson.profilers.device import open_devices

    started = time.monotonic()
    names = program_names(args.programs, args.hec)
    devices = [] if args.dry_build else open_devices()
    if not args.dry_build and not devices:
        print("no GPU found (NVML sees none): run this on a GPU host, or use --dry-build to only build",
              file=sys.stderr)
        return 2
    device = devices[0] if devices else None
    arch = args.arch or gpu_arch(device) or DRY_BUILD_ARCH

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {text}", file=sys.stderr, flush=True)

    log(f"building {len(names)} program(s) and the tracer for {arch}")
    built, library, tracer_error = build_programs(names, args.hec, arch, args.jobs)
    try:
        if args.dry_build:
            for b in built:
                print(json.dumps(build_record(b)))
            print(json.dumps({"kind": "tracer", "library": str(library) if library else None,
                              "error": tracer_error, "cupti": _cupti_text()}))
            log("dry build done")
            return 0 if library and all(b.build.ok for b in built) else 1

        assert device is not None
        emit(args.out, {"kind": "setup", "device": device.info.name, "driver": device.info.driver_version,
                        "arch": arch, "cupti": _cupti_text(), "tracer": str(library) if library else None,
                        "tracer_error": tracer_error, "repeat": args.repeat, "warmup": args.warmup,
                        "pairs_wall_s": args.pairs_wall_s, "copies": args.copies,
                        "programs": names, "commit": _git_commit(), "python": sys.version.split()[0]})
        for b in built:
            emit(args.out, build_record(b))
        if library is None:
            print(f"the CUPTI tracer could not be built: {tracer_error}", file=sys.stderr)
            return 1
        for b in built:
            if not b.build.ok:
                continue
            if args.stop_after_s is not None and time.monotonic() - started > args.stop_after_s:
                log(f"--stop-after-s reached: {b.name} and the programs after it were not run")
                break
            log(f"{b.name}: measuring ({args.warmup} warm-up, {args.repeat} pairs)")
            emit(args.out, measure_program(b.name, b.spec, b.job.run_dir, device, library, arch,
                                           args.repeat, args.warmup, log=log, pairs_wall_s=args.pairs_wall_s,
                                           copies=args.copies))
    finally:
        for b in built:
            b.job.cleanup()
    log(f"done; results in {args.out}; render with --render {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
