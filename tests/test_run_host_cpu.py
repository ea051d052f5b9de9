"""measured_run's host CPU time (wait4's rusage of the whole reaped tree), with real subprocesses.

The GPU sensors are the only fake; here no device is needed at all (time-only runs)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import pytest
from agent_fixture import pid_alive
from wattson.profilers.run import RunMeasurement, measured_run
from wattson.profilers.sandbox import make_sandbox, network_isolation_available

# Burns about 0.3 s of CPU in a python3 grandchild of the shell (sh -c -> sh -> python).
BURN_PY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3:\n    pass\n"


def burn(folder: Path) -> str:
    (folder / "burn.py").write_text(BURN_PY)
    return f"sh -c '{shlex.quote(sys.executable)} burn.py'"


def test_cpu_burnt_in_a_grandchild_is_counted(tmp_path: Path):
    m = measured_run(f"{burn(tmp_path)}; true", cwd=tmp_path, device=None, timeout_s=20)
    assert m.exit_code == 0, m.stderr
    assert m.host_cpu_s is not None and m.host_cpu_s >= 0.2, m.host_cpu_s
    assert m.host_cpu_s <= m.duration_s * 2 + 0.2  # one core, give or take start-up of two processes


def test_a_sleeping_program_uses_almost_no_cpu(tmp_path: Path):
    m = measured_run("sleep 0.3", cwd=tmp_path, device=None, timeout_s=10)
    assert m.exit_code == 0 and m.duration_s >= 0.3
    assert m.host_cpu_s is not None and m.host_cpu_s < 0.1, m.host_cpu_s


@pytest.mark.parametrize(("command", "code"), [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", -15),
                                              ("kill -SEGV $$", -11)])
def test_exit_codes_and_signals_are_decoded(tmp_path: Path, command: str, code: int):
    m = measured_run(command, cwd=tmp_path, device=None, timeout_s=10)
    assert m.exit_code == code
    assert not m.timed_out and m.failed == (code != 0)
    assert m.host_cpu_s is not None


def test_a_timeout_still_kills_the_group_and_reports_no_exit_code(tmp_path: Path):
    pid_file = tmp_path / "pids"
    # A grandchild sleeper in the same group: it must die with the group at the time limit.
    command = f"sleep 30 & echo $! > {pid_file}; wait"
    start = time.monotonic()
    m = measured_run(command, cwd=tmp_path, device=None, timeout_s=0.3)
    assert m.timed_out and m.exit_code is None and m.failed
    assert time.monotonic() - start < 5
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pid_alive(grandchild):
        time.sleep(0.02)
    assert not pid_alive(grandchild)


@pytest.mark.skipif(not network_isolation_available(), reason="namespaces are not allowed on this host")
def test_cpu_time_inside_the_sandbox_is_counted_too(tmp_path: Path):
    sandbox = make_sandbox(tmp_path)
    m = measured_run(burn(tmp_path), cwd=tmp_path, device=None, timeout_s=20, sandbox=sandbox)
    assert m.exit_code == 0, m.stderr
    assert m.host_cpu_s is not None and m.host_cpu_s >= 0.2, m.host_cpu_s


def test_the_record_carries_host_cpu_time_and_old_records_read_as_unknown(tmp_path: Path):
    m = measured_run("true", cwd=tmp_path, device=None, timeout_s=10)
    d = m.to_dict()
    assert d["host_cpu_s"] == m.host_cpu_s
    assert RunMeasurement.from_dict(d).host_cpu_s == m.host_cpu_s
    old = {k: v for k, v in d.items() if k != "host_cpu_s"}
    assert RunMeasurement.from_dict(old).host_cpu_s is None


