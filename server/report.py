"""The Markdown report of an optimize job, and its power-timeline plot.

What a reviewer needs to decide whether to take the change: the energy before and after with
confidence intervals, time, power and energy-delay product, per-kernel changes, the judge's reasons
and the risks it named, the model's own account of its changes, every candidate with what became
of it, the diff, the tokens and cost, and, for a cancelled job, where it stopped. The plot (PNG) is
drawn only where matplotlib is installed; Wattson does not depend on it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .profilers import host_load
from .refactor.selection import percent_change, ratio_with_ci

if TYPE_CHECKING:
    from .llm import TokenAccount
    from .refactor.candidates import Candidate
    from .refactor.metrics import TrialMetrics

PLOT_NAME = "power-timeline.png"
PLOT_OMITTED = "plot omitted: matplotlib not installed"


@dataclass
class OptimizeReport:
    source_path: Path
    source_file: str  # relative to the project root, as the agent names it
    status: str  # "improved" | "no-improvement" | "failed" | "cancelled"
    message: str
    started_at: float
    finished_at: float
    job_id: int | None = None
    folder: Path | None = None
    kernel: str | None = None
    device: dict | None = None
    host: str | None = None
    fake_sensors: bool = False
    original_profile: dict | None = None
    best: Candidate | None = None
    diff: str | None = None
    candidates: list[Candidate] = field(default_factory=list)
    trials: int = 0
    iterations: int = 0
    max_corrections: int = 0
    metrics: TrialMetrics | None = None
    account: TokenAccount | None = None
    llm_label: str = ""
    schedule_text: str = ""
    supports_temperature: bool = True
    stopped_at: str | None = None  # a cancelled job: the stage it was in
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- numbers -------------------------------------------------------------------------------------


def _est(value: Any, unit: str, digits: int = 3) -> str:
    if isinstance(value, dict) and value.get("median") is not None:
        text = f"{value['median']:.{digits}g} {unit}"
        low, high = value.get("ci_low"), value.get("ci_high")
        if low is not None and high is not None and (low, high) != (value["median"], value["median"]):
            text += f" [{low:.{digits}g}, {high:.{digits}g}]"
        return text
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}g} {unit}"
    return "n/a"


def _ratio(value: Any) -> str:
    if not isinstance(value, dict) or value.get("ratio", value.get("median")) is None:
        return "n/a"
    if "ratio" in value:
        return ratio_with_ci(value)
    text = percent_change(float(value["median"]))
    if value.get("ci_low") is not None and value.get("ci_high") is not None:
        low, high = percent_change(float(value["ci_low"])), percent_change(float(value["ci_high"]))
        text += f" [{low[:-2]}, {high[:-2]}]"
    return text


def _md(text: str) -> str:
    """Text inside a table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _fence(text: str, tag: str = "") -> str:
    longest = max((len(run) for run in text.split("\n") if set(run.strip()) == {"`"}), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{tag}\n{text.rstrip()}\n{fence}"


# --- sections ------------------------------------------------------------------------------------


def _header(r: OptimizeReport) -> list[str]:
    when = _dt.datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M")
    took_s = max(0.0, r.finished_at - r.started_at)
    lines = [
        f"# Wattson optimize: `{r.source_file}`",
        "",
        f"- File: `{r.source_path}`" + (f", kernel `{r.kernel}`" if r.kernel else ""),
        f"- Started {when}, took {took_s / 60:.1f} min; job {r.job_id if r.job_id is not None else '–'}"
        + (f", folder `{r.folder}`" if r.folder else ""),
        f"- Outcome: **{r.status}**: {r.message}",
    ]
    if r.device:
        gpu = f"{r.device.get('name') or 'unknown GPU'}"
        if r.host:
            gpu += f" on {r.host}"
        lines.append(f"- GPU: {gpu}")
    if r.fake_sensors:
        lines.append(
            "- **Sensors: scripted fake GPU (WATTSON_FAKE_GPU).** These figures are not measurements "
            "of real hardware."
        )
    if r.stopped_at:
        lines.append(f"- **Cancelled** while {r.stopped_at}. Candidates finished before that are kept below.")
    for e in r.errors:
        lines.append(f"- Error: {e}")
    lines.append(
        f"- Trials: {r.trials}, iterations per trial: {r.iterations}, corrections per candidate: "
        f"at most {r.max_corrections}"
    )
    return lines


def _energy_section(r: OptimizeReport) -> list[str]:
    best = r.best
    if best is None or not best.compare:
        lines = ["", "## Energy", ""]
        profile = r.original_profile or {}
        if profile:
            lines.append(
                f"The original uses {_est(profile.get('energy_j'), 'J')} per run "
                f"({_est(profile.get('duration_s'), 's')}, {_est(profile.get('avg_power_w'), 'W')} "
                "on average; 95 % confidence intervals in brackets). No candidate used measurably less."
            )
        else:
            lines.append("The original was not measured.")
        return lines
    compare = best.compare
    a, b = compare.get("a") or {}, compare.get("b") or {}
    verdict = compare.get("energy_ratio") or {}
    lines = [
        "",
        "## Energy",
        "",
        f"Best candidate: {best.title}. {verdict.get('text', '')}",
        "",
        "Measured interleaved on the same GPU (A = original, B = candidate); medians with 95 % "
        "confidence intervals.",
        "",
        "| | original (A) | candidate (B) | change B/A |",
        "|---|---:|---:|---:|",
        f"| energy per run | {_est(a.get('energy_j'), 'J')} | {_est(b.get('energy_j'), 'J')} | "
        f"{_ratio(verdict)} |",
        f"| time | {_est(a.get('duration_s'), 's')} | {_est(b.get('duration_s'), 's')} | "
        f"{_ratio(compare.get('time_ratio'))} |",
        f"| average power | {_est(a.get('avg_power_w'), 'W')} | {_est(b.get('avg_power_w'), 'W')} | "
        f"{_ratio(compare.get('power_ratio'))} |",
        f"| peak power | {_est(a.get('peak_power_w'), 'W')} | {_est(b.get('peak_power_w'), 'W')} | |",
        f"| energy-delay product | {_est(a.get('edp_js'), 'J·s')} | {_est(b.get('edp_js'), 'J·s')} | |",
        f"| trials | {len(a.get('trials') or [])} | {len(b.get('trials') or [])} | |",
    ]
    if host_line := host_load.line_of(compare.get("host")):  # was the measuring machine quiet?
        lines += ["", f"Host during the comparison: {host_line}."]
    warnings = list(compare.get("warnings") or [])
    if warnings:
        lines += ["", "Measurement notes:"] + [f"- {_md(w)}" for w in warnings]
    return lines


def _kernel_rows(report: Any) -> dict[str, dict]:
    if isinstance(report, dict):
        report = report.get("kernels")
    return {k["name"]: k for k in report or [] if isinstance(k, dict) and k.get("name")}


def _share(value: Any) -> str:
    return f"{value * 100:.0f} %" if isinstance(value, int | float) else "–"


def _seconds(value: Any) -> str:
    return f"{value * 1000:.1f} ms" if isinstance(value, int | float) else "–"


def _kernels_section(r: OptimizeReport) -> list[str]:
    before = _kernel_rows((r.original_profile or {}).get("kernels"))
    after = _kernel_rows(((r.best.check_profile or {}) if r.best else {}).get("kernels"))
    lines = ["", "## Per kernel", ""]
    if not before:
        reason = next(
            (w for w in (r.original_profile or {}).get("warnings") or [] if "per-kernel" in w), None
        )
        return lines + [f"Per-kernel figures were not measured{': ' + _md(reason) if reason else ''}."]
    if r.best is None:
        lines += [
            "The original (no candidate to compare):",
            "",
            "| kernel | launches | GPU time | share of energy |",
            "|---|---:|---:|---:|",
        ]
        for name, k in sorted(before.items(), key=lambda kv: -(kv[1].get("energy_share") or 0)):
            lines.append(
                f"| `{_md(name)}` | {k.get('launches', '–')} | {_seconds(k.get('gpu_time_s'))} | "
                f"{_share(k.get('energy_share'))} |"
            )
        return lines
    if not after:
        return lines + [
            "The candidate's kernels were not traced; the original's are in the job folder "
            "(original/profile.json)."
        ]
    lines += [
        "From one traced run of each (shares are of the GPU busy window's energy).",
        "",
        "| kernel | launches | GPU time | share of energy |",
        "|---|---:|---:|---:|",
    ]
    names = sorted(
        set(before) | set(after),
        key=lambda n: (
            -max(
                (before.get(n) or {}).get("energy_share") or 0, (after.get(n) or {}).get("energy_share") or 0
            )
        ),
    )
    for name in names:
        old, new = before.get(name) or {}, after.get(name) or {}
        tag = " (new)" if not old else " (gone)" if not new else ""
        lines.append(
            f"| `{_md(name)}`{tag} | {old.get('launches', '–')} → {new.get('launches', '–')} | "
            f"{_seconds(old.get('gpu_time_s'))} → {_seconds(new.get('gpu_time_s'))} | "
            f"{_share(old.get('energy_share'))} → {_share(new.get('energy_share'))} |"
        )
    return lines


def _review_section(r: OptimizeReport) -> list[str]:
    best = r.best
    if best is None:
        return []
    lines = ["", "## Review", ""]
    if best.needs_review:
        lines.append("**A person must review this change before it is used:**")
        lines += [f"- {_md(w)}" for w in (best.decision.why if best.decision else [])]
        lines.append("")
    verdict = best.verdict
    if verdict is None:
        lines.append("The judge was not asked.")
    elif verdict.verdict == "unavailable":
        lines.append(f"The judge could not answer: {_md(verdict.error or '')}")
    else:
        lines.append(f"Judge's verdict: **{verdict.verdict}**.")
        if verdict.reasons:
            lines += ["", "Reasons:"] + [f"- {_md(x)}" for x in verdict.reasons]
        if verdict.risks:
            lines += ["", "Risks:"] + [f"- {_md(x)}" for x in verdict.risks]
    infos = [f for f in best.findings if f.severity != "fail"]
    if infos:
        lines += ["", "Findings of the automatic checks (none rejected it):"]
        lines += [f"- {_md(f.describe())}" for f in infos]
    return lines


def _changes_section(r: OptimizeReport) -> list[str]:
    if r.best is None:
        return []
    lines = ["", "## The changes, as the model explains them", ""]
    if r.best.changes:
        lines += [f"- {_md(c)}" for c in r.best.changes]
    else:
        lines.append("The reply had no `## Changes` section.")
    if r.diff:
        lines += ["", "### Diff", "", _fence(r.diff, "diff")]
    return lines


def _why(c: Candidate) -> str:
    """One line on what became of a candidate: the first compiler error, the first failed check, ..."""
    if not c.failure_detail:
        return c.verdict.verdict if c.verdict else ""
    lines = [line.strip() for line in c.failure_detail.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and not line.startswith("the build of")]
    findings = [line for line in lines if line.startswith("- [fail]")]
    return (errors or findings or lines)[0]


def _candidates_section(r: OptimizeReport) -> list[str]:
    lines = ["", "## Every candidate", ""]
    if not r.candidates:
        return lines + ["No candidate was produced."]
    lines += [
        "| candidate | temperature | status | energy B/A | why | folder |",
        "|---|---:|---|---:|---|---|",
    ]
    for c in r.candidates:
        ratio = ratio_with_ci(c.energy_verdict) if c.energy_verdict else "–"
        why = _why(c)
        marker = " ★" if c is r.best else ""
        folder = f"`{c.folder.relative_to(r.folder)}`" if c.folder and r.folder else "–"
        lines.append(
            f"| {c.title}{marker} | {c.temperature:g} | {c.status} | {ratio} | {_md(why)[:160]} | {folder} |"
        )
    return lines


def _metrics_section(r: OptimizeReport) -> list[str]:
    if r.metrics is None:
        return []
    from .refactor.metrics import metrics_markdown

    return [
        "",
        "## pass@k and energy-reduction@k",
        "",
        metrics_markdown(r.metrics),
        "",
        "energy-reduction@k: the expected best saving among k trials, failed trials counting as 0 "
        "(docs/optimize.md).",
    ]


def _llm_section(r: OptimizeReport) -> list[str]:
    lines = ["", "## Model, tokens and cost", ""]
    if r.llm_label:
        lines.append(f"Model: {r.llm_label}.")
    if r.schedule_text:
        note = (
            ""
            if r.supports_temperature
            else (
                " This provider takes no sampling temperature, so the schedule had "
                "no effect; the trials differ by independent sampling alone."
            )
        )
        lines.append(f"Sampling: {r.schedule_text}.{note}")
    if r.account is not None:
        lines += ["", r.account.markdown()]
    return lines


def render_report(r: OptimizeReport, plot_note: str | None) -> str:
    lines = _header(r) + _energy_section(r)
    if plot_note:
        lines += ["", plot_note if not plot_note.endswith(".png") else f"![power timeline]({plot_note})"]
    lines += _kernels_section(r) + _review_section(r) + _changes_section(r) + _candidates_section(r)
    lines += _metrics_section(r) + _llm_section(r)
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {_md(n)}" for n in r.notes]
    return "\n".join(lines) + "\n"


# --- plot ----------------------------------------------------------------------------------------


def power_plot(compare: dict | None, path: Path) -> str:
    """A PNG of instant power over one run of A and one of B; returns the image's name or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return PLOT_OMITTED
    if not compare:
        return "plot omitted: no measurement to plot"
    series = []
    for side, label in (("a", "original"), ("b", "candidate")):
        trials = (compare.get(side) or {}).get("trials") or []
        timeline = next((t.get("timeline") for t in trials if t.get("timeline")), None)
        if timeline:
            series.append((label, [p[0] for p in timeline], [p[1] / 1000.0 for p in timeline]))
    if not series:
        return "plot omitted: the measurement has no power timeline"
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for label, t, w in series:
        ax.plot(t, w, label=label)
    ax.set_xlabel("time since the program started (s)")
    ax.set_ylabel("instant power (W)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def write_report(r: OptimizeReport, folder: Path) -> Path:
    """report.md (and the plot beside it) in `folder`; returns the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    note = power_plot(r.best.compare if r.best else None, folder / PLOT_NAME) if r.best else None
    path = folder / "report.md"
    path.write_text(render_report(r, note), encoding="utf-8")
    return path
