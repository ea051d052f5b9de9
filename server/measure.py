"""Measure files through an agent: the one path from the user's side to a GPU.

The CLI and the language server both call these functions; they know nothing of terminals or LSP.
The agent is spawned locally (`wattson agent --stdio`) or behind the configured remote prefix.
"""

from __future__ import annotations

import shlex
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import Config, find_config_file, load_config
from .profilers.run_files import without_file_bytes
from .project import resolve_program
from .runner import AgentClient
from .store import History, content_hash

Progress = Callable[[str, float | None], None]  # (message, fraction 0..1 or None)


@dataclass
class Target:
    """What the user asked to measure: a source file, or a shell command run in a directory."""

    label: str
    program: dict
    source_path: Path | None = None
    source_text: str | None = None


def load_config_for(path: Path | None) -> Config:
    start = path.parent if path is not None and path.is_file() else (path or Path.cwd())
    return load_config(find_config_file(start))


def target_for_file(path: Path, args: list[str] | None, config: Config) -> Target:
    program = resolve_program(path, args, config)
    text = path.read_text(errors="replace")
    return Target(label=str(path), program=program, source_path=path.resolve(), source_text=text)


def target_for_command(command: str, cwd: Path, timeout_s: float = 600.0) -> Target:
    """A run command the user typed: it runs where it is on the agent host, nothing travels."""
    program = {
        "name": shlex.split(command)[0] if command.strip() else "command",
        "files": {},
        "build": None,
        "run": command,
        "workdir": ".",
        "host_dir": str(cwd.resolve()),
        "run_timeout_s": timeout_s,
        "build_timeout_s": 300,
        "env": {},
    }
    return Target(label=command, program=program)


def resolve_target(spec: str, args: list[str] | None, config: Config) -> Target:
    path = Path(spec)
    if path.exists():
        return target_for_file(path, args, config)
    if any(c in spec for c in " ./") and not spec.endswith((".cu", ".cuh", ".hip", ".cpp")):
        return target_for_command(spec, Path.cwd())
    # Looks like a file name that does not exist: let project.py word the error.
    return target_for_file(path, args, config)


def remote_prefix(remote: str | None, config: Config) -> list[str] | None:
    text = remote if remote is not None else (config.remote.command or "")
    return shlex.split(text) if text.strip() else None


def start_agent(remote: str | None, config: Config) -> AgentClient:
    return AgentClient.start(remote_prefix(remote, config))


def budget_from(config: Config, overrides: dict | None = None) -> dict:
    m = config.measure
    budget = {
        "min_trials": m.min_trials,
        "max_trials": m.max_trials,
        "max_wall_s": m.max_wall_s,
        "target_ci_half_width": m.target_ci_half_width,
        "cooldown_cap_s": m.cooldown_cap_s,
        "min_effect": m.min_effect,
    }
    if m.pin_cpus:  # only when asked: an older agent warns about every field it does not know
        budget["pin_cpus"] = m.pin_cpus
    budget.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return budget


class _ProgressRelay:
    def __init__(self, progress: Progress | None):
        self.progress = progress

    def __call__(self, note: dict) -> None:
        if self.progress is not None:
            self.progress(note.get("message") or note.get("stage", ""), note.get("fraction"))


def run_with_cancel(agent: AgentClient, method: str, params: dict, *, progress: Progress | None,
                    cancel: threading.Event | None) -> dict:
    """Call a long agent method; if `cancel` is set meanwhile, ask the agent to cancel the job."""
    job_id = params.setdefault("job_id", uuid.uuid4().hex[:12])
    stop_watch = threading.Event()

    def watch() -> None:
        while cancel is not None and not stop_watch.is_set():
            if cancel.wait(0.1):
                agent.cancel(job_id)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return agent.call(method, params, on_progress=_ProgressRelay(progress))
    finally:
        stop_watch.set()


def profile_target(agent: AgentClient, target: Target, *, budget: dict, protocol: str = "wattson",
                   kernels: bool = False, kernel_copies: bool = False, device: int | None = None,
                   progress: Progress | None = None, cancel: threading.Event | None = None,
                   history: History | None = None) -> dict:
    params = {"program": target.program, "budget": budget, "protocol": protocol,
              "kernels": kernels or kernel_copies}
    if kernel_copies:
        params["kernel_copies"] = True
    if device is not None:
        params["device"] = device
    result = run_with_cancel(agent, "profile", params, progress=progress, cancel=cancel)
    if history is not None and target.source_path is not None and target.source_text is not None:
        history.add_profile(source_path=str(target.source_path), source_hash=content_hash(target.source_text),
                            result=without_file_bytes(result), kernels=result.get("kernels"))
    return result


def compare_targets(agent: AgentClient, a: Target, b: Target, *, budget: dict, protocol: str = "wattson",
                    device: int | None = None, progress: Progress | None = None,
                    cancel: threading.Event | None = None, history: History | None = None) -> dict:
    params = {"a": a.program, "b": b.program, "budget": budget, "protocol": protocol}
    if device is not None:
        params["device"] = device
    result = run_with_cancel(agent, "compare", params, progress=progress, cancel=cancel)
    if history is not None:
        history.add_comparison(a_label=a.label, b_label=b.label, result=without_file_bytes(result))
    return result
