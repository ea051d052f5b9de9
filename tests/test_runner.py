"""The client side of the agent protocol (wattson.runner.AgentClient) against real agent processes:
prefixes, a remote side with no wattson, a dying agent, timeouts, ^C, threads."""

from __future__ import annotations

import _thread
import os
import signal
import threading
from pathlib import Path

import pytest
from agent_fixture import (
    FAST_BUDGET,
    agent_env,
    busy_spec,
    pid_alive,
    read_pids,
    wait_all_gone,
    wait_for_file,
)
from wattson.runner import AgentClient, AgentError


@pytest.fixture
def env(fake_gpu, tmp_path: Path) -> dict[str, str]:
    spec_path, _ = fake_gpu
    return agent_env(spec_path, tmp_path)


@pytest.fixture
def load_file(fake_gpu) -> Path:
    return fake_gpu[1]


def test_a_string_prefix_is_split_and_banner_lines_on_stdout_are_skipped(env):
    # Like `ssh gpu01` to a host whose shell start-up prints a banner before the agent speaks.
    prefix = "sh -c 'echo Welcome to gpu01; echo via-prefix >&2; exec \"$@\"' sh"
    with AgentClient.start(prefix, env=env) as agent:
        assert agent.argv[-3:] == ["wattson", "agent", "--stdio"]
        desc = agent.call("describe", timeout_s=30)
        assert desc["devices"][0]["name"] == "Fake H100"
        assert "via-prefix" in agent.stderr_tail()


def test_remote_side_without_wattson_says_what_to_check(env):
    with AgentClient.start(["env", "PATH=/nonexistent"], env=env) as agent, pytest.raises(AgentError) as err:
        agent.call("describe", timeout_s=30)
    e = err.value
    assert e.kind == "agent_died" and e.data["exit_code"] == 127
    assert "No such file or directory" in e.message
    assert "is wattson installed on the remote host" in e.message
    assert "env PATH=/nonexistent wattson doctor" in e.message


def test_a_prefix_that_cannot_start_is_an_agent_error():
    with pytest.raises(AgentError) as err:
        AgentClient.start(["no-such-ssh-client-9f2", "gpu01"])
    assert err.value.kind == "agent_died" and "cannot start" in err.value.message
    assert "no-such-ssh-client-9f2" in err.value.message


def test_an_agent_that_dies_fails_the_pending_call_with_its_stderr(env, load_file, tmp_path):
    pid_file = tmp_path / "job.pids"
    with AgentClient.start(env=env) as agent:
        agent_pid = agent.call("describe", timeout_s=30)["pid"]
        outcome: dict[str, BaseException] = {}

        def run() -> None:
            try:
                agent.call("profile", {"program": busy_spec(load_file, seconds=60, pid_file=pid_file),
                                       "budget": FAST_BUDGET}, timeout_s=60)
            except BaseException as e:  # noqa: BLE001 - inspected below
                outcome["error"] = e

        caller = threading.Thread(target=run)
        caller.start()
        pids = read_pids(pid_file)
        os.kill(agent_pid, signal.SIGKILL)
        caller.join(timeout=15)
        assert not caller.is_alive()
        assert not agent.alive()
        with pytest.raises(AgentError) as later:
            agent.call("describe", timeout_s=5)
        assert later.value.kind == "agent_died"
    for pid in pids:  # a SIGKILLed agent cannot clean up after itself; the test does
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    e = outcome["error"]
    assert isinstance(e, AgentError) and e.kind == "agent_died"
    assert "signal 9" in e.message and "wattson doctor" in e.message
    assert "ready on" in e.data["stderr_tail"]  # the agent's own log travels with the error


def test_a_call_timeout_cancels_its_job(env, load_file, tmp_path):
    pid_file = tmp_path / "slow.pids"
    with AgentClient.start(env=env) as agent:
        with pytest.raises(AgentError) as err:
            agent.call("profile", {"program": busy_spec(load_file, seconds=60, pid_file=pid_file),
                                   "budget": FAST_BUDGET}, timeout_s=1.5)
        assert err.value.kind == "timeout"
        assert wait_all_gone(read_pids(pid_file), timeout_s=10) == []
        assert agent.call("describe", timeout_s=30)["fake"] is True  # still usable


def test_keyboard_interrupt_cancels_the_job_and_closes_the_agent(env, load_file, tmp_path):
    pid_file = tmp_path / "ctrl-c.pids"

    def press_ctrl_c() -> None:
        wait_for_file(pid_file)
        _thread.interrupt_main()

    presser = threading.Thread(target=press_ctrl_c)
    agent = AgentClient.start(env=env)
    try:
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            agent.call("profile", {"program": busy_spec(load_file, seconds=60, pid_file=pid_file),
                                   "budget": FAST_BUDGET}, timeout_s=60)
        presser.join()
        assert not agent.alive() and agent.proc.poll() is not None
        assert wait_all_gone(read_pids(pid_file), timeout_s=5) == []
    finally:
        agent.close()


def test_calls_from_many_threads_each_get_their_own_answer(env):
    with AgentClient.start(env=env) as agent:
        results: list[object] = [None] * 8

        def ask(i: int) -> None:
            results[i] = agent.call("build", {"program": {"name": f"p{i}", "build": f"echo number-{i}",
                                                          "run": "true"}}, timeout_s=60)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    for i, result in enumerate(results):
        assert isinstance(result, dict) and f"number-{i}" in result["output"]


def test_a_failing_progress_callback_does_not_stop_the_reader(env):
    def broken(note: dict) -> None:
        raise RuntimeError("display broke")

    with AgentClient.start(env=env) as agent:
        result = agent.call("build", {"program": {"name": "p", "build": "echo hi", "run": "true"}},
                            on_progress=broken, timeout_s=60)
        assert result["ok"]
        assert agent.call("describe", timeout_s=30)["fake"] is True


def test_close_is_idempotent_and_later_calls_fail(env):
    agent = AgentClient.start(env=env)
    agent.cancel("no-such-job")  # harmless
    agent.close()
    agent.close()
    assert agent.proc.returncode == 0
    with pytest.raises(AgentError) as err:
        agent.call("describe")
    assert err.value.kind == "agent_died"


def test_the_agent_never_holds_api_keys(env):
    env = {**env, "ANTHROPIC_API_KEY": "sk-ant-planted-secret", "MYLAB_API_KEY": "lab-planted-secret"}
    program = {"name": "env", "build": 'echo "[${ANTHROPIC_API_KEY:-}][${MYLAB_API_KEY:-}][${HOME:-}]"',
               "run": "true"}
    with AgentClient.start(env=env) as agent:
        output = agent.call("build", {"program": program}, timeout_s=60)["output"]
    assert "planted" not in output and f"[][][{env['HOME']}]" in output
