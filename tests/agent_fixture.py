"""Helpers for the agent, runner and remote tests: programs that travel in a ProgramSpec, and checks
that no process of a job is left behind.

The programs are Python scripts that play a GPU program against the fake GPU (they write its load
file); they run for real as subprocesses of the agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ENGINE_FAKE_PROGRAM = REPO / "tests" / "helpers" / "fake_gpu_program.py"
VENV_BIN = Path(sys.executable).parent

# Busy for --seconds, optionally leaving a grandchild `sleep` and writing every pid to --pid-file,
# so tests can check that cancel, timeouts and a dropped client kill the whole process tree.
BUSY_PROGRAM = """\
import argparse, os, subprocess, sys, time
p = argparse.ArgumentParser()
p.add_argument("--load-file", required=True)
p.add_argument("--seconds", type=float, default=0.15)
p.add_argument("--pid-file")
p.add_argument("--exit", type=int, default=0)
p.add_argument("--print", default="PASS")
a = p.parse_args()
with open(a.load_file, "w") as f:
    f.write("1")
pids = [os.getpid()]
if a.pid_file:
    child = subprocess.Popen(["sleep", "300"])
    pids.append(child.pid)
    with open(a.pid_file + ".tmp", "w") as f:
        f.write(" ".join(map(str, pids)))
    os.replace(a.pid_file + ".tmp", a.pid_file)
time.sleep(a.seconds)
with open(a.load_file, "w") as f:
    f.write("0")
print(a.print, flush=True)
print("busy program done", file=sys.stderr)
sys.exit(a.exit)
"""

FAST_BUDGET = {"warmup_runs": 0, "min_trials": 2, "max_trials": 3, "max_wall_s": 10.0,
               "cooldown_cap_s": 0.2, "target_ci_half_width": 0.5}


def busy_spec(load_file: Path, *, seconds: float = 0.15, pid_file: Path | None = None, exit_code: int = 0,
              name: str = "busy", run_timeout_s: float = 30.0) -> dict[str, Any]:
    """A ProgramSpec whose source travels in the message and runs in the agent's job folder."""
    run = f"{sys.executable} busy.py --load-file {load_file} --seconds {seconds} --exit {exit_code}"
    if pid_file is not None:
        run += f" --pid-file {pid_file}"
    return {"name": name, "files": {"busy.py": {"text": BUSY_PROGRAM}}, "build": None, "run": run,
            "workdir": ".", "run_timeout_s": run_timeout_s, "build_timeout_s": 60, "env": {}}


def engine_program_spec(load_file: Path, *, seconds: float = 0.1, work: float = 1.0,
                        name: str = "fake") -> dict[str, Any]:
    """The engine's own fake GPU program when it exists (tests/helpers), else BUSY_PROGRAM."""
    if not ENGINE_FAKE_PROGRAM.exists():
        return busy_spec(load_file, seconds=seconds * work, name=name)
    run = (f"{sys.executable} fake_gpu_program.py --load-file {load_file} --seconds {seconds} "
           f"--work {work} --print PASS")
    return {"name": name, "files": {"fake_gpu_program.py": {"text": ENGINE_FAKE_PROGRAM.read_text()}},
            "build": None, "run": run, "workdir": ".", "run_timeout_s": 30, "build_timeout_s": 60, "env": {}}


def agent_env(fake_spec: Path | None, tmp_path: Path) -> dict[str, str]:
    """The agent's environment: the fake GPU, a private lock folder and job folder, wattson on PATH."""
    env = dict(os.environ)
    if fake_spec is not None:
        env["WATTSON_FAKE_GPU"] = str(fake_spec)
    env["WATTSON_LOCK_DIR"] = str(tmp_path / "locks")
    jobs = tmp_path / "jobs"
    jobs.mkdir(exist_ok=True)
    env["TMPDIR"] = str(jobs)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def no_gpu_spec(tmp_path: Path) -> Path:
    path = tmp_path / "no-gpu.json"
    path.write_text(json.dumps({"devices": []}))
    return path


def start_raw_agent(env: dict[str, str]) -> subprocess.Popen:
    """The agent as the runner starts it, with pipes the test drives by hand."""
    return subprocess.Popen([sys.executable, "-m", "wattson", "agent", "--stdio"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def rpc(proc: subprocess.Popen, message: dict[str, Any] | bytes) -> None:
    assert proc.stdin is not None
    data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
    proc.stdin.write(data)
    proc.stdin.flush()


def read_message(proc: subprocess.Popen) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the agent closed its stdout"
    return json.loads(line)


def read_reply(proc: subprocess.Popen, request_id: Any) -> dict[str, Any]:
    """The reply to request_id, skipping notifications."""
    while True:
        message = read_message(proc)
        if "id" in message and message["id"] == request_id:
            return message


def wait_for_file(path: Path, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} did not appear within {timeout_s} s")


def pid_alive(pid: int) -> bool:
    """True while pid runs (a zombie counts as gone: it has stopped and only awaits its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def processes_mentioning(marker: str) -> dict[int, str]:
    """pid -> command line of each running process whose command line contains `marker` (a test's
    load file, a unique word), this test process excepted; zombies have stopped and do not count.
    Not "pytest" by name: pytest's temp folders (/tmp/pytest-of-USER/...) are in the markers."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and int(entry) != os.getpid() and pid_alive(int(entry)):
            found[int(entry)] = cmd
    return found


def wait_all_gone(pids: list[int], timeout_s: float = 10.0) -> list[int]:
    """The pids still running after timeout_s ([] when all have gone)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def read_pids(pid_file: Path) -> list[int]:
    return [int(x) for x in wait_for_file(pid_file).split()]
