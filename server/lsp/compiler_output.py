"""Compiler messages -> (line, column, severity, message) for diagnostics at their lines.

Understands nvcc's front end (`file.cu(12): error: ...`) and gcc/clang/hipcc
(`file.cu:12:5: error: ...`); other lines are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NVCC = re.compile(r"^(?P<file>[^\s:()][^:()]*?)\((?P<line>\d+)\): (?P<sev>error|warning|remark)[^:]*: (?P<msg>.*)$")
_GCC = re.compile(r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+):(?:(?P<col>\d+):)? "
                  r"(?P<sev>error|fatal error|warning|note): (?P<msg>.*)$")


@dataclass
class CompilerMessage:
    file: str
    line: int  # 1-based
    column: int  # 1-based, 1 when unknown
    severity: str  # "error" | "warning" | "note"
    message: str


def parse_compiler_output(output: str) -> list[CompilerMessage]:
    found: list[CompilerMessage] = []
    for raw in output.splitlines():
        line = raw.strip()
        m = _NVCC.match(line) or _GCC.match(line)
        if not m:
            continue
        sev = m.group("sev")
        sev = "error" if sev in ("error", "fatal error") else ("warning" if sev == "warning" else "note")
        col = int(m.groupdict().get("col") or 1)
        found.append(CompilerMessage(m.group("file"), int(m.group("line")), col, sev, m.group("msg")))
    return found


def messages_for(output: str, source_name: str) -> list[CompilerMessage]:
    """Messages about the given file (matched by base name: the build ran in a job directory)."""
    base = source_name.replace("\\", "/").rsplit("/", 1)[-1]
    return [m for m in parse_compiler_output(output) if m.file.replace("\\", "/").rsplit("/", 1)[-1] == base]
