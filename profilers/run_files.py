"""What a run leaves in its folder: the files it created, and the output files its program declares.

The agent takes a snapshot of the run folder once, after the build and before the program's first
run; after each run, `created_files` lists the regular files that were not in the snapshot (a cache
left for the next run shows here), and `output_files` holds the bytes of every file the ProgramSpec
declares in `output_files`, so the oracle can compare them with the original's. HOME and TMPDIR of a
sandboxed run point into this folder, so what a program leaves there counts too.

A run folder is written by untrusted code: nothing here follows a link out of it, and reads are
capped per file and per job (OutputBudget), with each file left out named with its size and why.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_CREATED_NAMES = 200  # names listed per run; the rest are counted
MAX_WALK_ENTRIES = 100_000  # a folder with more entries is listed only this far
OUTPUT_FILE_CAP_BYTES = 32 * 2**20
OUTPUT_JOB_CAP_BYTES = 256 * 2**20
_READ_CHUNK = 1 << 20


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


@dataclass
class SkippedFile:
    """A declared output file that was not returned: its size (None when unknown) and why."""

    size_bytes: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"size_bytes": self.size_bytes, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Any) -> SkippedFile:
        d = d if isinstance(d, dict) else {}
        size = d.get("size_bytes")
        return cls(size_bytes=int(size) if isinstance(size, int | float) else None,
                   reason=str(d.get("reason") or "not returned by the agent"))


@dataclass
class RunFiles:
    """What one run left behind, as the trial record carries it."""

    created_files: list[str] = field(default_factory=list)  # sorted; at most MAX_CREATED_NAMES
    created_files_more: int = 0  # created files beyond the list (a lower bound when the walk was cut)
    output_files: dict[str, bytes] = field(default_factory=dict)  # declared path -> its bytes
    output_files_skipped: dict[str, SkippedFile] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The trial record's keys; file bytes travel as base64."""
        return {
            "created_files": list(self.created_files),
            "created_files_more": self.created_files_more,
            "output_files": {name: base64.b64encode(data).decode("ascii")
                             for name, data in self.output_files.items()},
            "output_files_skipped": {name: s.to_dict() for name, s in self.output_files_skipped.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunFiles | None:
        """The files of a trial record; None for records without them (older agents, lassi-ee)."""
        if not any(key in d for key in ("created_files", "output_files", "output_files_skipped")):
            return None
        return cls(
            created_files=[str(n) for n in d.get("created_files") or []],
            created_files_more=int(d.get("created_files_more") or 0),
            output_files=decode_output_files(d.get("output_files")),
            output_files_skipped={str(name): SkippedFile.from_dict(s)
                                  for name, s in (d.get("output_files_skipped") or {}).items()},
        )


def decode_output_files(encoded: Any) -> dict[str, bytes]:
    """{path: base64} from a trial record -> {path: bytes}; entries that do not decode are dropped."""
    files: dict[str, bytes] = {}
    for name, text in (encoded or {}).items():
        try:
            files[str(name)] = base64.b64decode(text, validate=True)
        except (binascii.Error, TypeError, ValueError):
            continue
    return files


# --- created files ---------------------------------------------------------------------------------

def _walk_files(root: Path, max_entries: int) -> tuple[set[str], bool]:
    """Relative paths of the regular files under root, links not followed; True when cut short."""
    found: set[str] = set()
    seen = 0
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_entries:
                        return found, True
                    rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(rel)
                        elif entry.is_file(follow_symlinks=False):
                            found.add(rel)
                    except OSError:
                        continue
        except OSError:
            continue  # a folder the program made unreadable: what it holds stays unlisted
    return found, False


def snapshot(run_dir: Path, *, max_entries: int = MAX_WALK_ENTRIES) -> frozenset[str]:
    """The regular files in run_dir now (relative paths with /), to tell later which ones a run made."""
    files, _ = _walk_files(Path(run_dir), max_entries)
    return frozenset(files)


# The CUDA driver's JIT cache: the sandbox sets HOME to the run folder, so a PTX-only build leaves
# hashed names here (seen on the H100: .nv/ComputeCache/8/4/349d...); they differ between original and
# candidate by design and say nothing about the program.
DRIVER_CACHE_PREFIX = ".nv/ComputeCache/"


def created_since(run_dir: Path, before: frozenset[str], *, max_names: int = MAX_CREATED_NAMES,
                  max_entries: int = MAX_WALK_ENTRIES) -> tuple[list[str], int]:
    """(the first max_names files in run_dir that are not in `before`, sorted; how many more there are).
    The CUDA driver's JIT cache is not the program's doing and is left out."""
    files, _ = _walk_files(Path(run_dir), max_entries)
    new = sorted(f for f in files - before if not f.startswith(DRIVER_CACHE_PREFIX))
    return new[:max_names], max(0, len(new) - max_names)


# --- output files ----------------------------------------------------------------------------------

class OutputBudget:
    """The bytes of output files one job may still return, over all its runs (shared by A and B)."""

    def __init__(self, cap_bytes: int = OUTPUT_JOB_CAP_BYTES):
        self.cap_bytes = cap_bytes
        self.used_bytes = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used_bytes + n > self.cap_bytes:
                return False
            self.used_bytes += n
            return True


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def read_output_file(run_dir: Path, name: str, budget: OutputBudget, *,
                     file_cap_bytes: int = OUTPUT_FILE_CAP_BYTES) -> bytes | SkippedFile | None:
    """The bytes of run_dir/name; a SkippedFile saying why not; None when the file does not exist."""
    root = os.path.realpath(run_dir)
    target = os.path.realpath(os.path.join(root, name))
    if not _inside(target, root):
        return SkippedFile(None, "it is a link that leads outside the run folder")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not block the agent
    except FileNotFoundError:
        return None
    except OSError as e:
        return SkippedFile(None, f"it could not be opened ({e.strerror or e})")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return SkippedFile(None, "it is not a regular file")
    with os.fdopen(fd, "rb") as f:
        size = info.st_size
        if size > file_cap_bytes:
            return SkippedFile(size, f"it is larger than the {_mib(file_cap_bytes)} the agent returns per "
                                     "output file")
        if not budget.take(size):
            return SkippedFile(size, f"the job's earlier runs used up the {_mib(budget.cap_bytes)} of output "
                                     "files the agent returns per job")
        chunks = []
        left = size
        try:
            while left > 0:  # read no more than was budgeted, even if the file grew meanwhile
                chunk = f.read(min(left, _READ_CHUNK))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        except OSError as e:
            return SkippedFile(size, f"it could not be read ({e.strerror or e})")
        return b"".join(chunks)


def read_output_files(run_dir: Path, names: Iterable[str], budget: OutputBudget, *,
                      file_cap_bytes: int = OUTPUT_FILE_CAP_BYTES) -> tuple[dict[str, bytes], dict[str, SkippedFile]]:
    """(files read, files left out with why); files that do not exist are in neither."""
    files: dict[str, bytes] = {}
    skipped: dict[str, SkippedFile] = {}
    for name in names:
        got = read_output_file(run_dir, name, budget, file_cap_bytes=file_cap_bytes)
        if isinstance(got, bytes):
            files[name] = got
        elif isinstance(got, SkippedFile):
            skipped[name] = got
    return files, skipped


# --- per program -----------------------------------------------------------------------------------

class RunFilesRecorder:
    """The files of one program's runs in one job: snapshot before its first run, a record after each."""

    def __init__(self, run_dir: Path, output_names: Iterable[str], budget: OutputBudget):
        self.run_dir = Path(run_dir)
        self.output_names = list(output_names)
        self.budget = budget
        self._before: frozenset[str] | None = None

    def before_run(self) -> None:
        if self._before is None:
            self._before = snapshot(self.run_dir)

    def after_run(self, *, read_outputs: bool = True) -> RunFiles:
        """What the run left; read_outputs=False (a warm-up) skips the declared outputs and the cap."""
        before = self._before if self._before is not None else frozenset()
        created, more = created_since(self.run_dir, before)
        outputs, skipped = (read_output_files(self.run_dir, self.output_names, self.budget) if read_outputs
                            else ({}, {}))
        return RunFiles(created_files=created, created_files_more=more, output_files=outputs,
                        output_files_skipped=skipped)


def without_file_bytes(result: dict[str, Any]) -> dict[str, Any]:
    """A profile's or comparison's result dict with the output files' bytes replaced by their sizes,
    for storing: the history and job folders need what was compared, not megabytes of base64."""

    def trial(t: dict[str, Any]) -> dict[str, Any]:
        encoded = t.get("output_files")
        if not encoded:
            return t
        sizes = {name: len(data) for name, data in decode_output_files(encoded).items()}
        return {**t, "output_files": {}, "output_file_sizes": sizes}

    out = dict(result)
    if isinstance(out.get("trials"), list):
        out["trials"] = [trial(t) if isinstance(t, dict) else t for t in out["trials"]]
    for side in ("a", "b"):
        if isinstance(out.get(side), dict):
            out[side] = without_file_bytes(out[side])
    return out
