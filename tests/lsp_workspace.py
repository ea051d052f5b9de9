"""Workspaces for language-server tests: real CUDA sources that nvcc builds, run as fake-GPU programs.

The build compiles the CUDA source for real, so build errors are real compiler output; the run plays
the program against the scripted fake GPU (a fake at the sensors). Optimize tests add our jacobi2d
example and the model's replies for the loopback fake LLM (the other fake: the LLM's HTTP endpoint).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from llm_fake_server import Reply
from script_module import load_script

REPO = Path(__file__).resolve().parents[1]
FAKE_PROGRAM = REPO / "tests" / "helpers" / "fake_gpu_program.py"

KERNEL_SOURCE = """\
// Two kernels of our own: a copy and an FMA loop.
#include <cstdio>

__global__ void copy_kernel(const float* in, float* out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i];
}

template <typename T>
__global__ void fma_kernel(T* x, int n, int reps)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    T v = x[i];
    for (int r = 0; r < reps; ++r) v = v * (T)1.0001 + (T)0.5;
    x[i] = v;
}

int main()
{
    float *a = nullptr, *b = nullptr;
    copy_kernel<<<1, 32>>>(a, b, 0);
    fma_kernel<float><<<1, 32>>>(b, 0, 10);
    printf("PASS\\n");
    return 0;
}
"""


def make_workspace(seconds: float = 0.3, idle_w: float = 70) -> dict:
    """Creates the workspace, a fake-GPU spec and a history path; returns them with the server env."""
    root = Path(tempfile.mkdtemp(prefix="wattson-lsp-"))
    load_file = root / "gpu-load"
    load_file.write_text("0")
    spec = {"devices": [{"name": "Fake H100", "idle_w": idle_w, "busy_w": 350, "load_file": str(load_file),
                         "settle_s": 0.05, "counter_period_s": 0.01, "noise_w": 0.5, "seed": 3}]}
    (root / "fake-gpu.json").write_text(json.dumps(spec))
    project = root / "project"
    project.mkdir()
    (project / "kern.cu").write_text(KERNEL_SOURCE)
    run = f"{sys.executable} {FAKE_PROGRAM} --load-file {load_file} --seconds {seconds} --print PASS"
    (project / "wattson.toml").write_text(
        "[build]\n"
        'command = "nvcc -arch=sm_90 -c kern.cu -o kern.o"\n'
        "[run]\n"
        f"command = {json.dumps(run)}\n"
        "timeout_s = 30\n"
        "[measure]\n"
        "min_trials = 3\nmax_trials = 4\nmax_wall_s = 20\ncooldown_cap_s = 0.2\n"
    )
    env = dict(os.environ)
    env.update({"WATTSON_FAKE_GPU": str(root / "fake-gpu.json"), "WATTSON_DB": str(root / "history.sqlite3"),
                "PYTHONUNBUFFERED": "1"})
    return {"root": root, "project": project, "source": project / "kern.cu", "env": env,
            "db": root / "history.sqlite3", "load_file": load_file}


# --- optimize: our jacobi2d example, replies from the loopback fake LLM ---------------------------

TRANSCRIPTS = REPO / "tests" / "fixtures" / "transcripts"
FAKE_API_KEY = "test-key-not-a-secret"  # only the loopback fake LLM ever sees it


def _load_replay() -> ModuleType:
    return load_script(TRANSCRIPTS / "replay.py")


replay = _load_replay()


def make_optimize_workspace() -> dict:
    """A fake GPU, a history and the server's environment (with the fake LLM's key) for optimize tests.

    Projects come from `add_optimize_project`, one per test, each pointing at that test's fake LLM."""
    ws = make_workspace(idle_w=IDLE_W)
    ws["env"].update({"ANTHROPIC_API_KEY": FAKE_API_KEY, "WATTSON_LOCK_DIR": str(ws["root"] / "locks")})
    return ws


def add_optimize_project(ws: dict, name: str, llm_base_url: str) -> Path:
    """Our jacobi2d example as a project: nvcc builds every candidate, play.py runs it on the fake GPU
    with the work its source declares. Returns the source file."""
    source = replay.make_test_project(ws["root"] / name, FAKE_PROGRAM, ws["load_file"],
                                      replay.anthropic_llm(llm_base_url), max_corrections=0, seconds=RUN_BUSY_S)
    toml = source.parent / "wattson.toml"
    default = "min_trials = 3\nmax_trials = 3\n"  # replay.make_test_project's budget
    assert default in toml.read_text()
    toml.write_text(toml.read_text().replace(default, f"min_trials = {TRIALS}\nmax_trials = {TRIALS}\n"))
    return source


# Busy 0.2 s against 0.12 s is 28 J apart on the fake card. With three trials a side one pair sets
# the interval's bound (the bootstrap draws it twice in a quarter of its resamples), so one candidate
# run that starts late on a loaded machine, adding idle watts, takes the verdict away: at 70 W idle
# 0.4 s late is enough (a full CI run lost it so); at 20 W it takes 1.4 s.
IDLE_W = 20
RUN_BUSY_S = 0.2
TRIALS = 3
CANDIDATE_WORK = 0.6


def candidate_text(marker: str = f"work={CANDIDATE_WORK}") -> str:
    """The candidate the scripted model proposes: the recorded optimized jacobi2d, doing 60 % of the work."""
    return f"// fake-gpu: {marker}\n" + (TRANSCRIPTS / "optimized" / "jacobi2d.cu").read_text(encoding="utf-8")


def optimize_replies(candidate: str | None = None, delay_s: float = 0.0) -> list[Reply]:
    """One trial, one iteration: description, plan, the candidate, the judge's accept.

    `delay_s` holds back the first reply, so a test can act while the model "thinks"."""
    common = TRANSCRIPTS / "common"
    code = replay.code_reply(candidate or candidate_text(), "jacobi2d.cu",
                             ["32 x 8 blocks walking along rows: coalesced loads and stores"])
    verdict = {"verdict": "accept", "reasons": ["The same stencil in the same order; only the thread "
                                                "mapping changed."], "risks": []}
    return [Reply(text=(common / "jacobi2d_description.md").read_text(encoding="utf-8"), delay_s=delay_s),
            Reply(text=(common / "jacobi2d_plan.md").read_text(encoding="utf-8")),
            Reply(text=code),
            Reply(tool_input=verdict)]


# --- the test client ------------------------------------------------------------------------------

def parse_code_actions_per_spec(client) -> None:
    """Make the client tell a CodeAction from a Command as the LSP specification does.

    lsprotocol's converter reads every `textDocument/codeAction` result item that has a `command`
    key as a Command, so a CodeAction carrying its Command object comes back as a Command whose
    `command` is that object's repr. Per the specification a Command's `command` is a string and
    a CodeAction's is a Command object; this hook decides on exactly that."""
    from typing import Union

    from lsprotocol import types

    converter = client.protocol._converter

    def structure(item: dict, _type: object) -> types.Command | types.CodeAction:
        if isinstance(item.get("command"), str):
            return converter.structure(item, types.Command)
        return converter.structure(item, types.CodeAction)

    # typing.Union, not `|`: the hook is found by equality with the type lsprotocol's fields spell.
    converter.register_structure_hook(Union[types.Command, types.CodeAction], structure)  # noqa: UP007
