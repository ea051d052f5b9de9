"""How the optimize loop uses the GPU agent: programs for candidates, check runs, comparisons.

Everything goes through the agent protocol (docs/agent-protocol.md). A check run is a `profile`
with a small budget: it builds the program in a fresh folder and runs it twice, which gives the
outputs the oracle compares (and shows results that change from one run to the next). The
measurement is a `compare` with the user's [measure] budget. Both the original and the candidates
run as untrusted programs, in the sandbox: the same conditions on both sides of a comparison.
The agent's GPU lock serializes measurements; builds happen before the lock is taken, so one
trial's build overlaps another trial's measurement.
"""

from __future__ import annotations

import copy
import shlex
import threading
from collections.abc import Callable
from pathlib import Path

from ..config import Config
from ..measure import budget_from, run_with_cancel
from ..profilers.run_files import SkippedFile, decode_output_files
from ..project import ProjectError, find_project, run_command
from ..runner import AgentClient, AgentError
from ..verify import RunOutput

Progress = Callable[[str, float | None], None]

# Trials of several candidates wait for each other's measurements: wait long for the GPU lock.
GPU_WAIT_S = 3 * 3600.0
CHECK_RUNS = 2
_CHECK_COOLDOWN_CAP_S = 3.0


class Cancelled(Exception):
    """The job was cancelled; raised out of whatever step was running."""


def original_program(program: dict) -> dict:
    """The user's program as the loop runs it: sandboxed like the candidates it is compared with."""
    spec = copy.deepcopy(program)
    spec["trusted"] = False
    spec.pop("skipped_files", None)
    return spec


def candidate_program(original: dict, source_file: str, text: str, label: str) -> dict:
    """The original program with the source file replaced by a candidate's text."""
    spec = dict(original)
    spec["files"] = dict(original["files"])
    spec["files"][source_file] = {"text": text}
    spec["name"] = f"{original.get('name') or 'program'}-{label}"
    spec["trusted"] = False
    return spec


def with_run_args(program: dict, run: str) -> dict:
    spec = dict(program)
    spec["run"] = run
    return spec


def alternate_runs(source_path: Path, config: Config) -> list[tuple[str, str]]:
    """(arguments as written, run command) for each [run] alternate_args set of the file's project."""
    if not config.run.alternate_args:
        return []
    try:
        project = find_project(source_path, config)
    except ProjectError:
        return []
    runs = []
    for args in project.config.run.alternate_args:
        runs.append((shlex.join(args), run_command(project, list(args))))
    return runs


def check_budget(config: Config, runs: int = CHECK_RUNS) -> dict:
    """A check run: no warm-up, exactly `runs` runs, short cooldowns. Its energy is not used."""
    return budget_from(
        config,
        {
            "warmup_runs": 0,
            "min_trials": runs,
            "max_trials": runs,
            "max_wall_s": 24 * 3600.0,
            "cooldown_cap_s": min(config.measure.cooldown_cap_s, _CHECK_COOLDOWN_CAP_S),
        },
    )


def reference_budget(config: Config) -> dict:
    """The original's profile: the user's budget, with at least two runs for the volatile mask."""
    m = config.measure
    return budget_from(config, {"min_trials": max(2, m.min_trials), "max_trials": max(2, m.max_trials)})


class AgentSide:
    """The agent calls of one optimize job; cancel-aware, and worded errors for the loop."""

    def __init__(self, agent: AgentClient, config: Config, cancel: threading.Event):
        self.agent = agent
        self.config = config
        self.cancel = cancel

    def _call(self, method: str, params: dict, progress: Progress | None) -> dict:
        if self.cancel.is_set():
            raise Cancelled()
        params = {**params, "gpu_wait_s": GPU_WAIT_S}
        try:
            return run_with_cancel(self.agent, method, params, progress=progress, cancel=self.cancel)
        except AgentError as e:
            if e.kind == "cancelled" or self.cancel.is_set():
                raise Cancelled() from e
            raise

    def describe(self) -> dict:
        return self.agent.call("describe", timeout_s=120)

    def profile(
        self,
        program: dict,
        budget: dict,
        *,
        kernels: bool = False,
        initcheck: bool = False,
        progress: Progress | None = None,
    ) -> dict:
        params: dict = {"program": program, "budget": budget, "kernels": kernels}
        if initcheck:
            params["initcheck"] = {"timeout_s": self.config.verify.initcheck_timeout_s}
        return self._call("profile", params, progress)

    def compare(self, a: dict, b: dict, progress: Progress | None = None) -> dict:
        return self._call("compare", {"a": a, "b": b, "budget": budget_from(self.config)}, progress)


def run_outputs(result: dict) -> list[RunOutput]:
    """The outputs of a profile's (or one side of a compare's) runs, for the oracle: exit code,
    stdout, stderr and the declared output files the agent returned."""
    return [
        RunOutput(
            exit_code=t.get("exit_code"),
            stdout=t.get("stdout") or "",
            stderr=t.get("stderr") or "",
            timed_out=bool(t.get("timed_out")),
            output_files=decode_output_files(t.get("output_files")),
            stdout_truncated=bool(t.get("output_truncated")),
        )
        for t in result.get("trials") or []
    ]


def run_durations_s(result: dict) -> list[float]:
    return [float(t["duration_s"]) for t in result.get("trials") or [] if t.get("duration_s") is not None]


def host_cpu_times_s(result: dict) -> list[float]:
    """Host CPU time (user + system) of each run that recorded it; [] from agents that do not."""
    return [float(t["host_cpu_s"]) for t in result.get("trials") or [] if t.get("host_cpu_s") is not None]


def created_files(result: dict) -> set[str] | None:
    """Files the runs left in their folder that the build did not (union over runs); None when no run
    recorded them (an older agent). Past the agent's cap of names per run, the rest are only counted."""
    trials = [t for t in result.get("trials") or [] if "created_files" in t]
    if not trials:
        return None
    return {str(name) for t in trials for name in t.get("created_files") or []}


def skipped_output_files(result: dict, whose: str) -> dict[str, str]:
    """Declared output files that some run of `result` did not return, each with why, in words
    ("the candidate's run 2: it is larger than ..."); the first run that left a file out speaks for it."""
    skipped: dict[str, str] = {}
    for k, t in enumerate(result.get("trials") or [], start=1):
        for name, raw in (t.get("output_files_skipped") or {}).items():
            if name in skipped:
                continue
            item = SkippedFile.from_dict(raw)
            size = f" ({item.size_bytes / 2**20:.1f} MiB)" if item.size_bytes is not None else ""
            skipped[name] = f"{whose} run {k}: {item.reason}{size}"
    return skipped


def kernel_launches(kernels: dict | None) -> dict[str, int]:
    """Launches per kernel name from a per-kernel report; {} without one. Copies are not kernels."""
    if not kernels:
        return {}
    return {
        k["name"]: int(k.get("launches") or 0)
        for k in kernels.get("kernels") or []
        if k.get("kind", "kernel") == "kernel" and k.get("name")
    }


def failure_text(error: AgentError) -> str:
    """An agent error about the program (build or run), with what the program printed."""
    data = error.data if isinstance(error.data, dict) else {}
    parts = [error.message]
    if data.get("output"):
        parts.append(str(data["output"]))
    if data.get("stdout_tail"):
        parts.append("stdout (last part):\n" + str(data["stdout_tail"]))
    if data.get("stderr_tail"):
        parts.append("stderr (last part):\n" + str(data["stderr_tail"]))
    return "\n\n".join(parts)
