"""Kernels in a document, by line and by name (the parsing itself is in profilers/kernels/source_map)."""

from __future__ import annotations

import re

from ..profilers.kernels.source_map import KernelDef, find_kernel_definitions


def kernel_at_line(text: str, line1: int) -> KernelDef | None:
    """The `__global__` function whose body contains this 1-based line."""
    for k in find_kernel_definitions(text):
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
