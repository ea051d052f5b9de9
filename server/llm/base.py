"""The one interface every LLM provider implements, and the values that cross it.

Providers turn (system prompt, conversation) into a `Completion`, or into a schema-checked dict for
structured answers (the judge's verdict). Whatever goes wrong reaches callers as an `LlmError`
whose message says what to do next; no SDK exception and no API key ever crosses this line.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .accounting import TokenAccount

Role = Literal["user", "assistant"]

# Normalised stop reasons; each provider maps its own vocabulary onto these.
STOP_END = "end_turn"
STOP_MAX_TOKENS = "max_tokens"  # the reply was cut off: ask to continue (prompts/continue.md)
STOP_REFUSAL = "refusal"
STOP_TOOL_USE = "tool_use"
STOP_SEQUENCE = "stop_sequence"
STOP_CONTEXT_FULL = "context_window_exceeded"


@dataclass
class Message:
    role: Role
    content: str

    def to_dict(self) -> dict:
        return {"role": self.role, "content": self.content}


@dataclass
class Usage:
    input_tokens: int
    output_tokens: int
    reported: bool = True  # False when the endpoint gave no counts (some local servers when streaming)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Completion:
    text: str
    usage: Usage
    model: str
    stop_reason: str | None

    @property
    def truncated(self) -> bool:
        return self.stop_reason == STOP_MAX_TOKENS

    @property
    def refused(self) -> bool:
        return self.stop_reason == STOP_REFUSAL

    def to_dict(self) -> dict:
        return {"text": self.text, "usage": self.usage.to_dict(), "model": self.model,
                "stop_reason": self.stop_reason}


class LlmError(Exception):
    """A failure worded for the user: what happened and what to do next. Never carries a key.

    `retryable` is for the retry loop only; by the time a caller sees an LlmError, retries are spent.
    """

    def __init__(self, message: str, *, retryable: bool = False, retry_after_s: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s

    def __repr__(self) -> str:
        return f"LlmError({str(self)!r})"


class LlmRefusal(LlmError):
    """The model declined to answer; retrying the same request will not help."""


class LlmTruncated(LlmError):
    """A structured answer was cut off at max_tokens, so it cannot be parsed."""


@runtime_checkable
class LlmProvider(Protocol):
    name: str  # "anthropic" | "openai-compatible" | "command"
    model: str
    # False where the endpoint takes no sampling temperature (the Anthropic API since 2026-10-21):
    # the refactor loop's rising-temperature schedule then has no effect, and its report says so.
    supports_temperature: bool
    account: TokenAccount  # every call's tokens are recorded here (the job's account)
    cancel: threading.Event | None  # set it to stop retry waits and running commands

    def complete(self, system: str, messages: list[Message], *, temperature: float,
                 max_tokens: int) -> Completion: ...

    def complete_json(self, system: str, messages: list[Message], *, schema: dict, temperature: float,
                      max_tokens: int) -> dict: ...
