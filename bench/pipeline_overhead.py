"""Pipeline overhead: the wall time of `wattson optimize` with k = 3 and instant model replies (issue 5).

Run on a GPU host (after `. bench/device_setup.sh` there, or with wattson installed):

    python bench/pipeline_overhead.py --out results.jsonl                    # jacobi2d, histogram
    python bench/pipeline_overhead.py --examples jacobi2d --iterations 1 --measure max_wall_s=60
    python bench/pipeline_overhead.py --dry-run                              # what it would run
    python bench/pipeline_overhead.py --render results.jsonl                 # table for docs/benchmarks.md

Target: at most 5 minutes of wall time per file (the paper took about 30 minutes per trial).

Only jacobi2d and histogram are run by default: they are the examples with a recorded optimized version
of our own (tests/fixtures/transcripts/optimized/), so the replayed model proposes a correct, faster
program and the run goes through every stage (checks, interleaved measurement, judge). For an example
without one there is nothing for the model to reply that could pass.

Each example is copied into a work folder with its own wattson.toml, plus `[optimize] k = 3` and a
`command` LLM provider that answers at once (tests/fixtures/transcripts/replay.py: the description, the
plan, the recorded candidate for every code request, "accept" for the judge). Iterations and
corrections stay at the defaults a user gets unless --iterations says otherwise, and the measurement
budget is the example's own [measure] (the defaults, for our examples) unless --measure overrides keys
of it. What was used is in each record. The run is `wattson optimize FILE --json --trials K`, as a
user's process: `--trials K` runs the same K trials as `-k K` and adds pass@k and energy-reduction@k.

Where the time went: `--json` gives no per-stage durations, and nothing is added to the product for
this. The job folder the run leaves (original/profile.json and each candidate's result.json) holds
the wall time of every measurement session the agent ran under its GPU lock (the original's profile,
each candidate's two check runs, each comparison; warm-ups and cooldowns included) and the duration
of each counted program run. The record gives their sums, and the wall time outside them: builds
(the original is rebuilt for every comparison), the runs on alternate inputs, the kernel-trace run,
the model's calls, the checks, start-up. Trials run side by side, so this is wall time on the
critical path, not a sum over trials.

Each example gets a share of --deadline-s (default 560 s, for one 10-minute call); an example still
running at the end of its share is cancelled as a user's ^C would (its record says so, with what it
finished). One JSON line per example is appended to --out and flushed as soon as it is known. The
projects, each run's history and its job folder (report, every candidate) stay in --work-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattson.config import Config, ConfigError, OptimizeConfig, find_config_file, load_config
from wattson.refactor.selection import ratio_with_ci
from wattson.store import History

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPTS = REPO / "tests" / "fixtures" / "transcripts"
EXAMPLES_WITH_RECORDINGS = ("jacobi2d", "histogram")
TARGET_S = 300.0
DEFAULT_K = 3
DEFAULT_DEADLINE_S = 560.0
# After ^C the loop stops its agent jobs and writes the report; beyond this, the process group is ended.
CANCEL_GRACE_S = 40.0
MIN_RUN_S = 30.0
_TAIL_CHARS = 3000


# --- the project: the example, the replaying model, the settings -----------------------------------


@dataclass(frozen=True)
class BenchSettings:
    k: int = DEFAULT_K
    iterations: int | None = None  # None: the user's default
    measure: dict[str, Any] = field(default_factory=dict)  # [measure] keys that override the example's


def replay_command(name: str, source_file: str) -> str:
    """The `command` provider that answers every request at once with our recorded version."""
    return shlex.join(
        [
            sys.executable,
            str(TRANSCRIPTS / "replay.py"),
            "--candidate",
            str(TRANSCRIPTS / "optimized" / f"{name}.cu"),
            "--source-file",
            source_file,
        ]
    )


def project_tables(example_toml: str, settings: BenchSettings, llm_command: str) -> dict[str, dict]:
    """The example's wattson.toml with the benchmark's k, iterations, budget and model."""
    tables = tomllib.loads(example_toml)
    optimize = dict(tables.get("optimize") or {}, k=settings.k)
    if settings.iterations is not None:
        optimize["iterations"] = settings.iterations
    tables["optimize"] = optimize
    if settings.measure:
        tables["measure"] = {**(tables.get("measure") or {}), **settings.measure}
    # The whole table is replaced: keys of another provider would not apply to this one.
    tables["llm"] = {"provider": "command", "command": llm_command, "timeout_s": 60}
    return tables


def toml_text(tables: dict[str, dict]) -> str:
    """TOML for wattson.toml's shapes: tables of strings, numbers, booleans, lists and inline tables."""
    lines: list[str] = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string for these characters
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"cannot write {value!r} as TOML")


def parse_measure_overrides(items: list[str]) -> dict[str, Any]:
    """`min_trials=3` -> {"min_trials": 3}; values are TOML values (numbers unquoted)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--measure {item!r}: write KEY=VALUE, e.g. --measure max_wall_s=60")
        try:
            overrides[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            raise ValueError(f"--measure {item!r}: {value!r} is not a number or a TOML value") from None
    return overrides


def make_project(name: str, work_dir: Path, settings: BenchSettings) -> Path:
    """Copies examples/NAME into work_dir/NAME with the benchmark's wattson.toml; returns the source.
    A project and history left there by an earlier run are replaced.

    Raises ConfigError when the resulting wattson.toml is not valid (a wrong --measure key, say)."""
    folder = work_dir / name
    for earlier in (folder, history_path(folder / f"{name}.cu", name).parent):
        if earlier.exists():
            shutil.rmtree(earlier)
    shutil.copytree(REPO / "examples" / name, folder)
    toml_path = folder / "wattson.toml"
    source = folder / f"{name}.cu"
    tables = project_tables(toml_path.read_text(encoding="utf-8"), settings, replay_command(name, source.name))
    toml_path.write_text(toml_text(tables), encoding="utf-8")
    load_config(toml_path)  # the same validation the run will do, before any GPU time is spent
    return source


def effective_config(source: Path) -> Config:
    return load_config(find_config_file(source))


def history_path(source: Path, name: str) -> Path:
    """The run's own history; its job folders (reports, candidates) go beside it, in jobs/."""
    return source.parent.parent / f"{name}-history" / "history.sqlite3"


# --- the run -----------------------------------------------------------------------------------------


def wattson_cmd() -> list[str]:
    exe = shutil.which("wattson", path=str(Path(sys.executable).parent)) or shutil.which("wattson")
    return [exe] if exe else [sys.executable, "-m", "wattson"]


def optimize_command(source: Path, k: int) -> list[str]:
    return wattson_cmd() + ["optimize", str(source), "--json", "--trials", str(k)]


@dataclass
class OptimizeRun:
    command: list[str]
    timeout_s: float
    wall_s: float
    exit_code: int | None
    stdout: str
    stderr: str
    stopped_by_bench: bool  # still running at timeout_s: cancelled with SIGINT, as ^C would


def _deliver_sigint() -> None:
    """In the child: SIGINT as a user's ^C, even when this script runs in the background (nohup, `&`),
    where it is inherited ignored and would stay ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_optimize(command: list[str], env: dict[str, str], timeout_s: float) -> OptimizeRun:
    """Runs the command to its end, or cancels it at timeout_s and waits for its clean stop."""
    started = time.monotonic()
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_deliver_sigint,
    )
    stopped = False
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stopped = True
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=CANCEL_GRACE_S)
        except subprocess.TimeoutExpired:
            # The cancel did not finish: end the whole group it started (the agent included).
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    wall_s = time.monotonic() - started
    return OptimizeRun(command, timeout_s, wall_s, proc.returncode, out, err, stopped)


def parse_outcome(stdout: str) -> dict | None:
    """The outcome JSON that `optimize --json` prints; None when it printed none."""
    start, end = stdout.find("{"), stdout.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        value = json.loads(stdout[start : end + 1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# --- where the time went: the job folder ---------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _session_wall_s(result: dict | None) -> float:
    return float((result or {}).get("wall_s") or 0.0)


def _program_run_s(result: dict | None) -> float:
    return sum(float(t.get("duration_s") or 0.0) for t in (result or {}).get("trials") or [])


def job_breakdown(job_dir: Path) -> dict:
    """Sums of the measurement sessions and program runs recorded in an optimize job's folder."""
    profile = _read_json(job_dir / "original" / "profile.json") or None
    checks_s = compares_s = program_s = 0.0
    n_checks = n_compares = 0
    for path in sorted(job_dir.glob("trial-*/iteration-*/result.json")):
        result = _read_json(path)
        if result.get("check_profile"):
            n_checks += 1
            checks_s += _session_wall_s(result["check_profile"])
            program_s += _program_run_s(result["check_profile"])
        compare = result.get("compare")
        if compare:
            n_compares += 1
            compares_s += _session_wall_s(compare)
            program_s += _program_run_s(compare.get("a")) + _program_run_s(compare.get("b"))
    original_s = _session_wall_s(profile)
    program_s += _program_run_s(profile)
    return {
        "original_profile_s": round(original_s, 2),
        "check_sessions": n_checks,
        "check_sessions_s": round(checks_s, 2),
        "compare_sessions": n_compares,
        "compare_sessions_s": round(compares_s, 2),
        "measurement_sessions_s": round(original_s + checks_s + compares_s, 2),
        "program_runs_s": round(program_s, 2),
        "budget": (profile or {}).get("budget"),
        "device": ((profile or {}).get("device") or {}).get("name"),
        "fake_sensors": ((profile or {}).get("device") or {}).get("vendor") == "fake",
    }


def _job_dir(outcome: dict | None, summary: dict | None, db_path: Path) -> Path | None:
    for report in ((outcome or {}).get("report_path"), (summary or {}).get("report")):
        if report:
            return Path(report).parent
    folders = sorted((db_path.parent / "jobs").glob("*")) if (db_path.parent / "jobs").is_dir() else []
    return folders[-1] if folders else None


# --- the record ----------------------------------------------------------------------------------------


def _best(verdict: dict | None) -> dict | None:
    if not verdict or verdict.get("ratio") is None:
        return None
    keys = ("kind", "ratio", "ci_low", "ci_high", "text")
    return {key: verdict.get(key) for key in keys}


def _target_met(run: OptimizeRun, finished: bool) -> bool | None:
    """Within TARGET_S? None when the run ended early without an answer (stopped, or an error)."""
    if run.wall_s > TARGET_S:
        return False
    return True if finished else None


def build_record(name: str, source: Path, run: OptimizeRun, db_path: Path) -> dict:
    """One JSON line: settings used, wall time, outcome and where the time went."""
    config = effective_config(source)
    outcome = parse_outcome(run.stdout)
    job: dict | None = None
    candidates: list[dict] = []
    if db_path.exists():
        with History(db_path) as history:
            job = history.job(int((outcome or {}).get("job_id") or 1))
            if job is not None:
                candidates = history.candidates(job["id"])
    summary = (job or {}).get("summary")
    status = (outcome or {}).get("status") or ("cancelled" if run.stopped_by_bench else "error")
    # Finished: the loop ran to its end and said whether it improved the file.
    finished = status in ("improved", "no-improvement") and not run.stopped_by_bench
    job_dir = _job_dir(outcome, summary, db_path)
    breakdown = job_breakdown(job_dir) if job_dir is not None else None
    if breakdown is not None:
        breakdown["outside_measurement_s"] = round(run.wall_s - breakdown["measurement_sessions_s"], 2)
    by_status: dict[str, int] = {}
    for c in candidates:
        by_status[c["status"]] = by_status.get(c["status"], 0) + 1
    tokens = (summary or {}).get("tokens") or {}
    opt = config.optimize
    record: dict[str, Any] = {
        "bench": "pipeline_overhead",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "example": name,
        "k": opt.k,
        "iterations": opt.iterations,
        "max_corrections": opt.max_corrections,
        "user_defaults": {"k": OptimizeConfig().k, "iterations": OptimizeConfig().iterations,
                          "max_corrections": OptimizeConfig().max_corrections},
        "measure": {
            "min_trials": config.measure.min_trials,
            "max_trials": config.measure.max_trials,
            "max_wall_s": config.measure.max_wall_s,
            "target_ci_half_width": config.measure.target_ci_half_width,
            "cooldown_cap_s": config.measure.cooldown_cap_s,
        },
        "command": shlex.join(run.command),
        "timeout_s": round(run.timeout_s, 1),
        "wall_s": round(run.wall_s, 2),
        "wall_per_trial_s": round(run.wall_s / opt.k, 2),
        "target_s": TARGET_S,
        "target_met": _target_met(run, finished),
        "finished": finished,
        "stopped_by_bench": run.stopped_by_bench,
        "exit_code": run.exit_code,
        "status": status,
        "message": (outcome or {}).get("message"),
        "best": _best((outcome or {}).get("energy_ratio")),
        "metrics": (outcome or {}).get("metrics"),
        "candidates": {"planned_first_versions": opt.k * opt.iterations, "recorded": len(candidates),
                       "by_status": by_status},
        "llm_calls": sum(int(m.get("calls") or 0) for m in tokens.get("models") or []),
        "stopped_at": (summary or {}).get("stopped_at"),
        "breakdown": breakdown,
        "report_path": (outcome or {}).get("report_path") or (summary or {}).get("report"),
    }
    if not finished:
        record["stderr_tail"] = run.stderr[-_TAIL_CHARS:]
    return record


def append_record(out: Path, record: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run_example(name: str, source: Path, timeout_s: float, env: dict[str, str]) -> dict:
    """`wattson optimize` on one prepared project, with its own history database beside it."""
    db_path = history_path(source, name)
    config = effective_config(source)
    run_env = dict(env, WATTSON_DB=str(db_path), PYTHONUNBUFFERED="1")
    run = run_optimize(optimize_command(source, config.optimize.k), run_env, timeout_s)
    return build_record(name, source, run, db_path)


# --- the table for docs/benchmarks.md ------------------------------------------------------------------


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def _target_cell(record: dict) -> str:
    met = record.get("target_met")
    if met is not None:
        return "yes" if met else "**no**"
    if record.get("stopped_by_bench"):
        return f"not known (stopped at {record['wall_s']:.0f} s)"
    return "not known (the run failed)"


def _best_cell(record: dict) -> str:
    if record.get("best"):
        return ratio_with_ci(record["best"])
    return record.get("status") or "–"


def _measuring_cell(record: dict) -> str:
    b = record.get("breakdown")
    if not b:
        return "–"
    share = b["measurement_sessions_s"] / record["wall_s"] * 100 if record["wall_s"] else 0.0
    return (
        f"{b['measurement_sessions_s']:.0f} s ({share:.0f} %): original {b['original_profile_s']:.0f} s, "
        f"{_count(b['check_sessions'], 'check')} {b['check_sessions_s']:.0f} s, "
        f"{_count(b['compare_sessions'], 'comparison')} {b['compare_sessions_s']:.0f} s; programs ran "
        f"{b['program_runs_s']:.0f} s"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _notes_cell(record: dict) -> str:
    notes = []
    defaults = record.get("user_defaults") or {}
    if record["iterations"] != defaults.get("iterations"):
        notes.append(f"iterations {record['iterations']} (user default {defaults.get('iterations')})")
    m = record["measure"]
    notes.append(
        f"budget {m['min_trials']}–{m['max_trials']} trials, {m['max_wall_s']:g} s, ±{m['target_ci_half_width']:g}"
    )
    if record.get("stopped_by_bench"):
        cands = record["candidates"]
        notes.append(
            f"cancelled at its {record['timeout_s']:.0f} s share: {cands['recorded']} candidate(s) of "
            f"{cands['planned_first_versions']} planned"
            # The first of the stages that were running is enough for a table; the record has all.
            + (f", stopped in {record['stopped_at'].split('; ')[0]}" if record.get("stopped_at") else "")
        )
    if record["status"] in ("failed", "error"):
        first_line = (record.get("message") or record.get("stderr_tail") or "").strip().split("\n")[0]
        notes.append(first_line[:160].replace("|", "\\|"))
    b = record.get("breakdown") or {}
    if b:
        notes.append(f"{b['outside_measurement_s']:.0f} s outside measurement")
    notes.append(f"{record.get('llm_calls', 0)} model calls")
    metrics = record.get("metrics")
    if metrics:
        notes.append(f"{metrics['passed']}/{metrics['n']} trials passed")
    if b.get("fake_sensors"):
        notes.append("fake sensors")
    return "; ".join(notes)


def render_markdown(records: list[dict]) -> str:
    devices = sorted({(r.get("breakdown") or {}).get("device") or "unknown device" for r in records})
    dates = sorted({r["time"][:10] for r in records})
    lines = [
        f"{', '.join(dates)}, {', '.join(devices)}. Model: instant replies (recorded versions, "
        f"`command` provider). Target: ≤ {TARGET_S / 60:.0f} min per file.",
        "",
        "| example | k | iterations | wall | wall / trial | ≤ 5 min? | best reduction [95 % CI] | "
        "measurement sessions | notes |",
        "|---|---:|---:|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['example']} | {r['k']} | {r['iterations']} | {_minutes(r['wall_s'])} | "
            f"{r['wall_per_trial_s']:.0f} s | {_target_cell(r)} | {_best_cell(r)} | {_measuring_cell(r)} | "
            f"{_notes_cell(r)} |"
        )
    return "\n".join(lines) + "\n"


def read_records(path: Path) -> list[dict]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if record.get("bench") == "pipeline_overhead":
                records.append(record)
    return records


# --- the command line ------------------------------------------------------------------------------------


def _shares_s(deadline_s: float, n_left: int) -> float:
    """An example's share of what is left: room for its cancel is kept back."""
    return deadline_s / n_left - CANCEL_GRACE_S


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", default=",".join(EXAMPLES_WITH_RECORDINGS),
                   help="comma-separated; each needs tests/fixtures/transcripts/optimized/NAME.cu")
    p.add_argument("-k", type=int, default=DEFAULT_K, help="independent trials (default 3)")
    p.add_argument("--iterations", type=int, default=None, help="per trial (default: the user's default)")
    p.add_argument("--measure", action="append", default=[], metavar="KEY=VALUE",
                   help="override a [measure] key of the example, e.g. max_wall_s=60 (repeatable)")
    p.add_argument("--deadline-s", type=float, default=DEFAULT_DEADLINE_S,
                   help="wall time for all examples together; each gets an equal share of what is left")
    p.add_argument("--timeout-s", type=float, default=None, help="per example, instead of a share of the deadline")
    p.add_argument("--work-dir", type=Path, default=None, help="projects, histories and job folders (kept)")
    p.add_argument("--out", type=Path, default=Path("pipeline_overhead.jsonl"))
    p.add_argument("--dry-run", action="store_true", help="write the projects, print their wattson.toml and "
                   "the command; run nothing")
    p.add_argument("--render", type=Path, default=None, metavar="FILE.jsonl",
                   help="print the Markdown table of earlier results and exit")
    args = p.parse_args(argv)

    if args.render is not None:
        try:
            records = read_records(args.render)
        except (OSError, json.JSONDecodeError) as e:
            print(f"error: cannot read {args.render}: {e}", file=sys.stderr)
            return 2
        if not records:
            print(f"error: {args.render} holds no pipeline_overhead records", file=sys.stderr)
            return 2
        print(render_markdown(records), end="")
        return 0

    names = [n.strip() for n in args.examples.split(",") if n.strip()]
    missing = [n for n in names if not (TRANSCRIPTS / "optimized" / f"{n}.cu").is_file()
               or not (REPO / "examples" / n).is_dir()]
    if missing:
        print(f"error: no example with a recorded optimized version for {', '.join(missing)}; "
              f"choose from {', '.join(EXAMPLES_WITH_RECORDINGS)}", file=sys.stderr)
        return 2
    if args.k < 1 or (args.iterations is not None and args.iterations < 1):
        print("error: -k and --iterations must be at least 1", file=sys.stderr)
        return 2
    try:
        settings = BenchSettings(k=args.k, iterations=args.iterations, measure=parse_measure_overrides(args.measure))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="wattson-pipeline-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        sources = {name: make_project(name, work_dir, settings) for name in names}
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if args.dry_run:
        for name, source in sources.items():
            config = effective_config(source)
            print(f"# {name}: {source.parent / 'wattson.toml'}")
            print((source.parent / "wattson.toml").read_text(encoding="utf-8"))
            print(f"# command (WATTSON_DB={history_path(source, name)}):")
            print(shlex.join(optimize_command(source, config.optimize.k)) + "\n")
        share = args.timeout_s or _shares_s(args.deadline_s, len(names))
        print(f"# each example: at most {share:.0f} s, then cancelled; records would go to {args.out}")
        return 0

    started = time.monotonic()
    print(f"work folder: {work_dir}; records: {args.out}", file=sys.stderr, flush=True)
    for i, name in enumerate(names):
        left_s = args.deadline_s - (time.monotonic() - started)
        timeout_s = args.timeout_s or _shares_s(left_s, len(names) - i)
        if timeout_s < MIN_RUN_S:
            print(f"{name}: not run, {left_s:.0f} s left of the deadline", file=sys.stderr, flush=True)
            continue
        print(f"{name}: running, at most {timeout_s:.0f} s", file=sys.stderr, flush=True)
        record = run_example(name, sources[name], timeout_s, dict(os.environ))
        append_record(args.out, record)
        print(json.dumps({k: record[k] for k in ("example", "wall_s", "status", "target_met", "best")}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
