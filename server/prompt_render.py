"""Turning what Wattson knows (program, GPU, measurements, failures) into the text of its prompts.

The templates in prompts/ hold the wording; this module fills their placeholders. It formats the
GPU's description, the sources, the measured profile (whole program and per kernel), comparison
results and failure reports, and renders templates into `RenderedPrompt`s. `prompts_for_file`
renders the full set for one program without a key or a GPU, for `wattson prompts show FILE`:
values only a run can know (the model's own replies, a candidate's failures) appear as clearly
marked placeholders.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from wattson.prompts import TEMPLATE_NAMES, PromptError, load_template

__all__ = [
    "FAILURE_KINDS", "JUDGE_SCHEMA", "PromptError", "RenderedPrompt", "clip", "compare_summary",
    "continue_context", "correction_context", "describe_gpu", "describe_profile", "export_prompts",
    "feedback_context", "judge_context", "kernel_changes", "program_context", "prompts_for_file",
    "render_prompt", "render_prompt_set", "run_context",
]


@dataclass(frozen=True)
class RenderedPrompt:
    name: str  # the template's name, e.g. "plan"
    text: str
    role: str = "user"  # "system" or "user"
    version: str = ""  # the template's version line

    def to_dict(self) -> dict:
        return asdict(self)


# The judge's answer (server/judge.py asks for it with provider.complete_json). Closed objects with
# every property required, so strict structured-output modes accept it as it is.
JUDGE_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["accept", "reject"]},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "risks": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["verdict", "reasons", "risks"],
    "additionalProperties": False,
}

FAILURE_KINDS = ("compile error", "runtime error", "wrong output", "suspected shortcut")

SOURCE_SUFFIXES = {".cu": "cuda", ".cuh": "cuda", ".hip": "hip", ".h": "cpp", ".hpp": "cpp", ".hh": "cpp",
                   ".c": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".inc": "cpp", ".inl": "cpp"}
MAX_LISTING_CHARS = 400_000  # beyond this the sources would crowd out the model's context
MAX_OUTPUT_CHARS = 6_000  # per program output or failure report quoted in a prompt
MAX_KERNEL_ROWS = 15


def _marker(what: str) -> str:
    return f"<<{what}: filled in during the run>>"


# -- the GPU --------------------------------------------------------------------------------------

def describe_gpu(device_info: Any) -> str:
    """DeviceInfo (or its dict) as a few lines; peak bandwidth derived from clock × bus width."""
    if device_info is None:
        return ("Not known yet: the GPU host was not contacted. A run describes the GPU here (model, SMs, "
                "memory size and bandwidth, power limit, clocks).")
    info = device_info.to_dict() if hasattr(device_info, "to_dict") else dict(device_info)
    lines = [f"- Model: {info.get('name') or 'unknown'} ({info.get('vendor') or 'unknown vendor'})"]
    if info.get("sm_count"):
        unit = "compute units" if info.get("vendor") == "amd" else "streaming multiprocessors (SMs)"
        lines.append(f"- {info['sm_count']} {unit}")
    if info.get("max_sm_clock_mhz"):
        lines.append(f"- Maximum SM clock: {info['max_sm_clock_mhz']} MHz")
    if info.get("memory_total_bytes"):
        lines.append(f"- Memory: {info['memory_total_bytes'] / 2**30:.0f} GiB")
    clock, width = info.get("max_mem_clock_mhz"), info.get("memory_bus_width_bits")
    if clock and width:
        # Double data rate: two transfers per clock on the bus.
        bandwidth_gbs = clock * 1e6 * 2 * width / 8 / 1e9
        lines.append(f"- Memory bandwidth: about {bandwidth_gbs:,.0f} GB/s peak ({width}-bit bus, memory "
                     f"clock up to {clock} MHz)")
    elif clock:
        lines.append(f"- Maximum memory clock: {clock} MHz")
    if info.get("power_limit_mw"):
        lines.append(f"- Power limit: {info['power_limit_mw'] / 1000:.0f} W")
    if info.get("driver_version"):
        lines.append(f"- Driver: {info['driver_version']}")
    return "\n".join(lines)


# -- the program ----------------------------------------------------------------------------------

def _text_files(program_spec: dict) -> dict[str, str]:
    files: dict[str, str] = {}
    for path, entry in (program_spec.get("files") or {}).items():
        if "text" in entry:
            files[path] = entry["text"]
        elif "base64" in entry and PurePosixPath(path).suffix in SOURCE_SUFFIXES:
            try:
                files[path] = base64.b64decode(entry["base64"]).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                continue
    return files


def fenced(text: str, tag: str, label: str = "") -> str:
    """A fenced block that survives backticks inside the text."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * max(3, longest + 1)
    info = f"{tag} file={label}" if label else tag
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def program_context(program_spec: dict) -> dict[str, str]:
    """Placeholders that describe the program: names, commands, and the source listing."""
    source_file = program_spec.get("source_file") or ""
    files = _text_files(program_spec)
    if source_file and source_file not in files:
        raise PromptError(f"the program's source file {source_file} is not among its files")
    sources = {p: t for p, t in files.items() if PurePosixPath(p).suffix in SOURCE_SUFFIXES}
    others = sorted(p for p in sources if p != source_file)
    ordered = ([source_file] if source_file in sources else []) + others
    total = sum(len(sources[p]) for p in ordered)
    if total > MAX_LISTING_CHARS:
        raise PromptError(f"the program's sources are {total:,} characters, more than the "
                          f"{MAX_LISTING_CHARS:,} Wattson sends to a model; optimize a smaller program "
                          "or leave large generated files out of the project")
    listing = "\n\n".join(f"File `{p}`:\n\n{fenced(sources[p], SOURCE_SUFFIXES[PurePosixPath(p).suffix])}"
                          for p in ordered)
    build = program_spec.get("build") or "(no build step: the run command uses the files as they are)"
    suffix = PurePosixPath(source_file).suffix
    is_hip = suffix == ".hip" or "hipcc" in (program_spec.get("build") or "")
    return {
        "program_name": program_spec.get("name") or PurePosixPath(source_file).stem or "program",
        "source_file": source_file,
        "editable_files": f"`{source_file}`" if source_file else "the source files shown",
        "language": "HIP" if is_hip else "CUDA",
        "code_tag": SOURCE_SUFFIXES.get(suffix, "cuda"),
        "build_command": build,
        "run_command": program_spec.get("run") or "",
        "workdir_note": _workdir_note(program_spec.get("workdir") or "."),
        "code_listing": listing or "(no source files)",
    }


def _workdir_note(workdir: str) -> str:
    if workdir in (".", "", "./"):
        return "Both run in the project's root folder."
    return f"Both run in `{workdir}`, relative to the project's root folder."


# -- measurements ---------------------------------------------------------------------------------

def _estimate(value: Any) -> tuple[float, float | None, float | None] | None:
    """(median, ci_low, ci_high) from an Estimate dict or a plain number."""
    if isinstance(value, dict) and value.get("median") is not None:
        return float(value["median"]), _float(value.get("ci_low")), _float(value.get("ci_high"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), None, None
    return None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _with_ci(value: Any, unit: str, digits: int = 1) -> str | None:
    est = _estimate(value)
    if est is None:
        return None
    median, low, high = est
    text = f"{median:,.{digits}f} {unit}"
    if low is not None and high is not None and (low, high) != (median, median):
        text += f" [{low:,.{digits}f}, {high:,.{digits}f}]"
    return text


def _kernel_rows(kernels: Any) -> list[dict]:
    if isinstance(kernels, dict):
        kernels = kernels.get("kernels")
    return [k for k in kernels or [] if isinstance(k, dict) and k.get("name")]


def _profile_kernels(profile: dict) -> list[dict]:
    return _kernel_rows(profile.get("kernels") or profile.get("kernel_report"))


def describe_profile(profile: dict | None, device_info: Any = None) -> str:
    """The measured whole-program profile and, when present, the per-kernel energy breakdown."""
    if not profile:
        return ("Not measured yet: showing prompts does not run the program. A run measures it first "
                "and puts the whole-program and per-kernel energy figures here.")
    trials = profile.get("trials")
    energy = _estimate(profile.get("energy_j"))
    count = len(trials) if isinstance(trials, list) else (profile.get("energy_j") or {}).get("n")
    intro = "Whole program, measured with the GPU's energy counter"
    if count:
        intro += f", median of {count} runs"
    intro += " (95 % confidence intervals in brackets):"
    lines = [intro]
    for label, key, unit, digits in (("energy", "energy_j", "J", 1), ("time", "duration_s", "s", 3),
                                     ("average power", "avg_power_w", "W", 0),
                                     ("peak power", "peak_power_w", "W", 0),
                                     ("GPU idle power before the run", "idle_power_w", "W", 0),
                                     ("energy-delay product", "edp_js", "J·s", 1)):
        text = _with_ci(profile.get(key), unit, digits)
        if text:
            lines.append(f"- {label}: {text}")
    power = _estimate(profile.get("avg_power_w"))
    info = device_info.to_dict() if hasattr(device_info, "to_dict") else (device_info or {})
    limit_w = (info.get("power_limit_mw") or 0) / 1000
    if power and limit_w:
        share = power[0] / limit_w
        lines.append(f"- The run draws on average {_share(share)} of the GPU's {limit_w:.0f} W limit.")
    if energy is None:
        lines.append("- energy: not available from this GPU's sensors")
    kernels = _profile_kernels(profile)
    if not kernels:
        lines += ["", "Per-kernel figures: not measured for this run."]
    if kernels:
        lines += ["", "Per kernel (kernel trace aligned with the power timeline; shares of the attributed "
                      "energy, CI in brackets):", "",
                  "| kernel | launches | GPU time | share of GPU time | energy | share of energy "
                  "| avg power |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        ranked = sorted(kernels, key=lambda k: (k.get("energy_share") or 0, k.get("time_share") or 0),
                        reverse=True)
        for k in ranked[:MAX_KERNEL_ROWS]:
            lines.append(_kernel_row(k))
        if len(ranked) > MAX_KERNEL_ROWS:
            more = len(ranked) - MAX_KERNEL_ROWS
            lines.append(f"| … {more} more kernels with smaller shares | | | | | | |")
    warnings = [w for w in profile.get("warnings") or [] if isinstance(w, str)]
    if warnings:
        lines += ["", "Measurement notes: " + "; ".join(warnings)]
    return "\n".join(lines)


def _kernel_row(k: dict) -> str:
    def pct(value: Any) -> str:
        return _share(value) if isinstance(value, int | float) else "?"

    gpu_time = f"{k['gpu_time_s']:.3f} s" if isinstance(k.get("gpu_time_s"), int | float) else "?"
    if k.get("attributable", True) and isinstance(k.get("energy_j"), int | float):
        energy = f"{k['energy_j']:.1f} J"
        ci = k.get("energy_ci_j")
        if isinstance(ci, list | tuple) and len(ci) == 2:
            energy += f" [{ci[0]:.1f}, {ci[1]:.1f}]"
        share = pct(k.get("energy_share"))
        power = f"{k['avg_power_w']:.0f} W" if isinstance(k.get("avg_power_w"), int | float) else "?"
    else:
        reason = k.get("reason") or "too short or too entangled with other kernels to measure"
        energy, share, power = f"not attributable ({reason})", "?", "?"
    return (f"| `{k['name']}` | {k.get('launches', '?')} | {gpu_time} | {pct(k.get('time_share'))} "
            f"| {energy} | {share} | {power} |")


def _share(fraction: float) -> str:
    if 0 < fraction < 0.005:
        return "<1 %"
    return f"{fraction * 100:.0f} %"


def _pct_change(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def compare_summary(compare: dict) -> str:
    """A comparison (CompareResult dict) in the candidate's terms: 'Your version uses 3.0 % more ...'."""
    verdict = compare.get("energy_ratio") or {}
    ratio = _float(verdict.get("ratio"))
    lines: list[str] = []
    if ratio is not None:
        kind = verdict.get("kind")
        ci = ""
        low, high = _float(verdict.get("ci_low")), _float(verdict.get("ci_high"))
        if low is not None and high is not None:
            ci = f" (95 % CI {_pct_change(low)} to {_pct_change(high)})"
        if kind == "less":
            head = f"Your version uses {abs(ratio - 1) * 100:.1f} % less energy than the original{ci}."
        elif kind == "more":
            head = f"Your version uses {abs(ratio - 1) * 100:.1f} % more energy than the original{ci}."
        else:
            head = f"No detectable difference in energy: {_pct_change(ratio)}{ci}."
        lines.append(head)
    elif verdict.get("text"):
        lines.append(str(verdict["text"]))
    for label, key in (("Time", "time_ratio"), ("Average power", "power_ratio")):
        est = _estimate(compare.get(key))
        if est:
            text = f"- {label}: {_pct_change(est[0])}"
            if est[1] is not None and est[2] is not None:
                text += f" (95 % CI {_pct_change(est[1])} to {_pct_change(est[2])})"
            lines.append(text)
    for label, key in (("Original", "a"), ("Your version", "b")):
        side = compare.get(key) or {}
        parts = [p for p in (_with_ci(side.get("energy_j"), "J"), _with_ci(side.get("duration_s"), "s", 3),
                             _with_ci(side.get("avg_power_w"), "W", 0)) if p]
        if parts:
            lines.append(f"- {label}: " + ", ".join(parts))
    return "\n".join(lines) if lines else "No comparison figures were recorded."


def kernel_changes(before: Any, after: Any) -> str:
    """Where the energy goes in the candidate, next to the original: 'kernel X takes 60 % ...'."""
    after_rows = _kernel_rows(after)
    if not after_rows:
        return "No per-kernel figures for this run."
    before_by_name = {k["name"]: k for k in _kernel_rows(before)}
    lines = ["Where the energy goes in your version:"]
    ranked = sorted(after_rows, key=lambda k: k.get("energy_share") or 0, reverse=True)
    for k in ranked[:MAX_KERNEL_ROWS]:
        share = k.get("energy_share")
        text = f"- kernel `{k['name']}` takes "
        measured = isinstance(share, int | float)
        text += f"{_share(share)} of the energy" if measured else "an unmeasurable share"
        old = before_by_name.get(k["name"])
        if old and isinstance(old.get("energy_share"), int | float):
            text += f" (original: {_share(old['energy_share'])})"
        elif not old:
            text += " (new kernel)"
        if isinstance(k.get("gpu_time_s"), int | float):
            text += f"; {k['gpu_time_s']:.3f} s of GPU time"
            if old and isinstance(old.get("gpu_time_s"), int | float):
                text += f" (original: {old['gpu_time_s']:.3f} s)"
        lines.append(text)
    gone = [name for name in before_by_name if name not in {k["name"] for k in after_rows}]
    if gone:
        lines.append("- no longer launched: " + ", ".join(f"`{name}`" for name in gone))
    return "\n".join(lines)


# -- runtime contexts (the refactor loop fills these) ----------------------------------------------

def clip(text: str, max_chars: int = MAX_OUTPUT_CHARS) -> str:
    """Head and tail of a long text, with the omission said: compiler errors start at the top,
    runtime failures usually end at the bottom."""
    if len(text) <= max_chars:
        return text
    head = max_chars * 2 // 3
    tail = max_chars - head
    return f"{text[:head]}\n[… {len(text) - max_chars:,} characters omitted …]\n{text[-tail:]}"


def correction_context(kind: str, detail: str, attempt: int, max_attempts: int) -> dict[str, str]:
    if kind not in FAILURE_KINDS:
        raise PromptError(f"unknown failure kind {kind!r}: use one of {', '.join(FAILURE_KINDS)}")
    return {"failure_kind": kind, "failure_detail": fenced(clip(detail), "text"), "attempt": str(attempt),
            "max_attempts": str(max_attempts)}


def feedback_context(compare: dict, kernels_before: Any, kernels_after: Any, *, iteration: int,
                     max_iterations: int, best_so_far: str) -> dict[str, str]:
    return {"comparison": compare_summary(compare),
            "kernel_changes": kernel_changes(kernels_before, kernels_after),
            "iteration": str(iteration), "max_iterations": str(max_iterations), "best_so_far": best_so_far}


def continue_context(partial_reply: str, tail_lines: int = 12) -> dict[str, str]:
    tail = "\n".join(partial_reply.rstrip("\n").splitlines()[-tail_lines:])
    return {"reply_tail": fenced(tail, "text")}


def judge_context(*, original_code: str, candidate_code: str, diff: str, original_output: str,
                  candidate_output: str, oracle_results: str, measurements: str, code_tag: str = "cuda",
                  ) -> dict[str, str]:
    return {"original_code": fenced(original_code, code_tag),
            "candidate_code": fenced(candidate_code, code_tag),
            "diff": fenced(clip(diff, 4 * MAX_OUTPUT_CHARS), "diff"),
            "original_output": fenced(clip(original_output), "text"),
            "candidate_output": fenced(clip(candidate_output), "text"),
            "oracle_results": oracle_results, "measurements": measurements,
            "schema_json": _schema_text()}


def _schema_text() -> str:
    return fenced(json.dumps(JUDGE_SCHEMA), "json")


# -- rendering ------------------------------------------------------------------------------------

def render_prompt(name: str, context: dict[str, Any]) -> RenderedPrompt:
    template = load_template(name)
    values = {k: str(v) for k, v in context.items()}
    return RenderedPrompt(name=name, text=template.render(values), role=template.role,
                          version=template.version)


def render_prompt_set(context: dict[str, Any]) -> list[RenderedPrompt]:
    """Every template rendered from one context, in the order a run sends them."""
    return [render_prompt(name, context) for name in TEMPLATE_NAMES]


def run_context(program_spec: dict, profile: dict | None, device_info: Any) -> dict[str, Any]:
    """The placeholders fixed for a whole run: program, GPU and measured profile. The refactor loop
    merges the per-step contexts (correction_context, feedback_context, ...) into a copy of this."""
    context: dict[str, Any] = program_context(program_spec)
    context["gpu_description"] = describe_gpu(device_info)
    context["profile_summary"] = describe_profile(profile, device_info)
    return context


def prompts_for_file(program_spec: dict, profile: dict | None = None,
                     device_info: Any = None) -> list[RenderedPrompt]:
    """What a run on this program would send, rendered without a key, a GPU or a model.

    Values only a run can know are marked placeholders (<<…: filled in during the run>>)."""
    context = run_context(program_spec, profile, device_info)
    context["plan"] = _marker("the plan the model wrote in reply to the plan prompt")
    context.update(failure_kind=_marker("compile error, runtime error, wrong output or suspected shortcut"),
                   failure_detail=_marker("the failing check's report"), attempt="1",
                   max_attempts=_marker("[optimize] max_corrections"))
    context.update(comparison=_marker("the measured comparison with the original"),
                   kernel_changes=_marker("per-kernel energy shares, before and after"),
                   iteration="1", max_iterations=_marker("[optimize] iterations"),
                   best_so_far=_marker("the best candidate's saving so far"))
    context["reply_tail"] = _marker("the last lines of the cut-off reply")
    context.update(original_code=_marker("the original source"), candidate_code=_marker("the candidate"),
                   diff=_marker("the unified diff"), original_output=_marker("the original's output"),
                   candidate_output=_marker("the candidate's output"),
                   oracle_results=_marker("the oracle's and anti-hack checks' findings"),
                   measurements=_marker("the energy comparison"),
                   schema_json=_schema_text())
    return render_prompt_set(context)


def export_prompts(prompts: list[RenderedPrompt], directory: Path) -> list[Path]:
    """Write each prompt to DIR/NN-name.md (with its role and version on top); returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, prompt in enumerate(prompts, start=1):
        path = directory / f"{number:02d}-{prompt.name}.md"
        header = f"<!-- role: {prompt.role}; template: {prompt.name}.md version {prompt.version} -->"
        path.write_text(f"{header}\n\n{prompt.text}", encoding="utf-8")
        paths.append(path)
    return paths
