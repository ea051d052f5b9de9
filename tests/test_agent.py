"""`wattson agent --stdio` end to end: a real agent process over real pipes, the fake GPU's sensors,
real nvcc builds, real programs; cancel, GPU locking and a vanishing client leave no process behind."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from agent_fixture import (
    FAST_BUDGET,
    agent_env,
    busy_spec,
    engine_program_spec,
    no_gpu_spec,
    read_message,
    read_pids,
    read_reply,
    rpc,
    start_raw_agent,
    wait_all_gone,
)
from wattson.profilers.gpu_lock import GpuBusy, GpuLock, lock_key
from wattson.runner import AgentClient, AgentError

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")

CU_OK = """\
#include <cstdio>
__global__ void scale(float *x, float a) { x[threadIdx.x] *= a; }
int main() { std::printf("built\\n"); return 0; }
"""

CU_BROKEN = """\
__global__ void scale(float *x, float a) { x[threadIdx.x] *= a; }
int main() {
    scale<<<1, 32>>>(nullptr, undeclared_factor);
    return 0;
}
"""


@pytest.fixture
def env(fake_gpu, tmp_path: Path) -> dict[str, str]:
    spec_path, _ = fake_gpu
    return agent_env(spec_path, tmp_path)


@pytest.fixture
def load_file(fake_gpu) -> Path:
    return fake_gpu[1]


def _jobs_left(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "jobs").iterdir())


# --- framing and describe --------------------------------------------------------------------------

def test_framing_errors_are_json_rpc_errors_and_the_agent_keeps_serving(env):
    proc = start_raw_agent(env)
    try:
        rpc(proc, b"this is not json\n")
        reply = read_message(proc)
        assert reply["id"] is None and reply["error"]["code"] == -32700
        rpc(proc, b"[1, 2]\n")
        assert read_message(proc)["error"]["code"] == -32600
        rpc(proc, {"jsonrpc": "2.0", "id": 7, "method": "no_such_method", "params": {}})
        reply = read_reply(proc, 7)
        assert reply["error"]["code"] == -32601 and "describe" in reply["error"]["message"]
        rpc(proc, {"jsonrpc": "2.0", "id": "d", "method": "describe"})
        reply = read_reply(proc, "d")
        assert reply["result"]["fake"] is True
        rpc(proc, {"jsonrpc": "2.0", "id": 8, "method": "shutdown", "params": {}})
        assert read_reply(proc, 8)["result"] == {}
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_describe_reports_the_fake_gpu_and_its_arch(env):
    with AgentClient.start(env=env) as agent:
        desc = agent.call("describe", timeout_s=30)
    assert desc["fake"] is True
    assert desc["protocol_version"] == 1
    assert desc["host"] and desc["python"].startswith("3.")
    [gpu] = desc["devices"]
    assert gpu["name"] == "Fake H100" and gpu["arch"] == "sm_90" and gpu["has_energy_counter"]
    assert isinstance(desc["toolchains"], dict)


# --- build -----------------------------------------------------------------------------------------

@needs_nvcc
def test_build_ok_with_wattson_arch_and_the_job_folder_removed(env, tmp_path):
    program = {"name": "scale", "files": {"src/scale.cu": {"text": CU_OK}}, "workdir": "src",
               "build": 'echo "arch=$WATTSON_ARCH" && nvcc -arch="$WATTSON_ARCH" -o scale scale.cu',
               "run": "./scale"}
    notes: list[dict] = []
    with AgentClient.start(env=env) as agent:
        result = agent.call("build", {"program": program, "job_id": "b1"}, on_progress=notes.append,
                            timeout_s=120)
    assert result["ok"], result["output"]
    assert result["job_id"] == "b1" and result["exit_code"] == 0 and result["arch"] == "sm_90"
    assert "arch=sm_90" in result["output"]
    assert result["duration_s"] > 0
    assert [n["stage"] for n in notes] == ["build"] and notes[0]["job_id"] == "b1"
    assert _jobs_left(tmp_path) == []


@needs_nvcc
def test_build_error_is_a_result_with_the_compilers_file_and_line(env, tmp_path):
    program = {"name": "broken", "files": {"broken.cu": {"text": CU_BROKEN}},
               "build": "nvcc -arch=$WATTSON_ARCH -o broken broken.cu", "run": "./broken"}
    with AgentClient.start(env=env) as agent:
        result = agent.call("build", {"program": program}, timeout_s=120)
    assert result["ok"] is False and result["exit_code"] not in (0, None)
    assert "broken.cu(3)" in result["output"] and "error" in result["output"]
    assert _jobs_left(tmp_path) == []


def test_build_timeout_kills_the_whole_build(env, tmp_path):
    pid_file = tmp_path / "build.pids"
    program = {"name": "slow", "files": {},
               "build": f"sleep 300 & echo $! > {pid_file}; echo $$ >> {pid_file}; wait",
               "build_timeout_s": 0.5, "run": "true"}
    with AgentClient.start(env=env) as agent:
        started_s = time.monotonic()
        result = agent.call("build", {"program": program}, timeout_s=30)
        assert time.monotonic() - started_s < 5
    assert result["ok"] is False and result["timed_out"] is True
    assert "build_timeout_s" in result["output"]
    assert wait_all_gone(read_pids(pid_file)) == []


@pytest.mark.parametrize("bad_name", ["/etc/passwd", "../escape.cu", "a/../../escape.cu"])
def test_files_outside_the_job_folder_are_refused(env, tmp_path, bad_name):
    program = {"name": "evil", "files": {bad_name: {"text": "x"}}, "build": None, "run": "true"}
    with AgentClient.start(env=env) as agent, pytest.raises(AgentError) as err:
        agent.call("build", {"program": program}, timeout_s=30)
    assert err.value.code == -32602 and err.value.kind == "bad_program"
    assert "relative" in err.value.message or "inside" in err.value.message
    assert not (tmp_path / "escape.cu").exists() and _jobs_left(tmp_path) == []


# --- measurement -------------------------------------------------------------------------------------

def test_profile_on_the_fake_gpu(env, load_file, tmp_path):
    notes: list[dict] = []
    with AgentClient.start(env=env) as agent:
        result = agent.call("profile", {"program": engine_program_spec(load_file, seconds=0.1),
                                        "budget": FAST_BUDGET, "protocol": "wattson", "job_id": "p1"},
                            on_progress=notes.append, timeout_s=60)
    assert result["protocol"] == "wattson"
    assert 2 <= len(result["trials"]) <= 3
    assert result["energy_j"]["median"] > 0
    assert result["device"]["name"] == "Fake H100"
    assert all(t["exit_code"] == 0 for t in result["trials"])
    assert notes and {n["job_id"] for n in notes} == {"p1"}
    assert json.loads(json.dumps(result)) == result  # plain JSON, no NaN
    assert _jobs_left(tmp_path) == []


def test_compare_on_the_fake_gpu(env, load_file):
    a = engine_program_spec(load_file, seconds=0.1, name="a")
    b = engine_program_spec(load_file, seconds=0.1, name="b")
    with AgentClient.start(env=env) as agent:
        result = agent.call("compare", {"a": a, "b": b, "budget": FAST_BUDGET}, timeout_s=60)
    assert result["energy_ratio"]["kind"] in ("less", "same", "more")
    assert result["energy_ratio"]["text"]


def test_program_failure_carries_exit_code_and_output(env, load_file):
    spec = busy_spec(load_file, seconds=0.05, exit_code=3)
    with AgentClient.start(env=env) as agent, pytest.raises(AgentError) as err:
        agent.call("profile", {"program": spec, "budget": FAST_BUDGET}, timeout_s=60)
    assert err.value.kind == "program_failed" and err.value.code == -32003
    assert "exited with code 3" in err.value.message
    assert err.value.data["exit_code"] == 3
    assert "PASS" in err.value.data["stdout_tail"] and "busy program done" in err.value.data["stderr_tail"]


def test_build_failure_stops_a_profile(env):
    program = {"name": "nobuild", "files": {}, "build": "echo 'x.cu(1): error: nope' >&2; exit 2",
               "run": "true"}
    with AgentClient.start(env=env) as agent, pytest.raises(AgentError) as err:
        agent.call("profile", {"program": program, "budget": FAST_BUDGET}, timeout_s=60)
    assert err.value.kind == "build_failed" and "x.cu(1): error: nope" in err.value.data["output"]


def test_no_gpu_suggests_remote(tmp_path):
    env = agent_env(no_gpu_spec(tmp_path), tmp_path)
    with AgentClient.start(env=env) as agent:
        assert agent.call("describe", timeout_s=30)["devices"] == []
        with pytest.raises(AgentError) as err:
            agent.call("profile", {"program": busy_spec(tmp_path / "load"), "budget": FAST_BUDGET},
                       timeout_s=30)
    assert err.value.kind == "no_gpu" and err.value.code == -32001
    assert "--remote" in err.value.message


def test_budget_and_device_checks(env, load_file):
    with AgentClient.start(env=env) as agent:
        # A field this agent does not know (a typo, or a newer client) is ignored, and the result says so.
        result = agent.call("profile", {"program": busy_spec(load_file, seconds=0.05),
                                        "budget": {**FAST_BUDGET, "max_trails": 3}}, timeout_s=60)
        assert any("max_trails" in w for w in result["warnings"])
        with pytest.raises(AgentError) as err:
            agent.call("profile", {"program": busy_spec(load_file),
                                   "budget": {"min_trials": 5, "max_trials": 2}}, timeout_s=30)
        assert err.value.code == -32602 and "max_trials" in err.value.message
        with pytest.raises(AgentError) as err:
            agent.call("profile", {"program": busy_spec(load_file), "device": 4}, timeout_s=30)
        assert err.value.code == -32602 and "GPU 4 does not exist" in err.value.message


# --- cancel, locks, a vanishing client ---------------------------------------------------------------

def test_cancel_mid_job_leaves_no_process(env, load_file, tmp_path):
    pid_file = tmp_path / "job.pids"
    spec = busy_spec(load_file, seconds=60, pid_file=pid_file)
    outcome: dict[str, BaseException] = {}
    with AgentClient.start(env=env) as agent:
        def run() -> None:
            try:
                agent.call("profile", {"program": spec, "budget": FAST_BUDGET, "job_id": "c1"}, timeout_s=60)
            except BaseException as e:  # noqa: BLE001 - the test inspects it
                outcome["error"] = e

        caller = threading.Thread(target=run)
        caller.start()
        pids = read_pids(pid_file)
        assert agent.call("cancel", {"job_id": "c1"}, timeout_s=10) == {"cancelled": True}
        caller.join(timeout=20)
        assert not caller.is_alive()
        assert agent.call("cancel", {"job_id": "c1"}, timeout_s=10) == {"cancelled": False}
    err = outcome["error"]
    assert isinstance(err, AgentError) and err.kind == "cancelled"
    assert wait_all_gone(pids, timeout_s=5) == []
    assert _jobs_left(tmp_path) == []


def test_a_second_agent_waits_for_the_gpu_and_says_so(env, load_file, tmp_path):
    pid_file = tmp_path / "first.pids"
    # 3 s: the second job builds before it asks for the GPU, and on a loaded CI machine a 1 s first
    # job was sometimes over by then (no wait to report).
    first_spec = busy_spec(load_file, seconds=3.0, pid_file=pid_file)
    notes: list[dict] = []
    results: dict[str, dict] = {}
    with AgentClient.start(env=env) as first, AgentClient.start(env=env) as second:
        first_pid = first.call("describe", timeout_s=30)["pid"]
        budget = {**FAST_BUDGET, "min_trials": 1, "max_trials": 1}

        def run_first() -> None:
            results["first"] = first.call("profile", {"program": first_spec, "budget": budget}, timeout_s=60)

        t = threading.Thread(target=run_first)
        t.start()
        read_pids(pid_file)  # the first job is measuring now
        results["second"] = second.call("profile", {"program": busy_spec(load_file, seconds=0.05),
                                                    "budget": budget}, on_progress=notes.append, timeout_s=60)
        t.join(timeout=30)
    waits = [n["message"] for n in notes if n["stage"] == "wait-gpu"]
    assert waits == [f"waiting for GPU 0: another measurement is running (pid {first_pid})"]
    assert results["first"]["trials"] and results["second"]["trials"]
    # The second measurement started only after the first had finished.
    first_end_s = max(t["start_monotonic_s"] + t["duration_s"] for t in results["first"]["trials"])
    assert results["second"]["trials"][0]["start_monotonic_s"] >= first_end_s


def test_gpu_busy_after_the_wait_limit(env, load_file):
    key = lock_key("FAKE-0", fake_spec=env["WATTSON_FAKE_GPU"])
    with AgentClient.start(env=env) as agent:
        assert agent.call("describe", timeout_s=30)["devices"][0]["uuid"] == "FAKE-0"
        # Hold the GPU from this test process, as another user's agent would.
        with GpuLock(key, directory=Path(env["WATTSON_LOCK_DIR"])):
            with pytest.raises(AgentError) as err:
                agent.call("profile", {"program": busy_spec(load_file), "budget": FAST_BUDGET,
                                       "gpu_wait_s": 0.3}, timeout_s=30)
    assert err.value.kind == "gpu_busy" and err.value.code == -32004
    assert f"pid {os.getpid()}" in err.value.message and err.value.data["holder_pid"] == os.getpid()


def test_stdin_closing_cancels_jobs_and_the_agent_exits(env, load_file, tmp_path):
    pid_file = tmp_path / "orphan.pids"
    proc = start_raw_agent(env)
    try:
        rpc(proc, {"jsonrpc": "2.0", "id": 1, "method": "profile",
                   "params": {"program": busy_spec(load_file, seconds=60, pid_file=pid_file),
                              "budget": FAST_BUDGET, "job_id": "j"}})
        pids = read_pids(pid_file)
        assert proc.stdin is not None
        proc.stdin.close()  # the client died, or ssh dropped
        assert proc.wait(timeout=15) == 0
        assert wait_all_gone(pids, timeout_s=5) == []
    finally:
        proc.kill()
        proc.wait()
    assert _jobs_left(tmp_path) == []


def test_sigterm_cancels_jobs_too(env, load_file, tmp_path):
    pid_file = tmp_path / "term.pids"
    proc = start_raw_agent(env)
    try:
        rpc(proc, {"jsonrpc": "2.0", "id": 1, "method": "profile",
                   "params": {"program": busy_spec(load_file, seconds=60, pid_file=pid_file),
                              "budget": FAST_BUDGET}})
        pids = read_pids(pid_file)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert wait_all_gone(pids, timeout_s=5) == []
    finally:
        proc.kill()
        proc.wait()


def test_duplicate_job_id_is_refused(env, load_file, tmp_path):
    pid_file = tmp_path / "dup.pids"
    proc = start_raw_agent(env)
    try:
        params = {"program": busy_spec(load_file, seconds=60, pid_file=pid_file), "budget": FAST_BUDGET,
                  "job_id": "same"}
        rpc(proc, {"jsonrpc": "2.0", "id": 1, "method": "profile", "params": params})
        read_pids(pid_file)
        rpc(proc, {"jsonrpc": "2.0", "id": 2, "method": "profile", "params": params})
        reply = read_reply(proc, 2)
        assert reply["error"]["code"] == -32602 and "already running" in reply["error"]["message"]
        rpc(proc, {"jsonrpc": "2.0", "method": "cancel", "params": {"job_id": "same"}})  # a notification
        reply = read_reply(proc, 1)
        assert reply["error"]["data"]["kind"] == "cancelled"
    finally:
        proc.kill()
        proc.wait()


def test_kernels_requested_for_a_program_without_cuda_calls_leaves_a_warning(env, load_file):
    with AgentClient.start(env=env) as agent:
        result = agent.call("profile", {"program": busy_spec(load_file, seconds=0.05), "budget": FAST_BUDGET,
                                        "kernels": True}, timeout_s=180)
    assert result["trials"] and result["kernels"] is None
    [warning] = [w for w in result["warnings"] if w.startswith("per-kernel energy")]
    assert "trace" in warning or "CUPTI" in warning


def test_a_lock_dies_with_its_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from wattson.profilers.gpu_lock import GpuLock\n"
        f"lock = GpuLock('GPU-test', directory=Path({str(tmp_path)!r}))\n"
        "assert lock.try_acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(300)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        waiter = GpuLock("GPU-test", directory=tmp_path)
        seen: list[int | None] = []
        with pytest.raises(GpuBusy) as err:
            waiter.acquire(0.3, on_wait=seen.append)
        assert seen == [holder.pid] and err.value.holder_pid == holder.pid
        holder.kill()  # a crashed agent: the kernel drops its flock
        holder.wait()
        waiter.acquire(2.0)
        assert waiter.held
        waiter.release()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(importlib.util.find_spec("wattson.profilers.sandbox") is not None,
                    reason="profilers/sandbox.py is present: untrusted programs run sandboxed")
def test_untrusted_programs_are_refused_without_a_sandbox(env, load_file):
    spec = {**busy_spec(load_file), "trusted": False}
    with AgentClient.start(env=env) as agent, pytest.raises(AgentError) as err:
        agent.call("profile", {"program": spec, "budget": FAST_BUDGET}, timeout_s=30)
    assert err.value.kind == "unsupported" and "sandbox" in err.value.message


@pytest.mark.skipif(importlib.util.find_spec("wattson.profilers.sandbox") is None,
                    reason="profilers/sandbox.py is not there yet")
def test_untrusted_programs_run_without_the_users_secrets(env, load_file):
    env = {**env, "AWS_SECRET_ACCESS_KEY": "planted-secret-value"}
    spec = busy_spec(load_file, seconds=0.05)
    spec["run"] = 'echo "key=[${AWS_SECRET_ACCESS_KEY:-}]"; ' + spec["run"]
    spec["build"] = 'echo "build key=[${AWS_SECRET_ACCESS_KEY:-}]"'
    with AgentClient.start(env=env) as agent:
        built = agent.call("build", {"program": {**spec, "trusted": False}}, timeout_s=60)
        result = agent.call("profile", {"program": {**spec, "trusted": False}, "budget": FAST_BUDGET},
                            timeout_s=60)
        trusted = agent.call("profile", {"program": spec, "budget": FAST_BUDGET}, timeout_s=60)
    assert "build key=[]" in built["output"]
    assert all("key=[]" in t["stdout"] for t in result["trials"])
    assert "key=[planted-secret-value]" in trusted["trials"][0]["stdout"]  # the user's own code sees it


def test_base64_executable_files_and_host_folders(env, tmp_path):
    script = base64.b64encode(b"#!/bin/sh\necho script-ran-in-$(basename $(pwd))\n").decode()
    travelled = {"name": "b64", "files": {"tools/run.sh": {"base64": script, "executable": True}},
                 "workdir": "tools", "build": "./run.sh", "run": "true"}
    here = tmp_path / "project-here"
    here.mkdir()
    (here / "marker.txt").write_text("x")
    in_place = {"name": "here", "host_dir": str(here), "build": "ls", "run": "true"}
    with AgentClient.start(env=env) as agent:
        assert "script-ran-in-tools" in agent.call("build", {"program": travelled}, timeout_s=30)["output"]
        assert "marker.txt" in agent.call("build", {"program": in_place}, timeout_s=30)["output"]
        with pytest.raises(AgentError) as err:
            agent.call("build", {"program": {**in_place, "host_dir": str(tmp_path / "gone")}}, timeout_s=30)
    assert (here / "marker.txt").exists()  # a host folder is the user's: never removed
    assert err.value.kind == "bad_program" and "does not exist on this GPU host" in err.value.message


def test_probe_watches_the_sensors_under_the_gpu_lock(env):
    notes: list[dict] = []
    with AgentClient.start(env=env) as agent:
        probe = agent.call("probe", {"device": 0, "duration_s": 0.5, "job_id": "pr"},
                           on_progress=notes.append, timeout_s=60)
    assert probe["device"]["name"] == "Fake H100"
    assert probe["energy_counter_period_s"] is not None and probe["idle_power_w"] is not None
    assert [n["stage"] for n in notes] == ["probe"]


ENV_PROBE = """
import os, sys
with open(sys.argv[1], "a") as f:
    traced = "traced" if os.environ.get("WATTSON_KERNEL_TRACE") else "plain"
    f.write(traced + ":" + os.environ.get("WATTSON_KERNEL_TRACE_COPIES", "-") + "\\n")
"""


@pytest.mark.parametrize("copies", [False, True])
def test_kernel_copies_are_asked_of_the_traced_run_only_on_request(env, load_file, tmp_path, copies):
    seen = tmp_path / "seen"
    spec = busy_spec(load_file, seconds=0.05)
    spec["files"]["probe.py"] = {"text": ENV_PROBE}
    spec["run"] = f"{sys.executable} probe.py {seen} && {spec['run']}"
    params = {"program": spec, "budget": FAST_BUDGET, "kernels": True}
    if copies:
        params["kernel_copies"] = True
    with AgentClient.start(env=env) as agent:
        result = agent.call("profile", params, timeout_s=180)
    lines = seen.read_text().split()
    if "traced" not in "".join(lines):
        pytest.skip(f"the tracer could not be built here: {result['warnings']}")
    assert lines[:-1] == ["plain:-"] * (len(lines) - 1)  # the measured trials run untraced
    assert lines[-1] == ("traced:1" if copies else "traced:-")


AFFINITY_PROBE = """
import os, sys
with open(sys.argv[1], "a") as f:
    traced = "traced" if os.environ.get("WATTSON_KERNEL_TRACE") else "plain"
    f.write(traced + " " + ",".join(map(str, sorted(os.sched_getaffinity(0)))) + "\\n")
"""


def test_the_traced_run_is_pinned_where_the_trials_are(env, load_file, tmp_path):
    seen = tmp_path / "seen"
    spec = busy_spec(load_file, seconds=0.05)
    spec["files"]["probe.py"] = {"text": AFFINITY_PROBE}
    spec["run"] = f"{sys.executable} probe.py {seen} && {spec['run']}"
    params = {"program": spec, "budget": {**FAST_BUDGET, "pin_cpus": 1}, "kernels": True}
    with AgentClient.start(env=env) as agent:
        result = agent.call("profile", params, timeout_s=180)
    lines = seen.read_text().splitlines()
    if not lines[-1].startswith("traced"):
        pytest.skip(f"the tracer could not be built here: {result['warnings']}")
    [cpu] = result["host_cpus"]["pinned"]
    assert lines == [f"plain {cpu}"] * (len(lines) - 1) + [f"traced {cpu}"]
