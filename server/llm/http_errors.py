"""HTTP failures of an LLM endpoint, worded for the user and marked retryable or not.

Shared by the Anthropic and OpenAI-compatible providers, whose SDKs raise different classes for
the same statuses. Quota and key problems are never retried: waiting does not fix them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import LlmError

_RETRYABLE_STATUS = {408: "request timeout", 409: "conflict", 425: "too early", 429: "rate limited",
                     500: "server error", 502: "bad gateway", 503: "service unavailable",
                     504: "gateway timeout", 529: "overloaded"}

_QUOTA_WORDS = ("insufficient_quota", "credit balance", "billing", "quota", "spend limit", "usage limit")


@dataclass(frozen=True)
class Endpoint:
    """Who we were talking to, for messages: never includes the key."""

    provider: str  # "anthropic" | "openai-compatible"
    model: str
    base_url: str
    key_env: str | None  # the environment variable the key came from, for "set X" advice

    @property
    def what(self) -> str:
        return f"{self.provider} request ({self.model})"


def status_error(endpoint: Endpoint, status: int, api_message: str, *, error_type: str | None = None,
                 error_code: str | None = None, retry_after_s: float | None = None) -> LlmError:
    detail = api_message.strip() or "no detail given"
    tags = " ".join(t for t in (error_type, error_code, detail.lower()) if t).lower()
    other = "or choose another provider in wattson.toml [llm]"
    if status == 402 or any(word in tags for word in _QUOTA_WORDS):
        return LlmError(f"{endpoint.what}: quota or credit exhausted ({status}: {detail}). Add credit or "
                        f"wait for the quota to reset, {other}.")
    if status == 401:
        key_hint = f"check {endpoint.key_env}" if endpoint.key_env else "check the endpoint's key"
        return LlmError(f"{endpoint.what}: the API key was rejected (401: {detail}); {key_hint}, {other}.")
    if status == 403:
        return LlmError(f"{endpoint.what}: permission denied (403: {detail}); check that the key may use "
                        f"model {endpoint.model}, {other}.")
    if status == 404:
        return LlmError(f"{endpoint.what}: not found at {endpoint.base_url} (404: {detail}); set [llm] model "
                        "to a model this endpoint serves, or fix [llm] base_url.")
    if status == 413:
        return LlmError(f"{endpoint.what}: the request is too large for the endpoint (413: {detail}); "
                        "optimize a smaller file or use a model with a larger context.")
    if status in _RETRYABLE_STATUS or status >= 500:
        label = _RETRYABLE_STATUS.get(status, "server error")
        return LlmError(f"{label} ({status}: {detail})", retryable=True, retry_after_s=retry_after_s)
    return LlmError(f"{endpoint.what}: the endpoint rejected the request ({status}: {detail}).")


def timeout_error(endpoint: Endpoint, timeout_s: float) -> LlmError:
    return LlmError(f"no reply within {timeout_s:.0f} s", retryable=True)


def connection_error(endpoint: Endpoint) -> LlmError:
    return LlmError(f"could not reach {endpoint.base_url} (is the server up and the address right?)",
                    retryable=True)
