"""Minimal line edits between two versions of a file, for the editor's refactor preview."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass
class LineEdit:
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, exclusive: lines [start_line, end_line) are replaced
    new_text: str


def line_edits(old: str, new: str) -> list[LineEdit]:
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    edits = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            edits.append(LineEdit(i1, i2, "".join(b[j1:j2])))
    return edits


def apply_line_edits(old: str, edits: list[LineEdit]) -> str:
    lines = old.splitlines(keepends=True)
    for e in sorted(edits, key=lambda e: e.start_line, reverse=True):
        lines[e.start_line:e.end_line] = [e.new_text] if e.new_text else []
    return "".join(lines)
