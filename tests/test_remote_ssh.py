"""The remote path for real: `ssh ... wattson agent --stdio` through an OpenSSH server on loopback.

The "remote host" is this machine, reached over ssh with key auth; the fake GPU's sensors stand in
for the hardware. sshd passes none of our environment, so the prefix sets PATH (the venv's wattson)
and WATTSON_FAKE_GPU on the remote side, as a user would with `env` in their [remote] command.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import sshd_fixture
from agent_fixture import (
    FAST_BUDGET,
    VENV_BIN,
    agent_env,
    busy_spec,
    engine_program_spec,
    read_pids,
    wait_all_gone,
)
from sshd_fixture import SshServer
from wattson.runner import AgentClient, AgentError

ssh_server = sshd_fixture.ssh_server


@pytest.fixture
def remote_env(fake_gpu, tmp_path: Path) -> dict[str, str]:
    spec_path, _ = fake_gpu
    (tmp_path / "jobs").mkdir(exist_ok=True)
    return {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "WATTSON_FAKE_GPU": str(spec_path),
            "WATTSON_LOCK_DIR": str(tmp_path / "locks"), "TMPDIR": str(tmp_path / "jobs")}


@pytest.fixture
def load_file(fake_gpu) -> Path:
    return fake_gpu[1]


def test_describe_and_profile_through_ssh(ssh_server: SshServer, remote_env, load_file, tmp_path):
    with AgentClient.start(ssh_server.prefix(remote_env)) as agent:
        assert agent.argv[0] == "ssh" and agent.argv[-3:] == ["wattson", "agent", "--stdio"]
        desc = agent.call("describe", timeout_s=60)
        assert desc["fake"] is True and desc["devices"][0]["name"] == "Fake H100"
        assert desc["pid"] != os.getpid()
        notes: list[dict] = []
        result = agent.call("profile", {"program": engine_program_spec(load_file, seconds=0.1),
                                        "budget": FAST_BUDGET}, on_progress=notes.append, timeout_s=60)
    assert result["trials"] and result["energy_j"]["median"] > 0
    assert notes  # progress notifications travel back over ssh
    assert list((tmp_path / "jobs").iterdir()) == []


def test_a_dropped_connection_kills_the_remote_job(ssh_server: SshServer, remote_env, load_file, tmp_path):
    pid_file = tmp_path / "remote.pids"
    agent = AgentClient.start(ssh_server.prefix(remote_env))
    try:
        remote_agent_pid = agent.call("describe", timeout_s=60)["pid"]
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
        os.kill(agent.proc.pid, signal.SIGKILL)  # the ssh client dies: the network dropped, the laptop slept
        caller.join(timeout=15)
        assert not caller.is_alive()
        e = outcome["error"]
        assert isinstance(e, AgentError) and e.kind == "agent_died"
        assert "wattson doctor" in e.message
        # On the remote side the agent's stdin closes: it cancels the job and exits.
        assert wait_all_gone([remote_agent_pid, *pids], timeout_s=15) == []
    finally:
        agent.close()


def test_remote_host_without_wattson_on_path(ssh_server: SshServer, remote_env):
    env = {**remote_env, "PATH": "/usr/bin:/bin"}
    with AgentClient.start(ssh_server.prefix(env)) as agent, pytest.raises(AgentError) as err:
        agent.call("describe", timeout_s=60)
    e = err.value
    assert e.kind == "agent_died" and e.data["exit_code"] == 127
    assert "is wattson installed on the remote host" in e.message
    assert "wattson doctor" in e.message


def test_local_agent_env_is_not_needed_for_remote(ssh_server: SshServer, remote_env, tmp_path):
    # The client's own environment has no fake GPU: what the remote side reports comes from there.
    local = agent_env(None, tmp_path)
    local.pop("WATTSON_FAKE_GPU", None)
    with AgentClient.start(ssh_server.prefix(remote_env), env=local) as agent:
        assert agent.call("describe", timeout_s=60)["fake"] is True
