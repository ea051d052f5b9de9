"""`wattson optimize` and `wattson prompts show` as a user runs them: real subprocesses, real nvcc, the
replayed model as a `command` provider, fake GPU sensors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from agent_fixture import processes_mentioning
from rich.console import Console
from script_module import load_script
from wattson.cli_optimize import _apply

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPTS = REPO / "tests" / "fixtures" / "transcripts"
FAKE_PROGRAM = REPO / "tests" / "helpers" / "fake_gpu_program.py"
OPTIMIZED = TRANSCRIPTS / "optimized" / "jacobi2d.cu"
replay = load_script(TRANSCRIPTS / "replay.py")


def wattson_cmd() -> list[str]:
    exe = shutil.which("wattson", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "wattson"]


def run_wattson(args: list[str], env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(wattson_cmd() + args, env=env, capture_output=True, text=True, timeout=timeout_s)


def project(tmp_path: Path, load: Path, marker: str = "work=0.8", **options) -> Path:
    llm = replay.replay_llm(OPTIMIZED, "jacobi2d.cu", marker)
    return replay.make_test_project(tmp_path, FAKE_PROGRAM, load, llm, **options)


def env_without_keys(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in cli_env.items() if not k.endswith("_API_KEY")}
    env["WATTSON_LOCK_DIR"] = str(tmp_path / "locks")
    return env


def test_prompts_show_prints_every_prompt_without_a_key(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    source = replay.make_test_project(
        tmp_path, FAKE_PROGRAM, load, replay.anthropic_llm("http://127.0.0.1:9")
    )
    env = env_without_keys(cli_env, tmp_path)
    out_dir = tmp_path / "prompts"
    proc = run_wattson(["prompts", "show", str(source), "--export", str(out_dir)], env)
    assert proc.returncode == 0, proc.stderr
    for name in (
        "system",
        "context_hardware",
        "context_code",
        "plan",
        "generate",
        "correct",
        "measure_feedback",
        "continue",
        "judge_system",
        "judge",
    ):
        assert f"{name}.md" in proc.stdout
    assert "__global__ void jacobi_sweep" in proc.stdout  # the code that would leave the machine
    assert "filled in during the run" in proc.stdout
    written = sorted(p.name for p in out_dir.iterdir())
    assert written[0] == "01-system.md" and len(written) == 10


def test_optimize_with_trials_reports_metrics_and_applies_with_yes(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    source = project(tmp_path, load)
    original = source.read_text()
    env = env_without_keys(cli_env, tmp_path)
    proc = run_wattson(
        ["optimize", str(source), "-k", "1", "--trials", "2", "--json", "--apply", "--yes"],
        env,
        timeout_s=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    outcome = json.loads(proc.stdout[: proc.stdout.rindex("}") + 1])
    assert outcome["status"] == "improved"
    assert outcome["energy_ratio"]["kind"] == "less"
    metrics = outcome["metrics"]
    assert metrics["n"] == 2 and metrics["passed"] == 2
    assert [row["k"] for row in metrics["rows"]] == [1, 2]
    assert metrics["rows"][0]["pass_at_k"] == 1.0 and 0.0 < metrics["rows"][0]["energy_reduction_at_k"] < 0.3
    assert Path(outcome["report_path"]).exists()
    assert source.read_text() != original and "fake-gpu: work=0.8" in source.read_text()
    with sqlite3.connect(cli_env["WATTSON_DB"]) as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM candidates ORDER BY trial")]
        job = db.execute("SELECT status, summary_json FROM jobs").fetchone()
    assert statuses == ["accepted", "accepted"]  # two trials, run side by side, measured one at a time
    assert job[0] == "done" and json.loads(job[1])["metrics"]["n"] == 2


def test_a_missing_key_is_one_clear_message(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    source = replay.make_test_project(
        tmp_path, FAKE_PROGRAM, load, replay.anthropic_llm("http://127.0.0.1:9")
    )
    proc = run_wattson(["optimize", str(source)], env_without_keys(cli_env, tmp_path))
    assert proc.returncode == 1
    assert "ANTHROPIC_API_KEY is not set" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_ctrl_c_cancels_cleanly_and_the_report_says_where(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    source = project(tmp_path, load, iterations=3)
    env = env_without_keys(cli_env, tmp_path)
    proc = subprocess.Popen(
        wattson_cmd() + ["optimize", str(source)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _candidates(Path(cli_env["WATTSON_DB"])):
            time.sleep(0.2)  # wait until the loop is past its first candidate
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "cancelling" in err and "Traceback" not in err
    with sqlite3.connect(cli_env["WATTSON_DB"]) as db:
        status, summary = db.execute("SELECT status, summary_json FROM jobs").fetchone()
    assert status == "cancelled"
    report = Path(json.loads(summary)["report"]).read_text()
    assert "**Cancelled** while trial 1: iteration" in report
    leftovers = list(processes_mentioning(str(load)))
    assert leftovers == []


def _candidates(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path) as db:
            return db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_apply_asks_and_refuses_without_a_terminal_or_on_a_changed_file(tmp_path, monkeypatch):
    path = tmp_path / "k.cu"
    path.write_text("old\n")
    console, err = Console(file=open(os.devnull, "w")), Console(file=open(os.devnull, "w"))  # noqa: SIM115
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115 - no terminal
    assert _apply(console, err, path, "old\n", "new\n", yes=False) == 1
    assert path.read_text() == "old\n"
    assert _apply(console, err, path, "older\n", "new\n", yes=True) == 1  # the file changed meanwhile
    assert path.read_text() == "old\n"
    assert _apply(console, err, path, "old\n", "new\n", yes=True) == 0
    assert path.read_text() == "new\n"
