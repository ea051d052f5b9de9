"""Job directories on the GPU host: a ProgramSpec's files written into a fresh folder, then built.

A ProgramSpec (docs/internals.md) arrives as JSON. Its file names are relative paths inside the job
folder: absolute paths and `..` are refused, so a message can never write outside that folder.
The build runs with /bin/sh in its own process group, is killed as a group on timeout or cancel,
and sees WATTSON_ARCH (e.g. sm_90) so a Makefile can say `make ARCH=$WATTSON_ARCH`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .device import GpuDevice
from .run import kill_process_group

ARCH_ENV = "WATTSON_ARCH"
VISIBLE_DEVICES_ENV = "CUDA_VISIBLE_DEVICES"
FAKE_ARCH = "sm_90"  # the fake plays an H100
MAX_SPEC_BYTES = 256 * 2**20  # everything a spec may carry, decoded
BUILD_OUTPUT_CAP_BYTES = 1_000_000
_KILL_GRACE_S = 2.0
_POLL_S = 0.05


class SpecError(ValueError):
    """A ProgramSpec the agent cannot use; the message names the field and what to change."""


@dataclass
class ProgramSpec:
    name: str
    run: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    build: str | None = None
    workdir: str = "."
    build_timeout_s: float = 300.0
    run_timeout_s: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    source_file: str | None = None
    # A folder that already exists on the GPU host: the program runs there and no files travel.
    host_dir: str | None = None
    # False for code the user has not reviewed (LLM candidates): it runs inside profilers/sandbox.py.
    trusted: bool = True
    # Files the program writes, relative to the run folder (workdir); their bytes come back with
    # each trial for the oracle (profilers/run_files.py).
    output_files: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any) -> ProgramSpec:
        if not isinstance(d, dict):
            raise SpecError("the program must be a JSON object (a ProgramSpec)")
        run = d.get("run")
        if not isinstance(run, str) or not run.strip():
            raise SpecError("the program has no `run` command: say how to start it")
        build = d.get("build")
        if build is not None and not isinstance(build, str):
            raise SpecError("`build` must be a shell command or null")
        files = d.get("files") or {}
        if not isinstance(files, dict):
            raise SpecError("`files` must map relative paths to {\"text\": ...} or {\"base64\": ...}")
        for name, content in files.items():
            safe_relative_path(name, what="file")
            if not isinstance(content, dict) or not ({"text", "base64"} & content.keys()):
                raise SpecError(f"file {name!r} must be {{\"text\": ...}} or {{\"base64\": ...}}")
        env = d.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in env.items()):
            raise SpecError("`env` must map variable names to string values")
        workdir = d.get("workdir") or "."
        safe_relative_path(workdir, what="workdir", allow_dot=True)
        output_files = d.get("output_files") or []
        if not isinstance(output_files, list):
            raise SpecError("`output_files` must be a list of paths relative to the run folder")
        for name in output_files:
            safe_relative_path(name, what="output file")
        host_dir = d.get("host_dir")
        if host_dir is not None:
            if not isinstance(host_dir, str) or not os.path.isabs(host_dir):
                raise SpecError("`host_dir` must be an absolute folder on the GPU host")
            if files:
                raise SpecError("a program with `host_dir` runs where it is: it cannot also carry `files`")
        return cls(
            name=str(d.get("name") or "program"),
            run=run,
            files=files,
            build=build if build and build.strip() else None,
            workdir=workdir,
            build_timeout_s=_positive(d, "build_timeout_s", 300.0),
            run_timeout_s=_positive(d, "run_timeout_s", 60.0),
            env=dict(env),
            source_file=d.get("source_file"),
            host_dir=host_dir,
            trusted=bool(d.get("trusted", True)),
            output_files=list(dict.fromkeys(output_files)),
        )


def _positive(d: dict, key: str, default: float) -> float:
    value = d.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SpecError(f"`{key}` must be a positive number of seconds, not {value!r}")
    return float(value)


def safe_relative_path(name: Any, *, what: str, allow_dot: bool = False) -> PurePosixPath:
    """A path that stays inside the job folder, or SpecError saying why not."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise SpecError(f"{what} path {name!r} is empty or not text")
    if "\\" in name:
        raise SpecError(f"{what} path {name!r} contains a backslash: use / between folders")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise SpecError(f"{what} path {name!r} is absolute: paths must be relative to the project root")
    if ".." in path.parts:
        raise SpecError(f"{what} path {name!r} contains '..': paths must stay inside the project root")
    if not allow_dot and path.parts in ((), (".",)):
        raise SpecError(f"{what} path {name!r} names no file")
    return path


def _file_bytes(name: str, content: dict[str, Any]) -> bytes:
    if "base64" in content:
        try:
            return base64.b64decode(content["base64"], validate=True)
        except (binascii.Error, TypeError, ValueError) as e:
            raise SpecError(f"file {name!r}: its base64 content does not decode ({e})") from e
    text = content["text"]
    if not isinstance(text, str):
        raise SpecError(f"file {name!r}: `text` must be a string")
    return text.encode("utf-8")


class JobDir:
    """The folder a job builds and runs in. Fresh (and removed by cleanup) unless spec.host_dir."""

    def __init__(self, spec: ProgramSpec, *, base_dir: Path | None = None):
        self.spec = spec
        self.root: Path | None = None
        if spec.host_dir is not None:
            self.run_dir = Path(spec.host_dir)
            if not self.run_dir.is_dir():
                raise SpecError(f"the folder {spec.host_dir} does not exist on this GPU host; "
                                "send the program's files instead of a host folder")
            return
        safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", spec.name)[:40] or "program"
        self.root = Path(tempfile.mkdtemp(prefix=f"wattson-{safe_name}-", dir=base_dir))
        try:
            self._write_files()
            self.run_dir = self.root / spec.workdir
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except BaseException:
            self.cleanup()
            raise

    def _write_files(self) -> None:
        assert self.root is not None
        total = 0
        for name, content in self.spec.files.items():
            rel = safe_relative_path(name, what="file")
            data = _file_bytes(name, content)
            total += len(data)
            if total > MAX_SPEC_BYTES:
                raise SpecError(f"the program's files exceed {MAX_SPEC_BYTES // 2**20} MiB: "
                                "leave data sets on the GPU host and read them from there")
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if content.get("executable"):
                target.chmod(0o755)

    def cleanup(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> JobDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def gpu_arch(device: GpuDevice | None) -> str | None:
    """The device's CUDA architecture as nvcc spells it (sm_90), or None when unknown or not NVIDIA."""
    if device is None:
        return None
    if device.info.vendor == "fake":
        return FAKE_ARCH
    if device.info.vendor != "nvidia" or not device.info.uuid:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()  # reference counted by NVML: safe while nvidia.py holds its own init
        try:
            handle = pynvml.nvmlDeviceGetHandleByUUID(device.info.uuid)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - any NVML failure means "unknown", which callers handle
        return None
    return f"sm_{major}{minor}"


def job_env(spec: ProgramSpec, arch: str | None, device: GpuDevice | None = None) -> dict[str, str]:
    """What the program's build and run add to the environment (the sandbox filters the rest).

    With a device, the run is pinned to it: the program must use the GPU whose sensors are read.
    CUDA_VISIBLE_DEVICES takes the UUID because NVML and CUDA may number GPUs differently.
    The spec's own env wins over both."""
    extra: dict[str, str] = {}
    if arch:
        extra[ARCH_ENV] = arch
    if device is not None and device.info.vendor == "nvidia" and device.info.uuid:
        extra[VISIBLE_DEVICES_ENV] = device.info.uuid
    extra.update(spec.env)
    return extra


@dataclass
class BuildResult:
    ok: bool
    output: str
    duration_s: float
    exit_code: int | None  # None when killed
    timed_out: bool = False
    cancelled: bool = False
    arch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "output": self.output, "duration_s": self.duration_s,
                "exit_code": self.exit_code, "timed_out": self.timed_out, "cancelled": self.cancelled,
                "arch": self.arch}


class _CappedOutput:
    """Keeps the head and the tail of a stream: compiler errors live at both ends."""

    def __init__(self, cap_bytes: int):
        self.half = cap_bytes // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > self.half:
            self.dropped += len(self.tail) - self.half
            del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        gap = f"\n[... {self.dropped} bytes of output left out ...]\n".encode() if self.dropped else b""
        return bytes(self.head + gap + self.tail).decode("utf-8", errors="replace")


def run_build(spec: ProgramSpec, job: JobDir, *, arch: str | None, cancel: threading.Event | None = None,
              sandbox: Any = None) -> BuildResult:
    """Run spec.build in the job folder. A failed build is a result (ok=False), not an exception."""
    if spec.build is None:
        return BuildResult(ok=True, output="", duration_s=0.0, exit_code=0, arch=arch)
    extra = job_env(spec, arch)
    argv = ["/bin/sh", "-c", spec.build]
    if sandbox is not None:
        argv, env, preexec = sandbox.argv(argv), sandbox.env(extra), sandbox.preexec
    else:
        env, preexec = {**os.environ, **extra}, None
    start_s = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=job.run_dir, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=preexec)
    except OSError as e:
        return BuildResult(ok=False, output=f"cannot start the build: {e}", duration_s=0.0, exit_code=None,
                           arch=arch)
    output = _CappedOutput(BUILD_OUTPUT_CAP_BYTES)
    assert proc.stdout is not None
    reader = threading.Thread(target=_drain, args=(proc.stdout, output), daemon=True)
    reader.start()
    exited = threading.Event()
    threading.Thread(target=lambda: (proc.wait(), exited.set()), daemon=True).start()
    deadline = start_s + spec.build_timeout_s
    timed_out = cancelled = False
    while not exited.wait(_POLL_S):
        cancelled = cancel is not None and cancel.is_set()
        timed_out = not cancelled and time.monotonic() >= deadline
        if timed_out or cancelled:
            kill_process_group(proc.pid, exited, grace_s=_KILL_GRACE_S)
            break
    exit_code = proc.wait()
    # Whatever the build left behind in its group (a stray compiler server, a background job) goes too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    reader.join(timeout=5.0)
    text = output.text()
    if timed_out:
        text += (f"\nwattson: the build ran longer than {spec.build_timeout_s:.0f} s and was stopped; "
                 "raise build_timeout_s in wattson.toml if it needs longer\n")
    if cancelled:
        text += "\nwattson: the build was cancelled\n"
    killed = timed_out or cancelled
    return BuildResult(ok=not killed and exit_code == 0, output=text, duration_s=time.monotonic() - start_s,
                       exit_code=None if killed else exit_code, timed_out=timed_out, cancelled=cancelled,
                       arch=arch)


def _drain(stream: Any, sink: _CappedOutput) -> None:
    with stream:
        for chunk in iter(lambda: stream.read1(65536), b""):
            sink.feed(chunk)
