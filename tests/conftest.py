"""Shared fixtures: the scripted fake GPU (the sensor boundary), the CLI's environment, and for the
optimize loop's tests the loopback LLM endpoint, an agent on the fake GPU and a history."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from agent_fixture import agent_env
from llm_fake_server import FakeLlmServer
from wattson.runner import AgentClient
from wattson.store import History

# A test run started in the background (`bash .ci/run &`, nohup) inherits SIGINT ignored, and an
# ignored signal stays ignored in every program it starts. The ^C tests need it delivered.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def fake_gpu(tmp_path: Path):
    """A fake GPU whose load the test program writes to `load_file`; returns (spec_path, load_file)."""
    load_file = tmp_path / "gpu-load"
    load_file.write_text("0")
    spec = {"devices": [{"name": "Fake H100", "idle_w": 70, "busy_w": 350, "load_file": str(load_file),
                         "settle_s": 0.05, "counter_period_s": 0.01, "noise_w": 0.5, "seed": 7}]}
    spec_path = tmp_path / "fake-gpu.json"
    spec_path.write_text(json.dumps(spec))
    return spec_path, load_file


@pytest.fixture
def cli_env(tmp_path: Path, fake_gpu) -> dict[str, str]:
    """Environment for running `wattson` as a user would, against the fake GPU and a temp history."""
    spec_path, _ = fake_gpu
    env = dict(os.environ)
    env["WATTSON_FAKE_GPU"] = str(spec_path)
    env["WATTSON_DB"] = str(tmp_path / "history.sqlite3")
    env["PYTHONUNBUFFERED"] = "1"
    return env


# Modules that define a fixture of the same name (an LSP server, an agent of their own) keep theirs.
@pytest.fixture
def server():
    with FakeLlmServer() as s:
        yield s


@pytest.fixture
def agent(tmp_path, fake_gpu, monkeypatch):
    spec_path, _ = fake_gpu
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-a-secret")
    client = AgentClient.start(None, env=agent_env(spec_path, tmp_path))
    yield client
    client.close()


@pytest.fixture
def history(tmp_path):
    with History(tmp_path / "data" / "history.sqlite3") as h:
        yield h
