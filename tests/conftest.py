"""Shared fixtures: the scripted fake GPU (the sensor boundary) and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAKE_PROGRAM = REPO / "tests" / "helpers" / "fake_gpu_program.py"


@pytest.fixture
def fake_gpu(tmp_path: Path):
    """A fake GPU whose load the test program writes to `load_file`; returns (spec_path, load_file)."""
    load_file = tmp_path / "gpu-load"
    load_file.write_text("0")
    spec = {"devices": [{"name": "Fake H100", "idle_w": 70, "busy_w": 350, "load_file": str(load_file),
                         "settle_s": 0.05, "counter_period_s": 0.01, "noise_w": 0.5, "seed": 7}]}
    spec_path = tmp_path / "fake-gpu.json"
    spec_path.write_text(json.dumps(spec))
    return spec_path, load_file


@pytest.fixture
def cli_env(tmp_path: Path, fake_gpu) -> dict[str, str]:
    """Environment for running `wattson` as a user would, against the fake GPU and a temp history."""
    spec_path, _ = fake_gpu
    env = dict(os.environ)
    env["WATTSON_FAKE_GPU"] = str(spec_path)
    env["WATTSON_DB"] = str(tmp_path / "history.sqlite3")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wattson_cmd() -> list[str]:
    exe = shutil.which("wattson", path=str(Path(sys.executable).parent)) or shutil.which("wattson")
    return [exe] if exe else [sys.executable, "-m", "wattson"]


def run_wattson(args: list[str], env: dict[str, str], cwd: Path | None = None,
                timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(wattson_cmd() + args, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s)


def fake_programs_running(marker: str) -> list[int]:
    """pids of fake GPU programs whose command line contains `marker` (e.g. their load file)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "fake_gpu_program.py" in cmd and marker in cmd:
                pids.append(int(proc.name))
    return pids
