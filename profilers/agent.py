"""`wattson agent --stdio`: the GPU host's side of the one path to a GPU (docs/agent-protocol.md).

JSON-RPC 2.0, one JSON object per line, on stdin/stdout; logs go to stderr. Every request runs on a
thread of its own, so `cancel` is answered while a measurement runs. Each measurement holds its
GPU's lock (gpu_lock.py), which keeps apart the jobs of every agent on this host. When stdin closes
(the editor quit, ssh dropped) every job is cancelled, its processes killed, and the agent exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import host_load
from .device import FAKE_GPU_ENV, DeviceError, GpuDevice, open_devices
from .gpu_lock import GpuBusy, GpuLock, LockWaitCancelled, lock_key
from .jobs import VISIBLE_DEVICES_ENV, JobDir, ProgramSpec, SpecError, gpu_arch, job_env, run_build
from .run_files import OutputBudget, RunFilesRecorder

PROTOCOL_VERSION = 1
DEFAULT_GPU_WAIT_S = 600.0
_SHUTDOWN_WAIT_S = 15.0
_PROGRESS_MIN_INTERVAL_S = 0.1

# JSON-RPC's own codes, then ours (the server range -32000..-32099). data.kind names the error
# in words, so clients need not remember the numbers.
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700, -32600, -32601, -32602, -32603)
NO_GPU = -32001
BUILD_FAILED = -32002
PROGRAM_FAILED = -32003
GPU_BUSY = -32004
CANCELLED = -32005
DEVICE_ERROR = -32006
UNSUPPORTED = -32007

log = logging.getLogger("wattson.agent")


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = json_safe(self.data)
        return error


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message, {"kind": "invalid_params"})


def json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON: they travel as null (strict parsers refuse them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _tail(text: str | None, chars: int = 4000) -> str:
    text = text or ""
    return text if len(text) <= chars else "[...]\n" + text[-chars:]


# --- jobs ----------------------------------------------------------------------------------------

@dataclass
class Job:
    job_id: str
    method: str
    cancel: threading.Event = field(default_factory=threading.Event)


class Reporter:
    """Sends `progress` notifications for one job; engine messages arrive at most every 0.1 s."""

    _STAGE_WORDS = (("warm", "warmup"), ("cool", "cooldown"), ("idle", "idle"), ("trial", "trial"))

    def __init__(self, agent: Agent, job_id: str):
        self.agent = agent
        self.job_id = job_id
        self._last_s = 0.0
        self._last_stage = ""

    def __call__(self, stage: str, message: str, fraction: float | None = None, *,
                 force: bool = True) -> None:
        now = time.monotonic()
        if not force and stage == self._last_stage and now - self._last_s < _PROGRESS_MIN_INTERVAL_S:
            return
        self._last_s, self._last_stage = now, stage
        self.agent.notify("progress", {"job_id": self.job_id, "stage": stage, "message": message,
                                       "fraction": fraction})

    def engine(self) -> Callable[[str, float], None]:
        """The (message, fraction) callback protocol.py and lassi_ee.py report through."""

        def relay(message: str, fraction: float | None = None) -> None:
            lower = message.lower()
            stage = next((s for word, s in self._STAGE_WORDS if word in lower), "measure")
            self(stage, message, fraction, force=False)

        return relay


# --- the agent -----------------------------------------------------------------------------------

class Agent:
    """Reads requests with handle_line(); writes responses and notifications to `out`."""

    def __init__(self, out: IO[bytes], *, gpu_wait_s: float = DEFAULT_GPU_WAIT_S):
        self.out = out
        self.gpu_wait_s = gpu_wait_s
        self.host = socket.gethostname()
        self._write_lock = threading.Lock()
        self._jobs_lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._threads: set[threading.Thread] = set()
        self._devices: list[GpuDevice] | None = None
        self._devices_lock = threading.Lock()
        self.client_gone = threading.Event()
        self.methods: dict[str, Callable[[dict[str, Any], Job | None], Any]] = {
            "describe": self.describe,
            "probe": self.probe,
            "build": self.build,
            "profile": self.profile,
            "compare": self.compare,
        }

    # --- wire ----------------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(json_safe(message), allow_nan=False, separators=(",", ":")).encode() + b"\n"
        with self._write_lock:
            if self.client_gone.is_set():
                return
            try:
                self.out.write(data)
                self.out.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.client_gone.set()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def _reply(self, request_id: Any, result: Any = None, error: RpcError | None = None) -> None:
        if request_id is None:
            return  # a notification gets no answer
        if error is not None:
            self.send({"jsonrpc": "2.0", "id": request_id, "error": error.to_dict()})
        else:
            self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    def _error_without_id(self, error: RpcError) -> None:
        # JSON-RPC answers a request whose id could not be read with id null.
        self.send({"jsonrpc": "2.0", "id": None, "error": error.to_dict()})

    def handle_line(self, line: bytes) -> bool:
        """Handle one line from the client; False once the agent should stop reading."""
        if not line.strip():
            return True
        try:
            message = json.loads(line)
        except (ValueError, UnicodeDecodeError) as e:
            self._error_without_id(RpcError(PARSE_ERROR, f"not JSON: {e}"))
            return True
        if not isinstance(message, dict):
            self._error_without_id(RpcError(
                INVALID_REQUEST, "send one JSON-RPC request object per line (batches are not supported)"))
            return True
        request_id = message.get("id")
        method = message.get("method")
        params = message.get("params") or {}
        if message.get("jsonrpc") != "2.0" or not isinstance(method, str) or not isinstance(params, dict):
            error = RpcError(INVALID_REQUEST, 'a request needs "jsonrpc": "2.0", a "method" and "params" '
                             "as an object")
            if request_id is None:
                self._error_without_id(error)
            else:
                self._reply(request_id, error=error)
            return True
        if method == "cancel":
            self._reply(request_id, {"cancelled": self.cancel(str(params.get("job_id", "")))})
            return True
        if method == "shutdown":
            self.stop_all()
            self._reply(request_id, {})
            return False
        handler = self.methods.get(method)
        if handler is None:
            known = ", ".join(sorted([*self.methods, "cancel", "shutdown"]))
            self._reply(request_id, error=RpcError(METHOD_NOT_FOUND,
                                                   f"no method {method!r}; this agent knows {known}"))
            return True
        self._start(request_id, method, handler, params)
        return True

    def _start(self, request_id: Any, method: str, handler: Callable[[dict[str, Any], Job | None], Any],
               params: dict[str, Any]) -> None:
        job: Job | None = None
        if method in ("build", "profile", "compare", "probe"):
            job_id = params.get("job_id")
            if job_id is None:
                job_id = uuid.uuid4().hex[:12]
            job = Job(job_id=str(job_id), method=method)
            with self._jobs_lock:
                if job.job_id in self._jobs:
                    self._reply(request_id, error=invalid_params(f"job {job.job_id} is already running: "
                                                                 "choose a new job_id"))
                    return
                self._jobs[job.job_id] = job

        def work() -> None:
            started_s = time.monotonic()
            if job is not None:
                log.info("%s %s: started", method, job.job_id)
            result: Any = None
            error: RpcError | None = None
            try:
                result = handler(params, job)
            except RpcError as e:
                error = e
            except SpecError as e:
                error = RpcError(INVALID_PARAMS, str(e), {"kind": "bad_program"})
            except DeviceError as e:
                error = RpcError(DEVICE_ERROR, str(e), {"kind": "device_error"})
            except Exception as e:  # noqa: BLE001 - one failed job must never take the agent down
                log.exception("%s failed", method)
                error = RpcError(INTERNAL_ERROR, f"internal error in {method}: {type(e).__name__}: {e}; the "
                                 "agent's log (stderr) has the traceback: please report it",
                                 {"kind": "internal"})
            with self._jobs_lock:
                # Forget the job before answering: the client may reuse its id the moment it reads the answer.
                if job is not None:
                    self._jobs.pop(job.job_id, None)
                self._threads.discard(threading.current_thread())
            if job is not None:
                outcome = f"failed ({error.message.splitlines()[0]})" if error else "done"
                log.info("%s %s: %s in %.1f s", method, job.job_id, outcome, time.monotonic() - started_s)
            self._reply(request_id, result, error)

        thread = threading.Thread(target=work, name=f"agent-{method}", daemon=True)
        with self._jobs_lock:
            self._threads.add(thread)
        thread.start()

    def cancel(self, job_id: str) -> bool:
        with self._jobs_lock:
            job = self._jobs.get(job_id)
        if job is None:
            return False
        job.cancel.set()
        return True

    def stop_all(self, wait_s: float = _SHUTDOWN_WAIT_S) -> None:
        """Cancel every job and wait for their threads (which kill their processes) to finish."""
        with self._jobs_lock:
            jobs = list(self._jobs.values())
            threads = list(self._threads)
        for job in jobs:
            job.cancel.set()
        deadline = time.monotonic() + wait_s
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in threads if t.is_alive()]
        if left:
            log.warning("jobs still running after %.0f s: %s", wait_s, ", ".join(left))

    def close(self) -> None:
        with self._devices_lock:
            for device in self._devices or []:
                device.close()
            self._devices = None

    # --- devices ------------------------------------------------------------------------------
    def devices(self) -> list[GpuDevice]:
        with self._devices_lock:
            if self._devices is None:
                self._devices = open_devices()
            return self._devices

    def device(self, params: dict[str, Any]) -> GpuDevice:
        devices = self.devices()
        if not devices:
            raise RpcError(NO_GPU, f"no NVIDIA or AMD GPU on {self.host}: measure on a GPU host with "
                           '--remote "ssh gpu01" (`wattson doctor` there says what it can measure)',
                           {"kind": "no_gpu", "host": self.host})
        index = params.get("device")
        if index is None:
            return default_device(devices)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(devices):
            raise invalid_params(f"GPU {index!r} does not exist on {self.host}: it has "
                                 f"{len(devices)} GPU(s), numbered 0 to {len(devices) - 1}")
        return devices[index]

    @contextmanager
    def gpu(self, device: GpuDevice, job: Job, report: Reporter, params: dict[str, Any]) -> Iterator[None]:
        """Hold the device's lock for the body; say so while waiting for another measurement."""
        label = f"GPU {device.info.index}"
        fake_spec = os.environ.get(FAKE_GPU_ENV) if device.info.vendor == "fake" else None
        lock = GpuLock(lock_key(device.info.uuid or f"{self.host}-{device.info.index}", fake_spec=fake_spec),
                       label=label)
        wait_s = params.get("gpu_wait_s", self.gpu_wait_s)
        if isinstance(wait_s, bool) or not isinstance(wait_s, int | float) or wait_s < 0:
            raise invalid_params("`gpu_wait_s` must be a number of seconds, 0 or more")

        def waiting(holder_pid: int | None) -> None:
            who = f" (pid {holder_pid})" if holder_pid else ""
            report("wait-gpu", f"waiting for {label}: another measurement is running{who}")

        try:
            lock.acquire(float(wait_s), on_wait=waiting, cancel=job.cancel)
        except GpuBusy as e:
            raise RpcError(GPU_BUSY, str(e), {"kind": "gpu_busy", "holder_pid": e.holder_pid}) from e
        except LockWaitCancelled as e:
            raise _cancelled(job) from e
        try:
            yield
        finally:
            lock.release()

    # --- methods --------------------------------------------------------------------------------
    def describe(self, params: dict[str, Any], job: Job | None) -> dict[str, Any]:
        from .. import __version__

        devices = []
        for device in self.devices():
            info = device.info.to_dict()
            info["arch"] = gpu_arch(device)
            devices.append(info)
        tools: dict[str, str | None] = {}
        sensor_errors: dict[str, str | None] = {}
        try:
            from .probe import sensor_library_errors, toolchains

            tools = toolchains()
            if not devices:  # say why no GPU was found: which vendor library is missing or failing
                sensor_errors = sensor_library_errors()
        except ImportError:
            pass
        return {
            "agent_version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "host": self.host,
            "python": platform.python_version(),
            "pid": os.getpid(),
            "devices": devices,
            "toolchains": tools,
            "sensor_errors": sensor_errors,
            "fake": bool(os.environ.get(FAKE_GPU_ENV)),
        }

    def probe(self, params: dict[str, Any], job: Job | None) -> dict[str, Any]:
        assert job is not None
        from .probe import probe_device

        device = self.device(params)
        duration_s = params.get("duration_s", 2.0)
        if isinstance(duration_s, bool) or not isinstance(duration_s, int | float) or duration_s <= 0:
            raise invalid_params("`duration_s` must be a positive number of seconds")
        report = Reporter(self, job.job_id)
        with self.gpu(device, job, report, params):  # another job's load would spoil the idle figures
            report("probe", f"watching the sensors of GPU {device.info.index} for {duration_s:.1f} s")
            start = host_load.snapshot()
            result = probe_device(device, float(duration_s)).to_dict()
            # What the host did meanwhile: a busy host or a VM losing CPU time spreads host phases.
            return {**result, "host": host_load.between(start, host_load.snapshot()).to_dict()}

    def build(self, params: dict[str, Any], job: Job | None) -> dict[str, Any]:
        assert job is not None
        spec = ProgramSpec.from_dict(params.get("program"))
        devices = self.devices()
        device = self.device(params) if devices else None  # compiling needs no GPU; WATTSON_ARCH does
        report = Reporter(self, job.job_id)
        with JobDir(spec) as job_dir:
            result = self._build(spec, job_dir, gpu_arch(device), job, report, label="")
        if result.cancelled:
            raise _cancelled(job)
        return {"job_id": job.job_id, **result.to_dict()}

    def _build(self, spec: ProgramSpec, job_dir: JobDir, arch: str | None, job: Job, report: Reporter,
               label: str) -> Any:
        if spec.build is None:
            return run_build(spec, job_dir, arch=arch)
        report("build", f"building {label or spec.name}: {spec.build}")
        sandbox = self._sandbox(spec, job_dir)
        return run_build(spec, job_dir, arch=arch, cancel=job.cancel, sandbox=sandbox)

    def _build_or_raise(self, spec: ProgramSpec, job_dir: JobDir, arch: str | None, job: Job,
                        report: Reporter, label: str) -> None:
        result = self._build(spec, job_dir, arch, job, report, label)
        if result.cancelled:
            raise _cancelled(job)
        if not result.ok:
            what = f"{label} ({spec.name})" if label else spec.name
            why = "timed out" if result.timed_out else f"exited with code {result.exit_code}"
            raise RpcError(BUILD_FAILED, f"the build of {what} failed: `{spec.build}` {why}",
                           {"kind": "build_failed", "label": label, "output": result.output,
                            "exit_code": result.exit_code, "timed_out": result.timed_out})

    def _sandbox(self, spec: ProgramSpec, job_dir: JobDir) -> Any:
        if spec.trusted:
            return None
        try:
            from .sandbox import make_sandbox
        except ImportError as e:
            raise RpcError(UNSUPPORTED, "this agent cannot run untrusted programs (profilers/sandbox.py is "
                           "missing): update wattson on the GPU host", {"kind": "unsupported"}) from e
        return make_sandbox(job_dir.run_dir)

    def _program_runs(self, spec: ProgramSpec, job_dir: JobDir, device: GpuDevice, arch: str | None,
                      job: Job, sandbox: Any, output_budget: OutputBudget, cpus: list[int]) -> _ProgramRuns:
        """The program's measured runs for the protocol: each with what it left in the run folder."""
        return _ProgramRuns(spec, job_dir, device, job_env(spec, arch, device), job, sandbox,
                            RunFilesRecorder(job_dir.run_dir, spec.output_files, output_budget), cpus)

    def profile(self, params: dict[str, Any], job: Job | None) -> dict[str, Any]:
        assert job is not None
        spec = ProgramSpec.from_dict(params.get("program"))
        protocol = _protocol(params)
        budget, warnings = _budget(params, protocol)
        device = self.device(params)
        arch = gpu_arch(device)
        report = Reporter(self, job.job_id)
        with JobDir(spec) as job_dir:
            self._build_or_raise(spec, job_dir, arch, job, report, label="")
            sandbox = self._sandbox(spec, job_dir)
            with self.gpu(device, job, report, params), _engine_errors(job, {"the program": spec.name}):
                report("measure", f"measuring {spec.name} on GPU {device.info.index} ({protocol} protocol)",
                       0.0)
                cpus, host_cpus = [], None  # lassi-ee never pins
                if protocol == "lassi-ee":
                    from .lassi_ee import profile_lassi_ee

                    result = profile_lassi_ee(spec.run, cwd=job_dir.run_dir, device=device,
                                              timeout_s=spec.run_timeout_s, env=job_env(spec, arch, device),
                                              sandbox=sandbox, cancel=job.cancel, progress=report.engine())
                else:
                    from .protocol import profile

                    cpus, host_cpus = _host_pinning(budget, device)
                    run_once = self._program_runs(spec, job_dir, device, arch, job, sandbox, OutputBudget(),
                                                  cpus)
                    result = profile(run_once, device, budget, progress=report.engine(), cancel=job.cancel)
                out = result.to_dict()
                if host_cpus is not None:
                    out["host_cpus"] = host_cpus
                if params.get("kernels"):
                    out["kernels"] = self._kernels(spec, job_dir, device, arch, job, sandbox, report,
                                                   warnings, copies=params.get("kernel_copies") is True,
                                                   cpus=cpus)
                if params.get("initcheck"):
                    out["initcheck"] = self._initcheck(spec, job_dir, device, arch, job, sandbox, report,
                                                       warnings, params["initcheck"])
        return _with_warnings(out, warnings, sandbox)

    def _initcheck(self, spec: ProgramSpec, job_dir: JobDir, device: GpuDevice, arch: str | None, job: Job,
                   sandbox: Any, report: Reporter, warnings: list[str], options: Any) -> dict[str, Any] | None:
        """One more run under compute-sanitizer initcheck, after the measured trials (it slows the
        program many times over). Where the tool is missing, a warning says so and the profile stands."""
        from .sanitizer import SanitizerUnavailable, run_initcheck

        timeout_s = spec.run_timeout_s * 20
        if isinstance(options, dict) and isinstance(options.get("timeout_s"), int | float):
            timeout_s = float(options["timeout_s"])
        report("initcheck", f"checking {spec.name} for reads of uninitialised GPU memory (compute-sanitizer "
               f"initcheck, up to {timeout_s:.0f} s)")
        try:
            result = run_initcheck(spec.run, cwd=job_dir.run_dir, timeout_s=timeout_s,
                                   env=job_env(spec, arch, device), sandbox=sandbox, cancel=job.cancel)
        except SanitizerUnavailable as e:
            warnings.append(f"initcheck unavailable: {e}")
            return None
        if job.cancel.is_set():
            raise _cancelled(job)
        return result.to_dict()

    def _kernels(self, spec: ProgramSpec, job_dir: JobDir, device: GpuDevice, arch: str | None, job: Job,
                 sandbox: Any, report: Reporter, warnings: list[str], copies: bool = False,
                 cpus: Sequence[int] = ()) -> dict[str, Any] | None:
        """Per-kernel energy from one extra run under the CUPTI tracer, after the measured trials:
        tracing slows launches, so the energy figures above come from untraced runs. `copies` traces
        memcpy and memset too; `cpus` pins it where the trials were pinned, so its host phases match theirs.
        Where tracing cannot run, a warning says why and the profile stands without it."""
        from . import kernels
        from .run import measured_run

        report("kernels", f"tracing the kernels of {spec.name} (one more run under CUPTI)")
        try:
            kernels.check_vendor_supported(device.info.vendor)
            library = kernels.build_injection_library()
            with tempfile.TemporaryDirectory(prefix="wattson-trace-") as trace_dir:
                trace_path = Path(trace_dir) / "kernels.tsv"
                env = {**job_env(spec, arch, device), **kernels.kernel_trace_env(trace_path, library, copies)}
                m = measured_run(spec.run, cwd=job_dir.run_dir, device=device, timeout_s=spec.run_timeout_s,
                                 env=env, sandbox=sandbox, cancel=job.cancel, cpus=cpus)
                if m.cancelled:
                    raise _cancelled(job)
                if m.failed:
                    warnings.append(f"per-kernel energy: the traced run {m.failure_text()}")
                    return None
                # The run's timeline counts from its start; the trace's timestamps are time.monotonic().
                return kernels.profile_kernels(trace_path, m.timeline, sources=_source_texts(spec),
                                               timeline_origin_s=m.start_monotonic_s,
                                               copies_traced=copies).to_dict()
        except (kernels.KernelTraceUnavailable, ValueError) as e:
            warnings.append(f"per-kernel energy unavailable: {e}")
            return None

    def compare(self, params: dict[str, Any], job: Job | None) -> dict[str, Any]:
        assert job is not None
        spec_a = ProgramSpec.from_dict(params.get("a"))
        spec_b = ProgramSpec.from_dict(params.get("b"))
        protocol = _protocol(params)
        budget, warnings = _budget(params, protocol)
        device = self.device(params)
        arch = gpu_arch(device)
        report = Reporter(self, job.job_id)
        names = {"A": spec_a.name, "B": spec_b.name}
        with JobDir(spec_a) as dir_a, JobDir(spec_b) as dir_b:
            self._build_or_raise(spec_a, dir_a, arch, job, report, label="A")
            self._build_or_raise(spec_b, dir_b, arch, job, report, label="B")
            sandbox_a = self._sandbox(spec_a, dir_a)
            sandbox_b = self._sandbox(spec_b, dir_b)
            with self.gpu(device, job, report, params), _engine_errors(job, names):
                report("measure", f"comparing A ({spec_a.name}) with B ({spec_b.name}) on GPU "
                       f"{device.info.index} ({protocol} protocol)", 0.0)
                host_cpus = None  # lassi-ee never pins
                if protocol == "lassi-ee":
                    from .lassi_ee import compare_lassi_ee

                    result = compare_lassi_ee(
                        spec_a.run, spec_b.run, cwd_a=dir_a.run_dir, cwd_b=dir_b.run_dir, device=device,
                        timeout_a_s=spec_a.run_timeout_s, timeout_b_s=spec_b.run_timeout_s,
                        env_a=job_env(spec_a, arch, device), env_b=job_env(spec_b, arch, device),
                        sandbox_a=sandbox_a, sandbox_b=sandbox_b, cancel=job.cancel, progress=report.engine(),
                        min_effect=budget.min_effect)
                else:
                    from .protocol import compare

                    output_budget = OutputBudget()  # one cap for the job: A's runs and B's together
                    cpus, host_cpus = _host_pinning(budget, device)  # the same cores for A and B
                    result = compare(
                        self._program_runs(spec_a, dir_a, device, arch, job, sandbox_a, output_budget, cpus),
                        self._program_runs(spec_b, dir_b, device, arch, job, sandbox_b, output_budget, cpus),
                        device, budget, progress=report.engine(), cancel=job.cancel)
        out = result.to_dict()
        if host_cpus is not None:
            out["host_cpus"] = host_cpus
        return _with_warnings(out, warnings, sandbox_a, sandbox_b)


# --- helpers for the methods ---------------------------------------------------------------------

class _ProgramRuns:
    """A program's measured runs in one job: call it for a trial, `warm_up()` for a warm-up.

    A warm-up's record is thrown away by the protocol, so its declared output files are not read:
    they would use up the job's output cap for bytes nobody gets."""

    def __init__(self, spec: ProgramSpec, job_dir: JobDir, device: GpuDevice, env: dict[str, str], job: Job,
                 sandbox: Any, recorder: RunFilesRecorder, cpus: list[int]):
        self.spec, self.job_dir, self.device, self.env = spec, job_dir, device, env
        self.job, self.sandbox, self.recorder, self.cpus = job, sandbox, recorder, cpus

    def __call__(self) -> Any:
        return self._run(read_outputs=True)

    def warm_up(self) -> Any:
        return self._run(read_outputs=False)

    def _run(self, *, read_outputs: bool) -> Any:
        from .run import measured_run

        self.recorder.before_run()  # the first time only: the folder as the build left it
        m = measured_run(self.spec.run, cwd=self.job_dir.run_dir, device=self.device,
                         timeout_s=self.spec.run_timeout_s, env=self.env, sandbox=self.sandbox,
                         cancel=self.job.cancel, cpus=self.cpus)
        if not m.cancelled:
            m.files = self.recorder.after_run(read_outputs=read_outputs)
        return m


def default_device(devices: list[GpuDevice]) -> GpuDevice:
    """The GPU a job gets when it names none: the first one CUDA_VISIBLE_DEVICES grants this agent
    (a Slurm allocation sets it, while NVML still lists every GPU of the node), else GPU 0."""
    first = os.environ.get(VISIBLE_DEVICES_ENV, "").split(",")[0].strip()
    for device in devices:
        if device.info.vendor != "nvidia" or not first:
            continue
        by_uuid = first.startswith("GPU-") and device.info.uuid.startswith(first)
        if by_uuid or first == str(device.info.index):
            return device
    return devices[0]


_SOURCE_SUFFIXES = (".cu", ".cuh", ".hip", ".cpp", ".cc", ".cxx", ".c", ".h", ".hpp")


def _source_texts(spec: ProgramSpec) -> dict[str, str]:
    """The program's sources as they travelled, so kernels map back to file:line on the user's side."""
    return {name: content["text"] for name, content in spec.files.items()
            if name.endswith(_SOURCE_SUFFIXES) and isinstance(content.get("text"), str)}


def _cancelled(job: Job, partial: Any = None) -> RpcError:
    data: dict[str, Any] = {"kind": "cancelled", "job_id": job.job_id}
    if partial is not None:
        data["partial"] = partial.to_dict() if hasattr(partial, "to_dict") else partial
    return RpcError(CANCELLED, f"job {job.job_id} was cancelled; no process of it is left running", data)


def _budget(params: dict[str, Any], protocol: str) -> tuple[Any, list[str]]:
    """The Budget, and warnings: fields this agent does not know (from a newer client: ignored), and
    pinning asked of the lassi-ee protocol (it runs as the paper did, unpinned)."""
    from .protocol import Budget

    raw = params.get("budget") or {}
    if not isinstance(raw, dict):
        raise invalid_params("`budget` must be an object (docs/agent-protocol.md lists its fields)")
    unknown = sorted(set(raw) - set(Budget.__dataclass_fields__))
    warnings = [f"the agent ignored the budget field(s) {', '.join(unknown)}: unknown to wattson "
                "on the GPU host (a typo, or an older wattson there)"] if unknown else []
    try:
        budget = Budget.from_dict(raw)
    except (TypeError, ValueError) as e:
        raise invalid_params(f"bad budget: {e}") from e
    if protocol == "lassi-ee" and budget.pin_cpus:
        warnings.append("pin_cpus was not applied: the lassi-ee protocol runs as the paper did, unpinned")
    return budget, warnings


def _host_pinning(budget: Any, device: GpuDevice) -> tuple[list[int], dict[str, Any] | None]:
    """The CPUs each run is bound to ([] for none), and how the result names them (None: not pinned)."""
    if not budget.pin_cpus:
        return [], None
    from .cpu_pinning import choose_cpus, pin_note

    near = device.near_cpus()
    cpus = choose_cpus(budget.pin_cpus, near)
    return cpus, {"pinned": cpus, "note": pin_note(cpus, budget.pin_cpus, near)}


def _protocol(params: dict[str, Any]) -> str:
    protocol = params.get("protocol") or "wattson"
    if protocol not in ("wattson", "lassi-ee"):
        raise invalid_params(f'unknown protocol {protocol!r}: use "wattson" or "lassi-ee"')
    return protocol


@contextmanager
def _engine_errors(job: Job, names: dict[str, str]) -> Iterator[None]:
    """Turn the engine's exceptions into the protocol's errors."""
    from .protocol import Cancelled, ProgramFailed
    from .run import RunError

    try:
        yield
    except Cancelled as e:
        raise _cancelled(job, e.partial) from e
    except ProgramFailed as e:
        raise _program_failed(e, names) from e
    except RunError as e:  # the command could not start at all
        data = {"kind": "program_failed", "exit_code": None, "timed_out": False, "stdout_tail": "",
                "stderr_tail": ""}
        raise RpcError(PROGRAM_FAILED, str(e), data) from e


def _program_failed(e: Any, names: dict[str, str]) -> RpcError:
    """The engine's ProgramFailed, with the program's name beside its label (A, B, the program)."""
    m = e.measurement
    label = str(getattr(e, "label", "") or "")
    message = str(e)
    name = names.get(label)
    if name and message.startswith(label):
        message = (f"{label} ({name})" if label in ("A", "B") else name) + message[len(label):]
    return RpcError(PROGRAM_FAILED, message, {
        "kind": "program_failed", "label": label, "exit_code": m.exit_code, "timed_out": m.timed_out,
        "duration_s": m.duration_s, "stdout_tail": _tail(m.stdout), "stderr_tail": _tail(m.stderr)})


def _with_warnings(result: dict[str, Any], warnings: list[str], *sandboxes: Any) -> dict[str, Any]:
    """The agent's own warnings and the sandboxes' (e.g. no network isolation here) join the result's."""
    notes = list(warnings)
    for sandbox in sandboxes:
        notes += [f"sandbox: {n}" for n in getattr(sandbox, "warnings", None) or []]
    if notes:
        result["warnings"] = list(result.get("warnings") or []) + notes
    return result


# --- the process ---------------------------------------------------------------------------------

def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wattson agent --stdio", description="the Wattson GPU agent")
    parser.add_argument("--stdio", action="store_true", help="speak JSON-RPC on stdin/stdout (the default)")
    parser.add_argument("--gpu-wait-s", type=float, default=DEFAULT_GPU_WAIT_S,
                        help="how long a job waits for a GPU that another measurement holds")
    return parser.parse_args(argv)


def _private_stdout() -> IO[bytes]:
    """The protocol's stdout, moved off fd 1: anything else that prints (a library, a stray print)
    goes to stderr instead of corrupting the message stream."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb", buffering=0)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main_stdio(argv: list[str] | None = None) -> int:
    args = _parse_args(list(argv or []))
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="wattson-agent: %(message)s")
    out = _private_stdout()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _exit_on_signal)  # unwind through `finally`: cancel jobs, kill processes
    agent = Agent(out, gpu_wait_s=args.gpu_wait_s)
    log.info("ready on %s (pid %d)", agent.host, os.getpid())
    stdin = sys.stdin.buffer
    try:
        while not agent.client_gone.is_set():
            line = stdin.readline()
            if not line:
                log.info("stdin closed: cancelling every job and exiting")
                break
            if not agent.handle_line(line):
                break
    except KeyboardInterrupt:
        log.info("interrupted: cancelling every job and exiting")
    finally:
        agent.stop_all()
        agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main_stdio(sys.argv[1:]))
