"""`wattson doctor`: what this machine, and a configured remote GPU host, can measure.

Every check is a row {item, status: ok | warn | missing, detail, next}; `next` says what to do
when something is missing. The GPU facts come through the agent, the same path measurements take.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .config import ConfigError, find_config_file, load_config
from .profilers import host_load
from .runner import AgentClient, AgentError

LLM_KEYS = {
    "ANTHROPIC_API_KEY": "anthropic provider (default)",
    "OPENAI_API_KEY": "openai-compatible provider (optional for local gateways)",
}


def _row(item: str, status: str, detail: str, next_step: str = "") -> dict:
    return {"item": item, "status": status, "detail": detail, "next": next_step}


def _agent_rows(where: str, prefix: list[str] | None, probe_s: float) -> tuple[list[dict], bool]:
    rows: list[dict] = []
    try:
        with AgentClient.start(prefix) as agent:
            desc = agent.call("describe", {}, timeout_s=120)
            if prefix:
                rows.append(_row(f"{where}: agent", "ok",
                                 f"answers (wattson {desc.get('agent_version', '?')} on {desc.get('host', '?')})"))
            for name, version in (desc.get("toolchains") or {}).items():
                if name == "cupti":
                    rows.append(_row(f"{where}: CUPTI", "ok" if version else "warn", version or "not found",
                                     "" if version else "per-kernel energy (--kernels) needs CUDA's CUPTI"))
                    continue
                # hipcc is only expected on AMD hosts: its absence is a note, not a fault.
                absent = "warn" if name == "hipcc" else "missing"
                rows.append(_row(f"{where}: {name}", "ok" if version else absent,
                                 version or "not found",
                                 "" if version else f"install {name} or put it on PATH to build "
                                 + ("CUDA" if name == "nvcc" else "HIP") + " programs here"))
            devices = desc.get("devices") or []
            if not devices:
                rows.append(_row(f"{where}: GPU", "missing", "no NVIDIA or AMD GPU found",
                                 'run `nvidia-smi` to check the driver, or measure on a GPU host: '
                                 '--remote "ssh gpu01"'))
                return rows, False
            if desc.get("fake"):
                rows.append(_row(f"{where}: sensors", "warn", "scripted fake sensors (WATTSON_FAKE_GPU is set)",
                                 "unset WATTSON_FAKE_GPU to measure real hardware"))
            for dev in devices:
                idx = dev.get("index", 0)
                probe = agent.call("probe", {"device": idx, "duration_s": probe_s}, timeout_s=120 + probe_s)
                rows += _device_rows(f"{where}: GPU {idx}", dev, probe)
            if probe.get("host"):  # over the last GPU's watch; an older agent sends none
                rows.append(_host_row(where, probe["host"]))
            return rows, True
    except AgentError as e:
        next_step = ("check that `wattson` is installed and on PATH there: "
                     f"{' '.join(prefix)} wattson doctor" if prefix else "reinstall wattson: pip install -e .")
        rows.append(_row(f"{where}: agent", "missing", e.message, next_step))
        return rows, False


def _host_row(where: str, host: dict) -> dict:
    """The host's load and steal while the sensors were watched: a busy host spreads host phases."""
    load = host_load.HostLoad.from_dict(host)
    busy = host_load.busy_note(load)
    if busy:
        return _row(f"{where}: host", "warn", f"{host_load.line(load)}: {busy}",
                    "programs with CPU phases will measure with a wider spread here: measure when the host "
                    "is quieter, on another node, or with --pin-cpus 1")
    return _row(f"{where}: host", "ok", host_load.line(load) or "load and steal not reported on this system")


def _device_rows(label: str, dev: dict, probe: dict) -> list[dict]:
    from .profilers.probe import COUNTER_DISAGREES, NO_COUNTER_NOTE, NO_INSTANT_POWER_NOTE

    notes = list(probe.get("notes") or [])

    def take(prefix: str) -> str | None:
        """A probe note about a sensor that has its own row: shown there, not again as a note."""
        found = next((n for n in notes if n.startswith(prefix)), None)
        if found is not None:
            notes.remove(found)
        return found

    rows = [_row(label, "ok", f"{dev.get('name')} · driver {dev.get('driver_version') or '?'}")]
    period = probe.get("energy_counter_period_s")
    if dev.get("has_energy_counter"):
        detail = "present" + (f", updates every {1000 * period:.0f} ms" if period else "")
        if probe.get("energy_read_cost_ms") is not None:
            detail += f", one read costs {probe['energy_read_cost_ms']:.1f} ms"
        valid = probe.get("counter_valid")
        if valid is False:
            why = take(COUNTER_DISAGREES)
            rows.append(_row(f"{label} energy counter", "warn", detail + "; " + (why or "disagrees with instant power"),
                             "figures fall back to integrated instant power; re-run doctor on an idle GPU"))
        else:
            ratio = probe.get("counter_vs_power_ratio")
            extra = f"; agrees with instant power ({ratio:.3f})" if ratio else ""
            rows.append(_row(f"{label} energy counter", "ok", detail + extra))
    else:
        take(NO_COUNTER_NOTE)
        rows.append(_row(f"{label} energy counter", "missing", "not available on this GPU/driver",
                         "energy is integrated from instant power instead (less precise); a Volta or newer "
                         "NVIDIA GPU has the counter"))
    ip = probe.get("instant_power_period_s")
    if dev.get("has_instant_power"):
        rows.append(_row(f"{label} instant power", "ok",
                         "present" + (f", updates every {1000 * ip:.0f} ms" if ip else "")))
    else:
        take(NO_INSTANT_POWER_NOTE)
        rows.append(_row(f"{label} instant power", "warn", "not available",
                         "power timelines and per-kernel attribution need it; update the NVIDIA driver (R530+)"))
    for note in notes:
        rows.append(_row(f"{label} note", "warn", note))
    if probe.get("idle_power_w") is not None:
        rows.append(_row(f"{label} idle power", "ok", f"{probe['idle_power_w']:.0f} W"))
    return rows


def doctor_report(remote: str | None = None, probe_s: float = 2.0) -> dict:
    rows: list[dict] = []
    ok = sys.version_info >= (3, 11)
    rows.append(_row("python", "ok" if ok else "missing", sys.version.split()[0],
                     "" if ok else "Wattson needs Python 3.11 or newer"))
    for key, use in LLM_KEYS.items():
        present = bool(os.environ.get(key))
        rows.append(_row(f"LLM key {key}", "ok" if present else "warn",
                         ("set" if present else "not set") + f" — {use}",
                         "" if present else f"export {key}=… (needed only for `wattson optimize`)"))
    try:
        config = load_config(find_config_file(Path.cwd()))
        remote = remote if remote is not None else (config.remote.command or None)
    except ConfigError as e:
        rows.append(_row("wattson.toml", "missing", str(e), "fix the file named above"))
    local_rows, local_gpu = _agent_rows("local", None, probe_s)
    rows += local_rows
    remote_gpu = False
    if remote:
        remote_rows, remote_gpu = _agent_rows(f"remote ({remote})", shlex.split(remote), probe_s)
        rows += remote_rows
    usable = local_gpu or remote_gpu
    if not usable and not remote:
        rows.append(_row("next step", "warn", "no GPU to measure on",
                         'point Wattson at a GPU host: wattson doctor --remote "ssh gpu01"'))
    return {"ok": usable, "rows": rows}


def render_doctor(report: dict, console: Console) -> None:
    t = Table(title="wattson doctor", title_justify="left")
    t.add_column("check")
    t.add_column("")
    t.add_column("detail")
    t.add_column("next step")
    marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "missing": "[red]missing[/]"}
    for r in report["rows"]:
        t.add_row(r["item"], marks.get(r["status"], r["status"]), r["detail"], r["next"])
    console.print(t)
    if report.get("ok"):
        console.print("[green]A GPU is ready for measurement.[/]")
    else:
        console.print("[red]No usable GPU:[/] see the next steps above.")
