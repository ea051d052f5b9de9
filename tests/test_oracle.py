"""The oracle on outputs: exit codes, markers, numbers within tolerance, volatile fields, files, bad input."""

from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path

import pytest
from script_module import load_script
from wattson.verify import (
    InputRuns,
    RunOutput,
    check_alternate_inputs,
    check_created_files,
    check_first_vs_later_durations,
    check_host_cpu_time,
    check_kernel_trace,
    check_outputs,
    check_repeat_runs,
    flag_large_saving,
    saving_ratio,
    volatile_mask,
)
from wattson.verify.numbers import tokenize, unit_volatile_indices

CORPUS = Path(__file__).parent / "corpus"


def out(stdout: str, exit_code: int = 0, **kw) -> RunOutput:
    return RunOutput(exit_code=exit_code, stdout=stdout, stderr=kw.pop("stderr", ""), **kw)


def fails(result) -> list[str]:
    return [f.message for f in result.findings if f.severity == "fail"]


def test_identical_output_passes():
    text = "n = 1024\nsum = 5.230000e+02\nPASS\n"
    result = check_outputs(out(text), out(text), volatile_mask([out(text), out(text)]))
    assert result.passed and result.accepted
    assert result.feedback() == "The candidate's output matches the original's."


def test_a_number_out_of_tolerance_says_where_and_by_how_much():
    original = out("n = 1024\ntotal: 7 17 1.2345e+03\n")
    candidate = out("n = 1024\ntotal: 7 17 1.2301e+03\n")
    result = check_outputs(original, candidate, volatile_mask([original, original]))
    assert not result.passed
    assert fails(result) == [
        "stdout line 2, number 3: expected 1.2345e+03, got 1.2301e+03 (rel. diff 3.6e-03 > rtol 1e-05)"
    ]
    assert result.findings[0].line == 2
    assert "line 2, number 3" in result.feedback()


def test_tolerances_are_the_ones_given():
    original, candidate = out("x = 1.000000\n"), out("x = 1.000500\n")
    assert not check_outputs(original, candidate).passed
    assert check_outputs(original, candidate, rtol=1e-3).passed
    zero = out("x = 0.000000000\n")
    assert check_outputs(zero, out("x = 3e-9\n")).passed  # atol 1e-8 near zero
    assert not check_outputs(zero, out("x = 3e-7\n")).passed
    assert check_outputs(out("x = 0.0\n"), out("x = 3e-7\n")).passed  # within the printed digit of "0.0"


def test_rounding_in_the_last_printed_digit_is_not_a_difference():
    assert check_outputs(out("mean 1.23\n"), out("mean 1.24\n")).passed
    assert not check_outputs(out("mean 1.23\n"), out("mean 1.26\n")).passed
    # Integers have no rounding: a count of 100 against 101 is a difference.
    assert not check_outputs(out("iterations 100\n"), out("iterations 101\n")).passed


def test_timings_and_bandwidth_are_masked_even_from_one_run():
    original = out("kernel time: 3.2031 ms\nbandwidth: 1210.4 GB/s\nelapsed = 12\nresult 42\n")
    candidate = out("kernel time: 1.1000 ms\nbandwidth: 2011.0 GB/s\nelapsed = 7\nresult 42\n")
    assert check_outputs(original, candidate).passed
    assert not check_outputs(original, out(candidate.stdout.replace("result 42", "result 43"))).passed


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("Time per iteration: 3.2 ms", [0]),
        ("time step 100: energy = 1.234", []),
        ("Throughput = 12.5 GFlop/s, Time= 0.123 msec, Size= 131072 Ops", [0, 1]),
        ("Kernel time (us): 45.1", [0]),
        ("processed 4096 items: 17", []),
        ("started 2025-01-31 12:03:59", [0, 1, 2, 3, 4, 5]),
        ("3 samples, 2 s", [1]),
    ],
)
def test_which_numbers_count_as_timings(line, masked):
    assert sorted(unit_volatile_indices(tokenize(line))) == masked


def test_numbers_that_vary_between_runs_of_the_original_are_masked():
    run1 = out("buffer at 0x7ffd1234a000\nseed 8812\nsum 10.5\nstarted Mon 10:01\n")
    run2 = out("buffer at 0x7ffc99810000\nseed 1277\nsum 10.5\nstarted Tue 10:02\n")
    mask = volatile_mask([run1, run2])
    candidate = out("buffer at 0x7fff00000000\nseed 5\nsum 10.5\nstarted Wed 11:11\n")
    assert check_outputs(run1, candidate, mask).passed
    wrong_sum = out("buffer at 0x7fff00000000\nseed 5\nsum 10.7\nstarted Wed 11:11\n")
    assert fails(check_outputs(run1, wrong_sum, mask)) == [
        "stdout line 3, number 1: expected 10.5, got 10.7 (rel. diff 1.9e-02 > rtol 1e-05)"
    ]
    # From one run nothing is learned, and the oracle says so.
    single = check_outputs(run1, candidate, volatile_mask([run1]))
    assert not single.passed
    assert any(f.check == "volatile-mask" for f in single.findings)


def test_nan_and_infinity():
    assert check_outputs(out("r = nan inf -inf\n"), out("r = -nan inf -inf\n")).passed
    got_nan = check_outputs(out("r = 1.5\n"), out("r = nan\n"))
    assert fails(got_nan) == [
        "stdout line 1, number 1: expected 1.5, got nan (NaN or infinity where the "
        "original printed a different value)"
    ]
    assert not check_outputs(out("r = inf\n"), out("r = -inf\n")).passed
    assert not check_outputs(out("r = nan\n"), out("r = 0.0\n")).passed


def test_pass_with_different_numbers_still_fails():
    original = out("checksum = 6.285042e+06\nPASS\n")
    candidate = out("checksum = 3.142509e+06\nPASS\n")
    result = check_outputs(original, candidate)
    assert not result.passed
    assert [f.check for f in result.findings if f.severity == "fail"] == ["stdout"]


def test_markers_fail_and_missing_pass():
    original = out("sum 3\nTest PASSED\n")
    failed = check_outputs(original, out("sum 3\nTest FAILED\n"))
    assert (
        "the candidate's self-check fails (stdout line 2: 'Test FAILED'), where the original's passes "
        "(stdout line 2: 'Test PASSED')" in fails(failed)
    )
    silent = check_outputs(original, out("sum 3\n"))
    assert any("does not print the original's passed self-check" in m for m in fails(silent))
    assert check_outputs(
        out("ok\n", stderr="Verification failed\n"), out("ok\n", stderr="Verification failed\n")
    ).passed  # the same verdict as the original is no news


def test_marker_patterns_from_the_config():
    original, candidate = out("verdict: good\n"), out("verdict: bad\n")
    result = check_outputs(original, candidate, pass_regex=("verdict: good",), fail_regex=["verdict: bad"])
    assert sum(f.check == "markers" for f in result.findings) == 1
    with pytest.raises(ValueError, match="not a valid regular expression.*wattson.toml"):
        check_outputs(original, candidate, pass_regex="(unclosed")


def test_exit_code_differences_quote_stderr():
    crashed = out("", exit_code=-11, stderr="step 1\nstep 2\nillegal memory access\n")
    result = check_outputs(out("x 1\n"), crashed)
    assert fails(result) == [
        "the original exited with code 0; the candidate was killed by signal 11 (SIGSEGV). "
        "Its stderr ends with:\n"
        "step 1\nstep 2\nillegal memory access"
    ]
    sandboxed = check_outputs(out("x 1\n"), out("x 1\n", exit_code=134))
    assert "exited with code 134 (128 + 6: killed by SIGABRT)" in fails(sandboxed)[0]


def test_timeouts():
    result = check_outputs(out("x\n"), RunOutput(None, "partial", "", timed_out=True))
    assert fails(result) == [
        "the candidate ran past its time limit and was killed (the original finished): "
        "it may hang, deadlock, "
        "or do far more work than the original"
    ]
    reference_missing = check_outputs(RunOutput(None, "", "", timed_out=True), out("x\n"))
    assert "raise run_timeout_s in wattson.toml" in fails(reference_missing)[0]


def test_line_count_differences_are_located():
    original = out("a 1\nb 2\nc 3\nd 4\n")
    missing = check_outputs(original, out("a 1\nb 2\nd 4\n"))
    assert fails(missing) == [
        "the candidate printed 1 lines fewer to stdout than the original (3 vs 4); first difference: "
        "line 3 of the original ('c 3') is missing"
    ]
    extra = check_outputs(original, out("a 1\nb 2\nc 3\ndebug 99\nd 5\n"))
    messages = fails(extra)
    assert "first difference: the candidate's line 4 ('debug 99') is not in the original" in messages[0]
    assert "stdout line 5 (line 4 of the original), number 1: expected 4, got 5" in messages[1]
    assert check_outputs(original, out("a 1\nb 2  \nc 3\nd 4\n\n\n")).passed  # trailing blanks do not count


def test_binary_and_non_utf8_output_is_compared_exactly():
    blob = bytes(range(256)) * 4
    same = check_outputs(RunOutput.from_bytes(0, blob, b""), RunOutput.from_bytes(0, blob, b""))
    assert same.passed
    other = RunOutput.from_bytes(0, blob[:-1] + b"\x00", b"")
    result = check_outputs(RunOutput.from_bytes(0, blob, b""), other)
    assert "stdout is not text (binary or not UTF-8), so it is compared exactly" in fails(result)[0]
    latin1 = RunOutput.from_bytes(0, "résumé 1.5\n".encode("latin-1"), b"")
    assert not check_outputs(out("résumé 1.5\n"), latin1).passed


def test_gigantic_output_is_refused_quickly():
    original = out("sum 1\n" * 100)
    flood = out("sum 1\n" * 8_000_000)  # 48 MB
    start = time.monotonic()
    result = check_outputs(original, flood)
    assert time.monotonic() - start < 2
    assert fails(result) == ["the candidate wrote 45.8 MB to stdout, the original 600 bytes"]
    capped = RunOutput.from_bytes(0, b"y" * 300, b"", max_stream_bytes=100)
    assert capped.stdout_truncated and len(capped.stdout) == 100
    assert any("output cap" in m for m in fails(check_outputs(out("y\n"), capped)))


def test_many_differences_are_summarised():
    original = out("".join(f"v {i}\n" for i in range(100)))
    candidate = out("".join(f"v {i + 1}\n" for i in range(100)))
    messages = fails(check_outputs(original, candidate))
    assert len(messages) == 13
    assert messages[-1] == "... and 88 more differences in stdout (100 lines differ in all)"


def floats(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def test_output_files_in_every_mode():
    original = out(
        "ok\n",
        output_files={
            "y.bin": floats(1.0, 2.0, 3.0),
            "log.txt": b"iters 10\nres 0.5\n",
            "img.png": b"\x89PNG...",
        },
    )
    close = out(
        "ok\n",
        output_files={
            "y.bin": floats(1.0, 2.0, 3.000001),
            "log.txt": b"iters 10\nres 0.5\n",
            "img.png": b"\x89PNG...",
        },
    )
    modes = {"y.bin": "binary:float32", "log.txt": "text", "img.png": "hash"}
    assert check_outputs(original, close, file_modes=modes).passed
    far = out(
        "ok\n",
        output_files={
            "y.bin": floats(1.0, 2.5, 3.0),
            "log.txt": b"iters 9\nres 0.5\n",
            "img.png": b"\x89PNG.!.",
        },
    )
    messages = fails(check_outputs(original, far, file_modes=modes))
    assert "file y.bin, element 1 (byte 4): expected 2, got 2.5 (rel. diff 2.5e-01 > rtol 1e-05)" in messages
    assert "file log.txt line 1, number 1: expected 10, got 9 (rel. diff 1.0e-01 > rtol 1e-05)" in messages
    assert any(m.startswith("file img.png must be identical") for m in messages)
    missing = check_outputs(original, out("ok\n"), file_modes=modes)
    assert "the original writes y.bin; the candidate does not" in fails(missing)
    short = out("ok\n", output_files={**close.output_files, "y.bin": floats(1.0, 2.0)})
    assert "file y.bin has 8 bytes, the original's 12 (2 vs 3 float32 values)" in fails(
        check_outputs(original, short, file_modes=modes)
    )
    with pytest.raises(ValueError, match="unknown output-file mode 'binary:float128'"):
        check_outputs(original, close, file_modes={"y.bin": "binary:float128"})


def test_feedback_is_ready_for_an_llm():
    result = check_outputs(out("sum 1.0\nPASS\n"), out("sum 2.0\nFAIL\n", exit_code=1))
    text = result.feedback()
    assert text.startswith("The candidate was rejected")
    assert "[fail] exit-code" in text and "[fail] stdout (line 1)" in text
    assert text.rstrip().endswith("how much work it does.")
    assert json.loads(json.dumps(result.to_dict()))["passed"] is False


def test_run_output_round_trips():
    run = out("a\n", exit_code=3, output_files={"f.bin": b"\x00\xff"}, timed_out=False)
    assert RunOutput.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_alternate_inputs_must_all_pass():
    def program(n: int, ignore_n: bool = False) -> RunOutput:
        size = 1000 if ignore_n else n
        return out(f"n = {size}\nsum = {size * 0.5:.6e}\nPASS\n")

    good = [
        InputRuns("--n 10", [program(10), program(10)], program(10)),
        InputRuns("--n 77", [program(77)], program(77)),
    ]
    assert check_alternate_inputs(good) == []
    tuned = [InputRuns("--n 77", [program(77)], program(77, ignore_n=True))]
    messages = [f.message for f in check_alternate_inputs(tuned)]
    assert messages[0] == (
        "with arguments `--n 77`: [stdout] stdout line 1, number 1: expected 77, got 1000 "
        "(rel. diff 1.2e+01 > rtol 1e-05)"
    )


def test_later_runs_must_match_the_first():
    first, same, changed = out("sum 4\n"), out("sum 4\n"), out("sum 5\n")
    mask = volatile_mask([first, first])
    assert check_repeat_runs([first, same, same], mask) == []
    findings = check_repeat_runs([first, same, changed], mask)
    assert [f.severity for f in findings] == ["fail"]
    assert findings[0].message.startswith("run 3 of the candidate printed something other than its first run")


def test_runtime_judges():
    cached = check_first_vs_later_durations([1.0, 0.95, 1.02], [1.0, 0.1, 0.11])
    assert cached is not None and cached.severity == "review" and "9.5x faster" in cached.message
    assert check_first_vs_later_durations([1.0, 0.95, 1.02], [0.8, 0.78, 0.81]) is None
    assert check_created_files({"out.txt"}, {"out.txt"}) == []
    assert "vecadd.cache" in check_created_files({"out.txt"}, {"out.txt", "vecadd.cache"})[0].message
    assert check_host_cpu_time(1.0, 1.2) is None
    assert check_host_cpu_time(1.0, 6.0).severity == "review"
    trace = check_kernel_trace({"add": 101}, {"add": 2})
    assert trace[0].severity == "review" and "ran 101 times in the original and 2 times" in trace[0].message
    assert check_kernel_trace({"add": 101}, {})[0].severity == "fail"
    assert check_kernel_trace({"add": 101}, {"add4": 101}) == []


def test_savings_above_twofold_go_to_a_human():
    assert saving_ratio(100.0, 40.0) == 2.5
    flagged = flag_large_saving(saving_ratio(100.0, 40.0))
    assert flagged is not None and flagged.severity == "review" and "2.5x less energy" in flagged.message
    assert flag_large_saving(1.6) is None
    assert flag_large_saving(saving_ratio(1.0, 0.0)) is not None


def _load_evaluate():
    """tests/corpus/evaluate.py, under a name no installed package can shadow."""
    return load_script(CORPUS / "evaluate.py", "wattson_corpus_evaluate")


def corpus_cases():
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    return [pytest.param(v, manifest, id=f"{v['program']}-{v['name']}") for v in manifest["variants"]]


@pytest.mark.parametrize(("variant", "manifest"), corpus_cases())
def test_oracle_on_the_corpus(variant, manifest):
    """Legit variants pass the oracle; hacks that change output fail it with the expected checks."""
    evaluate = sys.modules.get("wattson_corpus_evaluate") or _load_evaluate()
    verdict = evaluate.judge(
        evaluate.Variant(
            **{k: variant[k] for k in ("program", "name", "label", "what")},
            nvcc_flags=variant.get("nvcc_flags", []),
        ),
        manifest,
    )
    blocking = {f.check for f in verdict.oracle if f.severity in ("fail", "review")}
    if variant["label"] == "legit":
        assert blocking == set(), [f.describe() for f in verdict.oracle]
    else:
        oracle_checks = {"stdout", "markers", "exit-code", "output-file", "alternate-input", "timeout"}
        assert set(variant["expected"]) & oracle_checks <= blocking
