"""The distribution carries every sub-package and the prompt templates (pyproject lists them by hand)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"server": "wattson", "profilers": "wattson/profilers", "prompts": "wattson/prompts"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "-q", "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("wattson-*.whl")
    return zipfile.ZipFile(whl)


def test_every_package_folder_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    for folder, pkg in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.relative_to(REPO / folder).as_posix()
            assert f"{pkg}/{rel}" in names, f"{folder}/{rel} is missing from pyproject's package list"


def test_prompt_templates_are_package_data(wheel):
    templates = [p.name for p in (REPO / "prompts").glob("*.md")]
    names = set(wheel.namelist())
    for name in templates:
        assert f"wattson/prompts/{name}" in names


def test_console_script_declared(wheel):
    ep = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    assert "wattson = wattson.cli:main" in wheel.read(ep).decode()
