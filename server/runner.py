"""Talks to a Wattson GPU agent: spawned on this machine, or behind any command prefix (ssh, srun).

Locally the agent is `python -m wattson agent --stdio`; remotely it is `PREFIX wattson agent --stdio`,
e.g. `ssh gpu01 wattson agent --stdio`, so the user's own ssh (config, keys, ProxyJump) does the
connecting. One reader thread dispatches responses to waiting calls and `progress` notifications
to their callbacks; any thread may call. docs/agent-protocol.md is the wire format.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import IO, Any

log = logging.getLogger("wattson.runner")

AGENT_ARGS = ["agent", "--stdio"]
LONG_METHODS = frozenset({"build", "profile", "compare", "probe"})  # these run as cancellable jobs
AGENT_DIED = -32050  # client-side codes, outside the agent's own range
CALL_TIMEOUT = -32051
_STDERR_TAIL_LINES = 40
_CLOSE_WAIT_S = 20.0  # the agent cancels its jobs (and kills their processes) before it exits
_CANCEL_WAIT_S = 10.0
API_KEY_SUFFIX = "_API_KEY"  # ANTHROPIC_API_KEY, OPENAI_API_KEY, a lab gateway's own


def without_api_keys(env: Mapping[str, str]) -> dict[str, str]:
    """The agent's environment: everything but API keys. The agent never talks to an LLM, and what
    it does not hold, no program it runs can read."""
    return {k: v for k, v in env.items() if not k.upper().endswith(API_KEY_SUFFIX)}


class AgentError(Exception):
    """A failed call: the agent's JSON-RPC error, or the agent itself gone. `data["kind"]` says which."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "")) if isinstance(self.data, dict) else ""


class _Pending:
    def __init__(self, method: str, job_id: str | None, on_progress: Callable[[dict], None] | None):
        self.method = method
        self.job_id = job_id
        self.on_progress = on_progress
        self.done = threading.Event()
        self.result: Any = None
        self.error: AgentError | None = None


class AgentClient:
    """A running agent. Thread-safe; use as a context manager or call close()."""

    def __init__(self, proc: subprocess.Popen, argv: list[str], prefix: list[str] | None):
        self.proc = proc
        self.argv = argv
        self.prefix = prefix
        self._write_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._next_id = 1
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        self._noise: collections.deque[str] = collections.deque(maxlen=10)
        self._dead: AgentError | None = None
        self._closed = False
        assert proc.stdout is not None and proc.stderr is not None
        self._stderr_thread = threading.Thread(target=self._read_stderr, args=(proc.stderr,),
                                               name="agent-stderr", daemon=True)
        self._stderr_thread.start()
        self._reader = threading.Thread(target=self._read_stdout, args=(proc.stdout,), name="agent-reader",
                                        daemon=True)
        self._reader.start()

    # --- starting ------------------------------------------------------------------------------
    @classmethod
    def start(cls, prefix: list[str] | str | None = None, *, env: dict[str, str] | None = None,
              agent_command: list[str] | None = None) -> AgentClient:
        """Spawn an agent. prefix None: on this machine; else e.g. ["ssh", "gpu01"] or "ssh gpu01".

        agent_command replaces `wattson agent --stdio` after a prefix (a venv's absolute path, say)."""
        if isinstance(prefix, str):
            prefix = shlex.split(prefix)
        prefix = list(prefix) if prefix else None
        if prefix:
            argv = prefix + (agent_command or ["wattson", *AGENT_ARGS])
        else:
            argv = agent_command or [sys.executable, "-m", "wattson", *AGENT_ARGS]
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=without_api_keys(os.environ if env is None else env),
                # Its own session: the terminal's ^C reaches only us, and we cancel the jobs cleanly.
                start_new_session=True)
        except OSError as e:
            what = shlex.join(prefix) if prefix else shlex.join(argv)
            next_step = (f"check the remote command `{what}` (e.g. [remote] command in wattson.toml); "
                         f"is `{argv[0]}` installed?" if prefix else "reinstall wattson: pip install -e .")
            raise AgentError(AGENT_DIED, f"cannot start the Wattson agent ({argv[0]}: {e.strerror or e}); "
                             f"{next_step}", {"kind": "agent_died", "argv": argv}) from e
        return cls(proc, argv, prefix)

    # --- calls ---------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self._dead is None and not self._closed and self.proc.poll() is None

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             on_progress: Callable[[dict], None] | None = None, timeout_s: float | None = None) -> Any:
        """Send a request and wait for its result; raises AgentError for an error reply or a dead agent.

        Long methods get a job_id when params have none, so ^C (KeyboardInterrupt) can cancel them."""
        params = dict(params or {})
        job_id: str | None = None
        if method in LONG_METHODS:
            job_id = str(params.setdefault("job_id", uuid.uuid4().hex[:12]))
        pending = _Pending(method, job_id, on_progress)
        request_id = self._register(pending)
        try:
            self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            self._wait(pending, method, timeout_s)
        except KeyboardInterrupt:
            log.info("interrupted: cancelling the agent's jobs")
            self._cancel_pending()
            self.close()
            raise
        finally:
            with self._pending_lock:
                self._pending.pop(request_id, None)
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _wait(self, pending: _Pending, method: str, timeout_s: float | None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        # Short waits, so that a KeyboardInterrupt in the calling thread is seen promptly.
        while not pending.done.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                if pending.job_id is not None:
                    self.cancel(pending.job_id)
                where = f"; {self._where()} may be overloaded or unreachable" if self.prefix else ""
                raise AgentError(CALL_TIMEOUT, f"the agent did not answer `{method}` within {timeout_s:.0f} s"
                                 f"{where}", {"kind": "timeout", "method": method})

    def cancel(self, job_id: str) -> None:
        """Ask the agent to cancel a job; the job's own call then fails with kind "cancelled"."""
        if not self.alive():
            return
        try:
            self.call("cancel", {"job_id": job_id}, timeout_s=_CANCEL_WAIT_S)
        except AgentError as e:
            log.info("cancel of %s: %s", job_id, e.message)

    def _cancel_pending(self) -> None:
        with self._pending_lock:
            jobs = [p.job_id for p in self._pending.values() if p.job_id is not None and not p.done.is_set()]
        for job_id in jobs:
            self.cancel(job_id)

    def _register(self, pending: _Pending) -> int:
        with self._pending_lock:
            if self._dead is not None:
                raise self._dead
            if self._closed:
                raise AgentError(AGENT_DIED, "the agent connection is closed; start a new one",
                                 {"kind": "agent_died"})
            request_id = self._next_id
            self._next_id += 1
            self._pending[request_id] = pending
            return request_id

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            with self._write_lock:
                stdin.write(data)
                stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            # The reader thread sees the agent's end and fails every pending call with the reason.
            self._reader.join(timeout=_CLOSE_WAIT_S)
            raise self._dead or AgentError(AGENT_DIED, "the agent stopped reading requests",
                                           {"kind": "agent_died"}) from None

    # --- reading -------------------------------------------------------------------------------
    def _read_stdout(self, stream: IO[bytes]) -> None:
        try:
            for line in stream:
                self._dispatch(line)
        except (OSError, ValueError):
            pass
        self._agent_ended()

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            message = None
        if not isinstance(message, dict):
            # A login banner or a shell rc file printing on the remote side: not ours, keep for errors.
            text = line.decode("utf-8", errors="replace").rstrip()
            if text:
                self._noise.append(text)
                log.info("agent stdout (not JSON-RPC): %s", text)
            return
        if "id" not in message and message.get("method") == "progress":
            self._progress(message.get("params") or {})
            return
        request_id = message.get("id")
        with self._pending_lock:
            pending = self._pending.get(request_id) if isinstance(request_id, int) else None
        if pending is None:
            if "error" in message:
                log.warning("agent error without a matching request: %s", message["error"])
            return
        if "error" in message:
            err = message.get("error") or {}
            pending.error = AgentError(int(err.get("code", 0)), str(err.get("message", "agent error")),
                                       err.get("data"))
        else:
            pending.result = message.get("result")
        pending.done.set()

    def _progress(self, note: dict[str, Any]) -> None:
        job_id = note.get("job_id")
        with self._pending_lock:
            targets = [p for p in self._pending.values() if p.job_id == job_id and p.on_progress]
        for pending in targets:
            try:
                assert pending.on_progress is not None
                pending.on_progress(note)
            except Exception:  # noqa: BLE001 - a broken progress display must not stop the reader
                log.exception("progress callback failed")

    def _read_stderr(self, stream: IO[bytes]) -> None:
        try:
            for raw in stream:
                line = raw.decode("utf-8", errors="replace").rstrip()
                self._stderr_tail.append(line)
                log.debug("agent: %s", line)
        except (OSError, ValueError):
            pass

    def _agent_ended(self) -> None:
        try:
            exit_code = self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            exit_code = None
        self._stderr_thread.join(timeout=2.0)
        error = AgentError(AGENT_DIED, self._death_message(exit_code), {
            "kind": "agent_died", "exit_code": exit_code, "stderr_tail": self.stderr_tail(),
            "stdout_noise": "\n".join(self._noise)})
        with self._pending_lock:
            self._dead = error
            waiting = list(self._pending.values())
        for pending in waiting:
            if not pending.done.is_set():
                pending.error = error
                pending.done.set()

    def _where(self) -> str:
        return f"`{shlex.join(self.prefix)}`" if self.prefix else "this machine"

    def _death_message(self, exit_code: int | None) -> str:
        if self._closed:
            return "the agent connection was closed"
        how = f"exit code {exit_code}" if exit_code is not None and exit_code >= 0 else (
            f"signal {-exit_code}" if exit_code is not None else "still running, but its output closed")
        tail = self.stderr_tail(8)
        said = f"; it said:\n{tail}" if tail else ""
        if self.prefix:
            check = shlex.join([*self.prefix, "wattson", "doctor"])
            next_step = (f"is wattson installed on the remote host and on its PATH? try: {check}"
                         if exit_code == 127 else f"check the connection and the remote host: {check}")
        else:
            next_step = "reinstall wattson (pip install -e .) and run: wattson doctor"
        return f"the Wattson agent on {self._where()} stopped ({how}){said}\n{next_step}"

    def stderr_tail(self, lines: int = _STDERR_TAIL_LINES) -> str:
        return "\n".join(list(self._stderr_tail)[-lines:])

    # --- closing -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close stdin (the agent then cancels its jobs and exits), wait, and kill it if it lingers."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=_CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            log.warning("the agent did not exit in %.0f s: stopping it", _CLOSE_WAIT_S)
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
        self._reader.join(timeout=5.0)

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
