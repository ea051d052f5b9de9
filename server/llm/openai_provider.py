"""The OpenAI-compatible provider: Chat Completions at any base URL (vLLM, Ollama, a lab's gateway).

HPC centres often may not send code off site, so this is how Wattson runs against a model served
on the cluster. The key is optional (`OPENAI_API_KEY` when the gateway wants one). Replies stream
by default: local models can be slow, and streaming keeps the timeout about silence, not length.

Structured answers: `response_format` json_schema first; servers that reject it (HTTP 400/422) are
tried with a forced function call, then with the schema in the prompt. The mode that worked is
kept for the rest of the job. Every answer is checked against the schema either way.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

import openai

from .accounting import TokenAccount
from .base import (
    STOP_END,
    STOP_MAX_TOKENS,
    STOP_REFUSAL,
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

KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
ANSWER_FUNCTION = "answer"
STRUCTURED_CHAIN = ("json_schema", "tools", "prompt")

_FINISH_REASONS = {"stop": STOP_END, "length": STOP_MAX_TOKENS, "content_filter": STOP_REFUSAL,
                   "tool_calls": STOP_TOOL_USE, "function_call": STOP_TOOL_USE}


class OpenAiCompatibleProvider:
    name = "openai-compatible"
    supports_temperature = True

    def __init__(self, *, base_url: str = "", model: str = "", api_key: str | None = None,
                 timeout_s: float = 600.0, policy: RetryPolicy | None = None,
                 account: TokenAccount | None = None, stream: str = "auto", structured_output: str = "auto",
                 key_env: str = KEY_ENV, cancel: threading.Event | None = None):
        base_url = base_url or os.environ.get(BASE_URL_ENV, "")
        if not base_url:
            raise LlmError('[llm] provider = "openai-compatible" needs [llm] base_url, e.g. '
                           '"http://localhost:8000/v1" (vLLM) or "http://localhost:11434/v1" (Ollama)')
        self.model = model  # "" until resolved: the endpoint's only model is used
        self.account = account or TokenAccount()
        self.cancel = cancel
        self._key = api_key
        self._key_env = key_env
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._policy = policy or RetryPolicy()
        self._stream = stream != "never"
        self._modes = list(STRUCTURED_CHAIN) if structured_output == "auto" else [structured_output]
        self._modes_lock = threading.Lock()
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout_s,
                                     max_retries=0)

    def __repr__(self) -> str:
        return (f"OpenAiCompatibleProvider(model={self.model!r}, base_url={self._base_url!r}, "
                f"key={describe_key(self._key)})")

    @property
    def _endpoint(self) -> Endpoint:
        return Endpoint(self.name, self.model or "model not chosen yet", self._base_url,
                        self._key_env if self._key else None)

    # -- the interface --
    def complete(self, system: str, messages: list[Message], *, temperature: float,
                 max_tokens: int) -> Completion:
        reply = self._request(self._params(system, messages, temperature, max_tokens))
        if reply["refusal"]:
            return Completion(text=reply["text"] or reply["refusal"], usage=reply["usage"],
                              model=reply["model"], stop_reason=STOP_REFUSAL)
        return Completion(text=reply["text"], usage=reply["usage"], model=reply["model"],
                          stop_reason=reply["stop_reason"])

    def complete_json(self, system: str, messages: list[Message], *, schema: dict, temperature: float,
                      max_tokens: int) -> dict:
        def ask(conversation: list[Message]) -> tuple[dict | None, str, str | None]:
            reply = self._structured_request(system, conversation, schema, temperature, max_tokens)
            if reply["refusal"]:
                return None, reply["refusal"], STOP_REFUSAL
            raw = reply["arguments"] if reply["arguments"] is not None else reply["text"]
            return parse_json_object(raw), raw, reply["stop_reason"]

        return structured_answer(ask, messages, schema, what=self._endpoint.what)

    # -- requests --
    def _params(self, system: str, messages: list[Message], temperature: float,
                max_tokens: int) -> dict[str, Any]:
        chat = ([{"role": "system", "content": system}] if system else []) + [m.to_dict() for m in messages]
        # max_tokens, not max_completion_tokens: the one vLLM, Ollama and gateways all accept.
        return {"messages": chat, "temperature": temperature, "max_tokens": max_tokens}

    def _structured_request(self, system: str, messages: list[Message], schema: dict, temperature: float,
                            max_tokens: int) -> dict[str, Any]:
        while True:
            mode = self._modes[0]
            params = self._params(system, messages, temperature, max_tokens)
            if mode == "json_schema":
                params["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": ANSWER_FUNCTION, "schema": schema, "strict": _strict_compatible(schema)}}
            elif mode == "tools":
                params["tools"] = [{"type": "function", "function": {
                    "name": ANSWER_FUNCTION, "description": "Give your answer through this function.",
                    "parameters": schema}}]
                params["tool_choice"] = {"type": "function", "function": {"name": ANSWER_FUNCTION}}
            else:
                instruction = ("Reply with only a JSON object, no other text, that matches this JSON "
                               f"schema:\n{json.dumps(schema, indent=2)}")
                params = self._params((system + "\n\n" + instruction).strip(), messages, temperature,
                                      max_tokens)
            try:
                return self._request(params)
            except _Rejected as err:
                with self._modes_lock:  # k candidates may hit the same rejection at once
                    if self._modes[0] == mode:
                        if len(self._modes) == 1:
                            raise err.error from None
                        self._modes.pop(0)
                        log.info("%s: structured output mode %s rejected (%s); trying %s",
                                 self._endpoint.what, mode, err.error, self._modes[0])

    def _request(self, params: dict[str, Any]) -> dict[str, Any]:
        self._resolve_model()
        params = dict(params, model=self.model)
        if self._stream:
            params.update(stream=True, stream_options={"include_usage": True})
        structured = "response_format" in params or "tools" in params

        def attempt() -> dict[str, Any]:
            try:
                if self._stream:
                    return _gather_stream(self._client.chat.completions.create(**params), self.model)
                return _from_completion(self._client.chat.completions.create(**params), self.model)
            except openai.APIStatusError as err:
                error = self._status_error(err)
                if structured and err.status_code in (400, 422):
                    raise _Rejected(error) from None
                raise error from None
            except openai.APITimeoutError:
                raise timeout_error(self._endpoint, self._timeout_s) from None
            except openai.APIConnectionError:
                raise connection_error(self._endpoint) from None
            except openai.OpenAIError as err:  # a reply the SDK could not make sense of
                detail = redact(str(err), [self._key])
                raise LlmError(f"{self._endpoint.what}: unexpected reply ({detail})") from None

        with self.account.counting_cut_off(self.name, self.model):
            reply = call_with_retries(attempt, self._policy, what=self._endpoint.what, cancel=self.cancel)
        self.account.record(self.name, reply["model"], reply["usage"])
        return reply

    def _resolve_model(self) -> None:
        """With no [llm] model, use the endpoint's model when it serves exactly one (typical for vLLM)."""
        if self.model:
            return

        def attempt() -> list[str]:
            try:
                return [m.id for m in self._client.models.list()]
            except openai.APIStatusError as err:
                raise self._status_error(err) from None
            except openai.APITimeoutError:
                raise timeout_error(self._endpoint, self._timeout_s) from None
            except openai.APIConnectionError:
                raise connection_error(self._endpoint) from None

        served = call_with_retries(attempt, self._policy, what=f"{self.name} model list", cancel=self.cancel)
        if len(served) != 1:
            listing = ", ".join(served[:10]) if served else "none"
            raise LlmError(f"set [llm] model in wattson.toml: {self._base_url} serves {len(served)} models "
                           f"({listing})")
        self.model = served[0]

    def _status_error(self, err: openai.APIStatusError) -> LlmError:
        body = err.body if isinstance(err.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        message = redact(str(error.get("message") or err.message), [self._key])
        headers = dict(err.response.headers) if err.response is not None else {}
        return status_error(self._endpoint, err.status_code, message, error_type=_str(error.get("type")),
                            error_code=_str(error.get("code")), retry_after_s=retry_after_s(headers))


class _Rejected(Exception):
    """A structured-output request the server refused as malformed: try the next mode."""

    def __init__(self, error: LlmError):
        super().__init__(str(error))
        self.error = error


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _strict_compatible(schema: dict) -> bool:
    """OpenAI's strict mode needs every object closed and every property required."""
    if schema.get("type") == "object":
        properties = schema.get("properties", {})
        closed = schema.get("additionalProperties") is False
        if not closed or set(schema.get("required", [])) != set(properties):
            return False
        return all(_strict_compatible(p) for p in properties.values())
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return _strict_compatible(schema["items"])
    return True


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage(0, 0, reported=False)
    return Usage(input_tokens=raw.prompt_tokens or 0, output_tokens=raw.completion_tokens or 0)


def _from_completion(reply: Any, model: str) -> dict[str, Any]:
    if not reply.choices:
        raise LlmError("the endpoint answered with no choices", retryable=True)
    choice = reply.choices[0]
    message = choice.message
    arguments = None
    if message.tool_calls:
        arguments = message.tool_calls[0].function.arguments
    return {"text": message.content or "", "refusal": message.refusal, "arguments": arguments,
            "usage": _usage(reply.usage), "model": reply.model or model,
            "stop_reason": _FINISH_REASONS.get(choice.finish_reason or "", choice.finish_reason)}


def _gather_stream(chunks: Any, model: str) -> dict[str, Any]:
    text: list[str] = []
    refusal: list[str] = []
    arguments: list[str] = []
    saw_tool_call = False
    finish: str | None = None
    usage = None
    reply_model = model
    for chunk in chunks:
        reply_model = chunk.model or reply_model
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
            if getattr(delta, "refusal", None):
                refusal.append(delta.refusal)
            for call in delta.tool_calls or []:
                if call.index == 0:  # one forced function: later calls are not ours
                    saw_tool_call = True
                    if call.function is not None and call.function.arguments:
                        arguments.append(call.function.arguments)
            if choice.finish_reason:
                finish = choice.finish_reason
    return {"text": "".join(text), "refusal": "".join(refusal) or None,
            "arguments": "".join(arguments) if saw_tool_call else None, "usage": _usage(usage),
            "model": reply_model, "stop_reason": _FINISH_REASONS.get(finish or "", finish)}
