"""Neovim 0.7, headless, as a second LSP client: Wattson's hover and an applied optimize edit work
outside VS Code. Fakes: the GPU sensors and, for the optimize, the LLM's endpoint (loopback)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from llm_fake_server import FakeLlmServer
from lsp_workspace import (
    add_optimize_project,
    candidate_text,
    make_optimize_workspace,
    make_workspace,
    optimize_replies,
)
from wattson.store import History, content_hash

INIT = Path(__file__).parent / "nvim" / "init.lua"

pytestmark = pytest.mark.skipif(shutil.which("nvim") is None,
                                reason="neovim is not installed (apt-get install neovim; .ci/run does)")


def run_nvim(ws: dict, hover_line: int, hover_char: int, optimize: bool = False,
             extra_env: dict | None = None) -> dict:
    out = ws["root"] / "nvim-out.json"
    env = dict(ws["env"])
    env.update({"WATTSON_NVIM_OUT": str(out), "WATTSON_NVIM_FILE": str(ws["source"]),
                "WATTSON_NVIM_PYTHON": sys.executable, "WATTSON_NVIM_HOVER_LINE": str(hover_line),
                "WATTSON_NVIM_HOVER_CHAR": str(hover_char), "WATTSON_NVIM_OPTIMIZE": "1" if optimize else "0",
                "XDG_STATE_HOME": str(ws["root"] / "nvim-state"), "XDG_DATA_HOME": str(ws["root"] / "nvim-data")})
    env.update(extra_env or {})
    subprocess.run(["nvim", "--headless", "--clean", "-u", str(INIT)], env=env, timeout=120,
                   capture_output=True, cwd=ws["project"])
    assert out.exists(), "neovim wrote no result"
    return json.loads(out.read_text())


def test_hover_in_neovim():
    ws = make_workspace()
    text = ws["source"].read_text()
    result = {"protocol": "wattson", "device": {"name": "Fake H100"},
              "energy_j": {"median": 10.0, "ci_low": 9.8, "ci_high": 10.2, "n": 5}, "trials": []}
    kernels = {"kernels": [{"name": "_Z11copy_kernelPKfPfi", "launches": 10, "gpu_time_s": 0.2,
                            "time_share": 0.5, "energy_j": 4.5, "energy_ci_j": [4.2, 4.8], "energy_share": 0.45,
                            "avg_power_w": 222.0, "attributable": True, "reason": ""}]}
    with History(ws["db"]) as h:
        h.add_profile(source_path=str(ws["source"].resolve()), source_hash=content_hash(text), result=result,
                      kernels=kernels)
    line = next(i for i, s in enumerate(text.splitlines()) if "void copy_kernel" in s)
    got = run_nvim(ws, line, text.splitlines()[line].index("copy_kernel") + 1)
    assert got.get("initialized") is True
    assert "4.5 J" in got.get("hover", ""), got
    assert "222 W" in got["hover"]


def test_optimize_edit_is_applied_in_neovim():
    ws = make_optimize_workspace()
    with FakeLlmServer() as llm:
        llm.push(*optimize_replies())
        source = add_optimize_project(ws, "nvim", llm.anthropic_base_url)
        original = source.read_text()
        got = run_nvim(dict(ws, source=source, project=source.parent), 0, 0, optimize=True)
        assert llm.pending() == 0, got["messages"]
    assert got.get("initialized") is True and got.get("optimize_finished") is True, got
    assert got.get("optimize", {}).get("status") == "applied", got
    # Neovim applied the versioned edit to the buffer (unsaved): it now holds the candidate.
    assert got["text_after"] + "\n" == candidate_text() != original
    assert got["modified"] is True and source.read_text() == original
    assert [Path(uri).suffix for uri in got["shown_documents"]] == [".md"]
