"""Pairing the lines of two outputs, cheaply enough for outputs of hundreds of thousands of lines.

Identical leading and trailing lines are paired by plain string equality; only the middle, where the
outputs differ, is aligned on line shapes (text without numbers) with difflib, and only when it is
small enough for difflib's quadratic worst case. Numbers are parsed only on lines that differ.
"""

from __future__ import annotations

import difflib

from .numbers import tokenize

# Above this many lines in the differing middle, lines are paired by position instead of aligned.
MAX_ALIGNED_LINES = 20_000

Opcode = tuple[str, int, int, int, int]  # as difflib: tag, a[i1:i2], b[j1:j2]


def align(a: list[str], b: list[str]) -> list[Opcode]:
    """difflib-style opcodes covering both lists; "equal" blocks may still differ in their numbers."""
    n = min(len(a), len(b))
    prefix = 0
    while prefix < n and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < n - prefix and a[len(a) - 1 - suffix] == b[len(b) - 1 - suffix]:
        suffix += 1
    ops: list[Opcode] = []
    if prefix:
        ops.append(("equal", 0, prefix, 0, prefix))
    a_end, b_end = len(a) - suffix, len(b) - suffix
    middle_a, middle_b = a[prefix:a_end], b[prefix:b_end]
    if middle_a or middle_b:
        if len(middle_a) == len(middle_b) or len(middle_a) + len(middle_b) > MAX_ALIGNED_LINES:
            ops.append(("replace", prefix, a_end, prefix, b_end))
        else:
            matcher = difflib.SequenceMatcher(
                a=[tokenize(line).shape for line in middle_a],
                b=[tokenize(line).shape for line in middle_b],
                autojunk=False,
            )
            for tag, i1, i2, j1, j2 in matcher.get_opcodes():
                ops.append((tag, i1 + prefix, i2 + prefix, j1 + prefix, j2 + prefix))
    if suffix:
        ops.append(("equal", a_end, len(a), b_end, len(b)))
    return ops


def paired(ops: list[Opcode]) -> list[tuple[int, int]]:
    """The line pairs to compare: equal blocks, and replaced blocks as far as they line up."""
    pairs: list[tuple[int, int]] = []
    for tag, i1, i2, j1, j2 in ops:
        if tag in ("equal", "replace"):
            k = min(i2 - i1, j2 - j1)
            pairs.extend(zip(range(i1, i1 + k), range(j1, j1 + k), strict=True))
    return pairs
