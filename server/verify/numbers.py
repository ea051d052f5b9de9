"""Numbers in printed output: finding them in a line, and deciding whether two of them agree.

A line is split into its numbers and its "shape" (the text with every number replaced by '#'),
so that "sum = 1.2345e+03" and "sum = 1.2301e+03" have the same shape and differ in one number.
Two numbers agree when |got - expected| <= atol + rtol * |expected| (numpy's isclose rule), or when
they differ by at most one unit in the last digit the original printed (printf rounding can turn
1.2349999 and 1.2350001 into 1.23 and 1.24). NaN matches NaN; an infinity matches the same infinity.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

# A number not glued to an identifier ("sm_90", "float4" are text), with its sign; hex integers;
# nan/inf words as printf writes them ("nan", "-nan", "inf", "-inf", "Infinity").
_NUMBER_RE = re.compile(
    r"""
    (?<![\w.])
    (?:
        [-+]?0[xX][0-9a-fA-F]+
      | [-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?
      | [-+]?(?:nan|inf(?:inity)?)(?![A-Za-z_])
    )
    """,
    re.VERBOSE | re.IGNORECASE,
)

# A unit right after a number marks it as a timing or rate: "3.2 ms", "12.5 GB/s", "(us)".
_UNIT_AFTER_RE = re.compile(
    r"""^\s*[(\[]?\s*
    (?:ns|us|µs|μs|ms|s|sec|secs|second|seconds|msec|usec|nsec|
       [kmgtp]?i?b/s|[kmgtp]?bytes/s|[kmgtp]?flop/?s|[kmgtp]?flops|ops/s|it/s|iter/s|fps|[kmg]?hz|
       [mk]?w|watts?|[mk]?j|joules?)
    (?![A-Za-z0-9_])""",
    re.VERBOSE | re.IGNORECASE,
)

# A timing word right before a number: "time: 3.2", "Elapsed = 3.2", "Kernel time (ms): 3.2".
_KEYWORD_BEFORE_RE = re.compile(
    r"""(?<![A-Za-z])(?:time|elapsed|duration|runtime|latency|bandwidth|throughput|took|timing|walltime|
        gflops|tflops|gflop/s|tflop/s|gb/s|tb/s|ms|sec|seconds|usec|msec)
    \s*(?:\([^()]*\)|\[[^\[\]]*\])?\s*[:=]?\s*$""",
    re.VERBOSE | re.IGNORECASE,
)

# Dates and times of day ("2025-01-31", "12:03:59") change from run to run.
_CLOCK_RE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b")

_SPACES_RE = re.compile(r"\s+")


class NumberToken(NamedTuple):  # a NamedTuple: outputs can hold millions of numbers
    text: str  # as printed
    value: float
    start: int  # offsets in the line
    end: int

    @property
    def last_place(self) -> float | None:
        """One unit in the last printed digit, for floating-point formats only."""
        return _last_place(self.text)


class Line(NamedTuple):
    text: str
    shape: str  # the text with each number replaced by '#', whitespace collapsed
    numbers: tuple[NumberToken, ...]


def parse_number(text: str) -> float:
    t = text.strip()
    body = t.lstrip("+-")
    if body[:2].lower() == "0x":
        value = float(int(body, 16))
        return -value if t.startswith("-") else value
    return float(t)  # float() understands nan, inf, infinity with a sign


def _last_place(text: str) -> float | None:
    """One unit in the last printed digit of a floating-point literal; None for integers and nan/inf."""
    t = text.lstrip("+-").lower()
    if t.startswith("0x") or "n" in t:  # hex, nan, inf
        return None
    mantissa, _, exponent = t.partition("e")
    if "." not in mantissa and not exponent:
        return None  # an integer: exact, no rounding slack
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def tokenize(text: str) -> Line:
    """Split one output line into its shape and its numbers."""
    numbers: list[NumberToken] = []
    pieces: list[str] = []
    pos = 0
    for m in _NUMBER_RE.finditer(text):
        try:
            value = parse_number(m.group())
        except ValueError:
            continue
        pieces.append(text[pos : m.start()])
        pieces.append("#")
        numbers.append(NumberToken(m.group(), value, m.start(), m.end()))
        pos = m.end()
    pieces.append(text[pos:])
    shape = _SPACES_RE.sub(" ", "".join(pieces)).strip()
    return Line(text=text, shape=shape, numbers=tuple(numbers))


def split_lines(text: str) -> list[str]:
    """Lines without trailing whitespace; trailing blank lines do not count."""
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def unit_volatile_indices(line: Line) -> set[int]:
    """Numbers on this line that are timings, rates or clock readings, by the words around them."""
    volatile: set[int] = set()
    clock_spans = [m.span() for m in _CLOCK_RE.finditer(line.text)]
    previous_end = 0
    for i, number in enumerate(line.numbers):
        after = line.text[number.end : number.end + 24]
        before = line.text[previous_end : number.start]
        if (
            _UNIT_AFTER_RE.match(after)
            or _KEYWORD_BEFORE_RE.search(before)
            or any(a <= number.start and number.end <= b for a, b in clock_spans)
        ):
            volatile.add(i)
        previous_end = number.end
    return volatile


def same_number(expected: float, got: float) -> bool:
    return expected == got or (math.isnan(expected) and math.isnan(got))


def compare_number(expected: NumberToken, got: NumberToken, rtol: float, atol: float) -> str | None:
    """None when the numbers agree; otherwise why not, e.g. 'rel. diff 3.6e-03 > rtol 1e-05'."""
    if expected.value == got.value:
        return None
    return _compare(expected.value, got.value, expected.text, rtol, atol)


def _compare(e: float, g: float, printed: str | None, rtol: float, atol: float) -> str | None:
    if same_number(e, g):
        return None
    if math.isnan(e) or math.isnan(g) or math.isinf(e) or math.isinf(g):
        return "NaN or infinity where the original printed a different value"
    diff = abs(g - e)
    if diff <= atol + rtol * abs(e):
        return None
    place = _last_place(printed) if printed is not None else None
    if place is not None and diff <= place * (1 + 1e-9):
        return None  # within printf rounding of the original's last digit
    if e != 0 and rtol > 0 and atol < rtol * abs(e):
        return f"rel. diff {diff / abs(e):.1e} > rtol {rtol:g}"
    return f"abs. diff {diff:.1e} > atol {atol:g} + rtol {rtol:g} x |expected|"


def compare_values(expected: float, got: float, rtol: float, atol: float) -> str | None:
    """compare_number for raw values (binary files), without printed-digit slack."""
    return _compare(expected, got, None, rtol, atol)
