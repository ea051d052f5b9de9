"""`wattson` as a user runs it: real subprocesses, real nvcc builds, fake GPU sensors only."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sshd_fixture
from wattson.store import History
from wattson_cli import FAKE_PROGRAM, fake_programs_running, run_wattson, wattson_cmd

ssh_server = sshd_fixture.ssh_server

FAST = ["--min-trials", "3", "--max-trials", "4", "--max-wall-s", "20"]

KERNEL = """\
#include <cstdio>
__global__ void scale(float* x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] *= 2.0f; }
int main() { scale<<<1, 32>>>(nullptr, 0); printf("PASS\\n"); return 0; }
"""


def make_project(root: Path, load_file: Path, *, seconds: float = 0.2, work: float = 1.0, exit_code: int = 0,
                 source: str = KERNEL, timeout_s: float = 30, name: str = "app") -> Path:
    """A project whose build compiles the .cu for real and whose run plays it on the fake GPU."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.cu").write_text(source)
    run = (f"{sys.executable} {FAKE_PROGRAM} --load-file {load_file} --seconds {seconds} --work {work} "
           f"--exit {exit_code} --print PASS")
    (folder / "wattson.toml").write_text(
        f'[build]\ncommand = "nvcc -arch=sm_90 -c {name}.cu -o {name}.o"\n'
        f"[run]\ncommand = {json.dumps(run)}\ntimeout_s = {timeout_s}\n"
        "[measure]\ncooldown_cap_s = 0.2\n")
    return folder / f"{name}.cu"


def test_profile_prints_a_table_and_stores_history(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    src = make_project(tmp_path, load)
    proc = run_wattson(["profile", str(src), *FAST], cli_env)
    assert proc.returncode == 0, proc.stderr
    for row in ("Energy", "Time", "Average power", "Peak power", "Energy × delay", "Trials", "GPU",
                "State at start", "State at end"):
        assert row in proc.stdout
    assert "Fake H100" in proc.stdout
    with History(Path(cli_env["WATTSON_DB"])) as h:
        stored = h.latest_profile(str(src.resolve()))
    assert stored is not None and stored.result["energy_j"]["median"] > 0


def test_profile_json_has_energy_with_ci(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    src = make_project(tmp_path, load, seconds=0.3)
    proc = run_wattson(["profile", str(src), "--json", *FAST], cli_env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    e = result["energy_j"]
    assert e["ci_low"] <= e["median"] <= e["ci_high"]
    # 0.3 s at 350 W on the fake is ~105 J of busy energy; the whole-process window adds idle time.
    assert 95 < e["median"] < 200
    assert result["device"]["name"] == "Fake H100"
    assert len(result["trials"]) >= 3


def test_compare_detects_planted_extra_work(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    a = make_project(tmp_path, load, seconds=0.3, work=1.0, name="a")
    b = make_project(tmp_path, load, seconds=0.3, work=1.2, name="b")
    proc = run_wattson(["compare", str(a), str(b), "--json", "--min-trials", "4", "--max-trials", "6",
                        "--max-wall-s", "40"], cli_env)
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout)["energy_ratio"]
    assert verdict["kind"] == "more", verdict
    assert verdict["ci_low"] > 1.0


def test_compare_two_run_commands(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    cmd = f"{sys.executable} {FAKE_PROGRAM} --load-file {load} --seconds 0.2"
    proc = run_wattson(["compare", cmd, cmd + " --work 1.0", *FAST], cli_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "B / A" in proc.stdout


def test_missing_and_non_cuda_files_are_usage_errors(tmp_path, cli_env):
    proc = run_wattson(["profile", str(tmp_path / "nope.cu")], cli_env)
    assert proc.returncode == 2 and "nope.cu" in proc.stderr and "Traceback" not in proc.stderr
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    proc = run_wattson(["profile", str(txt)], cli_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_compile_error_shows_compiler_output_with_line(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    src = make_project(tmp_path, load, source="__global__ void k() { int x = ; }\nint main() { return 0; }\n")
    proc = run_wattson(["profile", str(src)], cli_env)
    assert proc.returncode == 3, proc.stderr
    assert "app.cu(1)" in proc.stderr and "error" in proc.stderr


def test_failing_program_keeps_its_output(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    src = make_project(tmp_path, load, exit_code=7)
    proc = run_wattson(["profile", str(src)], cli_env)
    assert proc.returncode == 4, proc.stderr
    assert "7" in proc.stderr and "PASS" in proc.stderr


def test_timeout_kills_the_program(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    src = make_project(tmp_path, load, seconds=30, timeout_s=1)
    t0 = time.monotonic()
    proc = run_wattson(["profile", str(src)], cli_env)
    assert proc.returncode == 4, proc.stderr
    assert "time" in proc.stderr.lower()
    assert time.monotonic() - t0 < 25
    assert not fake_programs_running(str(load))


def test_no_gpu_says_so_and_suggests_remote(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    src = make_project(tmp_path, load)
    env = dict(cli_env)
    empty = tmp_path / "no-gpu.json"
    empty.write_text('{"devices": []}')
    env["WATTSON_FAKE_GPU"] = str(empty)
    proc = run_wattson(["profile", str(src)], env)
    assert proc.returncode == 5, proc.stderr
    assert "--remote" in proc.stderr


def test_ctrl_c_leaves_no_process(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    src = make_project(tmp_path, load, seconds=5)
    proc = subprocess.Popen(wattson_cmd() + ["profile", str(src)], env=cli_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        if fake_programs_running(str(load)):
            break
        time.sleep(0.05)
    assert fake_programs_running(str(load)), "the program never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    time.sleep(0.5)
    assert not fake_programs_running(str(load))


def test_lassi_ee_protocol_is_one_run_without_ci(tmp_path, cli_env, fake_gpu):
    _, load = fake_gpu
    src = make_project(tmp_path, load, seconds=0.3)
    proc = run_wattson(["profile", str(src), "--protocol", "lassi-ee", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["protocol"] == "lassi-ee"
    assert len(result["trials"]) == 1
    assert any("single" in w.lower() for w in result["warnings"])


def test_profile_through_a_remote_prefix(tmp_path, cli_env, fake_gpu, ssh_server):
    """`--remote` runs the same agent behind ssh: here a real sshd on loopback."""
    _, load = fake_gpu
    src = make_project(tmp_path, load)
    remote_env = {"WATTSON_FAKE_GPU": cli_env["WATTSON_FAKE_GPU"],
                  "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    prefix = " ".join(shlex.quote(a) for a in ssh_server.prefix(remote_env))
    env = dict(cli_env)
    env.pop("WATTSON_FAKE_GPU")  # the local machine has no GPU; only the remote one does
    env["WATTSON_FAKE_GPU"] = str(tmp_path / "none.json")
    (tmp_path / "none.json").write_text('{"devices": []}')
    proc = run_wattson(["profile", str(src), "--remote", prefix, "--json", *FAST], env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["device"]["name"] == "Fake H100"


@pytest.mark.parametrize(("flags", "toml_copies", "expected"), [
    (["--kernel-copies"], None, "1"),
    (["--kernels"], "true", "1"),  # wattson.toml's [measure] kernel_copies
    (["--kernels"], None, "no"),
])
def test_profile_kernel_copies_asks_the_tracer_for_copies(tmp_path, cli_env, fake_gpu, flags, toml_copies,
                                                          expected):
    _, load = fake_gpu
    src = make_project(tmp_path, load, seconds=0.1)
    seen, probe = tmp_path / "seen", tmp_path / "probe.py"
    probe.write_text("import os, sys\ntraced = 'WATTSON_KERNEL_TRACE' in os.environ\n"
                     "copies = os.environ.get('WATTSON_KERNEL_TRACE_COPIES', 'no') if traced else '-'\n"
                     "open(sys.argv[1], 'a').write(copies + '\\n')\n")
    toml = src.parent / "wattson.toml"
    run_line = next(line for line in toml.read_text().splitlines()
                    if line.startswith("command = ") and "--load-file" in line)
    probed = f"{sys.executable} {probe} {seen} && " + json.loads(run_line.removeprefix("command = "))
    text = toml.read_text().replace(run_line, f"command = {json.dumps(probed)}")
    if toml_copies is not None:
        text = text.replace("[measure]\n", f"[measure]\nkernel_copies = {toml_copies}\n") if "[measure]\n" in text \
            else text + f"\n[measure]\nkernel_copies = {toml_copies}\n"
    toml.write_text(text)
    proc = run_wattson(["profile", str(src), *flags, "--json", *FAST], cli_env)
    assert proc.returncode == 0, proc.stderr
    lines = seen.read_text().split()
    if set(lines) == {"-"}:  # no traced run at all: the tracer could not be built on this machine
        pytest.skip(f"the tracer could not be built here: {json.loads(proc.stdout)['warnings']}")
    assert lines[-1] == expected and set(lines[:-1]) == {"-"}  # only the extra traced run


def test_doctor_says_each_missing_sensor_once_with_the_next_step(tmp_path, cli_env, fake_gpu):
    spec_path, _ = fake_gpu
    spec = json.loads(spec_path.read_text())
    spec["devices"][0].update(no_energy_counter=True, no_instant_power=False)
    spec["devices"].append({**spec["devices"][0], "name": "Fake H100 without power", "no_energy_counter": False,
                            "no_instant_power": True})
    spec_path.write_text(json.dumps(spec))
    proc = run_wattson(["doctor", "--json", "--probe-s", "0.5"], cli_env)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    said = [f"{r['detail']} {r['next']}" for r in rows]
    assert sum("energy counter" in r["item"] and r["status"] == "missing" for r in rows) == 1
    assert sum("no usable energy counter" in s or "not available on this GPU" in s for s in said) == 1
    assert sum("instant power" in r["item"] and r["status"] != "ok" for r in rows) == 1
    assert sum("no instant power" in s or ("instant power" in r["item"] and "not available" in s)
               for r, s in zip(rows, said, strict=True)) == 1
    for r in rows:
        assert r["status"] == "ok" or r["next"] or r["item"].endswith("note"), r
