"""Declared output files (wattson.toml `outputs`), compared as the user said they should be.

Modes:
  "text"             numeric text, compared like stdout (volatile fields masked, rtol/atol)
  "binary[:dtype]"   raw little-endian values, element by element within rtol/atol; dtype is one of
                     float16, float32 (the default), float64, int8..int64, uint8..uint64
  "hash"             byte for byte (SHA-256), for outputs that must not change at all
"""

from __future__ import annotations

import hashlib
import struct

from .findings import Finding
from .numbers import compare_values
from .text_compare import compare_text
from .volatile import StreamMask

_DTYPES = {
    "float16": "e", "float32": "f", "float64": "d",
    "int8": "b", "int16": "h", "int32": "i", "int64": "q",
    "uint8": "B", "uint16": "H", "uint32": "I", "uint64": "Q",
}  # fmt: skip
# Elements compared one by one; beyond this the rest of the file is compared byte for byte, because
# a pure-Python loop over hundreds of millions of values would take minutes.
MAX_COMPARED_ELEMENTS = 16 * 2**20
_MAX_REPORTED = 5

FILE_MODES_HELP = "text, hash, binary, or binary:<dtype> with dtype one of " + ", ".join(_DTYPES)


def validate_mode(mode: str) -> str | None:
    """None if the mode is known, else a message saying what is allowed."""
    kind, _, dtype = mode.partition(":")
    if kind in ("text", "hash") and not dtype:
        return None
    if kind == "binary" and (not dtype or dtype in _DTYPES):
        return None
    return f"unknown output-file mode {mode!r}; use {FILE_MODES_HELP}"


def compare_file(
    name: str,
    original: bytes,
    candidate: bytes,
    mode: str,
    mask: StreamMask,
    *,
    rtol: float,
    atol: float,
) -> list[Finding]:
    check = "output-file"
    if original == candidate:
        return []
    kind, _, dtype = mode.partition(":")
    if kind == "text":
        try:
            ours, theirs = original.decode("utf-8"), candidate.decode("utf-8")
        except UnicodeDecodeError:
            ours, theirs = original.decode("utf-8", "replace"), candidate.decode("utf-8", "replace")
        return compare_text(ours, theirs, mask, rtol=rtol, atol=atol, label=f"file {name}", check=check)
    if kind == "hash":
        return [
            Finding(
                check,
                "fail",
                f"file {name} must be identical to the original's but is not (SHA-256 "
                f"{hashlib.sha256(original).hexdigest()[:12]}... vs "
                f"{hashlib.sha256(candidate).hexdigest()[:12]}..., "
                f"{len(original)} vs {len(candidate)} bytes)",
            )
        ]
    return _compare_binary(name, original, candidate, dtype or "float32", rtol=rtol, atol=atol)


def _compare_binary(name: str, original: bytes, candidate: bytes, dtype: str, *, rtol: float, atol: float):
    check = "output-file"
    code = "<" + _DTYPES[dtype]
    size = struct.calcsize(code)
    if len(original) != len(candidate):
        return [
            Finding(
                check,
                "fail",
                f"file {name} has {len(candidate)} bytes, the original's {len(original)} "
                f"({len(candidate) // size} vs {len(original) // size} {dtype} values)",
            )
        ]
    if len(original) % size:
        return [
            Finding(
                check,
                "fail",
                f"file {name} is {len(original)} bytes, not a whole number of {dtype} values; "
                "set its mode in wattson.toml to the type the program writes, or to hash",
            )
        ]
    findings: list[Finding] = []
    mismatches = 0
    compared_bytes = min(len(original), MAX_COMPARED_ELEMENTS * size)
    pairs = zip(
        struct.iter_unpack(code, original[:compared_bytes]),
        struct.iter_unpack(code, candidate[:compared_bytes]),
        strict=True,
    )
    for index, ((expected,), (got,)) in enumerate(pairs):
        reason = compare_values(float(expected), float(got), rtol, atol)
        if reason is None:
            continue
        mismatches += 1
        if mismatches <= _MAX_REPORTED:
            findings.append(
                Finding(
                    check,
                    "fail",
                    f"file {name}, element {index} (byte {index * size}): expected {expected:.6g}, "
                    f"got {got:.6g} ({reason})",
                )
            )
    if mismatches > _MAX_REPORTED:
        findings.append(
            Finding(
                check,
                "fail",
                f"... file {name}: {mismatches} of {compared_bytes // size} {dtype} values differ in all",
            )
        )
    if compared_bytes < len(original) and original[compared_bytes:] != candidate[compared_bytes:]:
        findings.append(
            Finding(
                check,
                "fail",
                f"file {name}: beyond its first {MAX_COMPARED_ELEMENTS} values (compared within tolerance), "
                "the rest must match exactly and does not",
            )
        )
    return findings
