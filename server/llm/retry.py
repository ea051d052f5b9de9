"""Retrying LLM requests: exponential backoff with jitter, Retry-After honoured, capped.

Providers turn each failure into an `LlmError` marked `retryable` (429, 5xx, 529 overloaded,
timeouts, dropped connections) or not (bad key, quota exhausted, bad request); `call_with_retries`
waits and tries again only for the first kind, and gives up with one sentence naming the last reason.
The SDKs' own retries are switched off so every provider behaves the same way and tests can see it.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .base import LlmError

log = logging.getLogger(__name__)

T = TypeVar("T")


class LlmCancelled(LlmError):
    """The job was cancelled while waiting for the LLM.

    in_flight: a request was under way and was left unanswered (the provider may bill it anyway)."""

    def __init__(self, message: str, *, in_flight: bool = False):
        super().__init__(message)
        self.in_flight = in_flight


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # first try included
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0  # one wait never exceeds this; a longer Retry-After means give up
    max_total_wait_s: float = 300.0

    def backoff_s(self, failures: int, rng: random.Random) -> float:
        """Wait after the n-th consecutive failure: half fixed, half random, so that k parallel
        candidates hitting the same rate limit do not come back in lockstep."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (failures - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, `retry-after` as seconds or HTTP date."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        return max(0.0, float(lowered["retry-after-ms"]) / 1000)
    except (KeyError, TypeError, ValueError):
        pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def call_with_retries(attempt: Callable[[], T], policy: RetryPolicy, *, what: str,
                      cancel: threading.Event | None = None,
                      sleep: Callable[[float], None] | None = None,
                      rng: random.Random | None = None) -> T:
    """Run `attempt` until it returns, retrying retryable LlmErrors as the policy allows.

    `what` names the request in messages ("anthropic request (claude-sonnet-5-5)").
    """
    rng = rng or random.Random()
    started = time.monotonic()
    waited_s = 0.0
    failures = 0
    while True:
        if cancel is not None and cancel.is_set():
            raise LlmCancelled(f"{what} cancelled")
        try:
            return attempt() if cancel is None else _interruptible(attempt, cancel, what)
        except LlmError as err:
            if not err.retryable:
                raise
            failures += 1
            reason = str(err)
            if failures >= policy.max_attempts:
                raise _gave_up(what, failures, time.monotonic() - started, reason) from None
            if err.retry_after_s is not None and err.retry_after_s > policy.max_delay_s:
                raise LlmError(
                    f"{what}: {reason}; the server asks to wait {err.retry_after_s:.0f} s, longer than "
                    f"the {policy.max_delay_s:.0f} s Wattson waits. Try again later, or choose another "
                    "provider in wattson.toml [llm]."
                ) from None
            delay = err.retry_after_s if err.retry_after_s is not None else policy.backoff_s(failures, rng)
            if waited_s + delay > policy.max_total_wait_s:
                raise _gave_up(what, failures, time.monotonic() - started, reason) from None
            log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", what, reason, delay,
                        failures + 1, policy.max_attempts)
            waited_s += delay
            if sleep is not None:
                sleep(delay)
            elif cancel is not None:
                if cancel.wait(delay):
                    raise LlmCancelled(f"{what} cancelled") from None
            else:
                time.sleep(delay)


def _interruptible(attempt: Callable[[], T], cancel: threading.Event, what: str) -> T:
    """Run `attempt` on a helper thread so a cancel ends the wait at once.

    The SDKs block in their HTTP call and have no way to abort it from another thread; the request is
    left to finish on its own and its reply is discarded; the account counts it as cut off."""
    done = threading.Event()
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = attempt()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, name="llm-request", daemon=True).start()
    while not done.wait(0.05):
        if cancel.is_set():
            raise LlmCancelled(f"{what} cancelled", in_flight=True)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _gave_up(what: str, attempts: int, elapsed_s: float, reason: str) -> LlmError:
    return LlmError(
        f"{what} failed after {attempts} attempts in {elapsed_s:.0f} s; last: {reason}. "
        "Try again later, raise [llm] max_attempts, or choose another provider in wattson.toml [llm]."
    )
