"""What a named value does in a program: sets how much work it does, tunes the launch, or neither.

The anti-hack checks compare constants, default values and command-line fallbacks between original and
candidate. A changed problem size or repeat count is a hack; a changed block size is tuning. In order:

1. `loop`: it bounds a host loop around GPU work, directly or as the argument of a function whose
   parameter does (`relax(a, b, n, sweeps)` with `for (s = 0; s < sweeps; ++s)` inside).
2. By name: TOL, EPS, THRESH, ... is a `tolerance`; BLOCK, THREADS, TILE, UNROLL, GRID, ... is `tuning`.
3. `tuning`: it is (part of) a launch's block size or shared-memory size, `<<<g, B>>>`, `dim3(B, B)`;
   or it is the whole grid argument (`<<<NB, 256>>>`) and is neither a kernel argument nor a loop bound.
4. `size`: it sizes an allocation, copy or vector, is an argv fallback, bounds a host loop, or is an
   argument of a kernel or of a host function that does GPU work. Then the same for the variables
   computed from it in one function (`bytes = n * sizeof(float)`, a few steps), nearest first, where
   bounding a loop around GPU work makes it `loop`.
5. `tuning` when it reaches only grid sizes; else `other`.

Names are matched as words, not by C++ scope: good enough to compare two versions of one program.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .cuda_source import CudaSource, tidy

RoleKind = Literal["loop", "size", "tolerance", "tuning", "other"]

_TOLERANCE_NAME_RE = re.compile(r"TOL|EPS|THRESH|ERR|ACCURA|PRECISION|DELTA", re.IGNORECASE)
_TUNING_NAME_RE = re.compile(
    r"BLOCK|THREAD|TPB|WARP|TILE|UNROLL|VEC|GRID|WORKGROUP|WG_?SIZE|STRIDE|CHUNK|PER_THREAD|ITEMS|STREAMS|LANES",
    re.IGNORECASE,
)
_SIZE_USE_RE = re.compile(
    r"\b(?:malloc|calloc|realloc|cudaMalloc\w*|hipMalloc\w*|cudaMemcpy\w*|hipMemcpy\w*|cudaMemset\w*|hipMemset\w*"
    r"|resize|reserve)\s*\(|\bnew\s+[\w:<>]+\s*\[|\bvector\s*<[^;]*>\s*\w+\s*[({]"
)
_TYPES = r"int|long|size_t|unsigned|float|double|auto|char|short|bool|const|int\d+_t|uint\d+_t"
_FLOW_DEPTH = 4  # n -> bytes -> buffer size: a few steps are enough, and cycles stop


@dataclass(frozen=True)
class Role:
    kind: RoleKind
    evidence: str = ""  # the code that shows it, for messages: "`for (int s = 0; s < sweeps; ++s)`"
    direct: bool = True  # False when it shows only through other variables or a function's parameter


def role_of(source: CudaSource, name: str, definition_line: int = -1) -> Role:
    """The role of the constant, default or variable `name` in source (rules in the module docstring).

    What the name itself shows comes first; then the variables computed from it, nearest first.
    `sizes[1]`, an element of an array of defaults, has the role of what it is copied to, or else of the
    array."""
    if "[" in name and not any(name in read for read in source.flows.values()):
        name = name.split("[", 1)[0]
    word = _word(name)
    loop = _repeats_work(source, name)
    if loop is not None:
        return loop
    if _TOLERANCE_NAME_RE.search(name):
        return Role("tolerance")
    if _TUNING_NAME_RE.search(name):
        return Role("tuning", "its name")
    for launch in source.launches:
        if any(word.search(part) for part in launch.block):
            return Role("tuning", f"the block size of `{launch.text}`")
    kernel_args = [launch.text.split(">>>", 1)[-1] for launch in source.launches]
    whole_grid = next((lc for lc in source.launches if lc.grid.strip("() ") == name), None)
    if whole_grid is not None and not any(word.search(args) for args in kernel_args):
        return Role("tuning", f"the grid of `{whole_grid.text}`")
    reach = _reach(source, name)
    for reached in reach:
        via = "" if reached == name else f" (through `{reached}`)"
        if reached != name:
            loop = _repeats_work(source, reached)
            if loop is not None:
                return Role("loop", loop.evidence + via, direct=False)
        use = _size_use(source, reached, definition_line if reached == name else -1, kernel_args)
        if use:
            return Role("size", use + via, direct=reached == name)
    if any(_word(reached).search(lc.grid) for reached in reach for lc in source.launches):
        return Role("tuning", "launch configurations only")
    return Role("other")


def _repeats_work(source: CudaSource, name: str) -> Role | None:
    """A "loop" role when name bounds a host loop around GPU work, here or in the function it is passed to."""
    word = _word(name)
    loop = next(
        (lp for lp in source.loops if lp.does_work and name not in lp.variables and word.search(lp.header)), None
    )
    if loop is not None:
        return Role("loop", f"`{loop.header}`")
    bounded = _bounds_work_loop_in_callee(source, name)
    return Role("loop", bounded, direct=False) if bounded else None


def _word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")


def _bounds_work_loop_in_callee(source: CudaSource, name: str) -> str:
    """`relax(a, b, n, sweeps)` where relax's parameter at that place bounds its loop around GPU work."""
    word = _word(name)
    for call in source.work_calls:
        parameters = source.parameters.get(call.callee, [])
        for argument, parameter in zip(call.arguments, parameters, strict=False):
            if not parameter or not word.search(argument):
                continue
            bound = _word(parameter)
            loop = next(
                (
                    lp
                    for lp in source.loops
                    if lp.function == call.callee
                    and lp.does_work
                    and parameter not in lp.variables
                    and bound.search(lp.header)
                ),
                None,
            )
            if loop is not None:
                return f"`{call.callee}(...)`, whose `{loop.header}` it bounds"
    return ""


def _reach(source: CudaSource, name: str) -> list[str]:
    """name, then the variables computed from it (in the same function), nearest first."""
    found, seen = [name], {("*", name)}
    frontier = [("*", name)]  # (function, variable); "*" for a name from any function
    for _ in range(_FLOW_DEPTH):
        frontier = [
            key
            for key, read in source.flows.items()
            if key not in seen and any(f in ("*", key[0]) and v in read for f, v in frontier)
        ]
        if not frontier:
            break
        seen.update(frontier)
        found += [v for v in sorted({v for _f, v in frontier}) if v not in found]
    return found


def _size_use(source: CudaSource, name: str, definition_line: int, kernel_args: list[str]) -> str:
    word = _word(name)
    # `int n` declares a parameter and `&x` says where a result goes: neither is a use of the value
    not_uses = re.compile(rf"(?:\b(?:{_TYPES})\s*[*&]*\s*|&\s*){re.escape(name)}\b")
    for number, text in enumerate(source.code_no_strings.splitlines(), start=1):
        if number != definition_line and word.search(not_uses.sub("", text)) and _SIZE_USE_RE.search(text):
            return f"`{tidy(text)}`"
    for _line, text in source.argv_statements:
        if word.search(text):
            return "the command line's fallback"
    for loop in source.loops:
        if word.search(loop.header):
            return f"`{loop.header}`"
    for launch, args in zip(source.launches, kernel_args, strict=True):
        if word.search(args):
            return f"`{launch.text}`"
    for call in source.work_calls:  # `&ms` is where a result goes, not an input
        if any(word.search(argument) and not argument.startswith("&") for argument in call.arguments):
            return f"`{call.callee}({', '.join(call.arguments)})`"
    return ""
