"""The corpus on a real GPU: every variant built with nvcc, run inside the sandbox, judged for real.

CI judges recorded outputs emulated on the CPU (tests/corpus/emulate_outputs.py). Here the variants
run for real, so this checks two things: the verdicts hold on real output (legit accepted, hacks
rejected), and the emulated outputs lead the oracle to the same verdict as real ones, which keeps
the numbers in docs/verification.md honest. Variants marked run_on_gpu: false change clocks or power
limits and are never run.

Set WATTSON_CORPUS_OUT=DIR to keep the real outputs (one JSON per variant, as in outputs/).
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from script_module import load_script
from wattson.profilers.run import measured_run
from wattson.profilers.sandbox import make_sandbox
from wattson.verify import RunOutput, is_blocking

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _load_corpus_module():
    """tests/corpus/evaluate.py, under a name no installed package can shadow."""
    return load_script(CORPUS / "evaluate.py", "wattson_corpus_evaluate")


corpus = _load_corpus_module()

MANIFEST = corpus.load_manifest()
RUNNABLE = [v for v in corpus.variants(MANIFEST) if v.run_on_gpu]
pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this GPU host")


@cache
def build_dir() -> Path:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"wattson-corpus-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@cache
def binary(program: str, name: str, flags: tuple[str, ...], source: str) -> Path:
    out = build_dir() / f"{program}-{name}"
    proc = subprocess.run(
        corpus.build_command(MANIFEST, Path(source), out, list(flags)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return out


_RUN_NUMBERS = itertools.count()


def run_once(exe: Path, args: list[str], program: str, label: str) -> RunOutput:
    """One run in a fresh working directory, as the agent runs candidates: nothing carries over."""
    workdir = build_dir() / "runs" / f"{label}-{next(_RUN_NUMBERS)}"
    workdir.mkdir(parents=True)
    sandbox = make_sandbox(workdir)
    command = " ".join(shlex.quote(part) for part in [str(exe), *args])
    m = measured_run(command, cwd=workdir, device=None, timeout_s=120, sandbox=sandbox)
    files = {}
    for name in MANIFEST["programs"][program].get("file_modes", {}):
        if (workdir / name).exists():
            files[name] = (workdir / name).read_bytes()
    return RunOutput(m.exit_code, m.stdout, m.stderr, m.timed_out, files, m.output_truncated)


def arg_sets(program: str) -> list[list[str]]:
    spec = MANIFEST["programs"][program]
    return [spec.get("args", [])] + spec.get("alternate_args", [])


@cache
def original_runs(program: str) -> dict[str, list[RunOutput]]:
    spec = MANIFEST["programs"][program]
    exe = binary(program, "original", (), str(CORPUS / spec["source"]))
    return {
        " ".join(a): [run_once(exe, a, program, f"{program}-original") for _ in range(2)]
        for a in arg_sets(program)
    }


def keep(program: str, name: str, runs: dict[str, list[RunOutput]]) -> None:
    target = os.environ.get("WATTSON_CORPUS_OUT")
    if target:
        path = Path(target) / program / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"synthetic": False, "runs": {k: [r.to_dict() for r in v] for k, v in runs.items()}}
        path.write_text(json.dumps(record, indent=1) + "\n")


def test_a_cuda_program_runs_inside_the_sandbox():
    runs = original_runs("vecadd")[""]
    for run in runs:
        assert run.exit_code == 0, run.stderr
        assert "PASS" in run.stdout
    keep("vecadd", "original", original_runs("vecadd"))


@pytest.mark.parametrize("variant", RUNNABLE, ids=lambda v: f"{v.program}-{v.name}")
def test_real_outputs_give_the_recorded_verdict(variant, monkeypatch):
    originals = original_runs(variant.program)
    keep(variant.program, "original", originals)
    exe = binary(variant.program, variant.name, tuple(variant.nvcc_flags), str(variant.source))
    real = {
        " ".join(a): [run_once(exe, a, variant.program, f"{variant.program}-{variant.name}")]
        for a in arg_sets(variant.program)
    }
    keep(variant.program, variant.name, real)

    recorded = corpus.judge(variant, MANIFEST)
    real_runs = {"original": originals, variant.name: real}
    monkeypatch.setattr(corpus, "recorded_runs", lambda program, name: real_runs[name])
    on_gpu = corpus.judge(variant, MANIFEST)

    details = [f.describe() for f in on_gpu.findings]
    if variant.label == "legit":
        assert not on_gpu.rejected, details
    else:
        assert on_gpu.correct, details
    assert on_gpu.rejected_by_output_alone == recorded.rejected_by_output_alone, (
        "the emulated outputs (tests/corpus/outputs) lead the oracle elsewhere than real ones: "
        f"real {sorted({f.check for f in on_gpu.oracle if is_blocking(f)})}, "
        f"emulated {sorted({f.check for f in recorded.oracle if is_blocking(f)})}; {details}"
    )
