"""LLM providers against the loopback fake endpoint, through the real anthropic and openai SDKs.

Also the command provider with real subprocesses, the retry policy, accounting, settings, and the
rule that an API key never shows up in a message, a repr, a log record or a report.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from agent_fixture import pid_alive
from llm_fake_server import FakeLlmServer, Reply
from wattson.llm import (
    LlmCancelled,
    LlmError,
    LlmProvider,
    LlmRefusal,
    LlmSettings,
    LlmTruncated,
    Message,
    Price,
    RetryPolicy,
    TokenAccount,
    Usage,
    make_provider,
    price_for,
)
from wattson.llm.anthropic_provider import FALLBACK_MODEL, newest_sonnet, sdk_model_names
from wattson.llm.json_schema import parse_json_object, schema_problems
from wattson.llm.retry import call_with_retries, retry_after_s
from wattson.prompt_render import JUDGE_SCHEMA

SECRET = "sk-test-SECRET-0123456789"
FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=2.0, max_total_wait_s=5.0)
HELLO = [Message("user", "hello")]
VERDICT = {"verdict": "accept", "reasons": ["same loops, same sizes"], "risks": []}


@pytest.fixture
def server():
    with FakeLlmServer() as fake:
        yield fake


@pytest.fixture
def anthropic_provider(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    return make_provider({"provider": "anthropic", "model": "claude-sonnet-5-5",
                          "base_url": server.anthropic_base_url, "timeout_s": 5.0}, policy=FAST)


def openai_provider(server: FakeLlmServer, **settings: object) -> LlmProvider:
    config = {"provider": "openai-compatible", "model": "local-coder", "base_url": server.openai_base_url,
              "timeout_s": 5.0, **settings}
    return make_provider(config, policy=FAST)


# -- Anthropic ------------------------------------------------------------------------------------

def test_anthropic_plain_reply_and_what_was_sent(server, anthropic_provider):
    server.push(Reply(text="Use shared memory.", input_tokens=40, output_tokens=5))
    reply = anthropic_provider.complete("be brief", HELLO, temperature=0.7, max_tokens=1000)
    assert reply.text == "Use shared memory."
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (40, 5)
    assert reply.stop_reason == "end_turn" and not reply.truncated
    sent = server.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.body["model"] == "claude-sonnet-5-5" and sent.body["system"] == "be brief"
    assert sent.body["messages"] == [{"role": "user", "content": "hello"}]
    assert sent.body["max_tokens"] == 1000 and not sent.body.get("stream")
    assert "temperature" not in sent.body  # the API version the SDK speaks rejects it
    assert anthropic_provider.supports_temperature is False
    assert SECRET in (sent.headers.get("authorization", "") + sent.headers.get("x-api-key", ""))


def test_anthropic_long_reply_is_streamed_and_thinking_is_not_text(server, anthropic_provider):
    code = "```cuda file=a.cu\n__global__ void k() {}\n```\nEND OF FILES\n" * 3
    server.push(Reply(text=code, thinking="first the loads...", chunk_chars=7, output_tokens=321))
    reply = anthropic_provider.complete("", HELLO, temperature=0.2, max_tokens=32_000)
    assert server.requests[0].body["stream"] is True
    assert reply.text == code
    assert reply.usage.output_tokens == 321 and reply.usage.input_tokens == 11
    assert "system" not in server.requests[0].body


def test_anthropic_truncated_and_refused_replies_are_flagged(server, anthropic_provider):
    server.push(Reply(text="__global__ void k() { int i", stop_reason="max_tokens"),
                Reply(text="", stop_reason="refusal"))
    cut = anthropic_provider.complete("", HELLO, temperature=0, max_tokens=100)
    assert cut.truncated and cut.stop_reason == "max_tokens"
    refused = anthropic_provider.complete("", HELLO, temperature=0, max_tokens=100)
    assert refused.refused and refused.text == ""


def test_anthropic_structured_answer_through_a_forced_tool(server, anthropic_provider):
    server.push(Reply(tool_input=VERDICT))
    verdict = anthropic_provider.complete_json("judge", HELLO, schema=JUDGE_SCHEMA, temperature=0,
                                               max_tokens=2000)
    assert verdict == VERDICT
    body = server.requests[0].body
    assert body["tools"][0]["input_schema"] == JUDGE_SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": body["tools"][0]["name"]}
    assert body["thinking"] == {"type": "disabled"}  # forced tool use and thinking do not mix
    server.push(Reply(tool_input=VERDICT, chunk_chars=5))  # the same, streamed as input_json deltas
    assert anthropic_provider.complete_json("judge", HELLO, schema=JUDGE_SCHEMA, temperature=0,
                                            max_tokens=20_000) == VERDICT
    assert server.requests[1].body["stream"] is True


def test_anthropic_falls_back_to_json_output_when_forced_tools_are_rejected(server, anthropic_provider):
    rejection = "Thinking may not be enabled when tool_choice forces tool use."
    server.push(Reply(status=400, message=rejection), Reply(text=json.dumps(VERDICT)),
                Reply(text="```json\n" + json.dumps(VERDICT) + "\n```"))
    first = anthropic_provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0, max_tokens=2000)
    second = anthropic_provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0, max_tokens=2000)
    assert first == second == VERDICT
    bodies = [r.body for r in server.requests]
    assert "tools" in bodies[0]
    assert bodies[1]["output_config"]["format"] == {"type": "json_schema", "schema": JUDGE_SCHEMA}
    assert "tools" not in bodies[1] and "tools" not in bodies[2]  # the switch is remembered


def test_structured_answer_off_schema_is_repaired_once_then_fails(server, anthropic_provider):
    server.push(Reply(tool_input={"verdict": "maybe", "reasons": []}), Reply(tool_input=VERDICT))
    assert anthropic_provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0,
                                            max_tokens=2000) == VERDICT
    repair = server.requests[1].body["messages"][-1]["content"]
    assert "'risks'" in repair and '"maybe" is not one of' in repair
    server.push(Reply(tool_input={"verdict": 1}), Reply(tool_input={"verdict": 2}))
    with pytest.raises(LlmError, match="did not match the schema after 2 tries"):
        anthropic_provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0, max_tokens=2000)


def test_structured_answer_refused_or_cut_off_says_so(server, anthropic_provider):
    server.push(Reply(text="I can't help with that.", stop_reason="refusal"))
    with pytest.raises(LlmRefusal, match="declined to answer: \"I can't help with that.\""):
        anthropic_provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0, max_tokens=2000)
    server.push(Reply(text='{"verdict": "acc', stop_reason="max_tokens"))
    with pytest.raises(LlmTruncated, match="raise max_tokens"):
        anthropic_provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0, max_tokens=2000)


@pytest.mark.parametrize("status", [429, 529, 500, 503])
def test_anthropic_retries_rate_limits_overload_and_server_errors(server, anthropic_provider, status):
    server.push(Reply(status=status, headers={"retry-after": "0.2"}), Reply(text="fine now"))
    started = time.monotonic()
    reply = anthropic_provider.complete("", HELLO, temperature=0, max_tokens=100)
    assert reply.text == "fine now" and len(server.requests) == 2
    assert time.monotonic() - started >= 0.2  # Retry-After honoured


def test_anthropic_error_inside_a_stream_is_retried(server, anthropic_provider):
    server.push(Reply(text="partial " * 10, stream_error_after_chunks=3, error_type="overloaded_error"),
                Reply(text="whole answer"))
    reply = anthropic_provider.complete("", HELLO, temperature=0, max_tokens=20_000)
    assert reply.text == "whole answer" and len(server.requests) == 2


def test_slow_reply_times_out_and_is_retried(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    provider = make_provider({"base_url": server.anthropic_base_url, "timeout_s": 0.3}, policy=FAST)
    server.push(Reply(text="too late", delay_s=1.5), Reply(text="on time"))
    assert provider.complete("", HELLO, temperature=0, max_tokens=100).text == "on time"
    assert len(server.requests) == 2


def test_retries_are_capped_with_the_last_reason_in_words(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    provider = make_provider({"base_url": server.anthropic_base_url, "max_attempts": 3})
    provider._policy = RetryPolicy(max_attempts=3, base_delay_s=0.01)  # keep the test fast
    server.push(*[Reply(status=529, message="Overloaded")] * 3)
    with pytest.raises(LlmError) as caught:
        provider.complete("", HELLO, temperature=0, max_tokens=100)
    message = str(caught.value)
    assert "failed after 3 attempts" in message and "overloaded (529: Overloaded)" in message
    assert "choose another provider" in message
    assert len(server.requests) == 3


def test_a_retry_after_beyond_the_cap_gives_up_at_once(server, anthropic_provider):
    server.push(Reply(status=429, headers={"retry-after": "3600"}))
    with pytest.raises(LlmError, match="asks to wait 3600 s"):
        anthropic_provider.complete("", HELLO, temperature=0, max_tokens=100)
    assert len(server.requests) == 1


@pytest.mark.parametrize("reply, words", [
    (Reply(status=401, message="invalid x-api-key"), "API key was rejected (401: invalid x-api-key); check "
                                                     "ANTHROPIC_API_KEY"),
    (Reply(status=400, message="Your credit balance is too low to access the Anthropic API."),
     "quota or credit exhausted"),
    (Reply(status=402, message="payment required"), "quota or credit exhausted"),
    (Reply(status=403, message="no access"), "permission denied"),
    (Reply(status=404, message="model: claude-nope"), "set [llm] model"),
    (Reply(status=400, message="messages: field required"), "rejected the request (400: messages: field"),
])
def test_anthropic_failures_that_waiting_cannot_fix_are_not_retried(server, anthropic_provider, reply, words):
    server.push(reply)
    with pytest.raises(LlmError) as caught:
        anthropic_provider.complete("", HELLO, temperature=0, max_tokens=100)
    assert words in str(caught.value)
    assert len(server.requests) == 1


def test_missing_anthropic_key_is_one_clear_message(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LlmError) as caught:
        make_provider(None)
    assert str(caught.value).startswith("ANTHROPIC_API_KEY is not set: run `export ANTHROPIC_API_KEY=…`")
    assert "wattson.toml [llm]" in str(caught.value)


def test_unreachable_endpoint_is_retried_then_named(monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    provider = make_provider({"base_url": f"http://127.0.0.1:{port}"},
                             policy=RetryPolicy(max_attempts=2, base_delay_s=0.01))
    with pytest.raises(LlmError, match=f"could not reach http://127.0.0.1:{port}"):
        provider.complete("", HELLO, temperature=0, max_tokens=100)


def test_default_model_is_the_newest_sonnet_the_sdk_lists(monkeypatch):
    names = sdk_model_names()
    assert names, "the installed anthropic SDK should list its models"
    default = newest_sonnet()
    assert default in names and default.startswith("claude-sonnet-")
    assert newest_sonnet(["claude-sonnet-4-5-20250929", "claude-sonnet-4-5", "claude-sonnet-5",
                          "claude-opus-5-5", "claude-sonnet-4-6"]) == "claude-sonnet-5"
    assert newest_sonnet(["claude-sonnet-5-5", "claude-sonnet-5", "claude-sonnet-5-5-20261001"]) == \
        "claude-sonnet-5-5"
    assert newest_sonnet(["claude-3-5-sonnet-latest", "claude-3-7-sonnet-20250219"]) == \
        "claude-3-7-sonnet-20250219"
    assert newest_sonnet(["claude-opus-4-1"]) == FALLBACK_MODEL
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    assert make_provider({"model": ""}).model == default


# -- the key stays secret -------------------------------------------------------------------------

def test_the_key_never_appears_in_messages_reprs_logs_or_reports(server, monkeypatch, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)  # the SDKs' own debug logging included
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    account = TokenAccount()
    anthropic = make_provider({"base_url": server.anthropic_base_url, "timeout_s": 0.3},
                              account=account, policy=RetryPolicy(max_attempts=2, base_delay_s=0.01))
    openai = make_provider({"provider": "openai", "model": "m", "base_url": server.openai_base_url},
                           account=account, policy=RetryPolicy(max_attempts=2, base_delay_s=0.01))
    errors: list[BaseException] = []
    # Endpoints that echo the key back in their error bodies, a timeout, and exhausted retries.
    server.push(Reply(status=401, message=f"invalid x-api-key: {SECRET}"),
                Reply(status=500, message=f"internal error for key {SECRET}"),
                Reply(status=500, message=f"internal error for key {SECRET}"),
                Reply(text="late", delay_s=1.0), Reply(text="late", delay_s=1.0),
                Reply(status=429, error_code="insufficient_quota", message=f"quota for {SECRET}"),
                Reply(text="ok"))
    for _ in range(3):
        with pytest.raises(LlmError) as caught:
            anthropic.complete("", HELLO, temperature=0, max_tokens=100)
        errors.append(caught.value)
    with pytest.raises(LlmError) as caught:
        openai.complete("", HELLO, temperature=0, max_tokens=100)
    errors.append(caught.value)
    assert openai.complete("", HELLO, temperature=0, max_tokens=100).text == "ok"
    script = tmp_path / "leaky.py"
    script.write_text(f"import sys\nsys.stderr.write('auth failed for {SECRET}')\nsys.exit(2)\n")
    command = make_provider({"provider": "command", "command": f"{sys.executable} {script}"})
    with pytest.raises(LlmError) as caught:
        command.complete("", HELLO, temperature=0, max_tokens=100)
    errors.append(caught.value)

    texts = [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [repr(anthropic), repr(openai), repr(command), account.summary(), account.markdown(),
              json.dumps(account.to_dict())]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert all("[redacted]" in str(e) for e in errors if "for key" in str(e) or "x-api-key" in str(e))
    leaks = [t for t in texts if SECRET in t]
    assert leaks == []
    assert "key=set" in repr(anthropic)


# -- OpenAI-compatible ----------------------------------------------------------------------------

def test_openai_streamed_reply_with_usage(server):
    provider = openai_provider(server)
    server.push(Reply(text="```cuda file=a.cu\nint main() {}\n```\nEND OF FILES\n", chunk_chars=5,
                      input_tokens=70, output_tokens=12))
    reply = provider.complete("sys", HELLO, temperature=0.4, max_tokens=500)
    assert reply.text.endswith("END OF FILES\n") and reply.stop_reason == "end_turn"
    assert (reply.usage.input_tokens, reply.usage.output_tokens, reply.usage.reported) == (70, 12, True)
    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.4 and body["max_tokens"] == 500 and body["model"] == "local-coder"
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    assert "authorization" in server.requests[0].headers  # "none": some gateways insist on a header


def test_openai_plain_reply_truncation_refusal_and_missing_usage(server):
    provider = openai_provider(server, stream="never")
    server.push(Reply(text="int x", stop_reason="max_tokens"), Reply(refusal="I won't."),
                Reply(text="no counts", include_usage=False))
    assert provider.complete("", HELLO, temperature=0, max_tokens=5).truncated
    refused = provider.complete("", HELLO, temperature=0, max_tokens=5)
    assert refused.refused and refused.text == "I won't."
    quiet = provider.complete("", HELLO, temperature=0, max_tokens=5)
    assert quiet.usage.reported is False
    assert "stream" not in server.requests[0].body
    assert "1 call reported no token counts" in provider.account.summary()


def test_openai_structured_answer_falls_back_through_the_modes(server):
    provider = openai_provider(server)
    server.push(Reply(status=400, message="response_format json_schema is not supported"),
                Reply(status=400, message="tool_choice is not supported"),
                Reply(text="Here it is:\n```json\n" + json.dumps(VERDICT) + "\n```"),
                Reply(text=json.dumps(VERDICT)))
    assert provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0, max_tokens=800) == VERDICT
    bodies = [r.body for r in server.requests]
    assert bodies[0]["response_format"]["json_schema"]["schema"] == JUDGE_SCHEMA
    assert bodies[0]["response_format"]["json_schema"]["strict"] is True
    assert bodies[1]["tools"][0]["function"]["parameters"] == JUDGE_SCHEMA
    assert "response_format" not in bodies[2] and "tools" not in bodies[2]
    assert '"verdict"' in bodies[2]["messages"][0]["content"]  # the schema went into the prompt
    assert provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0, max_tokens=800) == VERDICT
    assert "response_format" not in server.requests[3].body  # the working mode is kept


def test_openai_tools_mode_parses_streamed_arguments(server):
    provider = openai_provider(server, structured_output="tools")
    server.push(Reply(tool_input=VERDICT, chunk_chars=4))
    assert provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0, max_tokens=800) == VERDICT
    assert server.requests[0].body["tool_choice"]["function"]["name"] == "answer"


def test_openai_quota_is_not_retried_but_overload_is(server):
    provider = openai_provider(server)
    server.push(Reply(status=429, error_code="insufficient_quota", message="You exceeded your current quota"))
    with pytest.raises(LlmError, match="quota or credit exhausted"):
        provider.complete("", HELLO, temperature=0, max_tokens=5)
    assert len(server.requests) == 1
    server.push(Reply(status=503, headers={"retry-after-ms": "50"}), Reply(text="back"))
    assert provider.complete("", HELLO, temperature=0, max_tokens=5).text == "back"


def test_openai_model_defaults_to_the_only_one_served(server):
    provider = openai_provider(server, model="")
    server.push(Reply(text="hi"))
    assert provider.complete("", HELLO, temperature=0, max_tokens=5).model == "fake-local-model"
    assert server.requests[1].body["model"] == "fake-local-model"
    server.models = ["a", "b"]
    with pytest.raises(LlmError, match=r"set \[llm\] model in wattson.toml: .* serves 2 models \(a, b\)"):
        openai_provider(server, model="").complete("", HELLO, temperature=0, max_tokens=5)


def test_openai_needs_a_base_url(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(LlmError, match=r"needs \[llm\] base_url, e.g. \"http://localhost:8000/v1\" \(vLLM\)"):
        make_provider({"provider": "openai-compatible"})


# -- command --------------------------------------------------------------------------------------

def write_script(tmp_path: Path, body: str) -> str:
    script = tmp_path / "llm.py"
    script.write_text("import json, os, sys, time\n" + textwrap.dedent(body))
    return f"{sys.executable} {script}"


def test_command_provider_json_envelope_and_request(tmp_path):
    command = write_script(tmp_path, f"""
        request = json.load(sys.stdin)
        open({str(tmp_path / 'request.json')!r}, 'w').write(json.dumps(request))
        print(json.dumps({{"text": "reply to " + request["messages"][0]["content"],
                          "usage": {{"input_tokens": 9, "output_tokens": 4}}, "model": "replayer"}}))
    """)
    provider = make_provider({"provider": "command", "command": command})
    reply = provider.complete("sys", HELLO, temperature=0.3, max_tokens=77)
    assert reply.text == "reply to hello" and reply.model == "replayer"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (9, 4)
    request = json.loads((tmp_path / "request.json").read_text())
    assert request == {"system": "sys", "messages": [{"role": "user", "content": "hello"}],
                       "temperature": 0.3, "max_tokens": 77, "model": provider.model}
    assert provider.account.calls == 1


def test_command_provider_plain_text_and_structured_answers(tmp_path):
    command = write_script(tmp_path, f"""
        request = json.load(sys.stdin)
        if "schema" in request:
            print(json.dumps({{"json": {json.dumps(VERDICT)!s}}}))
        else:
            sys.stdout.write("just text\\n")
    """)
    provider = make_provider({"provider": "command", "command": command})
    plain = provider.complete("", HELLO, temperature=0, max_tokens=10)
    assert plain.text == "just text\n" and plain.usage.reported is False
    assert provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0, max_tokens=10) == VERDICT


def test_command_provider_retries_tempfail_and_reports_other_failures(tmp_path):
    counter = tmp_path / "count"
    command = write_script(tmp_path, f"""
        path = {str(counter)!r}
        n = int(open(path).read()) if os.path.exists(path) else 0
        open(path, "w").write(str(n + 1))
        if n == 0:
            sys.stderr.write("busy"); sys.exit(75)
        if n == 1:
            print("second try")
        else:
            sys.stderr.write("model crashed"); sys.exit(3)
    """)
    provider = make_provider({"provider": "command", "command": command}, policy=FAST)
    assert provider.complete("", HELLO, temperature=0, max_tokens=10).text.strip() == "second try"
    with pytest.raises(LlmError, match="exited with status 3: model crashed"):
        provider.complete("", HELLO, temperature=0, max_tokens=10)
    assert counter.read_text() == "3"  # exit 3 was not retried


def test_command_provider_timeout_kills_the_process_group(tmp_path):
    pid_file = tmp_path / "pid"
    command = write_script(tmp_path, f"""
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(30)
    """)
    provider = make_provider({"provider": "command", "command": command, "timeout_s": 0.5},
                             policy=RetryPolicy(max_attempts=1))
    started = time.monotonic()
    with pytest.raises(LlmError, match="no reply within"):
        provider.complete("", HELLO, temperature=0, max_tokens=10)
    assert time.monotonic() - started < 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and pid_alive(child):
        time.sleep(0.02)
    assert not pid_alive(child), "the command's own child outlived the timeout"


def test_command_provider_cancel_stops_at_once(tmp_path):
    command = write_script(tmp_path, "time.sleep(30)\n")
    cancel = threading.Event()
    provider = make_provider({"provider": "command", "command": command}, cancel=cancel)
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(LlmCancelled):
        provider.complete("", HELLO, temperature=0, max_tokens=10)
    assert time.monotonic() - started < 3
    assert "1 request was cut off by the cancel" in provider.account.summary()


def test_command_provider_missing_executable(tmp_path):
    provider = make_provider({"provider": "command", "command": str(tmp_path / "no-such-llm")})
    with pytest.raises(LlmError, match="no-such-llm not found; fix \\[llm\\] command"):
        provider.complete("", HELLO, temperature=0, max_tokens=10)


# -- retry policy ---------------------------------------------------------------------------------

def test_retry_after_header_forms():
    assert retry_after_s({"Retry-After": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_s({"retry-after": http_date}) <= 31
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s(None) is None


def test_backoff_grows_with_jitter_and_respects_the_caps():
    import random

    policy = RetryPolicy(max_attempts=10, base_delay_s=1.0, max_delay_s=8.0, max_total_wait_s=12.0)
    rng = random.Random(1)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 8.0)):
        delays = [policy.backoff_s(failures, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(set(delays)) > 1
    waits: list[float] = []

    def always_busy() -> None:
        raise LlmError("overloaded (529)", retryable=True)

    with pytest.raises(LlmError, match="failed after"):
        call_with_retries(always_busy, policy, what="test request", sleep=waits.append, rng=rng)
    assert sum(waits) <= 12.0 and len(waits) < 9  # the total-wait cap ended it before max_attempts
    waits.clear()
    attempts = iter([LlmError("rate limited (429)", retryable=True, retry_after_s=0.5), None])

    def then_ok() -> str:
        err = next(attempts)
        if err:
            raise err
        return "ok"

    assert call_with_retries(then_ok, policy, what="t", sleep=waits.append) == "ok" and waits == [0.5]


# -- accounting -----------------------------------------------------------------------------------

def test_price_table_families_and_unknown_models():
    assert price_for("claude-sonnet-5-5") == price_for("claude-sonnet-4-5-20250929") == Price(3.0, 15.0)
    assert price_for("anthropic/claude-sonnet-4-6") == Price(3.0, 15.0)
    assert price_for("claude-opus-4-8") == Price(5.0, 25.0)
    assert price_for("claude-opus-4-1-20250805") == price_for("claude-opus-4-20250514") == Price(15.0, 75.0)
    assert price_for("claude-haiku-4-5") == Price(1.0, 5.0)
    for unknown in ("claude-opus-4-9", "claude-fable-5", "claude-opus-5", "qwen3-coder-30b", "llama-3.1-70b"):
        assert price_for(unknown) is None, unknown


def test_account_sums_calls_costs_and_says_prices_are_approximate(server, anthropic_provider):
    server.push(Reply(text="a", input_tokens=1_000_000, output_tokens=100_000),
                Reply(tool_input={"verdict": "nope"}, input_tokens=10, output_tokens=10),
                Reply(tool_input=VERDICT, input_tokens=10, output_tokens=10))
    anthropic_provider.complete("", HELLO, temperature=0, max_tokens=10)
    anthropic_provider.complete_json("", HELLO, schema=JUDGE_SCHEMA, temperature=0, max_tokens=100)
    account = anthropic_provider.account
    assert account.calls == 3  # the repair round is paid for too
    assert account.input_tokens == 1_000_020 and account.output_tokens == 100_020
    assert account.cost_usd() == pytest.approx((1_000_020 * 3 + 100_020 * 15) / 1e6)
    summary = account.summary()
    assert "3 calls, 1,000,020 input + 100,020 output tokens, about $4.50" in summary
    assert "approximate list prices of 2026-" in summary
    local = TokenAccount()
    local.record("openai-compatible", "qwen3-coder", Usage(500, 50))
    assert local.cost_usd() is None and "no price known for qwen3-coder: tokens only" in local.summary()
    priced = TokenAccount(price_override=Price(0.5, 1.0))
    priced.record("openai-compatible", "qwen3-coder", Usage(1_000_000, 1_000_000))
    assert priced.cost_usd() == pytest.approx(1.5) and "your [llm] prices" in priced.summary()
    assert "| anthropic | claude-sonnet-5-5 | 3 |" in account.markdown()


def test_a_request_cut_off_by_a_cancel_is_counted_and_a_cancelled_retry_wait_is_not(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    cancel = threading.Event()
    provider = make_provider({"provider": "anthropic", "model": "claude-sonnet-5-5",
                              "base_url": server.anthropic_base_url, "timeout_s": 5.0}, policy=FAST, cancel=cancel)
    server.push(Reply(text="too late", delay_s=2.0, input_tokens=900, output_tokens=90))
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(LlmCancelled):
        provider.complete("", HELLO, temperature=0, max_tokens=10)
    account = provider.account
    assert account.calls == 0 and account.input_tokens == 0
    summary = account.summary()
    assert ("1 request was cut off by the cancel: its tokens are not in these totals, and a paid endpoint may "
            "still bill it") in summary
    assert "claude-sonnet-5-5" not in account.markdown()  # no row of zeros beside the line that explains
    assert "no price known" not in summary
    assert account.to_dict()["models"][0]["cut_off_calls"] == 1

    cancel = threading.Event()  # a streamed reply (the OpenAI-compatible default) cut off the same way
    streaming = make_provider({"provider": "openai-compatible", "model": "local-coder",
                               "base_url": server.openai_base_url, "timeout_s": 5.0}, policy=FAST, cancel=cancel)
    server.push(Reply(text="slow stream " * 20, chunk_chars=4, chunk_delay_s=0.1))
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(LlmCancelled):
        streaming.complete("", HELLO, temperature=0, max_tokens=10)
    assert "1 request was cut off" in streaming.account.summary() and streaming.account.calls == 0

    waiting = TokenAccount()
    cancel = threading.Event()
    slow = RetryPolicy(max_attempts=3, base_delay_s=5.0, max_delay_s=10.0, max_total_wait_s=20.0)
    provider = make_provider({"provider": "anthropic", "model": "claude-sonnet-5-5",
                              "base_url": server.anthropic_base_url, "timeout_s": 5.0}, policy=slow,
                             cancel=cancel, account=waiting)
    server.push(Reply(status=529))  # overloaded: retried after a wait, which the cancel ends
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(LlmCancelled):
        provider.complete("", HELLO, temperature=0, max_tokens=10)
    assert "cut off" not in waiting.summary()


def test_price_override_from_settings(server):
    provider = make_provider({"provider": "openai", "model": "m", "base_url": server.openai_base_url,
                              "price_input_usd_per_mtok": 1.0, "price_output_usd_per_mtok": 2.0})
    server.push(Reply(text="x", input_tokens=1_000_000, output_tokens=500_000))
    provider.complete("", HELLO, temperature=0, max_tokens=5)
    assert provider.account.cost_usd() == pytest.approx(2.0)


# -- settings and schema helpers ------------------------------------------------------------------

def test_settings_from_the_shapes_callers_hold():
    class LlmConfig:  # the shape wattson.config gives: attributes, possibly fewer keys than ours
        provider = "openai"
        model = "m"
        base_url = "http://gpu01:8000/v1"
        command = ""

    class Config:
        llm = LlmConfig()

    settings = LlmSettings.from_config(Config())
    assert settings.provider == "openai-compatible" and settings.base_url == "http://gpu01:8000/v1"
    assert LlmSettings.from_config(LlmConfig()).model == "m"
    assert LlmSettings.from_config(None).provider == "anthropic"
    with pytest.raises(LlmError, match="unknown \\[llm\\] provider 'gpt' in wattson.toml: use one of"):
        LlmSettings.from_config({"provider": "gpt"})
    with pytest.raises(LlmError, match="unknown \\[llm\\] key tempreature"):
        LlmSettings.from_config({"tempreature": 1})
    with pytest.raises(LlmError, match="needs \\[llm\\] command"):
        LlmSettings.from_config({"provider": "command"})
    with pytest.raises(LlmError, match="set both or neither"):
        LlmSettings.from_config({"price_input_usd_per_mtok": 1.0})


def test_settings_from_wattson_config_defaults():
    config = pytest.importorskip("wattson.config")
    settings = LlmSettings.from_config(config.load_config(None))
    assert settings.provider == "anthropic" and settings.model == "" and settings.max_attempts >= 1


def test_schema_problems_and_json_extraction():
    assert schema_problems(VERDICT, JUDGE_SCHEMA) == []
    problems = schema_problems({"verdict": "yes", "reasons": ["a", 2], "extra": 1}, JUDGE_SCHEMA)
    assert "$: missing required property 'risks'" in problems
    assert '$.verdict: "yes" is not one of "accept", "reject"' in problems
    assert "$.reasons[1]: expected string, got integer" in problems
    assert "$: unexpected property 'extra'" in problems
    assert schema_problems(True, {"type": "integer"}) == ["$: expected integer, got boolean"]
    assert parse_json_object('{"a": 1}') == {"a": 1}
    assert parse_json_object('Sure.\n```json\n{"a": 2}\n```\nDone.') == {"a": 2}
    assert parse_json_object('The verdict is {"a": 3} as asked.') == {"a": 3}
    assert parse_json_object("no json here") is None and parse_json_object("[1, 2]") is None
