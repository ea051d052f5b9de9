"""The `command` provider: any executable as the LLM, speaking JSON over stdin/stdout.

For sites with their own client or gateway tool, and for replaying recorded replies. Each request
starts the command afresh and writes one JSON object to its stdin:

    {"system": "...", "messages": [{"role": "user", "content": "..."}], "temperature": 0.2,
     "max_tokens": 8000, "model": "...", "schema": {...}}        # "schema" only for structured answers

It answers on stdout with either plain text (the reply) or one JSON object:

    {"text": "...", "usage": {"input_tokens": 812, "output_tokens": 1530},
     "stop_reason": "end_turn" | "max_tokens" | "refusal", "model": "..."}

and, for structured answers, the JSON answer as "text" or as an object under "json". Exit status 0
is success; 75 (EX_TEMPFAIL) means "try again later" and is retried like an HTTP 429; anything else
fails with the command's stderr. A command that outlives the timeout is killed with its process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .accounting import TokenAccount
from .base import STOP_END, Completion, LlmError, Message, Usage
from .json_schema import parse_json_object
from .retry import LlmCancelled, RetryPolicy, call_with_retries
from .secrets import redact
from .structured import structured_answer

EX_TEMPFAIL = 75
_POLL_S = 0.05
_STDERR_TAIL_CHARS = 2000


class CommandProvider:
    name = "command"
    supports_temperature = True  # passed along; whether it matters is the command's business

    def __init__(self, argv: list[str], *, model: str = "", timeout_s: float = 600.0,
                 policy: RetryPolicy | None = None, account: TokenAccount | None = None,
                 cwd: Path | None = None, cancel: threading.Event | None = None,
                 secrets: list[str | None] | None = None):
        if not argv:
            raise LlmError('[llm] provider = "command" needs [llm] command, e.g. command = "my-llm --json"')
        self.argv = list(argv)
        self.model = model or Path(argv[0]).name
        self.account = account or TokenAccount()
        self.cancel = cancel
        self._timeout_s = timeout_s
        self._policy = policy or RetryPolicy()
        self._cwd = cwd
        self._secrets = list(secrets or [])
        self._what = f"command provider (`{' '.join(self.argv)}`)"

    def __repr__(self) -> str:
        return f"CommandProvider(argv={self.argv!r}, model={self.model!r})"

    def complete(self, system: str, messages: list[Message], *, temperature: float,
                 max_tokens: int) -> Completion:
        reply = self._request(self._payload(system, messages, temperature, max_tokens))
        return Completion(text=reply["text"], usage=reply["usage"], model=reply["model"],
                          stop_reason=reply["stop_reason"])

    def complete_json(self, system: str, messages: list[Message], *, schema: dict, temperature: float,
                      max_tokens: int) -> dict:
        def ask(conversation: list[Message]) -> tuple[dict | None, str, str | None]:
            payload = dict(self._payload(system, conversation, temperature, max_tokens), schema=schema)
            reply = self._request(payload)
            if isinstance(reply["json"], dict):
                return reply["json"], json.dumps(reply["json"]), reply["stop_reason"]
            return parse_json_object(reply["text"]), reply["text"], reply["stop_reason"]

        return structured_answer(ask, messages, schema, what=self._what)

    def _payload(self, system: str, messages: list[Message], temperature: float,
                 max_tokens: int) -> dict[str, Any]:
        return {"system": system, "messages": [m.to_dict() for m in messages], "temperature": temperature,
                "max_tokens": max_tokens, "model": self.model}

    def _request(self, payload: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(payload).encode()
        with self.account.counting_cut_off(self.name, self.model):
            reply = call_with_retries(lambda: self._run_once(data), self._policy, what=self._what,
                                      cancel=self.cancel)
        self.account.record(self.name, reply["model"], reply["usage"])
        return reply

    def _run_once(self, data: bytes) -> dict[str, Any]:
        try:
            process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, cwd=self._cwd, start_new_session=True)
        except FileNotFoundError:
            raise LlmError(f"{self._what}: {self.argv[0]} not found; fix [llm] command in wattson.toml "
                           "(a path or a program on PATH)") from None
        except PermissionError:
            raise LlmError(f"{self._what}: {self.argv[0]} is not executable; chmod +x it or fix "
                           "[llm] command") from None
        deadline = time.monotonic() + self._timeout_s
        stdout = stderr = b""
        pending: bytes | None = data
        while True:
            try:
                stdout, stderr = process.communicate(pending, timeout=_POLL_S)
                break
            except subprocess.TimeoutExpired:
                pending = None  # already handed over; communicate() keeps feeding it
                if self.cancel is not None and self.cancel.is_set():
                    _kill_group(process)
                    raise LlmCancelled(f"{self._what} cancelled", in_flight=True) from None
                if time.monotonic() > deadline:
                    _kill_group(process)
                    raise LlmError(f"no reply within {self._timeout_s:.0f} s", retryable=True) from None
        if process.returncode != 0:
            tail = redact(stderr.decode("utf-8", "replace"), self._secrets).strip()[-_STDERR_TAIL_CHARS:]
            if process.returncode == EX_TEMPFAIL:
                raise LlmError(f"the command asked to retry later (exit {EX_TEMPFAIL}): "
                               f"{tail or 'no detail'}", retryable=True)
            raise LlmError(f"{self._what} exited with status {process.returncode}: "
                           f"{tail or 'no message on stderr'}")
        return self._parse(stdout.decode("utf-8", "replace"))

    def _parse(self, out: str) -> dict[str, Any]:
        reply: dict[str, Any] = {"text": out, "json": None, "model": self.model, "stop_reason": STOP_END,
                                 "usage": Usage(0, 0, reported=False)}
        try:
            parsed = json.loads(out)
        except json.JSONDecodeError:
            return reply  # plain text reply
        if not isinstance(parsed, dict) or not ({"text", "json"} & set(parsed)):
            return reply  # JSON, but not our envelope: the reply is the text itself
        reply["text"] = str(parsed.get("text") or "")
        reply["json"] = parsed.get("json")
        reply["model"] = str(parsed.get("model") or self.model)
        reply["stop_reason"] = parsed.get("stop_reason") or STOP_END
        usage = parsed.get("usage")
        if isinstance(usage, dict):
            try:
                reply["usage"] = Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))
            except (TypeError, ValueError):
                raise LlmError(f"{self._what}: usage must hold integer input_tokens and output_tokens, "
                               f"got {usage!r}") from None
        return reply


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()
