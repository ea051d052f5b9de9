"""What each kernel of a file measurably costs, from the history: for hovers and code lenses.

Plain functions over the SQLite history; nothing here knows about LSP.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .profilers.kernels.source_map import kernel_base_name
from .store import History, content_hash


@dataclass
class KernelCost:
    name: str
    energy_share: float | None
    energy_j: float | None
    energy_ci_j: tuple[float, float] | None
    avg_power_w: float | None
    gpu_time_s: float | None
    launches: int | None
    attributable: bool
    reason: str
    measured_at: float
    device_name: str | None
    stale: bool


def kernel_costs(history: History, source_path: str, current_text: str) -> dict[str, KernelCost]:
    """The latest per-kernel figures of this file, by kernel base name; {} when never measured."""
    stored = history.latest_profile(source_path)
    if stored is None or not stored.kernels:
        return {}
    stale = stored.is_stale_for(content_hash(current_text))
    out: dict[str, KernelCost] = {}
    for k in stored.kernels.get("kernels", []):
        name = kernel_base_name(k.get("name", ""))
        ci = k.get("energy_ci_j")
        cost = KernelCost(
            name=name,
            energy_share=k.get("energy_share"),
            energy_j=k.get("energy_j"),
            energy_ci_j=(ci[0], ci[1]) if ci and ci[0] is not None else None,
            avg_power_w=k.get("avg_power_w"),
            gpu_time_s=k.get("gpu_time_s"),
            launches=k.get("launches"),
            attributable=bool(k.get("attributable", True)),
            reason=k.get("reason", ""),
            measured_at=stored.created_at,
            device_name=stored.device_name,
            stale=stale,
        )
        if name in out:  # overloads/instantiations share a source name: add them up
            prev = out[name]
            cost = _merge(prev, cost)
        out[name] = cost
    return out


def _merge(a: KernelCost, b: KernelCost) -> KernelCost:
    def add(x, y):
        return None if x is None or y is None else x + y

    return KernelCost(a.name, add(a.energy_share, b.energy_share), add(a.energy_j, b.energy_j), None,
                      None, add(a.gpu_time_s, b.gpu_time_s), add(a.launches, b.launches),
                      a.attributable and b.attributable, a.reason or b.reason, a.measured_at, a.device_name,
                      a.stale)


def lens_title(cost: KernelCost) -> str:
    """'⚡ 41 % of energy · 212 W · 3.1 ms' (GPU time per launch)."""
    if not cost.attributable or cost.energy_share is None:
        return "⚡ energy not separable at the sensor's resolution"
    parts = [f"⚡ {100 * cost.energy_share:.0f} % of energy"]
    if cost.avg_power_w is not None:
        parts.append(f"{cost.avg_power_w:.0f} W")
    if cost.gpu_time_s is not None and cost.launches:
        parts.append(f"{1000 * cost.gpu_time_s / cost.launches:.3g} ms")
    title = " · ".join(parts)
    return title + (" (stale)" if cost.stale else "")


def hover_markdown(cost: KernelCost) -> str:
    when = dt.datetime.fromtimestamp(cost.measured_at).strftime("%Y-%m-%d %H:%M")
    lines = [f"**`{cost.name}`** — measured {when} on {cost.device_name or 'GPU'}"]
    if cost.stale:
        lines.append("*Stale: the file changed since this measurement. Run “Profile energy” again.*")
    if cost.attributable and cost.energy_j is not None:
        ci = f" [{cost.energy_ci_j[0]:.3g}, {cost.energy_ci_j[1]:.3g}]" if cost.energy_ci_j else ""
        share = f"{100 * cost.energy_share:.1f} %" if cost.energy_share is not None else "—"
        lines.append(f"- Energy: **{cost.energy_j:.3g} J**{ci} (95 % CI) · {share} of the program's GPU energy")
        if cost.avg_power_w is not None:
            lines.append(f"- Average power while it runs: {cost.avg_power_w:.0f} W")
    else:
        lines.append(f"- Energy: not attributable ({cost.reason or 'too short or overlapping for the sensor'})")
    if cost.gpu_time_s is not None:
        lines.append(f"- GPU time: {1000 * cost.gpu_time_s:.3g} ms in {cost.launches or '?'} launches")
    return "\n".join(lines)
