"""compute-sanitizer initcheck on the GPU host: does a program read GPU memory that nothing wrote?

A candidate that drops a cudaMemset or a copy can still print the right numbers when the allocator
hands back memory that holds an earlier buffer's results. initcheck, a tool of the CUDA toolkit's
compute-sanitizer, reports every read of device global memory that no kernel, memcpy or memset
initialised, and every cudaMemcpy that copies such memory. It slows a program down a lot, needs the
GPU, and is optional: the agent runs it only when asked.

How it is run. The flags are documented in NVIDIA's Compute Sanitizer guide, "Command Line Options"
(https://docs.nvidia.com/compute-sanitizer/ComputeSanitizer/index.html#command-line-options, the
CUDA 13 releases), and were checked against `compute-sanitizer --help` of version 2026.4:

- `--tool initcheck`: the uninitialised-memory checker (the default tool is memcheck).
- `--target-processes all`: "the root application and all its child processes". The run command is
  a shell command, so the root process is /bin/sh and the CUDA program is its child.
- `--check-exit-code no`: exit codes are the oracle's business; left on, a program that exits with a
  non-zero code adds a "Target application returned an error" record to the errors.
- `--error-exitcode N`: "the exit code Compute Sanitizer will return if the original application
  succeeded but the tool detected that errors were present".
- `--print-limit M`: stop printing after M errors; the ERROR SUMMARY still counts every error.
- `--show-backtrace device`: device frames name the kernel; host frames only lengthen the log.
- `--log-file PATH`: "the file Compute Sanitizer will write all of its text output to. By default,
  Compute Sanitizer will print all output to stdout". The log goes to a private temporary directory,
  so the tool's report never mixes with what the program prints, and a program that prints lines
  looking like the tool's ("========= ERROR SUMMARY: 0 errors") cannot pass for it. `%` in the path
  is escaped (`%%`): the option expands `%p` and `%q{VAR}`.

The tool's front end reaches the program through an abstract Unix socket ("@nv_target_process_<pid>",
seen with strace, version 2026.4), so the sandbox's network namespace does not get in the way.

A result without an ERROR SUMMARY line is never read as "no errors": the tool crashed, was killed at
the time limit, or could not attach to the program, and `tool_failed` says which.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .kernels.build import toolkit_roots
from .run import RunMeasurement, Sandbox, measured_run

SANITIZER_NAME = "compute-sanitizer"
# Returned by compute-sanitizer when the program succeeded but errors were found. Below 126, where
# shells start their own meanings, and unlike the 1 and 2 that programs commonly use.
DEFAULT_ERROR_EXITCODE = 97
# Enough printed records to see every kernel that reads uninitialised memory in a typical program;
# the summary counts the rest.
DEFAULT_PRINT_LIMIT = 50
DEFAULT_PREFIX = "========="  # compute-sanitizer's `--prefix` default
_LOG_CAP_BYTES = 4_000_000
_MAX_DETAILS = 8  # lines kept per record besides the ones parsed into fields
_TAIL_CHARS = 600

_INSTALL_HINT = (
    "install the CUDA toolkit's compute-sanitizer (it ships with the toolkit as "
    "<toolkit>/compute-sanitizer/compute-sanitizer; NVIDIA's apt repository has it as cuda-sanitizer-<version>, "
    "PyPI as the wheel nvidia-cuda-sanitizer-api), then put it on PATH or set CUDA_HOME to the toolkit; "
    "or leave the optional initcheck off"
)

UNINITIALIZED_KINDS = ("uninitialized-read", "uninitialized-api-access")


class SanitizerUnavailable(RuntimeError):
    """compute-sanitizer cannot be found on this host; the message says what to install or set."""


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _beside_toolkit_root(root: Path) -> list[Path]:
    return [
        root / "bin" / SANITIZER_NAME,  # the toolkit's bin/ (a link into compute-sanitizer/), /usr/bin
        root / SANITIZER_NAME / SANITIZER_NAME,  # the toolkit's own folder, and the cu13 wheel's
        root / "lib" / "nvidia-cuda-toolkit" / SANITIZER_NAME / SANITIZER_NAME,  # Debian's, under /usr
    ]


def locate_compute_sanitizer(*, search_path: str | None = None, roots: Iterable[Path] | None = None) -> Path:
    """compute-sanitizer on PATH, else beside nvcc, else in a CUDA toolkit root.

    search_path replaces $PATH and roots replaces the usual toolkit roots (CUDA_HOME, nvcc's toolkit,
    /usr/local/cuda*, /opt/cuda, /usr, the CUDA wheels); both are for callers that know better."""
    found = shutil.which(SANITIZER_NAME, path=search_path)
    if found:
        return Path(found)
    searched = ["PATH"]
    nvcc = shutil.which("nvcc", path=search_path)
    if nvcc:
        beside = Path(nvcc).resolve().parent / SANITIZER_NAME
        if _is_executable(beside):
            return beside
        searched.append(str(beside.parent))
    for root in toolkit_roots() if roots is None else roots:
        for candidate in _beside_toolkit_root(Path(root)):
            if _is_executable(candidate):
                return candidate
        searched.append(str(root))
    raise SanitizerUnavailable(
        f"compute-sanitizer was not found (searched {', '.join(searched)}), so the initcheck for reads of "
        f"uninitialised GPU memory cannot run: {_INSTALL_HINT}"
    )


def initcheck_command(
    run_command: str,
    sanitizer: Path | str,
    *,
    log_file: Path | str | None = None,
    error_exitcode: int = DEFAULT_ERROR_EXITCODE,
    print_limit: int = DEFAULT_PRINT_LIMIT,
) -> str:
    """A shell command that runs `run_command` under initcheck, checking every CUDA process it starts.

    Without log_file the report goes to stdout, between the program's own lines; parse_initcheck
    then keeps only the lines that carry the tool's prefix."""
    argv = [
        str(sanitizer),
        "--tool", "initcheck",
        "--target-processes", "all",
        "--check-exit-code", "no",
        "--error-exitcode", str(error_exitcode),
        "--print-limit", str(print_limit),
        "--show-backtrace", "device",
    ]  # fmt: skip
    if log_file is not None:
        argv += ["--log-file", str(log_file).replace("%", "%%")]
    argv += ["--", "/bin/sh", "-c", run_command]
    return shlex.join(argv)


@dataclass
class SanitizerError:
    """One record of the report: its first line, and what the lines below it say."""

    kind: str  # "uninitialized-read", "uninitialized-api-access", "invalid-access", "api-error", ... "other"
    message: str  # the record's first line, e.g. "Uninitialized __global__ memory read of size 4 bytes"
    kernel: str | None = None  # the kernel that ran it: the outermost device frame, else `function`
    function: str | None = None  # where the access happened: the kernel, or a device function in it
    source: str | None = None  # "file.cu:42" when the program was built with -lineinfo or -G
    thread: str | None = None  # "(31,0,0)"
    block: str | None = None  # "(1,0,0)"
    address: str | None = None  # "0x7f3c7ec000fc"
    details: list[str] = field(default_factory=list)  # other lines of the record, host frames left out

    @property
    def is_uninitialized(self) -> bool:
        return self.kind in UNINITIALIZED_KINDS

    def describe(self) -> str:
        """One line for a person or an LLM: what, in which kernel, where, by which thread."""
        parts = [self.message]
        if self.kernel:
            parts.append(f"in kernel {self.kernel}")
        if self.function and self.function != self.kernel:
            parts.append(f"at {self.function}")
        if self.source:
            parts.append(f"({self.source})")
        if self.thread and self.block:
            parts.append(f"by thread {self.thread} in block {self.block}")
        elif self.details:
            parts.append(f"({self.details[0]})")
        return " ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SanitizerError:
        return cls(
            kind=str(d.get("kind", "other")),
            message=str(d.get("message", "")),
            kernel=d.get("kernel"),
            function=d.get("function"),
            source=d.get("source"),
            thread=d.get("thread"),
            block=d.get("block"),
            address=d.get("address"),
            details=[str(x) for x in d.get("details") or []],
        )


@dataclass
class InitcheckResult:
    error_count: int | None  # the ERROR SUMMARY's count; None when no summary was printed
    errors: list[SanitizerError]  # the records printed (at most the print limit)
    summary_seen: bool
    tool_failed: str | None  # why the check did not complete, in words; None when it did
    errors_not_printed: int = 0  # counted by the tool beyond the print limit
    exit_code: int | None = None  # of compute-sanitizer (the program's own when the program failed)
    duration_s: float | None = None

    @property
    def completed(self) -> bool:
        return self.summary_seen and self.tool_failed is None

    @property
    def uninitialized_reads(self) -> list[SanitizerError]:
        return [e for e in self.errors if e.is_uninitialized]

    def to_dict(self) -> dict:
        return {
            "error_count": self.error_count,
            "errors": [e.to_dict() for e in self.errors],
            "summary_seen": self.summary_seen,
            "tool_failed": self.tool_failed,
            "errors_not_printed": self.errors_not_printed,
            "exit_code": self.exit_code,
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_dict(cls, d: dict) -> InitcheckResult:
        count = d.get("error_count")
        duration = d.get("duration_s")
        return cls(
            error_count=None if count is None else int(count),
            errors=[SanitizerError.from_dict(e) for e in d.get("errors") or []],
            summary_seen=bool(d.get("summary_seen")),
            tool_failed=d.get("tool_failed"),
            errors_not_printed=int(d.get("errors_not_printed") or 0),
            exit_code=d.get("exit_code"),
            duration_s=None if duration is None else float(duration),
        )


# --- parsing the report -------------------------------------------------------------------------

_RECORD_KINDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Uninitialized __\w+__ memory (read|access)\b"), "uninitialized-read"),
    (re.compile(r"^Host API uninitialized memory access\b"), "uninitialized-api-access"),
    (re.compile(r"^(Invalid|Potential invalid) __\w+__ (read|write|atomic)"), "invalid-access"),
    (re.compile(r"^Program hit .* on CUDA API call to "), "api-error"),
    (re.compile(r"^Target application returned an error"), "exit-code"),
    (re.compile(r"^Unused __\w+__ memory"), "unused-memory"),
    (re.compile(r"^Leaked \d"), "leak"),
]
# Lines saying the tool could not do its work: the check is incomplete, whatever else it printed.
_TOOL_FAILURE_RE = re.compile(
    r"^(Error:|Internal Sanitizer Error|Connection Error|Target application terminated before first instrumented)"
)
_SUMMARY_RE = re.compile(r"^ERROR SUMMARY:\s*(?P<n>\d[\d,]*)\s+errors?\s*$")
_NOT_PRINTED_RE = re.compile(r"^(?:ERROR SUMMARY:\s*)?(?P<n>\d[\d,]*)\s+errors? were (?:not printed|skipped)")
_OTHER_SUMMARY_RE = re.compile(r"^(LEAK|RACECHECK) SUMMARY:")
_BANNER = "COMPUTE-SANITIZER"
_THREAD_RE = re.compile(r"^by thread (?P<thread>\([^)]*\)) in block (?P<block>\([^)]*\))")
_ADDRESS_RE = re.compile(r"^Address (?P<address>0x[0-9a-fA-F]+)")
_HOST_LINE_RE = re.compile(r"^(Saved host backtrace|Host Frame)")
_DEVICE_FRAME_RE = re.compile(r"^Device Frame:\s*(?P<where>.+)$")
# Lines that only ever continue a record (the report's sample outputs in the docs lose indentation).
_DETAIL_RE = re.compile(
    r"^(at |by thread |Address |Device Frame|Saved host backtrace|Host Frame|in |and is |"
    r"Uninitialized access to |Not written |\.\.\.)"
)
_OFFSET_RE = re.compile(r"\s*(?:[+:]0x[0-9a-fA-F]+|\[0x[0-9a-fA-F]+\])$")
_FILE_LINE_RE = re.compile(r"^\S+:\d+$")
_AT_OFFSET_RE = re.compile(r"^(?P<function>.+?)[+:]0x[0-9a-fA-F]+ in (?P<source>.+:\d+)$")
_OLD_LOCATION_RE = re.compile(r"^(?P<source>\S+?:\d+):(?P<function>.+)$")  # file.cu:30:kernel(int *)
_PC_PREFIX_RE = re.compile(r"^0x[0-9a-fA-F]+ in (?P<rest>.+)$")  # "0x88 in kernel(float *)"


def parse_location(text: str) -> tuple[str | None, str | None]:
    """(function, "file:line") from what follows "at " or "Device Frame:" in a record.

    Formats seen in NVIDIA's documentation over the years: `kernel(int *)+0x70 in file.cu:41`,
    `kernel():0x160 in file.cu:6`, `kernel(int *, int)+0x60` (no line information),
    `0x88 in kernel(float *)` and `0x100 in file.cu:30:kernel(int *)` (older releases)."""
    text = _OFFSET_RE.sub("", text.strip())
    pc = _PC_PREFIX_RE.match(text)
    if pc:
        text = pc["rest"]
        old = _OLD_LOCATION_RE.match(text)
        if old:
            return old["function"].strip() or None, old["source"]
    split = _AT_OFFSET_RE.match(text)
    if split:  # the offset ends the function's name, whatever the path after it holds
        return split["function"].strip() or None, split["source"].strip()
    source = None
    cut = text.rfind(" in ")
    if cut >= 0 and _FILE_LINE_RE.match(text[cut + 4 :].strip()):
        source = text[cut + 4 :].strip()
        text = text[:cut]
    function = _OFFSET_RE.sub("", text).strip()
    return function or None, source


def _count(text: str) -> int:
    return int(text.replace(",", ""))


class _Record:
    def __init__(self, kind: str, message: str):
        self.error = SanitizerError(kind=kind, message=message)
        self.device_frames: list[str] = []

    def add(self, line: str) -> None:
        e = self.error
        if line.startswith("at ") and e.function is None and e.source is None:
            e.function, e.source = parse_location(line[3:])
        elif m := _THREAD_RE.match(line):
            e.thread, e.block = m["thread"], m["block"]
        elif m := _ADDRESS_RE.match(line):
            e.address = m["address"]
            rest = line[m.end() :].strip()
            if rest:
                e.details.append(rest)
        elif m := _DEVICE_FRAME_RE.match(line):
            function, source = parse_location(m["where"])
            if function:
                self.device_frames.append(function)
            if source and e.source is None:
                e.source = source
        elif _HOST_LINE_RE.match(line) or line.startswith("in "):
            return  # host backtrace: where the launch was made, not where the read happened
        elif len(e.details) < _MAX_DETAILS:
            e.details.append(line)

    def finish(self) -> SanitizerError:
        e = self.error
        e.kernel = self.device_frames[-1] if self.device_frames else e.function
        return e


def parse_initcheck(text: str, *, prefix: str = DEFAULT_PREFIX) -> InitcheckResult:
    """Read a compute-sanitizer report (its log file, or output that mixes it with a program's).

    Only lines that start with `prefix` are the tool's; a program's own output is ignored. A report
    without an ERROR SUMMARY line gives error_count None and a tool_failed that says so."""
    errors: list[SanitizerError] = []
    failures: list[str] = []
    summary_total = 0
    summary_seen = False
    not_printed = 0
    current: _Record | None = None
    in_tool_message = False

    def close() -> None:
        nonlocal current
        if current is not None:
            errors.append(current.finish())
            current = None

    for raw in text.splitlines():
        if not raw.startswith(prefix):
            continue
        body = raw[len(prefix) :].rstrip()
        line = body.strip()
        indented = len(body) - len(body.lstrip()) > 1
        if not line:
            close()
            in_tool_message = False
            continue
        if line == _BANNER:
            continue
        if m := _SUMMARY_RE.match(line):
            close()
            summary_seen = True
            summary_total += _count(m["n"])
            continue
        if m := _NOT_PRINTED_RE.match(line):
            not_printed += _count(m["n"])
            continue
        if _OTHER_SUMMARY_RE.match(line):
            close()
            continue
        if _TOOL_FAILURE_RE.match(line):
            close()
            failures.append(re.sub(r"^Error:\s*", "", line))
            in_tool_message = True
            continue
        kind = next((k for pattern, k in _RECORD_KINDS if pattern.match(line)), None)
        if kind is not None:
            close()
            current = _Record(kind, line)
            in_tool_message = False
            continue
        if current is not None and (indented or _DETAIL_RE.match(line)):
            current.add(line)
            continue
        if in_tool_message:
            continue  # the tool's hint under its own error line
        close()
        current = _Record("other", line)
    close()

    tool_failed = "; ".join(failures) if failures else None
    if not summary_seen and tool_failed is None:
        tool_failed = (
            "compute-sanitizer printed no ERROR SUMMARY: it was killed, crashed, or its report is "
            "incomplete, so the program's reads were not all checked"
        )
    return InitcheckResult(
        error_count=summary_total if summary_seen else None,
        errors=errors,
        summary_seen=summary_seen,
        tool_failed=tool_failed,
        errors_not_printed=not_printed,
    )


# --- running it ---------------------------------------------------------------------------------


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _TAIL_CHARS else "..." + text[-_TAIL_CHARS:]


def result_from_run(
    run: RunMeasurement, log_text: str | None, *, error_exitcode: int = DEFAULT_ERROR_EXITCODE
) -> InitcheckResult:
    """The initcheck result of one run under compute-sanitizer, from the run and the tool's log."""
    result = parse_initcheck(log_text or "")
    result.exit_code = run.exit_code
    result.duration_s = run.duration_s
    has_report = log_text is not None and any(line.startswith(DEFAULT_PREFIX) for line in log_text.splitlines())
    if run.cancelled:
        result.tool_failed = "the initcheck run was cancelled"
    elif run.timed_out:
        result.tool_failed = (
            f"the program under compute-sanitizer initcheck ran past its time limit ({run.duration_s:.0f} s) "
            "and was killed; initcheck slows programs down many times over: give it a longer time limit"
        )
    elif not has_report:
        output = _tail(run.stderr + "\n" + run.stdout)
        result.tool_failed = f"compute-sanitizer wrote no report ({run.failure_text() or 'exited with code 0'})" + (
            f": {output}" if output else ""
        )
    elif not result.summary_seen and result.tool_failed:
        if run.exit_code == error_exitcode:
            result.tool_failed += f" (its exit code {error_exitcode} says it found errors)"
        # The tool's injected library reports some failures (an unsupported GPU) on the program's stderr.
        stderr = _tail(run.stderr)
        if stderr:
            result.tool_failed += f"; the program's stderr ends with: {stderr}"
    return result


def _read_log(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(_LOG_CAP_BYTES)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace")


def run_initcheck(
    command: str,
    *,
    cwd: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
    sandbox: Sandbox | None = None,
    cancel: threading.Event | None = None,
    sanitizer: Path | None = None,
    print_limit: int = DEFAULT_PRINT_LIMIT,
) -> InitcheckResult:
    """Run the shell command `command` in `cwd` under compute-sanitizer initcheck and read its report.

    The run is measured_run's (time only): process group, time limit, cancel and sandbox behave as
    for any run. initcheck slows a program down many times over, so give a generous timeout_s.
    Raises SanitizerUnavailable when no compute-sanitizer is found (sanitizer=None), and RunError
    when the command cannot start at all."""
    tool = sanitizer if sanitizer is not None else locate_compute_sanitizer()
    with tempfile.TemporaryDirectory(prefix="wattson-initcheck-") as tmp:
        log_file = Path(tmp) / "initcheck.log"
        wrapped = initcheck_command(command, tool, log_file=log_file, print_limit=print_limit)
        run = measured_run(wrapped, cwd=cwd, device=None, timeout_s=timeout_s, env=env, sandbox=sandbox, cancel=cancel)
        log_text = _read_log(log_file)
    return result_from_run(run, log_text)
