"""Kernels in a document, by line and by name (the parsing itself is in profilers/kernels/source_map)."""

from __future__ import annotations

import functools
import re

from ..profilers.kernels.source_map import KernelDef, find_kernel_definitions


@functools.lru_cache(maxsize=8)  # a few open documents; each holds its text (2 MB at most)
def kernel_definitions(text: str) -> tuple[KernelDef, ...]:
    """The document's kernels, parsed once per text: hover, code lens and code action all ask on every
    request, and a parse takes milliseconds per 10 kB (60 ms for a 190 kB file). Read-only."""
    return tuple(find_kernel_definitions(text))


def kernel_at_line(text: str, line1: int) -> KernelDef | None:
    """The `__global__` function whose body contains this 1-based line."""
    for k in kernel_definitions(text):
        if k.line <= line1 <= (k.end_line or k.line):
            return k
    return None


_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def word_at(text: str, line0: int, char0: int) -> str | None:
    lines = text.splitlines()
    if not 0 <= line0 < len(lines):
        return None
    for m in _WORD.finditer(lines[line0]):
        if m.start() <= char0 <= m.end():
            return m.group()
    return None
