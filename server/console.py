"""Terminal rendering of results: rich tables for profile, compare and doctor, and progress bars."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .profilers import host_load


def fmt_estimate(est: dict | None, unit: str, scale: float = 1.0, digits: int = 3) -> str:
    """'12.3 J [12.1, 12.6]' from an Estimate dict; '—' when absent."""
    if not est or est.get("median") is None:
        return "—"
    med = est["median"] * scale
    lo, hi = est.get("ci_low"), est.get("ci_high")
    if lo is None or hi is None or (lo == hi == est["median"]):
        return f"{med:.{digits}g} {unit}"
    return f"{med:.{digits}g} {unit} [{lo * scale:.{digits}g}, {hi * scale:.{digits}g}]"


def _num(value: float | None, unit: str, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g} {unit}"


def _state_line(state: dict | None) -> str:
    if not state:
        return "—"
    parts = []
    if state.get("temperature_c") is not None:
        parts.append(f"{state['temperature_c']:.0f} °C")
    if state.get("sm_clock_mhz") is not None:
        parts.append(f"SM {state['sm_clock_mhz']} MHz")
    if state.get("mem_clock_mhz") is not None:
        parts.append(f"mem {state['mem_clock_mhz']} MHz")
    if state.get("power_mw") is not None:
        parts.append(f"{state['power_mw'] / 1000:.0f} W")
    reasons = state.get("throttle_reasons") or []
    parts.append("throttle: " + (", ".join(reasons) if reasons else "none"))
    return " · ".join(parts)


def profile_table(result: dict, title: str) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    ci_note = "median, 95 % CI" if result.get("protocol") != "lassi-ee" else "single run, no CI"
    t.add_row("Energy", fmt_estimate(result.get("energy_j"), "J") + f"   ({ci_note})")
    t.add_row("Time", fmt_estimate(result.get("duration_s"), "s"))
    t.add_row("Average power", _num(result.get("avg_power_w"), "W"))
    t.add_row("Peak power", _num(result.get("peak_power_w"), "W"))
    t.add_row("Energy × delay", _num(result.get("edp_js"), "J·s"))
    n = len(result.get("trials") or []) or (result.get("energy_j") or {}).get("n")
    stopped = result.get("stopped_because")
    t.add_row("Trials", f"{n}" + (f" (stopped: {stopped})" if stopped else ""))
    if result.get("idle_power_w") is not None:
        t.add_row("Idle power", _num(result.get("idle_power_w"), "W"))
    dev = result.get("device") or {}
    if dev:
        t.add_row("GPU", f"{dev.get('name', '?')} · driver {dev.get('driver_version') or '?'}")
    t.add_row("State at start", _state_line(result.get("state_start")))
    t.add_row("State at end", _state_line(result.get("state_end")))
    if result.get("energy_source"):
        t.add_row("Energy source", str(result["energy_source"]))
    if result.get("protocol"):
        t.add_row("Protocol", str(result["protocol"]))
    if (result.get("host_cpus") or {}).get("note"):
        t.add_row("Host CPUs", result["host_cpus"]["note"])
    if host_line := host_load.line_of(result.get("host")):
        t.add_row("Host load", host_line)
    return t


def kernels_table(kernels: dict) -> Table:
    t = Table(title="Per kernel (aggregated by name)", title_justify="left")
    for col in ("kernel", "launches", "GPU time", "time share", "energy", "energy share", "avg power", "source"):
        t.add_column(col)
    for k in kernels.get("kernels", []):
        if k.get("attributable", True):
            ci = k.get("energy_ci_j") or [None, None]
            energy = f"{k['energy_j']:.3g} J"
            if ci[0] is not None:
                energy += f" [{ci[0]:.3g}, {ci[1]:.3g}]"
            share = f"{100 * k.get('energy_share', 0):.0f} %"
            power = _num(k.get("avg_power_w"), "W")
        else:
            energy, share, power = "unattributable", "—", "—"
        src = k.get("source") or ""
        t.add_row(k.get("name", "?"), str(k.get("launches", "")), f"{1000 * k.get('gpu_time_s', 0):.3g} ms",
                  f"{100 * k.get('time_share', 0):.0f} %", energy, share, power, src)
    return t


def compare_table(result: dict, a_label: str, b_label: str) -> Table:
    t = Table(title=f"A = {a_label}\nB = {b_label}", title_justify="left")
    t.add_column("")
    t.add_column("A")
    t.add_column("B")
    t.add_column("B / A (95 % CI)")
    a, b = result.get("a") or {}, result.get("b") or {}

    def ratio(est: dict | None) -> str:
        if not est or est.get("median") is None:
            return "—"
        return f"{est['median']:.3f} [{est.get('ci_low', 0):.3f}, {est.get('ci_high', 0):.3f}]"

    verdict = result.get("energy_ratio") or {}
    energy_ratio = ({"median": verdict.get("ratio"), "ci_low": verdict.get("ci_low"),
                     "ci_high": verdict.get("ci_high")} if verdict else None)
    t.add_row("Energy", fmt_estimate(a.get("energy_j"), "J"), fmt_estimate(b.get("energy_j"), "J"),
              ratio(energy_ratio))
    t.add_row("Time", fmt_estimate(a.get("duration_s"), "s"), fmt_estimate(b.get("duration_s"), "s"),
              ratio(result.get("time_ratio")))
    t.add_row("Avg power", _num(a.get("avg_power_w"), "W"), _num(b.get("avg_power_w"), "W"),
              ratio(result.get("power_ratio")))
    na = len(a.get("trials") or []) or (a.get("energy_j") or {}).get("n")
    nb = len(b.get("trials") or []) or (b.get("energy_j") or {}).get("n")
    t.add_row("Trials", str(na), str(nb), "")
    captions = []
    if (result.get("host_cpus") or {}).get("note"):
        captions.append(f"Host CPUs: {result['host_cpus']['note']}")
    if host_line := host_load.line_of(result.get("host")):
        captions.append(f"Host load: {host_line}")
    if captions:
        t.caption = "\n".join(captions)
        t.caption_justify = "left"
    return t


@contextmanager
def progress_bar(console: Console, description: str, enabled: bool = True):
    """A rich progress bar fed by (message, fraction) callbacks; silent when output is not a TTY."""
    if not enabled:
        yield lambda message, fraction: None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[note]}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=1.0, note="")

        def update(message: str, fraction: float | None) -> None:
            kwargs = {"note": message[:60]}
            if fraction is not None:
                kwargs["completed"] = max(0.0, min(1.0, fraction))
            bar.update(task, **kwargs)

        yield update


def profile_bar_title(label: str) -> str:
    return f"Measuring {Path(label).name}"


def busy_window_line(result: dict) -> str:
    """GPU busy-window energy beside whole-process energy: set-up and CPU checks often dominate."""
    k = result.get("kernels") or {}
    whole = (result.get("energy_j") or {}).get("median")
    busy_j, busy_s = k.get("busy_window_energy_j"), k.get("busy_window_s")
    if busy_j is None or busy_s is None:
        return "GPU busy window: energy not separable at the sensor's resolution" + (
            f" ({busy_s:.3g} s busy)" if busy_s else "")
    share = f", {100 * busy_j / whole:.0f} % of the whole process's {whole:.3g} J" if whole else ""
    return f"GPU busy window (first kernel start to last kernel end): {busy_j:.3g} J over {busy_s:.3g} s{share}"
