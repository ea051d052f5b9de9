"""The Anthropic provider (the default): the official SDK and its Messages API.

Long replies are streamed (`messages.stream`): the timeout then bounds the silence between chunks,
not the whole reply, so a slow 20k-token candidate does not die at the HTTP timeout. Structured
answers use a forced tool call with thinking switched off (forced tool use and thinking do not mix);
models that refuse to turn thinking off get the API's JSON-schema output format instead.

The installed SDK (2.x, API version 2026-10-21) takes no sampling temperature: the API rejects it,
so `temperature` is accepted for the interface's sake and not sent (`supports_temperature` False).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import typing
from typing import Any

import anthropic

from .accounting import TokenAccount
from .base import (
    STOP_CONTEXT_FULL,
    STOP_END,
    STOP_MAX_TOKENS,
    STOP_REFUSAL,
    STOP_SEQUENCE,
    STOP_TOOL_USE,
    Completion,
    LlmError,
    Message,
    Usage,
)
from .http_errors import Endpoint, connection_error, status_error, timeout_error
from .json_schema import parse_json_object
from .retry import RetryPolicy, call_with_retries, retry_after_s
from .secrets import describe_key, redact
from .structured import structured_answer

log = logging.getLogger(__name__)

KEY_ENV = "ANTHROPIC_API_KEY"
# Used only when the installed SDK lists no Sonnet at all.
FALLBACK_MODEL = "claude-sonnet-4-5"
# Replies allowed more tokens than this are streamed (see the module docstring).
STREAM_ABOVE_TOKENS = 4096
ANSWER_TOOL = "answer"

_STOP_REASONS = {"end_turn": STOP_END, "max_tokens": STOP_MAX_TOKENS, "refusal": STOP_REFUSAL,
                 "tool_use": STOP_TOOL_USE, "stop_sequence": STOP_SEQUENCE,
                 "model_context_window_exceeded": STOP_CONTEXT_FULL}
# An `error` event inside a 200 stream carries only its type: map it back to the status it stands for.
_STREAM_ERROR_STATUS = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500,
                        "timeout_error": 504, "authentication_error": 401, "permission_error": 403,
                        "invalid_request_error": 400, "not_found_error": 404, "billing_error": 402}

# "claude-sonnet-5-5", "claude-sonnet-4-5-20250929"; and the older "claude-3-7-sonnet-latest" style.
_SONNET_NEW = re.compile(r"^claude-sonnet-(\d+)(?:-(\d{1,2}))?(?:-(\d{8}))?$")
_SONNET_OLD = re.compile(r"^claude-(\d+)(?:-(\d{1,2}))?-sonnet-(?:latest|(\d{8}))$")


def sdk_model_names() -> list[str]:
    """Every model name the installed SDK's `Model` type lists."""
    names: list[str] = []

    def walk(tp: object) -> None:
        for arg in typing.get_args(tp):
            if isinstance(arg, str):
                names.append(arg)
            else:
                walk(arg)

    walk(getattr(anthropic.types, "Model", None))
    return names


def newest_sonnet(names: list[str] | None = None) -> str:
    """The highest claude-sonnet version among `names` (default: the SDK's list).

    Undated aliases rank above dated snapshots of the same version: the alias follows the newest."""
    best: tuple[tuple[int, int, int], str] | None = None
    for name in sdk_model_names() if names is None else names:
        match = _SONNET_NEW.match(name) or _SONNET_OLD.match(name)
        if not match:
            continue
        major, minor, date = match.groups()
        key = (int(major), int(minor or 0), int(date) if date else 99_999_999)
        if best is None or key > best[0]:
            best = (key, name)
    return best[1] if best else FALLBACK_MODEL


class AnthropicProvider:
    name = "anthropic"
    supports_temperature = False

    def __init__(self, *, api_key: str, model: str = "", base_url: str = "", timeout_s: float = 600.0,
                 policy: RetryPolicy | None = None, account: TokenAccount | None = None,
                 stream: str = "auto", effort: str = "", key_env: str = KEY_ENV,
                 cancel: threading.Event | None = None):
        self.model = model or newest_sonnet()
        self.account = account or TokenAccount()
        self.cancel = cancel
        self._key = api_key
        self._timeout_s = timeout_s
        self._policy = policy or RetryPolicy()
        self._stream = stream
        self._effort = effort
        self._json_mode = "tool"  # switches to "json_schema" once a model rejects the forced tool
        self._endpoint = Endpoint(self.name, self.model, base_url or "https://api.anthropic.com", key_env)
        # The SDK retries on its own by default; ours are the only ones, so behaviour is uniform.
        self._client = anthropic.Anthropic(api_key=api_key, base_url=base_url or None, timeout=timeout_s,
                                           max_retries=0)

    def __repr__(self) -> str:
        return (f"AnthropicProvider(model={self.model!r}, base_url={self._endpoint.base_url!r}, "
                f"key={describe_key(self._key)})")

    # -- the interface --
    def complete(self, system: str, messages: list[Message], *, temperature: float,
                 max_tokens: int) -> Completion:
        del temperature  # not accepted by this API version: see the module docstring
        reply = self._request(self._params(system, messages, max_tokens))
        return Completion(text=_text_of(reply), usage=_usage_of(reply), model=reply.model or self.model,
                          stop_reason=_STOP_REASONS.get(str(reply.stop_reason), reply.stop_reason))

    def complete_json(self, system: str, messages: list[Message], *, schema: dict, temperature: float,
                      max_tokens: int) -> dict:
        del temperature

        def ask(conversation: list[Message]) -> tuple[dict | None, str, str | None]:
            reply = self._structured_request(system, conversation, schema, max_tokens)
            stop = _STOP_REASONS.get(str(reply.stop_reason), reply.stop_reason)
            for block in reply.content:
                if block.type == "tool_use" and isinstance(block.input, dict):
                    return block.input, json.dumps(block.input), stop
            text = _text_of(reply)
            return parse_json_object(text), text, stop

        return structured_answer(ask, messages, schema, what=self._endpoint.what)

    # -- requests --
    def _params(self, system: str, messages: list[Message], max_tokens: int) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens,
                                  "messages": [m.to_dict() for m in messages]}
        if system:
            params["system"] = system
        if self._effort:
            params["output_config"] = {"effort": self._effort}
        return params

    def _structured_request(self, system: str, messages: list[Message], schema: dict,
                            max_tokens: int) -> Any:
        params = self._params(system, messages, max_tokens)
        if self._json_mode == "tool":
            tool_params = dict(params, tools=[{"name": ANSWER_TOOL, "input_schema": schema,
                                               "description": "Give your answer through this tool."}],
                               tool_choice={"type": "tool", "name": ANSWER_TOOL},
                               thinking={"type": "disabled"})
            try:
                return self._request(tool_params)
            except LlmError as err:
                if not _rejects_forced_tool(str(err)):
                    raise
                log.info("%s: forced tool use rejected (%s); using the JSON output format instead",
                         self._endpoint.what, err)
                self._json_mode = "json_schema"
        output_format = {"type": "json_schema", "schema": schema}
        output_config = dict(params.get("output_config", {}), format=output_format)
        return self._request(dict(params, output_config=output_config))

    def _request(self, params: dict[str, Any]) -> Any:
        streaming = self._stream == "always" or (
            self._stream == "auto" and params["max_tokens"] > STREAM_ABOVE_TOKENS)

        def attempt() -> Any:
            try:
                if streaming:
                    with self._client.messages.stream(**params) as stream:
                        return stream.get_final_message()
                return self._client.messages.create(**params)
            except anthropic.APIStatusError as err:
                raise self._status_error(err) from None
            except anthropic.APITimeoutError:
                raise timeout_error(self._endpoint, self._timeout_s) from None
            except anthropic.APIConnectionError:
                raise connection_error(self._endpoint) from None
            except anthropic.AnthropicError as err:  # a reply the SDK could not make sense of
                detail = redact(str(err), [self._key])
                raise LlmError(f"{self._endpoint.what}: unexpected reply ({detail})") from None

        with self.account.counting_cut_off(self.name, self.model):
            reply = call_with_retries(attempt, self._policy, what=self._endpoint.what, cancel=self.cancel)
        self.account.record(self.name, reply.model or self.model, _usage_of(reply))
        return reply

    def _status_error(self, err: anthropic.APIStatusError) -> LlmError:
        body = err.body if isinstance(err.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        error_type = str(error.get("type") or "")
        status = err.status_code
        if status < 400:  # an error event inside a streamed 200 reply
            status = _STREAM_ERROR_STATUS.get(error_type, 500)
        message = redact(str(error.get("message") or err.message), [self._key])
        headers = dict(err.response.headers) if err.response is not None else {}
        return status_error(self._endpoint, status, message, error_type=error_type,
                            retry_after_s=retry_after_s(headers))


def _usage_of(reply: Any) -> Usage:
    usage = reply.usage
    cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return Usage(input_tokens=(usage.input_tokens or 0) + cached, output_tokens=usage.output_tokens or 0)


def _text_of(reply: Any) -> str:
    """The reply's text blocks joined; thinking and tool blocks are not part of the answer."""
    return "".join(block.text for block in reply.content if block.type == "text")


def _rejects_forced_tool(message: str) -> bool:
    lowered = message.lower()
    return "rejected the request" in lowered and ("thinking" in lowered or "tool_choice" in lowered)
