"""One exclusive lock per GPU, shared by every agent on the host, so two measurements never overlap.

The lock is an fcntl.flock on /tmp/wattson-locks/gpu-<uuid>.lock (WATTSON_LOCK_DIR overrides the
folder). flock belongs to an open file, not to a process, so it also keeps apart two jobs of one
agent, and the kernel drops it when its holder dies: a crashed agent never leaves a stale lock.
The holder writes its pid into the file so that a waiter can say who it is waiting for.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

LOCK_DIR_ENV = "WATTSON_LOCK_DIR"
DEFAULT_LOCK_DIR = Path("/tmp/wattson-locks")
_POLL_S = 0.1


class GpuBusy(Exception):
    """The GPU stayed locked by another measurement for longer than the caller would wait."""

    def __init__(self, message: str, holder_pid: int | None):
        super().__init__(message)
        self.holder_pid = holder_pid


class LockWaitCancelled(Exception):
    """The job was cancelled while it waited for the GPU."""


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)


def lock_key(device_uuid: str, *, fake_spec: str | None = None) -> str:
    """What names a GPU's lock: its uuid. A fake GPU exists once per spec file, so agents sharing a
    spec share its lock, and unrelated test runs on one host do not wait for each other."""
    if fake_spec:
        return f"{device_uuid}-{hashlib.sha256(os.path.abspath(fake_spec).encode()).hexdigest()[:12]}"
    return device_uuid


def lock_path_for(device_uuid: str, directory: Path | None = None) -> Path:
    """The lock file of one GPU; the uuid is reduced to characters safe in a file name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", device_uuid) or "unknown"
    return (directory or lock_dir()) / f"gpu-{safe}.lock"


def _ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GpuBusy(f"cannot create the GPU lock folder {directory}: {e}; "
                      f"set {LOCK_DIR_ENV} to a writable folder", None) from e
    try:
        # Sticky and world-writable like /tmp: every user's agent must be able to lock the same GPU.
        if directory.stat().st_uid == os.getuid():
            directory.chmod(0o1777)
    except OSError:
        pass


def _open_lock_file(path: Path) -> tuple[int, bool]:
    """(fd, writable). Another user's lock file may be read-only to us; flock works on it anyway."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY), False
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o666)  # the umask must not lock other users out of the pid line
    except OSError:
        pass
    return fd, True


def read_holder_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class GpuLock:
    """Exclusive use of one GPU for measurement. Use `acquire` then `release`, or `with`."""

    def __init__(self, device_uuid: str, *, directory: Path | None = None, label: str = "GPU"):
        self.directory = directory or lock_dir()
        self.path = lock_path_for(device_uuid, self.directory)
        self.label = label
        self._fd: int | None = None
        self._writable = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        _ensure_dir(self.directory)
        fd, writable = _open_lock_file(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd, self._writable = fd, writable
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return True

    def acquire(self, timeout_s: float, *, on_wait: Callable[[int | None], None] | None = None,
                cancel: threading.Event | None = None) -> None:
        """Take the lock, waiting up to timeout_s. on_wait(holder_pid) is called once per new holder.

        Raises GpuBusy on timeout and LockWaitCancelled when `cancel` is set while waiting."""
        deadline = time.monotonic() + timeout_s
        announced: object = object()  # never equal to a pid, so the first wait is always announced
        while not self.try_acquire():
            holder = read_holder_pid(self.path)
            if on_wait is not None and holder != announced:
                on_wait(holder)
                announced = holder
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                who = f" (pid {holder})" if holder else ""
                raise GpuBusy(f"{self.label} is busy: another measurement{who} held it for longer than "
                              f"{timeout_s:.0f} s; try again later or raise the wait limit", holder)
            if cancel is not None:
                if cancel.wait(min(_POLL_S, remaining_s)):
                    raise LockWaitCancelled(f"cancelled while waiting for {self.label}")
            else:
                time.sleep(min(_POLL_S, remaining_s))

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._writable:
                os.ftruncate(fd, 0)  # no stale pid for the next waiter to report
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> GpuLock:
        if not self.try_acquire():
            raise GpuBusy(f"{self.label} is busy", read_holder_pid(self.path))
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
