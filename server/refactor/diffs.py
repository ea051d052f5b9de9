"""The unified diff offered to the user, checked before it is offered.

difflib writes it; unidiff parses it back, and the new text is rebuilt from the original and the
parsed hunks: a diff that does not reproduce the candidate exactly is never shown.
"""

from __future__ import annotations

import difflib

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError


class DiffError(Exception):
    """The diff does not reproduce the candidate; worded for the report."""


def unified_diff(original: str, new: str, path: str, context_lines: int = 3) -> str:
    """A/B diff of one file. Lines without a final newline get difflib's marker line."""
    a, b = original.splitlines(keepends=True), new.splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, fromfile=f"a/{path}", tofile=f"b/{path}", n=context_lines)
    out = []
    for line in lines:
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)


def apply_parsed(original: str, diff: str) -> str:
    """The new text, from the original and the diff as unidiff parses it."""
    try:
        patch = PatchSet(diff)
    except UnidiffParseError as e:
        raise DiffError(f"the diff does not parse: {e}") from e
    if len(patch) != 1:
        raise DiffError(f"the diff touches {len(patch)} files, expected one")
    source = original.splitlines(keepends=True)
    result: list[str] = []
    position = 0  # lines of the original consumed so far
    for hunk in patch[0]:
        start = hunk.source_start - 1 if hunk.source_length else hunk.source_start
        if start < position:
            raise DiffError("the diff's hunks overlap")
        result += source[position:start]
        position = start
        for line in hunk:
            if line.is_context or line.is_removed:
                if position >= len(source) or source[position].rstrip("\r\n") != line.value.rstrip("\r\n"):
                    raise DiffError(f"the diff does not match the original at line {position + 1}")
                if line.is_context:
                    result.append(source[position])
                position += 1
            elif line.is_added:
                result.append(line.value)
    result += source[position:]
    text = "".join(result)
    return _fix_final_newlines(text, patch)


def _fix_final_newlines(text: str, patch: PatchSet) -> str:
    # unidiff keeps "\ No newline at end of file" as a line of its own after the affected line.
    for hunk in patch[0]:
        lines = list(hunk)
        for i, line in enumerate(lines[1:], start=1):
            if line.line_type == "\\" and lines[i - 1].is_added and text.endswith("\n"):
                text = text[:-1]
    return text


def checked_diff(original: str, new: str, path: str) -> str:
    """The diff, after proving that it turns `original` into `new`."""
    diff = unified_diff(original, new, path)
    if not diff:
        raise DiffError("the candidate is identical to the original")
    rebuilt = apply_parsed(original, diff)
    if rebuilt != new:
        raise DiffError("the diff, parsed back, does not reproduce the candidate")
    return diff
