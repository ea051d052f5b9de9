"""bench/tracer_breakdown.py without a GPU: the variants build against the local CUPTI, and a run of a
program that prints its own per-iteration time gives the summary table."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import tracer_breakdown as tb  # noqa: E402
from wattson.profilers.kernels.build import SOURCE, KernelTraceUnavailable, locate_cupti  # noqa: E402


def test_variants_are_the_shipped_source_with_one_switch_each():
    source = SOURCE.read_text()
    v = tb.variant_sources(source)
    assert v["kernels"] == v["copies"] == source
    assert tb.KERNEL_ENABLE not in v["none"] and tb.COPIES_ASKED not in v["none"]
    assert "cupti" not in v["empty"]


def test_a_changed_tracer_is_refused_by_name():
    with pytest.raises(SystemExit, match="update bench/tracer_breakdown.py"):
        tb.variant_sources(SOURCE.read_text().replace(tb.COPIES_ASKED, "copies"))


def test_run_builds_every_variant_and_summarises(tmp_path, capsys):
    try:
        locate_cupti()
    except KernelTraceUnavailable as e:
        pytest.skip(str(e))
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    (tmp_path / "prog.py").write_text(
        "import os\nlib = os.environ.get('CUDA_INJECTION64_PATH', '')\n"
        "print('Average execution time per iteration:', 0.002 if 'libkernels' in lib else 0.001)\n")
    out = tmp_path / "rows.jsonl"
    assert tb.main(["--dir", str(tmp_path), "--run", f"{sys.executable} prog.py", "--rounds", "2",
                    "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted({r["variant"] for r in rows}) == ["copies", "empty", "kernels", "none", "plain"]
    assert len(rows) == 10 and all(r["exit_code"] == 0 for r in rows)
    text = capsys.readouterr().out
    # "kernels" and "copies" are one library; the program saw it and reported twice the time per iteration.
    kernels = next(line for line in text.splitlines() if line.startswith("| kernels |"))
    assert "2000.0 µs | +100.0 %" in kernels
    assert "| plain |" in text and "| empty |" in text
