"""Prompt templates (shipped as package data) and how they are rendered from what Wattson knows."""

from __future__ import annotations

import base64
import json
import string
from importlib import resources

import pytest
from wattson.llm.json_schema import schema_problems
from wattson.profilers.fake import FakeDevice
from wattson.prompt_render import (
    JUDGE_SCHEMA,
    MAX_LISTING_CHARS,
    PromptError,
    clip,
    compare_summary,
    continue_context,
    correction_context,
    describe_gpu,
    describe_profile,
    export_prompts,
    feedback_context,
    judge_context,
    kernel_changes,
    prompts_for_file,
    render_prompt,
)
from wattson.prompts import TEMPLATE_NAMES, load_template, parse_template

STENCIL = """#include <cstdio>
// A comment with a fence inside: ```
__global__ void relax(const float* in, float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i > 0 && i < n - 1) out[i] = 0.5f * (in[i - 1] + in[i + 1]);
}
int main(int argc, char** argv) { printf("PASS\\n"); return 0; }
"""

SPEC = {
    "name": "relax",
    "files": {"src/relax.cu": {"text": STENCIL}, "src/common.cuh": {"text": "#pragma once\n#define N 1024\n"},
              "src/input.bin": {"base64": base64.b64encode(bytes(range(256))).decode()},
              "README.md": {"text": "not code"}},
    "build": "nvcc -O3 -arch=native -o relax relax.cu", "run": "./relax 4096 100", "workdir": "src",
    "source_file": "src/relax.cu",
}

KERNELS_BEFORE = {"kernels": [
    {"name": "relax", "launches": 100, "gpu_time_s": 1.5, "time_share": 0.9, "energy_j": 300.0,
     "energy_ci_j": [290.0, 310.0], "energy_share": 0.48, "avg_power_w": 200.0, "attributable": True},
    {"name": "init", "launches": 1, "gpu_time_s": 0.002, "time_share": 0.001, "energy_j": None,
     "energy_share": None, "attributable": False, "reason": "shorter than one sensor period"},
]}
PROFILE = {
    "protocol": "wattson", "energy_j": {"median": 412.3, "ci_low": 405.1, "ci_high": 418.0, "n": 7},
    "duration_s": {"median": 2.31, "ci_low": 2.29, "ci_high": 2.33, "n": 7}, "avg_power_w": 178.5,
    "peak_power_w": 402.0, "idle_power_w": 73.0, "edp_js": 952.4,
    "warnings": ["trial 4 throttled: hw_thermal"],
    "kernels": KERNELS_BEFORE,
}


def fake_gpu_info():
    return FakeDevice(0, {"name": "Fake H100", "power_limit_w": 700}).info


# -- the templates as shipped ---------------------------------------------------------------------

def test_the_installed_package_carries_every_template_with_a_version():
    shipped = resources.files("wattson.prompts")
    for name in TEMPLATE_NAMES:
        text = shipped.joinpath(f"{name}.md").read_text(encoding="utf-8")
        assert text.startswith("version: "), name
        template = load_template(name)
        assert template.version and template.role in ("system", "user") and template.purpose
        assert template.body.strip(), name


def test_templates_use_only_well_formed_placeholders():
    for name in TEMPLATE_NAMES:
        body = load_template(name).body
        for match in string.Template.pattern.finditer(body):
            assert match.group("invalid") is None, f"{name}.md has a stray $ near {match.start()}"


def test_missing_variable_is_named_and_nothing_half_rendered():
    with pytest.raises(PromptError, match=r"plan\.md needs \$\{profile_summary\}, which the caller did not"):
        render_prompt("plan", {})


def test_template_format_errors_are_worded():
    with pytest.raises(PromptError, match="must start with a `version:` line"):
        parse_template("x", "role: user\n---\nbody\n")
    with pytest.raises(PromptError, match="no `---` line"):
        parse_template("x", "version: 1\nbody\n")
    with pytest.raises(PromptError, match="malformed placeholder"):
        parse_template("x", "version: 1\n---\ncosts $ 5\n").render({})
    dollars = parse_template("x", "version: 3\n---\ncosts $$5 for ${n}\n")
    assert dollars.render({"n": "one"}) == "costs $5 for one\n"
    with pytest.raises(PromptError, match="no prompt template named 'nope'"):
        load_template("nope")


# -- the set a run sends, as `wattson prompts show` prints it -------------------------------------

def test_prompts_for_file_need_no_key_and_render_every_template(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    prompts = prompts_for_file(SPEC, PROFILE, fake_gpu_info())
    assert [p.name for p in prompts] == list(TEMPLATE_NAMES)
    assert all(p.version == "1" and "${" not in p.text for p in prompts)
    by_name = {p.name: p for p in prompts}
    assert by_name["system"].role == "system" and by_name["judge_system"].role == "system"
    system = by_name["system"].text
    assert "`nvcc -O3 -arch=native -o relax relax.cu`" in system and "`./relax 4096 100`" in system
    assert "power multiplied by time" in system and "`cuda file=src/relax.cu`" in system
    code = by_name["context_code"].text
    assert code.index("File `src/relax.cu`") < code.index("File `src/common.cuh`")
    assert "README.md" not in code and "input.bin" not in code
    assert "````cuda\n" in code  # the fence outgrew the ``` inside the source
    assert "Both run in `src`" in code and "You may change only: `src/relax.cu`." in code
    plan = by_name["plan"].text
    assert "412.3 J [405.1, 418.0]" in plan and "median of 7 runs" in plan
    assert "26 % of the GPU's 700 W limit" in plan  # 178.5 W of 700 W
    assert plan.index("`relax`") < plan.index("`init`")
    assert "not attributable (shorter than one sensor period)" in plan
    assert "trial 4 throttled: hw_thermal" in plan
    assert "<<the plan the model wrote" in by_name["generate"].text
    assert json.loads(by_name["judge"].text.split("```json\n")[1].split("\n```")[0]) == JUDGE_SCHEMA


def test_prompts_for_file_without_measurements_say_so():
    prompts = {p.name: p.text for p in prompts_for_file(SPEC)}
    assert "Not known yet: the GPU host was not contacted" in prompts["context_hardware"]
    assert "Not measured yet" in prompts["plan"]


def test_hip_programs_are_named_as_such():
    spec = {"name": "k", "files": {"k.hip": {"text": "__global__ void k() {}\n"}},
            "build": "hipcc -O3 -o k k.hip", "run": "./k", "source_file": "k.hip"}
    prompts = {p.name: p.text for p in prompts_for_file(spec)}
    assert "for HIP programs" in prompts["system"] and "`hip file=k.hip`" in prompts["system"]
    assert "```hip\n" in prompts["context_code"]


def test_sources_too_large_for_a_model_are_refused_with_advice():
    spec = dict(SPEC, files={"src/relax.cu": {"text": "x" * (MAX_LISTING_CHARS + 1)}})
    with pytest.raises(PromptError, match="optimize a smaller program"):
        prompts_for_file(spec)
    with pytest.raises(PromptError, match="source file src/missing.cu is not among its files"):
        prompts_for_file(dict(SPEC, source_file="src/missing.cu"))


def test_export_writes_one_file_per_prompt(tmp_path):
    prompts = prompts_for_file(SPEC, PROFILE, fake_gpu_info())
    paths = export_prompts(prompts, tmp_path / "out")
    assert [p.name for p in paths][:3] == ["01-system.md", "02-context_hardware.md", "03-context_code.md"]
    first = paths[0].read_text()
    assert first.startswith("<!-- role: system; template: system.md version 1 -->")
    assert first.endswith(prompts[0].text)


# -- the pieces -----------------------------------------------------------------------------------

def test_gpu_description_derives_bandwidth_from_clock_and_bus():
    text = describe_gpu(fake_gpu_info())
    assert "Fake H100" in text and "132 streaming multiprocessors" in text
    assert "about 3,352 GB/s peak (5120-bit bus" in text  # 2619 MHz x 2 x 5120 bit / 8
    assert "Power limit: 700 W" in text and "80 GiB" in text
    assert "Model: X (nvidia)" in describe_gpu({"name": "X", "vendor": "nvidia"})


def test_profile_without_kernels_or_energy_is_described_honestly():
    text = describe_profile({"duration_s": {"median": 1.0, "ci_low": 0.9, "ci_high": 1.1}})
    assert "energy: not available" in text and "Per-kernel figures: not measured" in text
    assert "time: 1.000 s [0.900, 1.100]" in text


def test_comparison_is_told_in_the_candidates_terms():
    more = {"energy_ratio": {"kind": "more", "ratio": 1.03, "ci_low": 1.019, "ci_high": 1.041},
            "time_ratio": {"median": 0.95, "ci_low": 0.94, "ci_high": 0.96},
            "a": {"energy_j": {"median": 400.0}}, "b": {"energy_j": {"median": 412.0}}}
    text = compare_summary(more)
    assert text.startswith("Your version uses 3.0 % more energy than the original "
                           "(95 % CI +1.9 % to +4.1 %).")
    assert "- Time: -5.0 % (95 % CI -6.0 % to -4.0 %)" in text
    assert "- Original: 400.0 J" in text and "- Your version: 412.0 J" in text
    assert "uses 7.9 % less energy" in compare_summary({"energy_ratio": {"kind": "less", "ratio": 0.921}})
    assert "No detectable difference in energy: +0.3 %" in compare_summary(
        {"energy_ratio": {"kind": "same", "ratio": 1.003}})


def test_kernel_changes_name_where_the_energy_went():
    after = [{"name": "relax", "energy_share": 0.6, "gpu_time_s": 1.1},
             {"name": "relax_tiled", "energy_share": 0.2, "gpu_time_s": 0.3}]
    text = kernel_changes(KERNELS_BEFORE, after)
    assert ("- kernel `relax` takes 60 % of the energy (original: 48 %); "
            "1.100 s of GPU time (original: 1.500 s)") in text
    assert "`relax_tiled` takes 20 % of the energy (new kernel)" in text
    assert "no longer launched: `init`" in text
    assert kernel_changes(KERNELS_BEFORE, None) == "No per-kernel figures for this run."


def test_runtime_prompts_render_from_their_contexts():
    base = {"build_command": "make", "language": "CUDA"}
    failure = correction_context("compile error", "relax.cu(3): error: x", 2, 3)
    fixed = render_prompt("correct", base | failure)
    assert "## Your version failed: compile error" in fixed.text and "correction 2 of at most 3" in fixed.text
    assert "```text\nrelax.cu(3): error: x\n```" in fixed.text
    with pytest.raises(PromptError, match="unknown failure kind 'typo'"):
        correction_context("typo", "", 1, 3)
    feedback = render_prompt("measure_feedback", feedback_context(
        {"energy_ratio": {"kind": "more", "ratio": 1.03}}, KERNELS_BEFORE,
        [{"name": "relax", "energy_share": 0.6}], iteration=2, max_iterations=3, best_so_far="none yet"))
    assert "uses 3.0 % more energy" in feedback.text and "`relax` takes 60 % of the energy" in feedback.text
    assert "iteration 2 of 3" in feedback.text
    cont = render_prompt("continue", continue_context("line\n" * 30 + "    out[i] = 0.5f *"))
    assert cont.text.count("line\n") == 11 and "out[i] = 0.5f *" in cont.text
    judge = render_prompt("judge", {"source_file": "relax.cu"} | judge_context(
        original_code=STENCIL, candidate_code=STENCIL, diff="", original_output="PASS",
        candidate_output="PASS", oracle_results="all passed", measurements="-8 %"))
    assert judge.text.count("````cuda") == 2 and "all passed" in judge.text


def test_clip_keeps_both_ends_of_long_output():
    text = "HEAD" + "x" * 10_000 + "TAIL"
    clipped = clip(text, 600)
    assert clipped.startswith("HEAD") and clipped.endswith("TAIL") and "characters omitted" in clipped
    assert clip("short") == "short"


def test_judge_schema_accepts_a_verdict_and_rejects_nonsense():
    verdict = {"verdict": "reject", "reasons": ["loop count halved"], "risks": []}
    assert schema_problems(verdict, JUDGE_SCHEMA) == []
    assert schema_problems({"verdict": "ok"}, JUDGE_SCHEMA)
