"""A loopback fake of the two LLM HTTP APIs Wattson speaks: Anthropic Messages and Chat Completions.

The one fake at the LLM boundary: the real `anthropic` and `openai` SDKs talk to it through their
`base_url`, so every line of our provider code and of the SDKs' HTTP, SSE and error handling runs
for real. Each test scripts the server with a queue of `Reply` objects (text, tool input, error
status with Retry-After, delays, truncation, refusals, thinking blocks) and reads back the requests
it received. An empty queue answers 400 "no scripted reply left", which no provider retries, so a
test that under-scripts fails with that sentence instead of hanging.

    with FakeLlmServer() as server:
        server.push(Reply(text="hello"))
        client = anthropic.Anthropic(api_key="k", base_url=server.anthropic_base_url)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer. `status` other than 200 makes it an error reply."""

    text: str = ""
    tool_input: dict | None = None  # a tool_use block (Anthropic) / tool call (OpenAI) with this input
    tool_arguments_raw: str | None = None  # OpenAI tool arguments sent verbatim (malformed JSON tests)
    thinking: str | None = None  # a thinking block before the text (Anthropic)
    stop_reason: str | None = None  # Anthropic vocabulary; None picks end_turn / tool_use
    refusal: str | None = None  # OpenAI message.refusal text; Anthropic uses stop_reason="refusal"
    status: int = 200
    error_type: str = ""  # e.g. "rate_limit_error", "overloaded_error"; derived from status if empty
    error_code: str | None = None  # OpenAI error.code, e.g. "insufficient_quota"
    message: str = ""  # the error's message
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {"retry-after": "1"}
    delay_s: float = 0.0  # wait before answering (client timeouts)
    chunk_delay_s: float = 0.0  # wait between streamed chunks
    chunk_chars: int = 16  # text per streamed delta
    stream_error_after_chunks: int | None = None  # Anthropic: an `error` SSE event mid-stream
    input_tokens: int = 11
    output_tokens: int | None = None  # None: derived from the text length
    include_usage: bool = True  # OpenAI: whether usage is reported at all
    model: str | None = None  # model name echoed back; None echoes the request's


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


class FakeLlmServer:
    """Threaded HTTP server on 127.0.0.1:<free port>. Use as a context manager."""

    def __init__(self) -> None:
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self.models: list[str] = ["fake-local-model"]  # what GET /v1/models lists
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, at the end of every test.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-llm", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    def start(self) -> FakeLlmServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases handlers sleeping in a scripted delay
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLlmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- used by the handler --
    def _next_reply(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            self.requests.append(request)
            return self._replies.popleft() if self._replies else None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _make_handler(server: FakeLlmServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, like the real APIs

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionResetError, BrokenPipeError):
                pass  # the client dropped a keep-alive connection (timeouts, closed clients)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/").endswith("/models"):
                server.requests.append(RecordedRequest(self.path, dict(self.headers.items()), {}))
                data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in server.models]
                self._send_json(200, {"object": "list", "data": data})
            else:
                self._send_json(404, {"error": {"type": "not_found_error", "message": self.path}})

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"_unparsed": raw.decode("utf-8", "replace")}
            request = RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if self.path.rstrip("/").endswith("/messages"):
                api = "anthropic"
            elif self.path.rstrip("/").endswith("/chat/completions"):
                api = "openai"
            else:
                self._send_json(404, {"error": {"type": "not_found_error", "message": self.path}})
                return
            reply = server._next_reply(request)
            if reply is None:
                reply = Reply(status=400, message="fake LLM server: no scripted reply left")
            server._sleep(reply.delay_s)
            try:
                if reply.status != 200:
                    self._send_error_reply(api, reply)
                elif api == "anthropic":
                    self._anthropic(body, reply)
                else:
                    self._openai(body, reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test): nothing to answer

        # -- plumbing --
        def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _start_stream(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _end_stream(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _sse(self, event: str | None, payload: dict | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            head = f"event: {event}\n" if event else ""
            self._chunk(f"{head}data: {data}\n\n".encode())

        def _send_error_reply(self, api: str, reply: Reply) -> None:
            error_type = reply.error_type or _ERROR_TYPES.get(reply.status, "api_error")
            message = reply.message or f"scripted {reply.status}"
            if api == "anthropic":
                payload: dict = {"type": "error", "error": {"type": error_type, "message": message}}
            else:
                payload = {"error": {"message": message, "type": error_type, "code": reply.error_code}}
            self._send_json(reply.status, payload, reply.headers)

        # -- Anthropic Messages --
        def _anthropic(self, body: dict, reply: Reply) -> None:
            model = reply.model or body.get("model", "fake-model")
            blocks: list[dict] = []
            if reply.thinking is not None:
                blocks.append({"type": "thinking", "thinking": reply.thinking, "signature": "sig-fake"})
            if reply.text or reply.tool_input is None:
                blocks.append({"type": "text", "text": reply.text})
            if reply.tool_input is not None:
                tool_name = _forced_tool_name(body) or "answer"
                blocks.append({"type": "tool_use", "id": "toolu_fake01", "name": tool_name,
                               "input": reply.tool_input})
            stop = reply.stop_reason or ("tool_use" if reply.tool_input is not None else "end_turn")
            output_tokens = reply.output_tokens
            if output_tokens is None:
                output_tokens = max(1, len(reply.text + json.dumps(reply.tool_input or "")) // 4)
            usage = {"input_tokens": reply.input_tokens, "output_tokens": output_tokens}
            message = {"id": "msg_fake01", "type": "message", "role": "assistant", "model": model,
                       "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage}
            if not body.get("stream"):
                self._send_json(200, message, reply.headers)
                return
            self._start_stream()
            start = dict(message, content=[], stop_reason=None,
                         usage={"input_tokens": reply.input_tokens, "output_tokens": 1})
            self._sse("message_start", {"type": "message_start", "message": start})
            self._sse("ping", {"type": "ping"})
            sent = 0
            for index, block in enumerate(blocks):
                for event in _anthropic_block_events(index, block, reply.chunk_chars):
                    error_after = reply.stream_error_after_chunks
                    if error_after is not None and sent >= error_after:
                        self._sse("error", {"type": "error", "error": {
                            "type": reply.error_type or "overloaded_error",
                            "message": reply.message or "Overloaded"}})
                        self._end_stream()
                        return
                    self._sse(event["type"], event)
                    sent += 1
                    server._sleep(reply.chunk_delay_s)
            self._sse("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": stop, "stop_sequence": None},
                                        "usage": {"output_tokens": output_tokens}})
            self._sse("message_stop", {"type": "message_stop"})
            self._end_stream()

        # -- Chat Completions --
        def _openai(self, body: dict, reply: Reply) -> None:
            model = reply.model or body.get("model", "fake-model")
            finish = {None: "stop", "end_turn": "stop", "max_tokens": "length", "refusal": "content_filter",
                      "tool_use": "tool_calls"}.get(reply.stop_reason, reply.stop_reason or "stop")
            tool_calls = None
            if reply.tool_input is not None or reply.tool_arguments_raw is not None:
                arguments = reply.tool_arguments_raw
                if arguments is None:
                    arguments = json.dumps(reply.tool_input)
                name = _forced_function_name(body) or "answer"
                tool_calls = [{"id": "call_fake01", "type": "function",
                               "function": {"name": name, "arguments": arguments}}]
                if reply.stop_reason is None:
                    finish = "tool_calls"
            output_tokens = reply.output_tokens
            if output_tokens is None:
                output_tokens = max(1, len(reply.text) // 4)
            usage = {"prompt_tokens": reply.input_tokens, "completion_tokens": output_tokens,
                     "total_tokens": reply.input_tokens + output_tokens}
            created = int(time.time())
            if not body.get("stream"):
                message: dict = {"role": "assistant", "content": reply.text if reply.text else None,
                                 "refusal": reply.refusal}
                if tool_calls:
                    message["tool_calls"] = tool_calls
                payload = {"id": "chatcmpl-fake01", "object": "chat.completion", "created": created,
                           "model": model, "choices": [{"index": 0, "message": message,
                                                        "finish_reason": finish, "logprobs": None}]}
                if reply.include_usage:
                    payload["usage"] = usage
                self._send_json(200, payload, reply.headers)
                return
            self._start_stream()

            def chunk(delta: dict, finish_reason: str | None = None) -> dict:
                return {"id": "chatcmpl-fake01", "object": "chat.completion.chunk", "created": created,
                        "model": model, "choices": [{"index": 0, "delta": delta,
                                                     "finish_reason": finish_reason, "logprobs": None}]}

            self._sse(None, chunk({"role": "assistant", "content": ""}))
            for piece in _pieces(reply.text, reply.chunk_chars):
                self._sse(None, chunk({"content": piece}))
                server._sleep(reply.chunk_delay_s)
            if reply.refusal:
                self._sse(None, chunk({"refusal": reply.refusal}))
            if tool_calls:
                call = tool_calls[0]
                self._sse(None, chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                                       "function": {"name": call["function"]["name"],
                                                                    "arguments": ""}}]}))
                for piece in _pieces(call["function"]["arguments"], reply.chunk_chars):
                    self._sse(None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
            self._sse(None, chunk({}, finish))
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if wants_usage and reply.include_usage:
                self._sse(None, {"id": "chatcmpl-fake01", "object": "chat.completion.chunk",
                                 "created": created, "model": model, "choices": [], "usage": usage})
            self._sse(None, "[DONE]")
            self._end_stream()

    return Handler


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _anthropic_block_events(index: int, block: dict, chunk_chars: int) -> list[dict]:
    """The SSE events that stream one content block, in the API's order and shapes."""
    kind = block["type"]
    events: list[dict] = []
    if kind == "text":
        events.append({"type": "content_block_start", "index": index,
                       "content_block": {"type": "text", "text": ""}})
        for piece in _pieces(block["text"], chunk_chars):
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "text_delta", "text": piece}})
    elif kind == "thinking":
        events.append({"type": "content_block_start", "index": index,
                       "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
        for piece in _pieces(block["thinking"], chunk_chars):
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "thinking_delta", "thinking": piece}})
        events.append({"type": "content_block_delta", "index": index,
                       "delta": {"type": "signature_delta", "signature": block["signature"]}})
    elif kind == "tool_use":
        events.append({"type": "content_block_start", "index": index,
                       "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"],
                                         "input": {}}})
        for piece in _pieces(json.dumps(block["input"]), chunk_chars):
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": piece}})
    events.append({"type": "content_block_stop", "index": index})
    return events


def _forced_tool_name(body: dict) -> str | None:
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        return choice.get("name")
    tools = body.get("tools") or []
    return tools[0].get("name") if tools else None


def _forced_function_name(body: dict) -> str | None:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        return (choice.get("function") or {}).get("name")
    tools = body.get("tools") or []
    return (tools[0].get("function") or {}).get("name") if tools else None
