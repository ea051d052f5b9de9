"""The examples on a real GPU: PASS, deterministic stdout, 1-5 s with their wattson.toml arguments,
and jacobi2d's --extra-work adding the GPU work it promises. Run with `pytest tests/gpu -s` to see times.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from wattson.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ["jacobi2d", "nbody", "histogram", "spmv"]

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this GPU host")


@pytest.fixture(scope="module")
def binaries(tmp_path_factory) -> dict[str, Path]:
    """Each example built once, as its wattson.toml says (with -arch=native: this host has the GPU)."""
    out = {}
    for name in NAMES:
        where = tmp_path_factory.mktemp(name)
        shutil.copy(EXAMPLES / name / f"{name}.cu", where)
        command = load_config(EXAMPLES / name / "wattson.toml").build.command
        result = subprocess.run(command, shell=True, cwd=where, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        out[name] = where / name
    return out


def run(binary: Path, args: list[str] | tuple[str, ...]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = subprocess.run([str(binary), *args], cwd=binary.parent, capture_output=True, text=True,
                            timeout=120)
    return result, time.monotonic() - start


def kernel_ms(stderr: str, key: str = "kernel_time_ms") -> float:
    match = re.search(rf"^{key} ([0-9.]+)$", stderr, re.MULTILINE)
    assert match, stderr
    return float(match.group(1))


@pytest.mark.parametrize("name", NAMES)
def test_example_passes_in_one_to_five_seconds(binaries, name):
    config = load_config(EXAMPLES / name / "wattson.toml")
    result, wall_s = run(binaries[name], config.run.args)
    print(f"\n{name} {' '.join(config.run.args)}: {wall_s:.2f} s wall, "
          f"{kernel_ms(result.stderr) / 1000:.2f} s in kernels\n{result.stdout}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("PASS")
    assert 1.0 <= wall_s <= 5.0, f"{name} ran {wall_s:.2f} s: adjust [run] args in its wattson.toml"


@pytest.mark.parametrize("name", NAMES)
def test_alternate_input_passes_and_stdout_is_deterministic(binaries, name):
    args = load_config(EXAMPLES / name / "wattson.toml").run.alternate_args[0]
    first, _ = run(binaries[name], args)
    second, _ = run(binaries[name], args)
    assert first.returncode == 0 and first.stdout.rstrip().endswith("PASS"), first.stdout + first.stderr
    assert first.stdout == second.stdout


def test_jacobi2d_extra_work_adds_that_much_gpu_work_and_nothing_to_stdout(binaries):
    base, _ = run(binaries["jacobi2d"], ["2048", "3000"])
    extra, _ = run(binaries["jacobi2d"], ["2048", "3000", "--extra-work", "10"])
    assert base.returncode == 0 and extra.returncode == 0, extra.stdout + extra.stderr
    assert extra.stdout == base.stdout
    share = kernel_ms(extra.stderr, r"extra_sweeps \d+ extra_kernel_time_ms") / kernel_ms(extra.stderr)
    print(f"\njacobi2d --extra-work 10: extra kernel time / main kernel time = {share:.3f}")
    assert 0.08 <= share <= 0.12
