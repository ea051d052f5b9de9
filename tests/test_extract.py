"""Code extraction from model replies: the contract's shape, and the ways models stray from it."""

from __future__ import annotations

from wattson.refactor.extract import (
    abbreviated_line,
    changes_section,
    extract_reply,
    has_end_marker,
    is_cut_off,
    join_continuation,
    parse_blocks,
)

KERNEL = """#include <cstdio>
__global__ void scale(float *x, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= 2.0f;
}
int main() { printf("PASS\\n"); return 0; }
"""


def reply(*blocks: str, changes: str = "## Changes\n- coalesced loads: less time\n", end: bool = True) -> str:
    return changes + "\n" + "\n".join(blocks) + ("\nEND OF FILES\n" if end else "")


def block(code: str, info: str = "cuda file=src/scale.cu", fence: str = "```") -> str:
    return f"{fence}{info}\n{code}{fence}\n"


def test_the_contract_shape_gives_the_file_and_the_changes():
    text = reply(block(KERNEL))
    out = extract_reply(text, source_file="src/scale.cu")
    assert out.ok and out.complete
    assert out.files == {"src/scale.cu": KERNEL}
    assert out.changes == ["coalesced loads: less time"]
    assert out.notes == []


def test_several_files_only_the_editable_one_is_taken():
    text = reply(block("#define N 4\n", "cpp file=src/common.h"), block(KERNEL))
    out = extract_reply(text, source_file="src/scale.cu")
    assert list(out.files) == ["src/scale.cu"]
    assert "src/common.h" in out.ignored and "may change" in out.ignored["src/common.h"]


def test_only_a_non_editable_file_is_a_problem_naming_it():
    out = extract_reply(reply(block("#define N 4\n", "cpp file=src/common.h")), source_file="src/scale.cu")
    assert not out.ok
    assert "src/common.h" in out.problem and "src/scale.cu" in out.problem


def test_a_file_named_without_its_folder_is_matched_by_name():
    out = extract_reply(reply(block(KERNEL, "cuda file=scale.cu")), source_file="src/scale.cu")
    assert out.files == {"src/scale.cu": KERNEL}
    assert "taken as `src/scale.cu`" in out.notes[0]


def test_one_unnamed_block_is_the_source_file():
    out = extract_reply(reply(block(KERNEL, "cuda")), source_file="scale.cu")
    assert out.files == {"scale.cu": KERNEL}
    assert "named no file" in out.notes[0]


def test_of_several_unnamed_blocks_the_whole_program_is_taken():
    snippet = block("x[i] *= 2.0f;\n", "cuda")
    out = extract_reply(reply(snippet, block(KERNEL, "cuda")), source_file="scale.cu")
    assert out.files == {"scale.cu": KERNEL}


def test_no_fences_at_all_takes_the_code_from_its_first_line():
    text = "Here is the new version.\n\n" + KERNEL + "END OF FILES\n"
    out = extract_reply(text, source_file="scale.cu")
    assert out.files["scale.cu"] == KERNEL
    assert "no code fences" in out.notes[0]


def test_prose_without_code_is_a_problem():
    out = extract_reply("I would tile the loop and use shared memory.", source_file="scale.cu")
    assert not out.ok and "no complete `scale.cu`" in out.problem


def test_a_longer_fence_keeps_inner_backticks():
    code = 'const char* doc = R"(\n```\nnot a fence end\n```\n)";\n' + KERNEL
    out = extract_reply(reply(block(code, fence="````")), source_file="src/scale.cu")
    assert out.files["src/scale.cu"] == code


def test_tilde_fences_and_quoted_file_names():
    out = extract_reply(
        reply(block(KERNEL, 'cuda file="src/scale.cu"', fence="~~~")), source_file="src/scale.cu"
    )
    assert out.files == {"src/scale.cu": KERNEL}


def test_an_abbreviated_file_is_refused_with_the_line_quoted():
    code = KERNEL.replace('int main() { printf("PASS\\n"); return 0; }', "// ... rest unchanged")
    out = extract_reply(reply(block(code)), source_file="src/scale.cu")
    assert not out.ok and "abbreviated" in out.problem and "rest unchanged" in out.problem


def test_printf_with_dots_is_not_an_abbreviation():
    assert abbreviated_line('printf("working...\\n");\nint f(int n, ...);\n') is None
    assert abbreviated_line("  /* ... */\n") is None
    assert abbreviated_line("  // ...\n") == "// ..."
    assert abbreviated_line("// the rest of the file stays unchanged\n") is not None


def test_a_later_block_for_the_same_file_wins():
    fixed = KERNEL.replace("2.0f", "3.0f")
    out = extract_reply(reply(block(KERNEL), block(fixed)), source_file="src/scale.cu")
    assert out.files["src/scale.cu"] == fixed


def test_cut_off_replies_are_recognised():
    complete = reply(block(KERNEL))
    assert not is_cut_off(complete) and has_end_marker(complete)
    open_block = "## Changes\n- x\n```cuda file=scale.cu\n" + KERNEL[:60]
    assert is_cut_off(open_block)
    assert parse_blocks(open_block)[0].closed is False
    assert is_cut_off(reply(block(KERNEL), end=False))  # no END OF FILES line
    # The marker inside a code block does not count.
    assert not has_end_marker("```text\nEND OF FILES\n```\n")


def test_an_open_block_is_not_taken_as_a_file():
    open_block = "```cuda file=scale.cu\n" + KERNEL[:60]
    out = extract_reply(open_block, source_file="scale.cu")
    assert not out.ok and not out.complete


def test_continuation_joins_mid_line_and_drops_a_reopened_fence():
    partial = "## Changes\n- x\n```cuda file=scale.cu\n" + KERNEL[:70]
    rest = "```cuda file=scale.cu\n" + KERNEL[70:] + "```\nEND OF FILES\n"
    joined = join_continuation(partial, rest)
    out = extract_reply(joined, source_file="scale.cu")
    assert out.ok and out.complete and out.files["scale.cu"] == KERNEL


def test_continuation_that_repeats_the_last_lines_is_deduplicated():
    lines = KERNEL.splitlines(keepends=True)
    partial = "```cuda file=scale.cu\n" + "".join(lines[:4])
    rest = "".join(lines[2:]) + "```\nEND OF FILES\n"  # repeats two complete lines
    out = extract_reply(join_continuation(partial, rest), source_file="scale.cu")
    assert out.files["scale.cu"] == KERNEL


def test_changes_section_joins_wrapped_bullets_and_stops_at_code():
    text = "## Changes\n- tile the stencil\n  through shared memory\n* fuse kernels\n\n```cuda\nx\n```\n"
    assert changes_section(text) == ["tile the stencil through shared memory", "fuse kernels"]
    assert changes_section("no such section") == []
