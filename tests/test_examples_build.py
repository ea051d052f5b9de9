"""Every example has a well-formed wattson.toml and builds for real with nvcc, as Wattson would build it.

Built here for sm_90 (`-arch=native` needs a GPU at compile time); tests/gpu/test_examples_gpu.py
runs them on a GPU.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from wattson.config import load_config
from wattson.project import find_project, resolve_program

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMES = ["jacobi2d", "nbody", "histogram", "spmv"]


def source(name: str) -> Path:
    return EXAMPLES / name / f"{name}.cu"


def test_every_example_folder_is_tested():
    folders = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
    assert folders == sorted(NAMES)
    readme = (EXAMPLES / "README.md").read_text()
    for name in NAMES:
        assert f"[{name}]({name}/{name}.cu)" in readme


@pytest.mark.parametrize("name", NAMES)
def test_wattson_toml_is_complete(name):
    config = load_config(EXAMPLES / name / "wattson.toml")
    assert config.build.command == f"nvcc -O3 -arch=native -o {name} {name}.cu"
    assert config.run.command == f"./{name}"
    assert len(config.run.args) == 2 and all(a.isdigit() for a in config.run.args)
    assert config.run.alternate_args and all(len(a) == 2 for a in config.run.alternate_args)
    assert config.run.timeout_s >= 30
    assert find_project(source(name)).kind == "toml"


@pytest.mark.parametrize("name", NAMES)
def test_source_follows_the_example_rules(name):
    text = source(name).read_text()
    assert 'printf("PASS\\n")' in text and 'printf("FAIL' in text
    assert "return 1;" in text  # FAIL exits 1
    assert "cudaMallocManaged" not in text and "cudaMallocHost" not in text
    assert "argv" in text and "__global__" in text
    assert re.search(r"kSeed = 0x[0-9a-f]+u", text)  # fixed seed: the same input on every run
    assert "rand(" not in text and "time(" not in text
    assert "kernel_time_ms" in text and "stderr" in text  # timings stay off stdout


def test_jacobi2d_takes_an_extra_work_knob():
    text = source("jacobi2d").read_text()
    assert "--extra-work" in text
    spec = resolve_program(source("jacobi2d"), ["1024", "100", "--extra-work", "10"])
    assert spec["run"] == "./jacobi2d 1024 100 --extra-work 10"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("name", NAMES)
def test_example_builds_as_wattson_builds_it(name, tmp_path):
    spec = resolve_program(source(name), None)
    assert spec["files"].keys() == {f"{name}.cu", "wattson.toml"}
    assert spec["run"] == f"./{name} " + " ".join(load_config(EXAMPLES / name / "wattson.toml").run.args)
    job = tmp_path / "job"
    for rel, content in spec["files"].items():
        path = job / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content.get("text")
        path.write_bytes(text.encode() if text is not None else base64.b64decode(content["base64"]))
    # The command Wattson sends, for the H100's architecture, with host warnings on: none expected.
    command = spec["build"].replace("-arch=native", "-arch=sm_90") + " -Xcompiler -Wall,-Wextra"
    result = subprocess.run(command, shell=True, cwd=job / spec["workdir"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    binary = job / spec["workdir"] / name
    assert binary.is_file() and binary.read_bytes()[:4] == b"\x7fELF"
