"""Running `wattson` as a user would, and finding the fake GPU programs it started."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from agent_fixture import processes_mentioning

REPO = Path(__file__).resolve().parents[1]
FAKE_PROGRAM = REPO / "tests" / "helpers" / "fake_gpu_program.py"


def wattson_cmd() -> list[str]:
    exe = shutil.which("wattson", path=str(Path(sys.executable).parent)) or shutil.which("wattson")
    return [exe] if exe else [sys.executable, "-m", "wattson"]


def run_wattson(args: list[str], env: dict[str, str], cwd: Path | None = None,
                timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(wattson_cmd() + args, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s)


def fake_programs_running(marker: str) -> list[int]:
    """pids of fake GPU programs whose command line contains `marker` (e.g. their load file)."""
    return [pid for pid, cmd in processes_mentioning(marker).items() if "fake_gpu_program.py" in cmd]
