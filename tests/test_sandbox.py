"""The sandbox, attacked for real on the CPU: secrets, big files, CPU hogs, sockets, escaping sleepers.

Every attack also runs once without the sandbox where that shows the attack itself works, so a test
cannot pass because the attack was broken.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from agent_fixture import processes_mentioning
from wattson.profilers.run import measured_run
from wattson.profilers.sandbox import Sandbox, make_sandbox, network_isolation_available

PY = sys.executable
ISOLATION = network_isolation_available()
needs_isolation = pytest.mark.skipif(
    not ISOLATION, reason="unshare cannot create namespaces on this host (not root, no user namespaces)"
)


def run(command: str, cwd: Path, sandbox: Sandbox | None, timeout_s: float = 10, env: dict | None = None):
    return measured_run(command, cwd=cwd, device=None, timeout_s=timeout_s, sandbox=sandbox, env=env)


def wait_gone(marker: str, within_s: float = 3.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while (left := list(processes_mentioning(marker))) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_secrets_in_the_environment_do_not_reach_the_candidate(tmp_path, monkeypatch):
    secrets = {
        "ANTHROPIC_API_KEY": "sk-ant-planted-secret-1",
        "AWS_SECRET_ACCESS_KEY": "planted-secret-2",
        "GITHUB_TOKEN": "planted-secret-3",
        "SSH_AUTH_SOCK": "/tmp/planted-agent.sock",
        "CUDA_API_KEY": "planted-secret-4",  # an allowed prefix does not let a key through
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    reader = f'{PY} -c "import os; print(sorted(os.environ.items()))"'

    unsandboxed = run(reader, tmp_path, None)
    assert "planted-secret-2" in unsandboxed.stdout  # the reader does see what the agent has

    box = make_sandbox(tmp_path)
    result = run(reader, tmp_path, box, env={"OMP_NUM_THREADS": "2", "DB_PASSWORD": "planted-secret-5"})
    assert result.exit_code == 0, result.stderr
    for value in [*secrets.values(), "planted-secret-5"]:
        assert value not in result.stdout
    assert "('CUDA_VISIBLE_DEVICES', '3')" in result.stdout
    assert "('OMP_NUM_THREADS', '2')" in result.stdout
    assert f"('HOME', '{tmp_path}')" in result.stdout
    assert f"('TMPDIR', '{tmp_path / 'tmp'}')" in result.stdout
    assert any("DB_PASSWORD" in w for w in box.warnings)


def test_writing_a_file_past_the_size_limit_fails(tmp_path):
    command = "head -c 300000 /dev/zero > big.bin; echo status=$?"
    unsandboxed = tmp_path / "free"
    unsandboxed.mkdir()
    run(command, unsandboxed, None)
    assert (unsandboxed / "big.bin").stat().st_size == 300000

    result = run(command, tmp_path, make_sandbox(tmp_path, file_size_bytes=65536))
    assert (tmp_path / "big.bin").stat().st_size == 65536
    assert "status=0" not in result.stdout  # head was stopped (SIGXFSZ) at the limit


def test_a_cpu_hog_is_stopped_at_its_cpu_limit(tmp_path):
    start = time.monotonic()
    result = run(f"{PY} -c 'while True: pass'", tmp_path, make_sandbox(tmp_path, cpu_time_s=1), timeout_s=20)
    assert not result.timed_out  # the rlimit ended it, not the wall-clock timeout
    assert result.exit_code != 0
    assert time.monotonic() - start < 10


def test_the_child_gets_the_limits(tmp_path):
    probe = (
        f'{PY} -c "import resource as r; '
        'print([r.getrlimit(k) for k in (r.RLIMIT_CORE, r.RLIMIT_CPU, r.RLIMIT_FSIZE, r.RLIMIT_AS)])"'
    )
    box = make_sandbox(tmp_path, cpu_time_s=30, file_size_bytes=2**20, memory_bytes=2**31)
    result = run(probe, tmp_path, box)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str([(0, 0), (30, 35), (2**20, 2**20), (2**31, 2**31)])


def test_address_space_limit_only_when_asked(tmp_path):
    grab = f"{PY} -c \"b = bytearray(768 * 2**20); print('allocated')\""
    assert "allocated" in run(grab, tmp_path, make_sandbox(tmp_path)).stdout  # default: no AS limit
    limited = run(grab, tmp_path, make_sandbox(tmp_path, memory_bytes=512 * 2**20))
    assert "allocated" not in limited.stdout
    assert "MemoryError" in limited.stderr


@needs_isolation
def test_a_socket_to_localhost_cannot_connect(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted: list[str] = []

    def accept() -> None:
        server.settimeout(5)
        try:
            while True:
                conn, _ = server.accept()
                accepted.append(conn.recv(64).decode())
                conn.close()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    client = (
        f'{PY} -c "import socket, sys\ntry:\n'
        f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    s.sendall(sys.argv[1].encode()); print('connected')\n"
        "except OSError as e:\n    print('blocked', e)\""
    )
    try:
        assert "connected" in run(client + " free", tmp_path, None).stdout
        result = run(client + " boxed", tmp_path, make_sandbox(tmp_path))
        assert "blocked" in result.stdout, result.stdout + result.stderr
        time.sleep(0.2)
        assert accepted == ["free"]
    finally:
        server.close()


def test_a_grandchild_dies_with_its_process_group_on_timeout(tmp_path):
    marker = "37.0101"
    result = run(f"sleep {marker} & echo started; sleep 30", tmp_path, make_sandbox(tmp_path), timeout_s=0.5)
    assert result.timed_out and "started" in result.stdout
    assert wait_gone(marker) == []


def test_a_sleeper_that_outlives_its_parent_is_killed(tmp_path):
    marker = "37.0202"
    result = run(f"(sleep {marker} &); echo parent exits", tmp_path, make_sandbox(tmp_path))
    assert result.exit_code == 0 and "parent exits" in result.stdout
    assert wait_gone(marker) == []


@needs_isolation
def test_a_setsid_escapee_dies_with_the_pid_namespace(tmp_path):
    marker = "37.0303"
    # Without the sandbox, setsid escapes the process group and survives the kill: the attack works.
    free = run(f"setsid sleep {marker} >/dev/null 2>&1 & sleep 30", tmp_path, None, timeout_s=0.5)
    assert free.timed_out
    escaped = list(processes_mentioning(marker))
    try:
        assert escaped, "setsid did not escape the process group; the control run proves nothing"
    finally:
        for pid in escaped:
            os.kill(pid, 9)
    wait_gone(marker)

    boxed = run(
        f"setsid sleep {marker} >/dev/null 2>&1 & sleep 30", tmp_path, make_sandbox(tmp_path), timeout_s=0.5
    )
    assert boxed.timed_out
    assert wait_gone(marker) == []


def test_exit_codes_pass_through(tmp_path):
    assert run("exit 7", tmp_path, make_sandbox(tmp_path)).exit_code == 7
    assert run("echo ok", tmp_path, make_sandbox(tmp_path)).exit_code == 0


def test_without_unshare_the_run_goes_ahead_with_a_warning(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("unshare") is None
    box = make_sandbox(tmp_path)
    assert box.argv(["/bin/true"]) == ["/bin/true"]
    assert len(box.warnings) == 1 and "unshare" in box.warnings[0]
    box.argv(["/bin/true"])
    assert len(box.warnings) == 1  # said once, not once per run


def test_unknown_settings_are_named(tmp_path):
    with pytest.raises(TypeError, match="cpu_seconds.*known: cpu_time_s"):
        make_sandbox(tmp_path, cpu_seconds=5)
