"""compute-sanitizer initcheck: finding the tool, the command line, reading its report, judging it.

No compute-sanitizer runs here (it needs a GPU): tests/gpu/test_initcheck_gpu.py runs it for real.
The reports below are written from the output format in NVIDIA's Compute Sanitizer documentation
(the initcheck, memcheck and synccheck examples, "Stack Backtraces", "Memory Footprint"), with the
indentation real logs have. HOST_API_LOG, which the docs show no example of, is put together from the
message strings in the compute-sanitizer 2026.4 binary. FAILED_LAUNCH_LOG is what compute-sanitizer
2026.4 wrote when it could not run its target on a machine without a GPU driver.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from wattson.profilers.run import RunMeasurement
from wattson.profilers.sanitizer import (
    DEFAULT_ERROR_EXITCODE,
    InitcheckResult,
    SanitizerUnavailable,
    initcheck_command,
    locate_compute_sanitizer,
    parse_initcheck,
    parse_location,
    result_from_run,
)
from wattson.verify.initcheck import check_initcheck

CLEAN_LOG = """\
========= COMPUTE-SANITIZER
========= ERROR SUMMARY: 0 errors
"""

# Three printed errors: two in a kernel built with -lineinfo, one through a device function.
UNINIT_LOG = """\
========= COMPUTE-SANITIZER
========= Uninitialized __global__ memory read of size 4 bytes
=========     at vectorAdd(int *)+0x70 in memset_error.cu:41
=========     by thread (31,0,0) in block (1,0,0)
=========     Address 0x7f3c7ec000fc
=========
========= Uninitialized __global__ memory read of size 4 bytes
=========     at vectorAdd(int *)+0x70 in memset_error.cu:41
=========     by thread (0,0,0) in block (2,0,0)
=========     Address 0x7f3c7ec00200
=========
========= Uninitialized __global__ memory read of size 8 bytes
=========     at load_cell(const double *, int)+0x30 in stencil.cu:12
=========     by thread (7,0,0) in block (0,0,0)
=========     Address 0x7f3c7ee00008
=========     Device Frame: relax_step(const double *, double *, int)+0x1a0 in stencil.cu:27
=========
========= ERROR SUMMARY: 3 errors
"""

# As the suppression example prints it: no line information, and the print limit reached.
NO_LINEINFO_LOG = """\
========= COMPUTE-SANITIZER
========= Uninitialized __global__ memory read of size 4 bytes
=========     at mult(int *, int *, int)+0x60
=========     by thread (122,0,0) in block (0,0,0)
=========     Address 0x7f936fa001e8
=========     Saved host backtrace up to driver entry point at kernel launch time
=========         Host Frame: run_mult() [0xacd4] in suppressions_initcheck_demo
=========         Host Frame: main [0xae61] in suppressions_initcheck_demo
=========
========= ERROR SUMMARY: 1,024 errors
========= ERROR SUMMARY: 1,023 errors were not printed. Use --print-limit option to adjust the number of printed errors
"""

# Older releases: "at 0x... in file:line:kernel" and "at 0x... in kernel", host frames on two lines.
OLD_FORMAT_LOG = """\
========= COMPUTE-SANITIZER
========= Uninitialized __global__ memory read of size 4 bytes
=========     at 0x100 in /home/user/src/sum.cu:30:sum_gpu_2(const int *, int *, unsigned int)
=========     by thread (98,0,0) in block (194,0,0)
=========     Address 0x7fbbca800000
=========     Saved host backtrace up to driver entry point at kernel launch time
=========     Host Frame: [0x32e990]
=========                in /lib/x86_64-linux-gnu/libcuda.so.1
=========     Host Frame:__cudart800 [0x2854b]
=========                in /home/user/build/main_sum
=========
========= Uninitialized __global__ memory read of size 4 bytes
=========     at 0x88 in kernel(float *)
=========     by thread (1,0,0) in block (0,0,0)
=========     Address 0x7fbbca900004
=========
========= ERROR SUMMARY: 2 errors
"""

# A cudaMemcpy out of a buffer nothing wrote, and the record the exit-code check adds.
HOST_API_LOG = """\
========= COMPUTE-SANITIZER
========= Host API uninitialized memory access
=========     Uninitialized access to 0x7f0000000000 on allocation of size 4096 bytes
=========     Saved host backtrace up to driver entry point at cudaMemcpy time
=========         Host Frame: main [0x1234] in stale_copy
=========
========= Target application returned an error
========= ERROR SUMMARY: 2 errors
"""

FAILED_LAUNCH_LOG = """\
========= COMPUTE-SANITIZER
========= Error: process didn't terminate successfully
=========     The application may have hit an error when dereferencing Unified Memory from the host. \
Please rerun the application under cuda-gdb or a host debugger to catch host side errors.
========= Error: Target application terminated before first instrumented API call
"""

NOT_ATTACHED_LOG = """\
========= COMPUTE-SANITIZER
========= Error: No attachable process found. compute-sanitizer timed-out.
========= Default timeout can be adjusted with --launch-timeout. Awaiting target completion.
"""

# Killed mid-run: errors printed, no summary.
TRUNCATED_LOG = "\n".join(UNINIT_LOG.splitlines()[:6]) + "\n"

INTERNAL_ERROR_LOG = """\
========= COMPUTE-SANITIZER
========= Internal Sanitizer Error: The Sanitizer encountered an error while launching relax_step and didn't \
track the launch. Errors might go undetected. (Unable to allocate enough memory to perform the requested operation)
========= ERROR SUMMARY: 0 errors
"""


# --- locating the tool --------------------------------------------------------------------------


def test_locate_says_what_to_install_when_absent(tmp_path):
    empty_bin, toolkit = tmp_path / "bin", tmp_path / "cuda"
    empty_bin.mkdir()
    (toolkit / "bin").mkdir(parents=True)
    with pytest.raises(SanitizerUnavailable) as err:
        locate_compute_sanitizer(search_path=str(empty_bin), roots=[toolkit])
    message = str(err.value)
    assert "compute-sanitizer was not found" in message
    assert str(toolkit) in message  # where it looked
    assert "CUDA_HOME" in message and "cuda-sanitizer" in message  # what to do next
    assert "Traceback" not in message


def test_locate_with_the_usual_roots_finds_a_real_tool_or_names_cuda_home(tmp_path, monkeypatch):
    """With PATH emptied and CUDA_HOME pointing at an empty folder, the search goes through the usual
    toolkit roots: a host that has compute-sanitizer in one of them finds it; any other says where it looked."""
    home = tmp_path / "toolkit"
    home.mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.setenv("CUDA_HOME", str(home))
    try:
        found = locate_compute_sanitizer()
    except SanitizerUnavailable as e:
        assert str(home) in str(e)
    else:
        assert found.name == "compute-sanitizer" and found.is_file()


# --- the command line ---------------------------------------------------------------------------


def test_command_wraps_the_run_command_in_a_checked_shell():
    run = """./heat 4096 'a b' | tee "out file.txt" && echo it's done"""
    command = initcheck_command(run, Path("/opt/cuda 13/bin/compute-sanitizer"), log_file="/tmp/w/initcheck.log")
    argv = shlex.split(command)
    assert argv[0] == "/opt/cuda 13/bin/compute-sanitizer"
    options = argv[1 : argv.index("--")]
    pairs = dict(zip(options[::2], options[1::2], strict=True))
    assert pairs == {
        "--tool": "initcheck",
        "--target-processes": "all",
        "--check-exit-code": "no",
        "--error-exitcode": str(DEFAULT_ERROR_EXITCODE),
        "--print-limit": "50",
        "--show-backtrace": "device",
        "--log-file": "/tmp/w/initcheck.log",
    }
    assert argv[argv.index("--") + 1 :] == ["/bin/sh", "-c", run]


def test_the_wrapped_command_reaches_the_shell_unchanged(tmp_path):
    """The part after `--` is what compute-sanitizer executes: run it with a real shell."""
    run = """printf '%s|' "a b" 'c'"'"'d' $((1 + 2)); echo; echo "$0" """
    argv = shlex.split(initcheck_command(run, "/x/compute-sanitizer"))
    inner = argv[argv.index("--") + 1 :]
    direct = subprocess.run(["/bin/sh", "-c", run], capture_output=True, text=True, cwd=tmp_path)
    wrapped = subprocess.run(inner, capture_output=True, text=True, cwd=tmp_path)
    assert wrapped.stdout == direct.stdout == "a b|c'd|3|\n/bin/sh\n"


def test_log_file_percent_is_escaped_and_options_are_settable():
    argv = shlex.split(initcheck_command("./a", "cs", log_file="/tmp/100%/log-%p", error_exitcode=9, print_limit=3))
    assert argv[argv.index("--log-file") + 1] == "/tmp/100%%/log-%%p"
    assert argv[argv.index("--error-exitcode") + 1] == "9"
    assert argv[argv.index("--print-limit") + 1] == "3"
    no_log = shlex.split(initcheck_command("./a", "cs"))
    assert "--log-file" not in no_log


# --- reading the report -------------------------------------------------------------------------


def test_clean_report():
    result = parse_initcheck(CLEAN_LOG)
    assert result.error_count == 0 and result.summary_seen and result.tool_failed is None
    assert result.errors == [] and result.completed


def test_uninitialised_reads_with_kernels_lines_and_threads():
    result = parse_initcheck(UNINIT_LOG)
    assert result.error_count == 3 and result.completed
    assert [e.kind for e in result.errors] == ["uninitialized-read"] * 3
    first, _, third = result.errors
    assert first.message == "Uninitialized __global__ memory read of size 4 bytes"
    assert (first.kernel, first.function, first.source) == (
        "vectorAdd(int *)",
        "vectorAdd(int *)",
        "memset_error.cu:41",
    )
    assert (first.thread, first.block, first.address) == ("(31,0,0)", "(1,0,0)", "0x7f3c7ec000fc")
    # The read happened in a device function; the kernel is the outermost device frame.
    assert third.function == "load_cell(const double *, int)"
    assert third.kernel == "relax_step(const double *, double *, int)"
    assert third.source == "stencil.cu:12"
    assert "in kernel vectorAdd(int *)" in first.describe() and "memset_error.cu:41" in first.describe()


def test_report_without_line_information_and_past_the_print_limit():
    result = parse_initcheck(NO_LINEINFO_LOG)
    assert result.error_count == 1024 and result.errors_not_printed == 1023
    (error,) = result.errors
    assert (error.kernel, error.source) == ("mult(int *, int *, int)", None)
    assert not any("Host Frame" in d or "backtrace" in d for d in error.details)


def test_older_location_formats():
    result = parse_initcheck(OLD_FORMAT_LOG)
    first, second = result.errors
    assert (first.kernel, first.source) == ("sum_gpu_2(const int *, int *, unsigned int)", "/home/user/src/sum.cu:30")
    assert first.details == []  # the two-line host frames are left out
    assert (second.kernel, second.source) == ("kernel(float *)", None)


@pytest.mark.parametrize(
    ("text", "function", "source"),
    [
        ("unaligned_kernel():0x160 in memcheck_demo.cu:6", "unaligned_kernel()", "memcheck_demo.cu:6"),
        (
            "[clone k(int *, int *)] outlineSync()+0x11f0 in test.cu:42",
            "[clone k(int *, int *)] outlineSync()",
            "test.cu:42",
        ),
        ("__cuda_sm70_warpsync+0x30", "__cuda_sm70_warpsync", None),
        ("NVIDIA Internal [0x520]", "NVIDIA Internal", None),
        ("ns::apply<float>(float *, int)+0x90 in /src/a b/k.cu:7", "ns::apply<float>(float *, int)", "/src/a b/k.cu:7"),
    ],
)
def test_location_formats(text, function, source):
    assert parse_location(text) == (function, source)


def test_host_api_read_counts_and_exit_code_record_does_not():
    result = parse_initcheck(HOST_API_LOG)
    assert [e.kind for e in result.errors] == ["uninitialized-api-access", "exit-code"]
    (read,) = result.uninitialized_reads
    assert read.kernel is None
    assert read.details == ["Uninitialized access to 0x7f0000000000 on allocation of size 4096 bytes"]


def test_tool_that_could_not_run_its_target_is_a_failure_not_zero_errors():
    result = parse_initcheck(FAILED_LAUNCH_LOG)
    assert result.error_count is None and not result.summary_seen and not result.completed
    assert result.tool_failed == (
        "process didn't terminate successfully; Target application terminated before first instrumented API call"
    )
    assert result.errors == []  # the hint under the error line is not an error record


def test_not_attached_and_internal_errors_fail_the_check():
    not_attached = parse_initcheck(NOT_ATTACHED_LOG)
    assert not_attached.tool_failed.startswith("No attachable process found")
    assert not_attached.errors == []
    internal = parse_initcheck(INTERNAL_ERROR_LOG)
    assert internal.error_count == 0 and not internal.completed
    assert "Errors might go undetected" in internal.tool_failed


def test_missing_summary_is_never_zero():
    result = parse_initcheck(TRUNCATED_LOG)
    assert result.error_count is None and not result.summary_seen
    assert len(result.uninitialized_reads) == 1
    assert "no ERROR SUMMARY" in result.tool_failed
    empty = parse_initcheck("")
    assert empty.error_count is None and empty.tool_failed


def test_program_output_mixed_in_is_ignored():
    mixed = "\n".join(f"{line}\nprogram line {i}: 1.2345" for i, line in enumerate(UNINIT_LOG.splitlines()))
    assert parse_initcheck(mixed).to_dict() == parse_initcheck(UNINIT_LOG).to_dict()


def test_unknown_record_is_kept_as_other():
    text = "========= Something new happened in kernel k\n=========     at k()+0x10 in k.cu:3\n" + CLEAN_LOG
    (error,) = parse_initcheck(text).errors
    assert (error.kind, error.message, error.source) == ("other", "Something new happened in kernel k", "k.cu:3")


def test_result_round_trips_through_json():
    for text in (UNINIT_LOG, HOST_API_LOG, FAILED_LAUNCH_LOG, NO_LINEINFO_LOG):
        result = parse_initcheck(text)
        assert InitcheckResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


# --- a run's outcome ----------------------------------------------------------------------------


def _run(*, exit_code=0, timed_out=False, cancelled=False, duration_s=3.0, stdout="", stderr="") -> RunMeasurement:
    return RunMeasurement(
        exit_code=exit_code, timed_out=timed_out, cancelled=cancelled, duration_s=duration_s, energy_mj=None,
        energy_source="none", avg_power_mw=None, peak_power_mw=None, timeline=[], stdout=stdout, stderr=stderr,
        output_truncated=False, state_start=None, state_end=None, start_monotonic_s=0.0,
    )  # fmt: skip


def test_outcome_of_a_complete_run():
    result = result_from_run(_run(exit_code=DEFAULT_ERROR_EXITCODE, duration_s=4.5), UNINIT_LOG)
    assert result.completed and result.error_count == 3
    assert (result.exit_code, result.duration_s) == (DEFAULT_ERROR_EXITCODE, 4.5)


def test_outcome_of_a_timed_out_run_keeps_what_was_seen():
    result = result_from_run(_run(exit_code=None, timed_out=True, duration_s=600.2), TRUNCATED_LOG)
    assert "time limit (600 s)" in result.tool_failed and "longer time limit" in result.tool_failed
    assert len(result.uninitialized_reads) == 1 and result.error_count is None


def test_outcome_of_a_cancelled_run():
    result = result_from_run(_run(exit_code=None, cancelled=True), CLEAN_LOG)
    assert result.tool_failed == "the initcheck run was cancelled" and not result.completed


def test_outcome_when_the_tool_wrote_no_log_quotes_its_output():
    run = _run(exit_code=255, stdout="Usage: compute-sanitizer [options]\n", stderr="unrecognised option '--x'\n")
    result = result_from_run(run, None)
    assert result.tool_failed.startswith("compute-sanitizer wrote no report (exited with code 255)")
    assert "unrecognised option '--x'" in result.tool_failed
    assert result.error_count is None


def test_outcome_with_missing_summary_quotes_exit_code_and_stderr():
    run = _run(exit_code=DEFAULT_ERROR_EXITCODE, stderr="========= Error: Device not supported\n")
    result = result_from_run(run, TRUNCATED_LOG)
    assert "no ERROR SUMMARY" in result.tool_failed and f"exit code {DEFAULT_ERROR_EXITCODE}" in result.tool_failed
    assert result.tool_failed.endswith("stderr ends with: ========= Error: Device not supported")
    quiet = result_from_run(_run(exit_code=1), FAILED_LAUNCH_LOG)
    assert "stderr" not in quiet.tool_failed and "exit code" not in quiet.tool_failed


# --- judging the candidate against the original -------------------------------------------------


def test_candidate_reads_the_original_does_not_fails_with_kernel_and_lines():
    findings = check_initcheck(parse_initcheck(CLEAN_LOG), parse_initcheck(UNINIT_LOG), source_file="src/stencil.cu")
    (finding,) = findings
    assert (finding.check, finding.severity) == ("uninitialised-read", "fail")
    assert "3 uninitialised reads" in finding.message and "the original reads none" in finding.message
    assert "in kernel vectorAdd(int *)" in finding.message and "memset_error.cu:41" in finding.message
    assert "relax_step" in finding.message  # the second distinct place
    assert finding.message.count("vectorAdd") == 1  # the same place is quoted once
    assert finding.line == 12  # the first read located in stencil.cu


def test_both_read_uninitialised_memory_is_review_with_counts():
    original = parse_initcheck(NO_LINEINFO_LOG)
    (finding,) = check_initcheck(original, parse_initcheck(UNINIT_LOG))
    assert finding.severity == "review"
    assert "so does the original" in finding.message
    assert "3 uninitialised reads in the candidate" in finding.message
    assert "1024 uninitialised reads in the original" in finding.message
    assert "vectorAdd(int *)" in finding.message.split("does not have:")[1]  # kernels new in the candidate


def test_candidate_check_failed_is_review_saying_why():
    (finding,) = check_initcheck(parse_initcheck(CLEAN_LOG), parse_initcheck(FAILED_LAUNCH_LOG))
    assert finding.severity == "review"
    assert "could not check the candidate" in finding.message
    assert "process didn't terminate successfully" in finding.message
    (missing,) = check_initcheck(parse_initcheck(CLEAN_LOG), parse_initcheck(""))
    assert missing.severity == "review" and "no ERROR SUMMARY" in missing.message


def test_both_clean_is_nothing_and_dicts_are_accepted():
    clean = parse_initcheck(CLEAN_LOG)
    assert check_initcheck(clean, clean) == []
    assert check_initcheck(clean.to_dict(), json.loads(json.dumps(clean.to_dict()))) == []
    (finding,) = check_initcheck(clean.to_dict(), parse_initcheck(UNINIT_LOG).to_dict())
    assert finding.severity == "fail"


def test_original_unchecked_makes_candidate_reads_a_review():
    (finding,) = check_initcheck(parse_initcheck(NOT_ATTACHED_LOG), parse_initcheck(UNINIT_LOG))
    assert finding.severity == "review" and "unknown" in finding.message
    assert "No attachable process found" in finding.message


def test_reads_seen_before_a_timeout_still_fail():
    candidate = result_from_run(_run(exit_code=None, timed_out=True), TRUNCATED_LOG)
    (finding,) = check_initcheck(parse_initcheck(CLEAN_LOG), candidate)
    assert finding.severity == "fail" and "the check did not complete" in finding.message


def test_host_api_read_fails_and_extra_unrecognised_errors_are_review():
    (finding,) = check_initcheck(parse_initcheck(CLEAN_LOG), parse_initcheck(HOST_API_LOG))
    assert finding.severity == "fail" and "(host API call)" not in finding.message
    assert "Host API uninitialized memory access" in finding.message
    odd = "========= Something new happened\n========= ERROR SUMMARY: 1 error\n"
    (review,) = check_initcheck(parse_initcheck(CLEAN_LOG), parse_initcheck(odd))
    assert review.severity == "review" and "Something new happened" in review.message


def test_candidate_fixing_the_originals_reads_is_info():
    (finding,) = check_initcheck(parse_initcheck(UNINIT_LOG), parse_initcheck(CLEAN_LOG))
    assert finding.severity == "info" and "no longer reads" in finding.message
