"""The CUPTI tracer: it compiles and links here with the local toolkit, loads into a process, writes
its trace file; and trace.py reads that format onto the monotonic clock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wattson.profilers.kernels import build
from wattson.profilers.kernels.build import (
    KernelTraceUnavailable,
    build_injection_library,
    check_vendor_supported,
    kernel_trace_env,
    locate_cupti,
)
from wattson.profilers.kernels.trace import parse_kernel_trace, read_kernel_trace


def _cupti_or_skip():
    try:
        return locate_cupti()
    except KernelTraceUnavailable as e:
        pytest.skip(str(e))


def test_library_builds_links_cupti_and_is_cached(tmp_path: Path):
    cupti = _cupti_or_skip()
    lib = build_injection_library(cache_dir=tmp_path)
    assert lib.exists() and lib.parent == tmp_path
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
    assert " T InitializeInjection" in symbols
    needed = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True).stdout
    assert "libcupti.so" in needed and str(cupti.library.parent) in needed  # found without LD_LIBRARY_PATH
    mtime = lib.stat().st_mtime_ns
    assert build_injection_library(cache_dir=tmp_path) == lib
    assert lib.stat().st_mtime_ns == mtime  # taken from the cache, not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [lib.name]  # no temporary files left behind


def test_source_compiles_without_warnings():
    cupti = _cupti_or_skip()
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler")
    out = subprocess.run([compiler, "-std=gnu11", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                          "-I", str(cupti.include_dir), str(build.SOURCE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


_LOAD_AND_INIT = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
print(lib.InitializeInjection())
"""


def test_library_initializes_in_a_process_and_writes_its_trace(tmp_path: Path):
    """The driver calls InitializeInjection(); here a process does, as the driver would.

    Without a GPU driver CUPTI cannot enable kernel records: the tracer says so in the trace and
    the program carries on. With one, the exit handler writes the closing clock pair."""
    _cupti_or_skip()
    lib = build_injection_library(cache_dir=tmp_path / "cache")
    trace_path = tmp_path / "trace.tsv"
    env = {**os.environ, **kernel_trace_env(trace_path, lib)}
    out = subprocess.run([sys.executable, "-c", _LOAD_AND_INIT, str(lib)], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    trace = read_kernel_trace(trace_path)
    assert len(trace.processes) == 1
    assert trace.records == []
    assert 0 <= trace.clock_error_s < 0.01
    if trace.errors:
        assert "enabling kernel records failed" in trace.errors[0]
    else:
        assert "\texit\t" in trace_path.read_text()


def test_library_without_trace_variable_writes_nothing(tmp_path: Path):
    _cupti_or_skip()
    lib = build_injection_library(cache_dir=tmp_path / "cache")
    env = {k: v for k, v in os.environ.items() if k != build.TRACE_ENV}
    out = subprocess.run([sys.executable, "-c", _LOAD_AND_INIT, str(lib)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_cupti_is_found_through_cuda_home(tmp_path: Path, monkeypatch):
    real = _cupti_or_skip()
    toolkit = tmp_path / "toolkit"  # the classic layout: CUPTI under extras/, cuda.h in include/
    toolkit.mkdir()
    cuda_include = real.cuda_include_dirs[0] if real.cuda_include_dirs else real.include_dir
    (toolkit / "include").symlink_to(cuda_include)
    (toolkit / "extras" / "CUPTI" / "include").mkdir(parents=True)
    (toolkit / "extras" / "CUPTI" / "lib64").mkdir(parents=True)
    for header in real.include_dir.glob("cupti*.h"):
        (toolkit / "extras" / "CUPTI" / "include" / header.name).symlink_to(header)
    (toolkit / "extras" / "CUPTI" / "lib64" / "libcupti.so.99").symlink_to(real.library.resolve())
    monkeypatch.setenv("CUDA_HOME", str(toolkit))
    found = locate_cupti()
    assert found.include_dir == toolkit / "extras" / "CUPTI" / "include"
    assert found.library.name == "libcupti.so.99"  # only a versioned file: linked by its path
    assert found.api_version == real.api_version > 0
    assert found.cuda_include_dirs == (toolkit / "include",)
    assert build_injection_library(cache_dir=tmp_path / "cache").exists()


def test_missing_cupti_is_a_message_not_a_traceback(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(build, "toolkit_roots", lambda: iter([tmp_path]))  # a host without CUPTI
    with pytest.raises(KernelTraceUnavailable) as e:
        build_injection_library(cache_dir=tmp_path / "cache")
    assert "CUPTI not found" in str(e.value) and "run without --kernels" in str(e.value)


def test_failed_build_says_what_to_do(tmp_path: Path, monkeypatch):
    _cupti_or_skip()
    monkeypatch.setenv("CC", "false")  # a compiler that fails
    with pytest.raises(KernelTraceUnavailable) as e:
        build_injection_library(cache_dir=tmp_path)
    assert "building the kernel tracer" in str(e.value) and "--kernels" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_amd_is_not_supported_yet():
    check_vendor_supported("nvidia")
    with pytest.raises(KernelTraceUnavailable, match="AMD/HIP"):
        check_vendor_supported("amd")


def test_trace_env_names_library_and_file(tmp_path: Path):
    env = kernel_trace_env(tmp_path / "t.tsv", tmp_path / "lib.so")
    assert env == {"CUDA_INJECTION64_PATH": str(tmp_path / "lib.so"),
                   "WATTSON_KERNEL_TRACE": str(tmp_path / "t.tsv")}


# --- the trace format (what inject.c writes) ---------------------------------------------------------

EPOCH_NS = 1_795_323_673_000_000_000  # CUPTI's clock: CLOCK_REALTIME on Linux


def _trace_text() -> str:
    # Process 41: the monotonic clock reads 1000 s when CUPTI reads EPOCH; by the exit pair, 20 s
    # later, CUPTI has gained 2 ms (a slewing wall clock). Process 42 shares the file.
    lines = [
        "H\t41\t1\t130001",
        f"C\t41\tinit\t{1000_000_000_000 - 100}\t{EPOCH_NS}\t{1000_000_000_000 + 100}",
        f"K\t41\t{EPOCH_NS + 1_000_000_000}\t{EPOCH_NS + 1_500_000_000}\t0\t1\t7\t3\t128\t1\t1\t256\t1\t1\t"
        "_ZN2ns5scaleIfLi2EEEvPT_S1_i",
        f"M\t41\t{EPOCH_NS + 10_000_000_000}\t{EPOCH_NS + 10_001_000_000}\t0\t1\t7\t4\t1\t4096",
        f"S\t41\t{EPOCH_NS + 19_000_000_000}\t{EPOCH_NS + 19_000_500_000}\t0\t1\t7\t5\t4096",
        "D\t41\t12",
        f"C\t41\texit\t{1020_000_000_000 - 50}\t{EPOCH_NS + 20_002_000_000}\t{1020_000_000_000 + 50}",
        "H\t42\t1\t130001",
        f"C\t42\tinit\t{2000_000_000_000}\t{EPOCH_NS}\t{2000_000_000_000}",
        "E\t42\tenabling memset records failed: CUPTI_ERROR_UNKNOWN",
        f"K\t42\t{EPOCH_NS + 5}\t{EPOCH_NS + 6}\t1\t1\t7\t3\t1\t1\t1\t1\t1\t1\tplain",
        "K\t42\t123\t",  # cut short when the process was killed
    ]
    return "\n".join(lines) + "\n"


def test_trace_maps_cupti_time_onto_the_monotonic_clock():
    trace = parse_kernel_trace(_trace_text())
    assert trace.processes == [41, 42]
    assert trace.dropped_records == 12
    assert trace.malformed_lines == 1
    assert trace.errors == ["process 42: enabling memset records failed: CUPTI_ERROR_UNKNOWN"]
    assert trace.clock_error_s == pytest.approx(100e-9)
    assert trace.clock_drift_s == pytest.approx(2e-3)
    kernel, memcpy, memset = [r for r in trace.records if r.pid == 41]
    (plain,) = [r for r in trace.records if r.pid == 42]
    # The offset follows the drift linearly between the pairs: 2 ms over CUPTI's 20.002 s.
    drift_per_s = 0.002 / 20.002
    assert kernel.start_s == pytest.approx(1001.0 - 1.0 * drift_per_s, abs=1e-9)
    assert kernel.end_s - kernel.start_s == pytest.approx(0.5 - 0.5 * drift_per_s, abs=1e-9)
    assert kernel.name == "void ns::scale<float, 2>(float*, float, int)"
    assert kernel.symbol == "_ZN2ns5scaleIfLi2EEEvPT_S1_i"
    assert (kernel.grid, kernel.block, kernel.stream, kernel.device, kernel.correlation_id) == (
        (128, 1, 1), (256, 1, 1), 7, 0, 3)
    assert (memcpy.kind, memcpy.name, memcpy.size_bytes) == ("memcpy", "[CUDA memcpy HtoD]", 4096)
    assert memcpy.start_s == pytest.approx(1010.0 - 10.0 * drift_per_s, abs=1e-9)
    assert (memset.kind, memset.name) == ("memset", "[CUDA memset]")
    assert (plain.name, plain.device, plain.start_s) == ("plain", 1, pytest.approx(2000.0 + 5e-9, abs=1e-9))


def test_missing_trace_file_says_why(tmp_path: Path):
    with pytest.raises(KernelTraceUnavailable, match="no kernel trace was written"):
        read_kernel_trace(tmp_path / "absent.tsv")


# --- inject.c's own record formatting, read back by trace.py ----------------------------------------

_FORMAT_HARNESS = r"""
#include "inject.c"

int main(void) {
    trace_pid = 4242;
    text_t t = {0};
    static char long_name[20001];
    memset(long_name, 'x', sizeof long_name - 1);
    memcpy(long_name, "_Z4long", 7);
    for (int i = 0; i < 3000; i++) { /* several times the first 64 KiB: the buffer must grow */
        wattson_kernel_t k;
        memset(&k, 0, sizeof k);
        k.kind = CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL;
        k.start = 1795323673000000000ull + (uint64_t)i * 1000u;
        k.end = k.start + 999u;
        k.deviceId = 0; k.contextId = 1; k.streamId = 4294967295u; k.correlationId = (uint32_t)i;
        k.gridX = 2147483647; k.gridY = 1; k.gridZ = 0;
        k.blockX = 1024; k.blockY = 1; k.blockZ = 1;
        k.name = i == 1 ? "_Z4odd\tname\nwith\rbreaks" : i == 2 ? long_name : "_Z5scalePfi";
        format_record(&t, (const CUpti_Activity *)&k);
    }
    wattson_memcpy_t m;
    memset(&m, 0, sizeof m);
    m.kind = CUPTI_ACTIVITY_KIND_MEMCPY;
    m.start = 1795323673000000000ull; m.end = m.start + 5u;
    m.deviceId = 3; m.contextId = 1; m.streamId = 7; m.correlationId = 9;
    m.copyKind = CUPTI_ACTIVITY_MEMCPY_KIND_DTOH; m.bytes = 18446744073709551615ull;
    format_record(&t, (const CUpti_Activity *)&m);
    wattson_memset_t s;
    memset(&s, 0, sizeof s);
    s.kind = CUPTI_ACTIVITY_KIND_MEMSET;
    s.start = 1795323673000000000ull; s.end = s.start; s.bytes = 0;
    format_record(&t, (const CUpti_Activity *)&s);
    fwrite(t.data, 1, t.len, stdout);
    text_free(&t);
    return 0;
}
"""


def test_records_are_formatted_as_the_reader_expects(tmp_path: Path):
    cupti = _cupti_or_skip()
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler")
    (tmp_path / "harness.c").write_text(_FORMAT_HARNESS)
    includes = [f"-I{d}" for d in (build.SOURCE.parent, cupti.include_dir, *cupti.cuda_include_dirs)]
    lib_dir = cupti.library.parent
    compiled = subprocess.run([compiler, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", *includes,
                               str(tmp_path / "harness.c"), f"-L{lib_dir}", f"-Wl,-rpath,{lib_dir}",
                               f"-l:{cupti.library.name}", "-o", str(tmp_path / "harness")],
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    records = subprocess.run([str(tmp_path / "harness")], capture_output=True, text=True, check=True).stdout
    epoch = 1_795_323_673_000_000_000
    mono = 1000_000_000_000  # the monotonic clock reads 1000 s when CUPTI's reads epoch
    trace = parse_kernel_trace(f"H\t4242\t1\t130001\nC\t4242\tinit\t{mono}\t{epoch}\t{mono}\n" + records,
                               demangle_names=False)
    assert (trace.malformed_lines, trace.errors) == (0, [])
    kernels = [r for r in trace.records if r.kind == "kernel"]
    assert len(kernels) == 3000
    assert sorted(r.correlation_id for r in kernels) == list(range(3000))
    by_id = {r.correlation_id: r for r in kernels}
    first = by_id[0]
    assert (first.symbol, first.grid, first.block, first.stream, first.device, first.pid) == (
        "_Z5scalePfi", (2147483647, 1, 0), (1024, 1, 1), 4294967295, 0, 4242)
    assert by_id[2999].start_s == pytest.approx(1000 + 2999e-6, abs=1e-9)
    assert by_id[2999].end_s - by_id[2999].start_s == pytest.approx(999e-9, abs=2e-9)
    assert by_id[1].symbol == "_Z4odd name with breaks"
    assert by_id[2].symbol == "_Z4long" + "x" * (20000 - 7)
    (memcpy,) = [r for r in trace.records if r.kind == "memcpy"]
    assert (memcpy.name, memcpy.size_bytes, memcpy.device, memcpy.stream, memcpy.correlation_id) == (
        "[CUDA memcpy DtoH]", 18446744073709551615, 3, 7, 9)
    (memset,) = [r for r in trace.records if r.kind == "memset"]
    assert (memset.name, memset.size_bytes, memset.start_s) == ("[CUDA memset]", 0, memcpy.start_s)
