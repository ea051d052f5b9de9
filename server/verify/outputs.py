"""What one run of a program left behind, as the oracle sees it: exit code, stdout, stderr, files.

The agent fills these from a sandboxed run. Bytes from the program are decoded here, once, so that
binary or non-UTF-8 output is recognisable later (replacement characters) instead of crashing.
"""

from __future__ import annotations

import base64
import signal
from dataclasses import dataclass, field

# Bytes of stdout/stderr kept per run. The runner caps what it reads; this is the oracle's own cap
# so that a candidate printing gigabytes cannot make the comparison itself run out of memory.
MAX_STREAM_BYTES = 64 * 2**20


@dataclass
class RunOutput:
    exit_code: int | None  # None: killed before it exited; negative: killed by that signal
    stdout: str
    stderr: str
    timed_out: bool = False
    output_files: dict[str, bytes] = field(default_factory=dict)  # declared outputs, by relative path
    stdout_truncated: bool = False  # the runner or from_bytes cut stdout at its cap

    @classmethod
    def from_bytes(
        cls,
        exit_code: int | None,
        stdout: bytes,
        stderr: bytes,
        *,
        timed_out: bool = False,
        output_files: dict[str, bytes] | None = None,
        max_stream_bytes: int = MAX_STREAM_BYTES,
    ) -> RunOutput:
        """Decodes as UTF-8, marking undecodable bytes with U+FFFD rather than failing."""
        truncated = len(stdout) > max_stream_bytes
        return cls(
            exit_code=exit_code,
            stdout=stdout[:max_stream_bytes].decode("utf-8", errors="replace"),
            stderr=stderr[:max_stream_bytes].decode("utf-8", errors="replace"),
            timed_out=timed_out,
            output_files=dict(output_files or {}),
            stdout_truncated=truncated,
        )

    def to_dict(self) -> dict:
        return {
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "timed_out": self.timed_out,
            "output_files": {k: base64.b64encode(v).decode("ascii") for k, v in self.output_files.items()},
            "stdout_truncated": self.stdout_truncated,
        }

    @classmethod
    def from_dict(cls, d: dict) -> RunOutput:
        return cls(
            exit_code=d.get("exit_code"),
            stdout=d.get("stdout", ""),
            stderr=d.get("stderr", ""),
            timed_out=bool(d.get("timed_out", False)),
            output_files={k: base64.b64decode(v) for k, v in (d.get("output_files") or {}).items()},
            stdout_truncated=bool(d.get("stdout_truncated", False)),
        )


def describe_exit(exit_code: int | None, timed_out: bool = False) -> str:
    """'exit code 1', 'killed by signal 11 (SIGSEGV)', ... for messages."""
    if timed_out:
        return "ran past its time limit and was killed"
    if exit_code is None:
        return "was killed before it exited"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = "unknown signal"
        return f"was killed by signal {-exit_code} ({name})"
    if 128 < exit_code < 128 + 65:  # a shell (or the sandbox's PID-1 shell) reporting a signal death
        try:
            name = signal.Signals(exit_code - 128).name
            return f"exited with code {exit_code} (128 + {exit_code - 128}: killed by {name})"
        except ValueError:
            pass
    return f"exited with code {exit_code}"


def looks_binary(text: str) -> bool:
    """True for output that is not readable text: NUL bytes, undecodable bytes, or mostly control chars."""
    if not text:
        return False
    if "\x00" in text or "\ufffd" in text:
        return True
    if any("\udc80" <= ch <= "\udcff" for ch in text[:65536]):  # surrogateescape-decoded bytes
        return True
    sample = text[:65536]
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f\v\b")
    return control > len(sample) // 10


def tail_lines(text: str, count: int = 5, max_chars: int = 600) -> str:
    """The last few lines, for messages about crashes."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    tail = "\n".join(lines[-count:])
    return tail[-max_chars:]
