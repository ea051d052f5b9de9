"""Anti-hack analysis of a candidate's source against the original's.

Output comparison cannot see every hack: fewer repetitions of an idempotent kernel, a launch that
runs only on the first repetition, PASS printed without its check, or a literal where the original
printed a computed value all leave stdout unchanged. These checks compare the two sources (parsed
with tree-sitter-cuda, see cuda_source.py) and report what the candidate changed that a legitimate
energy optimization has no reason to change. docs/verification.md lists every check.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter

from .api_checks import check_apis, check_precision
from .c_expr import Value, names_in
from .cuda_source import CudaSource, Launch, parse, squash, tidy
from .findings import Finding
from .markers import Patterns
from .numbers import tokenize
from .runtime_checks import flag_large_saving, saving_ratio
from .value_roles import Role, role_of

__all__ = ["check_candidate", "flag_large_saving", "saving_ratio"]

_COMMAND_LINE_RE = re.compile(r"\b(?:argc|argv)\b")
_NUMBER_RE = re.compile(r"(?<![\w.])(?:0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)[uUlLfF]*")
_PRINTF_SPEC_RE = re.compile(
    r"%[-+ #0]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|L|z|j|t)?[diouxXeEfFgGaAcsp]"
)


def check_candidate(
    original_src: str,
    candidate_src: str,
    *,
    tolerance_allows_lower_precision: bool = False,
    original_build: str = "",
    candidate_build: str = "",
    pass_regex: Patterns | None = None,
) -> list[Finding]:
    """Every suspicious change from original to candidate; [] for a clean candidate.

    original_build/candidate_build are the build commands, for compiler flags such as -use_fast_math;
    pass_regex is the PASS marker of wattson.toml (default: the oracle's).
    """
    original, candidate = parse(original_src, pass_regex), parse(candidate_src, pass_regex)
    findings: list[Finding] = []
    findings += check_launches(original, candidate)
    findings += check_work_loops(original, candidate)
    findings += check_work_calls(original, candidate)
    findings += check_constants(original, candidate)
    findings += check_defaults(original, candidate)
    findings += check_argv(original, candidate)
    findings += check_timing(original, candidate)
    findings += check_self_check(original, candidate)
    findings += check_memorised_output(original, candidate)
    findings += check_precision(
        original,
        candidate,
        original_build=original_build,
        candidate_build=candidate_build,
        allowed=tolerance_allows_lower_precision,
    )
    findings += check_apis(original, candidate)
    if candidate.has_parse_errors and not original.has_parse_errors:
        findings.append(
            Finding(
                "parse",
                "info",
                "parts of the candidate could not be parsed; checks may have missed changes there",
            )
        )
    return findings


def _lines(launches: list[Launch]) -> str:
    return ", ".join(str(launch.line) for launch in launches)


def _source_line(source: CudaSource, line: int | None) -> str:
    lines = source.text.splitlines()
    if line is None or not 0 < line <= len(lines):
        return ""
    return f"`{tidy(lines[line - 1])}`"


# --- kernel launches ---------------------------------------------------------------------------
def check_launches(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    ours, theirs = original.kernels_launched, candidate.kernels_launched
    findings: list[Finding] = []
    if sum(ours.values()) and not sum(theirs.values()):
        return [
            Finding(
                "kernel-launch",
                "fail",
                f"the candidate launches no GPU kernel; the original launches {', '.join(sorted(ours))} "
                "(the work was removed or moved to the host)",
            )
        ]
    new_kernels = sorted(set(theirs) - set(ours))
    for kernel, count in sorted(ours.items()):
        if theirs.get(kernel, 0) >= count:
            continue
        sites = [launch for launch in original.launches if launch.kernel == kernel and not launch.dead]
        if new_kernels:
            findings.append(
                Finding(
                    "kernel-launch",
                    "info",
                    f"`{kernel}` is launched at {theirs.get(kernel, 0)} place(s) instead of {count}; "
                    "the candidate "
                    f"launches new kernels ({', '.join(new_kernels)}), presumably in its place",
                )
            )
        else:
            findings.append(
                Finding(
                    "kernel-launch",
                    "fail",
                    f"the original launches `{kernel}` at {count} place(s) (line {_lines(sites)}), "
                    f"the candidate at {theirs.get(kernel, 0)}, and no new kernel takes its place: "
                    "work is skipped or moved to the host",
                )
            )
    findings += _conditional_launches(original, candidate)
    return findings


def _conditional_launches(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    """A launch that now runs only on some iterations of its loop leaves later iterations stale results."""
    known = {g.condition for launch in original.launches for g in launch.guards if g.names & launch.loop_vars}
    findings: list[Finding] = []
    for launch in candidate.launches:
        if launch.dead:
            continue
        for guard in launch.guards:
            if not (guard.names & launch.loop_vars) or guard.condition in known or guard.value is not None:
                continue
            only_loop = guard.names <= launch.loop_vars
            findings.append(
                Finding(
                    "kernel-launch",
                    "fail" if only_loop else "review",
                    f"`{launch.text}` now runs only when `{guard.condition}`"
                    + (" is false" if guard.negated else "")
                    + ", a condition on its loop's counter that the original does not have: the other "
                    "iterations reuse earlier results instead of recomputing them",
                    launch.line,
                )
            )
    for launch in original.launches:
        if launch.dead:
            continue
        if any(c.kernel == launch.kernel and c.dead for c in candidate.launches) and not any(
            c.kernel == launch.kernel and not c.dead for c in candidate.launches
        ):
            dead = next(c for c in candidate.launches if c.kernel == launch.kernel and c.dead)
            findings.append(
                Finding("kernel-launch", "fail", f"`{dead.text}` is in code that never runs", dead.line)
            )
    return findings


# --- repetitions and problem size --------------------------------------------------------------
def _describe_bounds(bounds: tuple) -> str:
    return ", ".join(f"{b:g}" if isinstance(b, float) else str(b) for b in bounds)


def check_work_loops(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    """Host loops around GPU work must keep their constant bounds (the repeat count of a benchmark)."""
    available = Counter(loop.bounds for loop in candidate.loops if loop.does_work)
    findings: list[Finding] = []
    reported: set[int] = set()
    for loop in original.loops:
        if not loop.does_work or not loop.bounds:
            continue
        if available[loop.bounds] > 0:
            available[loop.bounds] -= 1
            continue
        reported.add(loop.line)
        theirs = [f"`{c.header}` (bounds {_describe_bounds(c.bounds) or 'not constant'})"
                  for c in candidate.loops if c.does_work]  # fmt: skip
        findings.append(
            Finding(
                "iteration-count",
                "fail",
                f"the original repeats GPU work in `{loop.header}` (line {loop.line}, bounds "
                f"{_describe_bounds(loop.bounds)}); the candidate has no loop around GPU work with "
                "those bounds" + (f" (its loops around GPU work: {'; '.join(theirs)})" if theirs else ""),
            )
        )
    return findings + _changed_loop_headers(original, candidate, reported)


def _literals(text: str) -> Counter[str]:
    return Counter(m.lower().rstrip("ulf") for m in _NUMBER_RE.findall(text))


def _loop_key(header: str) -> str:
    """The header without formatting, `++i`, `i += 1` and `i = i + 1` all written `i++`."""
    text = squash(header)
    text = re.sub(r"\+\+(\w+)", r"\1++", text)
    text = re.sub(r"\b(\w+)\+=1\b", r"\1++", text)
    return re.sub(r"\b(\w+)=\1\+1\b", r"\1++", text)


def _same_work(original: CudaSource, candidate: CudaSource, functions: frozenset[str]) -> bool:
    return all(original.bodies.get(f) == candidate.bodies.get(f) for f in functions)


def _changed_loop_headers(original: CudaSource, candidate: CudaSource, reported: set[int]) -> list[Finding]:
    """`s < sweeps` became `s < sweeps / 2`, `rep++` became `rep += 2`: the same loop with other numbers.

    Constant bounds are compared by value above; this also covers bounds that are variables."""
    ours_keys = Counter((lp.function, _loop_key(lp.header)) for lp in original.loops if lp.does_work)
    available = Counter((lp.function, _loop_key(lp.header)) for lp in candidate.loops if lp.does_work)
    findings: list[Finding] = []
    for loop in original.loops:
        key = (loop.function, _loop_key(loop.header))
        if not loop.does_work:
            continue
        if available[key] > 0:
            available[key] -= 1
            continue
        if loop.line in reported:
            continue
        names, literals = names_in(loop.header), _literals(loop.header)
        rival = next(
            (
                c
                for c in candidate.loops
                if c.does_work
                and c.function == loop.function
                and not ours_keys[(c.function, _loop_key(c.header))]
                and names_in(c.header) == names
                and _literals(c.header) != literals
            ),
            None,
        )
        if rival is None:
            continue
        same = rival.work == loop.work and _same_work(original, candidate, loop.work)
        findings.append(
            Finding(
                "iteration-count",
                "fail" if same else "review",
                f"the original repeats GPU work in `{loop.header}` (line {loop.line}), the candidate in "
                f"`{rival.header}`: the same loop with other numbers, so the work runs a different number of "
                "times"
                + ("" if same else "; what each iteration runs changed too: check that it now does as much more"),
                rival.line,
            )
        )
    return findings


def check_work_calls(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    """A host function doing GPU work called with other numbers: `relax(a, b, n, sweeps / 2)`."""
    ours_keys = Counter((c.function, c.callee, tuple(c.arguments)) for c in original.work_calls)
    available = Counter((c.function, c.callee, tuple(c.arguments)) for c in candidate.work_calls)
    findings: list[Finding] = []
    for call in original.work_calls:
        key = (call.function, call.callee, tuple(call.arguments))
        if available[key] > 0:
            available[key] -= 1
            continue
        for rival in candidate.work_calls:
            if (
                rival.callee != call.callee
                or rival.function != call.function
                or len(rival.arguments) != len(call.arguments)
                or ours_keys[(rival.function, rival.callee, tuple(rival.arguments))]
            ):
                continue
            changed = [
                (k, a, b)
                for k, (a, b) in enumerate(zip(call.arguments, rival.arguments, strict=True))
                if a != b and names_in(a) == names_in(b) and _literals(a) != _literals(b)
            ]
            if not changed:
                continue
            k, before, after = changed[0]
            parameters = original.parameters.get(call.callee, [])
            parameter = f" (its parameter `{parameters[k]}`)" if k < len(parameters) and parameters[k] else ""
            same = _same_work(original, candidate, frozenset({call.callee}))
            findings.append(
                Finding(
                    "problem-size",
                    "fail" if same else "review",
                    f"`{call.callee}`, which does GPU work, is passed `{after}` where the original passes "
                    f"`{before}`{parameter}: the same call with other numbers does a different amount of work"
                    + ("" if same else f"; `{call.callee}` itself changed too: check that it does the same work"),
                    rival.line,
                )
            )
            break
    return findings


def _uses(source: CudaSource, name: str, definition_line: int) -> list[str]:
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    return [
        text
        for number, text in enumerate(source.code_no_strings.splitlines(), start=1)
        if number != definition_line and pattern.search(text)
    ]


def _reads_command_line(text: str) -> bool:
    return bool(_COMMAND_LINE_RE.search(text))


def _value_changed(
    name: str, role: Role, change: str, before: Value | None, after: Value | None, line: int | None
) -> Finding | None:
    """The finding for a value that differs between original and candidate, by what the value does."""
    if role.kind == "loop":
        return Finding(
            "iteration-count",
            "fail",
            f"{change}; it sets how many times GPU work is repeated ({role.evidence}), which an optimization "
            "must not change",
            line,
        )
    if role.kind == "size":
        return Finding(
            "problem-size",
            "fail",
            f"{change}; it sets how much work the program does ({role.evidence}), which an optimization must "
            "not change",
            line,
        )
    if role.kind == "tolerance":
        looser = before is None or after is None or abs(after) > abs(before)
        return Finding(
            "verification-changed",
            "fail" if looser else "info",
            f"{change}: a looser tolerance lets wrong results pass the self-check"
            if looser
            else f"{change} (a stricter tolerance)",
            line,
        )
    if role.kind == "tuning":
        return Finding("tuning", "info", f"{change} (launch configuration: {role.evidence})", line)
    return None


def check_constants(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    """#defines, const/constexpr values and file-scope values: changed values, by what they do."""
    findings: list[Finding] = []
    for name, ours in original.constants.items():
        theirs = candidate.constants.get(name)
        if _reads_command_line(ours.value_text):
            continue  # check_argv compares statements that read the command line
        role = role_of(original, name, ours.line)
        if theirs is None:
            if role.kind == "size" and _uses(candidate, name, -1) == []:
                findings.append(
                    Finding(
                        "problem-size",
                        "review",
                        f"the candidate no longer defines `{name}` ({tidy(ours.value_text)}), which sets the "
                        "problem size in the original: check that the size is unchanged",
                    )
                )
            continue
        same_value = ours.value is not None and ours.value == theirs.value
        if same_value or squash(ours.value_text) == squash(theirs.value_text):
            continue
        if role.kind == "loop" and role.direct:
            continue  # the bounds of its loop are compared by check_work_loops, with their values
        change = f"`{name}` changed from {tidy(ours.value_text)} to {tidy(theirs.value_text)}"
        finding = _value_changed(name, role, change, ours.value, theirs.value, theirs.line)
        findings.append(
            finding or Finding("constant-changed", "review", f"{change}: check that the work done is unchanged",
                               theirs.line)
        )  # fmt: skip
    return findings


def check_defaults(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    """Variables that start from a constant and may be set again (`int n = 4096, sweeps = 7000;` before
    the command line is read): their starting value is the program's default problem."""
    findings: list[Finding] = []
    for (function, name), ours in original.defaults.items():
        theirs = candidate.defaults.get((function, name))
        if theirs is None:
            constant = candidate.constants.get(name)
            theirs = constant if constant is not None and constant.function == function else None
        if theirs is None:  # moved to another function, e.g. a parse_args() helper
            elsewhere = [c for (_f, n), c in candidate.defaults.items() if n == name]
            theirs = elsewhere[0] if len(elsewhere) == 1 else None
        if theirs is None or theirs.value == ours.value or squash(theirs.value_text) == squash(ours.value_text):
            continue  # a renamed variable, an unchanged value, or a constant it refers to (check_constants)
        role = role_of(original, name, ours.line)
        if role.kind == "tolerance" and not isinstance(ours.value, float):
            continue  # `int errors = 0` is a counter, whatever its name says
        change = (
            f"`{name}` starts at {tidy(ours.value_text)} in the original and at {tidy(theirs.value_text)} "
            "in the candidate"
        )
        finding = _value_changed(name, role, change, ours.value, theirs.value, theirs.line)
        if finding is not None:  # counters and sums (`int errors = 0`) say nothing about the work
            findings.append(finding)
    return findings


def _fallback_changes(
    original: CudaSource, candidate: CudaSource, gone: list[tuple[int, str]], added: list[tuple[int, str]]
) -> tuple[list[Finding], set[int], set[int]]:
    """Command-line reads that differ only in their fallback (`argc > 1 ? atoi(argv[1]) : 4096`):
    findings by what the value does, and the lines of the statements so explained."""
    findings: list[Finding] = []
    explained_gone: set[int] = set()
    explained_added: set[int] = set()
    for line, text in gone:
        ours = [d for d in original.argv_defaults if d.statement == text]
        if not ours:
            continue
        match = next(
            (
                (n, [d for d in candidate.argv_defaults if d.statement == t])
                for n, t in added
                if n not in explained_added
                and any(d.statement == t and d.shape == ours[0].shape for d in candidate.argv_defaults)
            ),
            None,
        )
        if match is None:
            continue
        new_line, theirs = match
        explained_gone.add(line)
        explained_added.add(new_line)
        for before, after in zip(ours, theirs, strict=False):
            if squash(before.text) == squash(after.text) or (before.value is not None and before.value == after.value):
                continue
            name = before.target or "the value"
            role = role_of(original, before.target, before.line) if before.target else Role("size", "argv")
            change = (
                f"the fallback of {('`' + name + '`') if before.target else name} when the command line does not "
                f"give it changed from {_shown(before.text, before.value)} to {_shown(after.text, after.value)} "
                f"({_source_line(candidate, new_line)})"
            )
            finding = _value_changed(name, role, change, before.value, after.value, new_line)
            findings.append(
                finding
                or Finding("argv-parsing", "review", f"{change}: check that the work done is unchanged", new_line)
            )
    return findings, explained_gone, explained_added


def _shown(text: str, value: Value | None) -> str:
    """`N_DEFAULT / 4 (1048576)`: the expression, and its value where that is not plain to see."""
    if value is None:
        return tidy(text)
    shown = str(value) if isinstance(value, int) else f"{value:g}"
    return tidy(text) if squash(text).rstrip("uUlLfF") == shown else f"{tidy(text)} ({shown})"


def check_argv(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    ours = Counter(text for _line, text in original.argv_statements)
    theirs = Counter(text for _line, text in candidate.argv_statements)
    if ours == theirs:
        return []
    gone = [(line, text) for line, text in original.argv_statements if (ours - theirs)[text]]
    added = [(line, text) for line, text in candidate.argv_statements if (theirs - ours)[text]]
    findings, explained_gone, explained_added = _fallback_changes(original, candidate, gone, added)
    gone_lines = [line for line, _text in gone if line not in explained_gone]
    added_lines = [line for line, _text in added if line not in explained_added]
    if not gone_lines and not added_lines:
        return findings
    parts = []
    if gone_lines:
        parts.append("the original's " + ", ".join(_source_line(original, n) for n in gone_lines[:3]) + " is gone")
    if added_lines:
        parts.append(
            "the candidate has " + ", ".join(_source_line(candidate, n) for n in added_lines[:3]) + " instead"
        )
    return findings + [
        Finding(
            "argv-parsing",
            "fail",
            "the candidate reads its command line differently (" + "; ".join(parts) + "): inputs and problem "
            "sizes must be taken exactly as the original takes them",
            added_lines[0] if added_lines else None,
        )
    ]


def check_timing(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    ours = [text for _line, text in original.timing]
    theirs = [text for _line, text in candidate.timing]
    if ours != theirs:
        matcher = difflib.SequenceMatcher(a=ours, b=theirs, autojunk=False)
        for tag, i1, _i2, j1, _j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            was = _source_line(original, original.timing[i1][0]) if i1 < len(ours) else "nothing"
            now_line = candidate.timing[j1][0] if j1 < len(theirs) else None
            now = _source_line(candidate, now_line) if now_line else "nothing"
            return [
                Finding(
                    "timing-changed",
                    "fail",
                    f"the candidate changes how the program times itself: the original has {was} "
                    f"(line {original.timing[i1][0] if i1 < len(ours) else '-'}), the candidate {now}; "
                    "timing code must stay as it is so reported times stay comparable",
                    now_line,
                )
            ]
    findings: list[Finding] = []
    regions = zip(original.timed_regions, candidate.timed_regions, strict=False)
    for k, ((launches, copies), (launches_now, copies_now)) in enumerate(regions):
        if (launches and not launches_now) or copies_now < copies:
            what = "GPU work" if launches and not launches_now else "a memory copy"
            start, end = original.timing[k], original.timing[k + 1]
            findings.append(
                Finding(
                    "timing-changed",
                    "fail",
                    f"{what} that the original does between {_source_line(original, start[0])} and "
                    f"{_source_line(original, end[0])} was moved out of that measured region",
                    candidate.timing[k][0],
                )
            )
    return findings


# --- the program's own self-check -----------------------------------------------------------------
def check_self_check(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    findings: list[Finding] = []
    ours = [p for p in original.pass_literals if p.unguarded]
    theirs = [p for p in candidate.pass_literals if p.unguarded]
    if len(theirs) > len(ours):
        known = Counter(p.text for p in ours)
        extra = next((p for p in theirs if not known[p.text]), theirs[-1])
        guarded = [g.condition for p in original.pass_literals for g in p.guards if g.value is None]
        findings.append(
            Finding(
                "unguarded-pass",
                "fail",
                f"the candidate prints {extra.text.strip()!r} unconditionally"
                + (f"; the original printed it only when `{guarded[0]}`" if guarded else "")
                + ": the self-check must still decide what is printed",
                extra.line,
            )
        )
    conditions = {g.condition for p in original.pass_literals for g in p.guards if g.value is None}
    for p in candidate.pass_literals:
        for g in p.guards:
            if g.value is None and g.condition not in conditions:
                findings.append(
                    Finding(
                        "verification-changed",
                        "fail",
                        f"PASS is now printed when `{g.condition}`; the original's condition was "
                        + (" or ".join(f"`{c}`" for c in sorted(conditions)) or "none")
                        + ": the self-check must stay as it is",
                        p.line,
                    )
                )
    findings += _check_dependencies(original, candidate)
    findings += _check_tolerance_literals(original, candidate)
    return findings


def _check_dependencies(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    """The variables and functions the PASS condition reads must be computed as before."""
    names: set[str] = set()
    for p in original.pass_literals:
        for g in p.guards:
            if g.value is None:
                names |= g.names
    findings: list[Finding] = []
    for name in sorted(names):
        if name in original.bodies:
            if original.functions.get(name) == "host" and candidate.bodies.get(name) != original.bodies[name]:
                findings.append(
                    Finding(
                        "verification-changed",
                        "fail",
                        f"the function `{name}`, which decides whether PASS is printed, was changed",
                    )
                )
            continue
        ours = Counter(squash(w) for w in original.writes.get(name, []))
        theirs = Counter(squash(w) for w in candidate.writes.get(name, []))
        if ours != theirs:
            gone = [w for w in original.writes.get(name, []) if (ours - theirs)[squash(w)]][:1]
            new = [w for w in candidate.writes.get(name, []) if (theirs - ours)[squash(w)]][:1]
            findings.append(
                Finding(
                    "verification-changed",
                    "fail",
                    f"the code that computes `{name}`, which decides whether PASS is printed, changed"
                    + (f": the original has `{tidy(gone[0], 140)}`" if gone else "")
                    + (f", the candidate `{tidy(new[0], 140)}`" if new else ""),
                )
            )
    return findings


def _check_tolerance_literals(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    ours = Counter(value for _line, value in original.comparison_floats)
    theirs = Counter(value for _line, value in candidate.comparison_floats)
    removed, added = ours - theirs, theirs - ours
    if not removed or not added or max(added) <= max(removed):
        return []
    line = next(line for line, value in candidate.comparison_floats if value == max(added))
    return [
        Finding(
            "verification-changed",
            "fail",
            f"a tolerance in a host comparison was loosened from {max(removed):g} to {max(added):g} "
            f"({_source_line(candidate, line)}): wrong results could pass the self-check",
            line,
        )
    ]


def _format_shape(text: str) -> str:
    return tokenize(_PRINTF_SPEC_RE.sub("0", text)).shape


def check_memorised_output(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    """Printing a literal where the original printed a computed value."""
    formats = {p.format for p in original.prints if p.format}
    shapes = {_format_shape(f): f for f in formats if _PRINTF_SPEC_RE.search(f)}
    findings: list[Finding] = []
    for p in candidate.prints:
        if p.format and p.format not in formats:
            before = shapes.get(_format_shape(p.format))
            if before is not None and len(_PRINTF_SPEC_RE.findall(p.format)) < len(
                _PRINTF_SPEC_RE.findall(before)
            ):
                findings.append(
                    Finding(
                        "memorised-output",
                        "fail",
                        f"the candidate prints the fixed text {p.format.strip()!r} where the original "
                        "printed "
                        f"computed values with {before.strip()!r}",
                        p.line,
                    )
                )
                continue
        same = [q for q in original.prints if q.format == p.format and len(q.operands) == len(p.operands)]
        if not same:
            continue
        for k, (kind, text) in enumerate(p.operands):
            if kind == "n" and all(q.operands[k][0] != "n" for q in same):
                findings.append(
                    Finding(
                        "memorised-output",
                        "fail",
                        f"the candidate prints the constant {text} where the original printed "
                        f"`{same[0].operands[k][1]}`",
                        p.line,
                    )
                )
    return findings
