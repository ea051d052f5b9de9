"""host_load: the host's load average and the hypervisor's steal time over a measurement, as the user sees them."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from test_spread import host_bound_runs
from wattson.profilers import host_load
from wattson.profilers.host_load import HostLoad, HostSnapshot
from wattson.profilers.spread import explain, time_bound_spread
from wattson_cli import FAKE_PROGRAM, run_wattson

TICKS = os.sysconf("SC_CLK_TCK")


def stat_file(tmp_path: Path, first_line: str) -> Path:
    path = tmp_path / "stat"
    path.write_text(first_line + "\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 12345\n")
    return path


def test_steal_is_the_eighth_column_of_the_all_cpus_line_or_of_one_cpus(tmp_path):
    path = stat_file(tmp_path, f"cpu  1129584 2601 337248 9209707 16118 0 4214 {3 * TICKS} 0 0")
    assert host_load.steal_s(path) == pytest.approx(3.0)
    assert host_load.steal_s(path, cpu=0) == pytest.approx(8 / TICKS)  # "cpu0 1 2 3 4 5 6 7 8 0 0"
    assert host_load.steal_s(path, cpu=1) is None


def test_no_steal_where_the_kernel_does_not_report_it(tmp_path):
    assert host_load.steal_s(stat_file(tmp_path, "cpu  1 2 3 4 5 6 7")) is None  # a kernel without the column
    assert host_load.steal_s(tmp_path / "absent") is None


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="no /proc/stat here")
def test_this_machine_reports_steal_and_load():
    snap = host_load.snapshot()
    assert snap.steal_s is not None and snap.steal_s >= 0 and snap.load_1m is not None


def test_steal_share_is_of_all_cpus_time_over_the_span():
    start = HostSnapshot(monotonic_s=100.0, load_1m=0.5, steal_s=10.0)
    end = HostSnapshot(monotonic_s=110.0, load_1m=1.5, steal_s=14.0)
    load = host_load.between(start, end, cpus=8)
    assert load.steal_fraction == pytest.approx(4.0 / (10.0 * 8))
    assert (load.load_1m_start, load.load_1m_end, load.cpus) == (0.5, 1.5, 8)
    assert host_load.between(start, HostSnapshot(110.0, 1.5, None), cpus=8).steal_fraction is None
    assert HostLoad.from_dict(json.loads(json.dumps(load.to_dict()))) == load


def test_only_a_busy_host_or_notable_steal_is_worth_a_note():
    quiet = HostLoad(cpus=16, load_1m_start=0.2, load_1m_end=1.1, steal_fraction=0.001)
    assert host_load.busy_note(quiet) is None
    assert host_load.line(quiet) == "load average 0.2 -> 1.1 on 16 CPUs · hypervisor steal 0.1 %"
    busy = HostLoad(cpus=16, load_1m_start=18.0, load_1m_end=20.5, steal_fraction=0.06)
    note = host_load.busy_note(busy)
    assert note == ("the host was busy (load average up to 20.5 on 16 CPUs) and the hypervisor gave 6 % of "
                    "this machine's CPU time to other guests")
    assert host_load.busy_note(HostLoad(cpus=4, load_1m_start=None, load_1m_end=None, steal_fraction=None)) is None
    # The measured program itself keeps one CPU busy: on 2 CPUs a load of 2 is not yet a busy host.
    assert host_load.busy_note(HostLoad(cpus=2, load_1m_start=0.5, load_1m_end=2.0, steal_fraction=0.0)) is None
    assert "busy" in host_load.busy_note(HostLoad(cpus=2, load_1m_start=0.5, load_1m_end=3.0, steal_fraction=0.0))
    assert host_load.line(HostLoad(cpus=4, load_1m_start=None, load_1m_end=None, steal_fraction=None)) == ""


def test_the_spread_note_carries_what_the_host_did():
    found = time_bound_spread([host_bound_runs(1), host_bound_runs(2)])
    note = "the hypervisor gave 6 % of this machine's CPU time to other guests"
    pinned = explain(found, idle_w=79, trials_done=8, half_width=0.10, target_half_width=0.02,
                     seconds_per_trial=5.0, pinned_cpus=1, host_note=note)
    assert f"even with each run pinned to 1 CPU; during the trials {note}; a +-2.0 % interval" in pinned
    free = explain(found, idle_w=79, trials_done=8, half_width=0.10, target_half_width=0.02,
                   seconds_per_trial=5.0, host_note=note)
    assert f"not from the sensor; during the trials {note}. Pinning the program" in free
    assert "during the trials" not in explain(found, idle_w=79, trials_done=8, half_width=0.10,
                                              target_half_width=0.02, seconds_per_trial=5.0)


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="no /proc/stat here")
def test_profile_and_compare_report_the_host_load(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    cmd = f"{sys.executable} {FAKE_PROGRAM} --load-file {load} --seconds 0.2"
    budget = ["--min-trials", "3", "--max-trials", "3", "--max-wall-s", "30"]
    proc = run_wattson(["compare", cmd, cmd + " --work 1.0", "--json", *budget], cli_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    host = json.loads(proc.stdout)["host"]
    assert host["cpus"] == os.cpu_count() and host["load_1m_start"] is not None
    assert 0 <= host["steal_fraction"] < 1
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "app.cu").write_text("int main() { return 0; }\n")
    (folder / "wattson.toml").write_text(f'[build]\ncommand = "true"\n[run]\ncommand = {json.dumps(cmd)}\n'
                                         "[measure]\ncooldown_cap_s = 0.2\nmin_trials = 3\nmax_trials = 3\n")
    proc = run_wattson(["profile", str(folder / "app.cu")], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "Host load" in proc.stdout and "load average" in proc.stdout and "steal" in proc.stdout  # may wrap


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="no /proc/stat here")
def test_doctor_says_what_the_host_did_while_it_watched_the_sensors(cli_env, fake_gpu):
    proc = run_wattson(["doctor", "--json", "--probe-s", "0.5"], cli_env)
    assert proc.returncode == 0, proc.stderr
    host = [r for r in json.loads(proc.stdout)["rows"] if r["item"] == "local: host"]
    assert len(host) == 1 and "load average" in host[0]["detail"] and "hypervisor steal" in host[0]["detail"]


def test_a_busy_host_is_a_warning_with_what_to_do():
    from wattson.doctor import _host_row

    row = _host_row("remote (ssh gpu01)", {"cpus": 8, "load_1m_start": 12.0, "load_1m_end": 12.5,
                                           "steal_fraction": 0.0})
    assert row["status"] == "warn" and row["item"] == "remote (ssh gpu01): host"
    assert "the host was busy (load average up to 12.5 on 8 CPUs)" in row["detail"]
    assert "--pin-cpus 1" in row["next"]
    quiet = _host_row("local", {"cpus": 8, "load_1m_start": 0.1, "load_1m_end": 0.2, "steal_fraction": 0.0})
    assert quiet["status"] == "ok" and quiet["next"] == ""
