"""Pinning measured runs to host CPUs ([measure] pin_cpus, --pin-cpus): the choice, the child, the CLI."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from wattson.profilers.cpu_pinning import choose_cpus, pin_note
from wattson.profilers.run import RunError, measured_run
from wattson_cli import FAKE_PROGRAM, run_wattson

AFFINITY = "import os, sys; open(sys.argv[1], 'a').write(' '.join(map(str, sorted(os.sched_getaffinity(0)))) + '\\n')"


def test_cores_near_the_gpu_are_preferred_from_the_high_end():
    assert choose_cpus(1, near_gpu=[0, 1, 2, 3], allowed=range(8)) == [3]
    assert choose_cpus(2, near_gpu=[4, 5, 6, 7], allowed=range(8)) == [6, 7]
    assert choose_cpus(0, near_gpu=[0], allowed=range(8)) == []


def test_without_enough_near_cores_any_allowed_ones_do():
    assert choose_cpus(2, near_gpu=None, allowed=[0, 1, 2]) == [1, 2]
    assert choose_cpus(3, near_gpu=[9, 10], allowed=[0, 1, 2, 9]) == [1, 2, 9]  # 10 is not ours to use
    assert choose_cpus(5, near_gpu=None, allowed=[0, 1]) == [0, 1]
    note = pin_note([0, 1], 5, None, allowed=[0, 1])
    assert "CPUs 0, 1" in note and "5 were asked for, only 2 are available" in note
    assert "(near the GPU)" in pin_note([3], 1, [2, 3], allowed=range(8))
    assert "names every CPU here as near the GPU" in pin_note([7], 1, range(8), allowed=range(8))


def test_a_pinned_run_and_its_children_stay_on_the_chosen_cpu(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU here: pinned and free runs would look the same")
    cpu = sorted(os.sched_getaffinity(0))[-1]
    seen = tmp_path / "seen"
    # The shell starts Python as a child: the binding must reach it.
    m = measured_run(f"{sys.executable} -c \"{AFFINITY}\" {seen}", cwd=tmp_path, device=None, timeout_s=20,
                     cpus=[cpu])
    assert m.exit_code == 0, m.stderr
    assert seen.read_text().split() == [str(cpu)]
    seen.unlink()
    measured_run(f"{sys.executable} -c \"{AFFINITY}\" {seen}", cwd=tmp_path, device=None, timeout_s=20)
    assert seen.read_text().split() == [str(c) for c in sorted(os.sched_getaffinity(0))]
    assert os.sched_getaffinity(0) == set(range(os.cpu_count() or 1)) & os.sched_getaffinity(0)  # ours restored


def test_cpus_that_cannot_be_used_stop_the_run_with_the_next_step(tmp_path):
    before = os.sched_getaffinity(0)
    with pytest.raises(RunError) as info:
        measured_run("true", cwd=tmp_path, device=None, timeout_s=10, cpus=[4000])
    assert "cannot pin the run to CPU(s) 4000" in str(info.value) and "pin_cpus" in str(info.value)
    assert os.sched_getaffinity(0) == before


@pytest.mark.parametrize("pin", [True, False])
def test_compare_pins_a_and_b_to_the_same_cpu(tmp_path, cli_env, fake_gpu, pin):
    _, load = fake_gpu
    seen = tmp_path / "seen"
    cmd = (f"{sys.executable} -c \"{AFFINITY}\" {seen} && "
           f"{sys.executable} {FAKE_PROGRAM} --load-file {load} --seconds 0.2")
    flags = ["--pin-cpus", "1"] if pin else []
    proc = run_wattson(["compare", cmd, cmd + " --work 1.0", "--json", "--min-trials", "3", "--max-trials", "3",
                        "--max-wall-s", "30", *flags], cli_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    lines = set(seen.read_text().splitlines())
    if pin:
        pinned = result["host_cpus"]["pinned"]
        assert len(pinned) == 1 and lines == {str(pinned[0])}  # warm-ups and trials, A and B alike
        assert result["budget"]["pin_cpus"] == 1
        assert result["host_cpus"]["note"].startswith(f"each run pinned to CPU {pinned[0]}")
    else:
        assert "host_cpus" not in result
        assert lines == {" ".join(str(c) for c in sorted(os.sched_getaffinity(0)))}


def test_pin_cpus_from_wattson_toml_and_its_errors(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "app.cu").write_text("int main() { return 0; }\n")
    run = f"{sys.executable} {FAKE_PROGRAM} --load-file {load} --seconds 0.2 --print PASS"
    toml = folder / "wattson.toml"
    toml.write_text(f'[build]\ncommand = "true"\n[run]\ncommand = {json.dumps(run)}\n'
                    "[measure]\ncooldown_cap_s = 0.2\npin_cpus = 1\nmin_trials = 3\nmax_trials = 3\n")
    proc = run_wattson(["profile", str(folder / "app.cu")], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "Host CPUs" in proc.stdout and "each run pinned to CPU" in proc.stdout
    toml.write_text(toml.read_text().replace("pin_cpus = 1", "pin_cpus = -1"))
    proc = run_wattson(["profile", str(folder / "app.cu")], cli_env)
    assert proc.returncode == 2 and "pin_cpus" in proc.stderr and str(Path(toml)) in proc.stderr, proc.stderr


def test_lassi_ee_says_it_did_not_pin_and_stays_free(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    seen = tmp_path / "seen"
    cmd = (f"{sys.executable} -c \"{AFFINITY}\" {seen} && "
           f"{sys.executable} {FAKE_PROGRAM} --load-file {load} --seconds 0.2")
    proc = run_wattson(["compare", cmd, cmd, "--json", "--protocol", "lassi-ee", "--pin-cpus", "1"], cli_env,
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert "host_cpus" not in result
    assert any("pin_cpus was not applied: the lassi-ee protocol" in w for w in result["warnings"])
    assert set(seen.read_text().splitlines()) == {" ".join(str(c) for c in sorted(os.sched_getaffinity(0)))}
