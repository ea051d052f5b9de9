"""A CUDA/HIP source file as the anti-hack checks see it, parsed with tree-sitter-cuda.

One pass collects the facts the checks compare between original and candidate: functions and
where they run, kernel launches with the conditions and loops around them, host loops that repeat
GPU work and their bounds, constants, how argv is read, timing statements, where PASS is printed
and under which condition, what the print calls print, and the code text without comments.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

import tree_sitter_cuda
from tree_sitter import Language, Node, Parser

from .c_expr import Value, evaluate, names_in
from .markers import DEFAULT_PASS_REGEX, Patterns, compile_marker

LAUNCH_APIS = {  # API -> index of the argument naming the kernel
    "cudaLaunchKernel": 0, "cudaLaunchCooperativeKernel": 0, "cudaLaunchKernelEx": 1,
    "hipLaunchKernel": 0, "hipLaunchCooperativeKernel": 0, "hipLaunchKernelGGL": 0, "hipLaunchKernelEx": 1,
}  # fmt: skip
_API_CONFIG = {  # launch API -> argument positions of (grid, block, shared memory bytes)
    "cudaLaunchKernel": (1, 2, 4), "cudaLaunchCooperativeKernel": (1, 2, 4),
    "hipLaunchKernel": (1, 2, 4), "hipLaunchCooperativeKernel": (1, 2, 4), "hipLaunchKernelGGL": (1, 2, 3),
}  # fmt: skip
TIMING_CALLS = {
    "cudaEventRecord", "cudaEventSynchronize", "cudaEventElapsedTime", "cudaEventQuery",
    "hipEventRecord", "hipEventSynchronize", "hipEventElapsedTime", "hipEventQuery",
    "clock_gettime", "gettimeofday", "clock", "omp_get_wtime", "MPI_Wtime", "timespec_get", "now",
}  # fmt: skip
_WORK_CALL_RE = re.compile(
    r"^(?:cuda|hip)(?:Memcpy|Memset|GraphLaunch|StreamBeginCapture)\w*$|^(?:cublas|cufft|cusparse|cusolver|curand"
    r"|hipblas|rocblas|hipfft|rocfft)\w*$|^(?:thrust|cub)::"
)
PRINT_CALLS = {"printf", "fprintf", "puts", "fputs", "std::printf", "std::fprintf", "std::puts"}
_STREAMS = {"std::cout", "cout", "std::cerr", "cerr"}
_WS_RE = re.compile(r"\s+")
_LONG = 100_000  # tidy() without shortening


@cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_cuda.language()))


def squash(text: str) -> str:
    """Whitespace-free text, so formatting changes do not count as changes."""
    return _WS_RE.sub("", text)


def tidy(text: str, limit: int = 100) -> str:
    """One-line text for messages."""
    one = _WS_RE.sub(" ", text).strip()
    return one if len(one) <= limit else one[: limit - 3] + "..."


def line_of(node: Node) -> int:
    return node.start_point[0] + 1


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


@dataclass(frozen=True)
class Guard:
    condition: str  # as written, squashed
    negated: bool  # in the else branch
    names: frozenset[str]  # identifiers the condition reads
    value: Value | None  # when constant


@dataclass
class Launch:
    kernel: str
    line: int
    text: str
    function: str
    guards: list[Guard]
    loop_vars: set[str]  # variables of the loops around the launch
    dead: bool  # under `if (0)`, `#if 0` or a guard that is constant false
    # launch configuration as written: <<<grid, block, shared bytes, stream>>>, or the same arguments
    # of a launch API; block and shared-memory sizes are tuning (value_roles.py)
    grid: str = ""
    block: list[str] = field(default_factory=list)  # block size and shared memory bytes


@dataclass
class Loop:
    line: int
    header: str  # tidy text of `for (...)` / `while (...)`
    bounds: tuple[Value, ...]  # constant values in its condition (after resolving constants)
    does_work: bool  # launches kernels, copies, or calls a function that does
    function: str = ""
    work: frozenset[str] = frozenset()  # kernels and functions doing GPU work that its body calls
    variables: frozenset[str] = frozenset()  # its counters


@dataclass
class Constant:
    name: str
    value_text: str
    value: Value | None
    line: int
    function: str | None  # None for #define and file scope


@dataclass
class ArgvDefault:
    """The value a command-line read falls back to: `n = argc > 1 ? atoi(argv[1]) : 4096`."""

    line: int
    statement: str  # the whole statement, squashed, as in CudaSource.argv_statements
    shape: str  # the statement with each fallback replaced by `@`: equal shapes differ only there
    target: str  # the variable it sets ("" when not a plain variable)
    text: str  # the fallback as written
    value: Value | None


@dataclass
class WorkCall:
    """A call to a host function that does GPU work, e.g. `relax(a, b, n, sweeps)`."""

    line: int
    function: str  # where the call is
    callee: str
    arguments: list[str]  # squashed


@dataclass
class PassLiteral:
    line: int
    text: str
    guards: list[Guard]

    @property
    def unguarded(self) -> bool:
        return all(g.value is not None and bool(g.value) != g.negated for g in self.guards)


@dataclass
class PrintCall:
    line: int
    format: str | None  # the format/first string literal, unescaped content
    operands: list[tuple[str, str]]  # ("s" string | "n" number literal | "e" expression, squashed text)
    text: str


@dataclass
class CudaSource:
    text: str
    has_parse_errors: bool = False
    functions: dict[str, str] = field(default_factory=dict)  # name -> "host" | "device" | "global"
    bodies: dict[str, str] = field(default_factory=dict)  # name -> squashed body
    launches: list[Launch] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)  # host loops only
    constants: dict[str, Constant] = field(default_factory=dict)
    # host variables that start from a constant and are set again later (often from argv):
    # `int n = 4096, sweeps = 7000;`, keyed by (function, name)
    defaults: dict[tuple[str, str], Constant] = field(default_factory=dict)
    argv_defaults: list[ArgvDefault] = field(default_factory=list)
    work_calls: list[WorkCall] = field(default_factory=list)
    parameters: dict[str, list[str]] = field(default_factory=dict)  # function -> parameter names
    # (host function, variable) -> the names its assignments and initializers read: (main, blocks) <- n,
    # BLOCK; an element read with a constant index is named too: (main, n) <- sizes, sizes[0]
    flows: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    argv_statements: list[tuple[int, str]] = field(default_factory=list)  # (line, squashed statement)
    timing: list[tuple[int, str]] = field(default_factory=list)  # (line, squashed statement), in order
    # (GPU work calls, memory copies) between consecutive timing statements
    timed_regions: list[tuple[int, int]] = field(default_factory=list)
    pass_literals: list[PassLiteral] = field(default_factory=list)
    prints: list[PrintCall] = field(default_factory=list)
    # host variable -> the statements that set it, each with the loops and conditions around it
    writes: dict[str, list[str]] = field(default_factory=dict)
    comparison_floats: list[tuple[int, float]] = field(
        default_factory=list
    )  # (line, literal) in host comparisons
    type_counts: Counter[str] = field(default_factory=Counter)
    code: str = ""  # the text with comments blanked
    code_no_strings: str = ""  # ... and string/char literals blanked

    @property
    def kernels_launched(self) -> Counter[str]:
        return Counter(launch.kernel for launch in self.launches if not launch.dead)

    def constant_values(self) -> dict[str, Value]:
        return {name: c.value for name, c in self.constants.items() if c.value is not None}


def _children_types(node: Node) -> set[str]:
    return {c.type for c in node.children}


def _function_name(definition: Node) -> str:
    declarator = definition.child_by_field_name("declarator")
    while declarator is not None and declarator.type != "function_declarator":
        declarator = declarator.child_by_field_name("declarator")
    if declarator is None:
        return "?"
    return _text(declarator.child_by_field_name("declarator"))


def _function_kind(definition: Node) -> str:
    kinds = _children_types(definition)
    if "__global__" in kinds:
        return "global"
    if "__device__" in kinds:
        return "device"
    return "host"


def _callee(call: Node) -> str:
    fn = call.child_by_field_name("function")
    if fn is None:
        return ""
    if fn.type == "template_function":
        return _text(fn.child_by_field_name("name"))
    if fn.type == "field_expression":
        return _text(fn.child_by_field_name("field"))
    if fn.type == "qualified_identifier":
        text = squash(_text(fn))
        return text.rsplit("::", 1)[-1] if text.endswith("::now") else text
    return _text(fn)


def _kernel_from_argument(arg: Node) -> str:
    """The kernel named by a launch API argument: `(void*)k<float>`, `k`, `&k`."""
    for node in _walk(arg):
        if node.type == "template_function":
            return _text(node.child_by_field_name("name"))
        if node.type == "identifier":
            return _text(node)
    return squash(_text(arg))


def _walk(node: Node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _blank(text: bytes, spans: list[tuple[int, int]]) -> str:
    buf = bytearray(text)
    for a, b in spans:
        for i in range(a, b):
            if buf[i] not in (10, 13):
                buf[i] = 32
    return buf.decode("utf-8", "replace")


def _condition_text(node: Node | None) -> str:
    if node is None:
        return ""
    if node.type == "condition_clause":
        value = node.child_by_field_name("value")
        return _text(value) if value is not None else _text(node).strip("()")
    if node.type == "parenthesized_expression" and node.named_child_count == 1:
        return _text(node.named_children[0])
    return _text(node)


def parse(text: str, pass_regex: Patterns | None = None) -> CudaSource:
    """Parse CUDA/HIP source; pass_regex finds the PASS literals (default: the oracle's markers)."""
    data = text.encode("utf-8", "replace")
    tree = _parser().parse(data)
    src = CudaSource(text=text, has_parse_errors=tree.root_node.has_error)
    comments, literals = [], []
    for node in _walk(tree.root_node):
        if node.type == "comment":
            comments.append((node.start_byte, node.end_byte))
        elif node.type in ("string_literal", "char_literal", "raw_string_literal", "system_lib_string"):
            literals.append((node.start_byte, node.end_byte))
    src.code = _blank(data, comments)
    src.code_no_strings = _blank(data, comments + literals)
    _Collector(src, compile_marker(DEFAULT_PASS_REGEX if pass_regex is None else pass_regex, "PASS")).run(
        tree.root_node
    )
    return src


class _Collector:
    """The one pass over the tree that fills a CudaSource."""

    def __init__(self, src: CudaSource, pass_re: re.Pattern[str]):
        self.src = src
        self.pass_re = pass_re
        self.definitions: list[tuple[str, str, Node]] = []

    def run(self, root: Node) -> None:
        self._constants(root)
        for node in _walk(root):
            if node.type == "function_definition":
                name, kind = _function_name(node), _function_kind(node)
                self.src.functions.setdefault(name, kind)
                body = node.child_by_field_name("body")
                self.src.bodies[name] = squash(_text(body))
                self.definitions.append((name, kind, node))
        for node in _walk(root):
            if node.type in ("primitive_type", "type_identifier"):
                self.src.type_counts[_text(node)] += 1
        working = self._functions_doing_work()
        names = self.src.constant_values()
        for name, _kind, node in self.definitions:
            self.src.parameters.setdefault(name, _parameter_names(node))
        for name, kind, node in self.definitions:
            self._launches(name, node, names)
            if kind != "host":
                continue
            self._host_loops(name, node, working, names)
            self._work_calls(name, node, working)
            self._argv(node, names)
            self._timing(node, working)
            self._prints_and_passes(node, names)
            self._writes(node)
            self._comparison_floats(node)

    # --- constants ---------------------------------------------------------------------------
    def _constants(self, root: Node) -> None:
        pending: list[Constant] = []
        variables: list[Constant] = []  # host variables set later: defaults when they start constant
        mutated = _mutated_names(root)
        for node in _walk(root):
            if node.type == "preproc_def":
                value = node.child_by_field_name("value")
                name = _text(node.child_by_field_name("name"))
                pending.append(Constant(name, _text(value).strip(), None, line_of(node), None))
            elif (
                node.type == "declaration" and node.parent is not None and node.parent.type != "for_statement"
            ):
                function = self._enclosing_function(node)
                if function is not None and function[1] != "host":
                    continue
                qualifiers = {_text(c) for c in node.children if c.type == "type_qualifier"}
                fixed = function is None or bool(qualifiers & {"const", "constexpr"})
                for declarator in node.children_by_field_name("declarator"):
                    if declarator.type != "init_declarator":
                        continue
                    target = declarator.child_by_field_name("declarator")
                    value = declarator.child_by_field_name("value")
                    if function is not None and value is not None and value.type == "initializer_list":
                        variables += _array_defaults(target, value, function[0])
                    if target is None or target.type != "identifier" or value is None:
                        continue
                    if value.type in ("initializer_list", "argument_list"):
                        continue
                    fname = function[0] if function else None
                    constant = Constant(_text(target), _text(value), None, line_of(node), fname)
                    if not fixed and _text(target) in mutated:
                        variables.append(constant)  # `int errors = 0; ... errors++`, or `n = atoi(...)`
                    else:
                        pending.append(constant)
        # Values may refer to each other (#define M (2 * N)): resolve in a few rounds.
        for _ in range(4):
            known = {c.name: c.value for c in pending if c.value is not None}
            for c in pending:
                if c.value is None:
                    c.value = evaluate(c.value_text, known)
        for c in pending:
            if c.value is not None or c.function is None:  # #defines are kept even when not numeric
                self.src.constants.setdefault(c.name, c)
        known = self.src.constant_values()
        for c in variables:
            c.value = evaluate(c.value_text, known)
            if c.value is not None and c.function is not None:
                self.src.defaults.setdefault((c.function, c.name), c)

    def _enclosing_function(self, node: Node) -> tuple[str, str] | None:
        p = node.parent
        while p is not None:
            if p.type == "function_definition":
                return _function_name(p), _function_kind(p)
            p = p.parent
        return None

    # --- context of a node -------------------------------------------------------------------
    def _context(
        self, node: Node, stop: Node, names: dict[str, Value]
    ) -> tuple[list[Guard], list[Node], bool]:
        """Guards and loops between node and stop (its function), and whether it is dead code."""
        guards: list[Guard] = []
        loops: list[Node] = []
        dead = False
        child, p = node, node.parent
        while p is not None:
            if p.type == "if_statement":
                cond = p.child_by_field_name("condition")
                if child != cond:
                    guards.append(self._guard(_condition_text(cond), child.type == "else_clause", names))
            elif p.type == "conditional_expression":
                cond = p.child_by_field_name("condition")
                if child != cond:
                    negated = child == p.child_by_field_name("alternative")
                    guards.append(self._guard(_text(cond), negated, names))
            elif p.type == "binary_expression" and child == p.child_by_field_name("right"):
                op = _text(p.child_by_field_name("operator"))
                if op in ("&&", "||"):
                    guards.append(self._guard(_text(p.child_by_field_name("left")), op == "||", names))
            elif p.type in ("for_statement", "while_statement", "do_statement", "for_range_loop"):
                loops.append(p)
            elif p.type in ("preproc_if", "preproc_elif"):
                cond = p.child_by_field_name("condition")
                if child != cond and evaluate(_text(cond), names) == 0:
                    dead = True
            if p == stop:
                break
            child, p = p, p.parent
        if any(g.value is not None and bool(g.value) == g.negated for g in guards):
            dead = True
        return guards, loops, dead

    @staticmethod
    def _guard(condition: str, negated: bool, names: dict[str, Value]) -> Guard:
        return Guard(squash(condition), negated, frozenset(names_in(condition)), evaluate(condition, names))

    @staticmethod
    def _loop_vars(loop: Node) -> set[str]:
        init = loop.child_by_field_name("initializer")
        found: set[str] = set()
        if init is not None:
            for n in _walk(init):
                if n.type == "init_declarator":
                    target = n.child_by_field_name("declarator")
                    if target is not None and target.type == "identifier":
                        found.add(_text(target))
                elif n.type == "assignment_expression":
                    left = n.child_by_field_name("left")
                    if left is not None and left.type == "identifier":
                        found.add(_text(left))
        if loop.type in ("while_statement", "do_statement"):
            found |= names_in(_condition_text(loop.child_by_field_name("condition")))
        return found

    # --- launches and work -------------------------------------------------------------------
    def _launch_kernel(self, call: Node) -> str | None:
        if any(c.type == "kernel_call_syntax" for c in call.children):
            return _callee(call)
        name = _callee(call)
        if name in LAUNCH_APIS:
            args = call.child_by_field_name("arguments")
            named = [a for a in args.named_children if a.type != "comment"] if args is not None else []
            index = LAUNCH_APIS[name]
            if len(named) > index:
                return _kernel_from_argument(named[index])
        return None

    def _launches(self, function: str, definition: Node, names: dict[str, Value]) -> None:
        for node in _walk(definition):
            if node.type != "call_expression":
                continue
            kernel = self._launch_kernel(node)
            if kernel is None:
                continue
            guards, loops, dead = self._context(node, definition, names)
            loop_vars: set[str] = set()
            for loop in loops:
                loop_vars |= self._loop_vars(loop)
            grid, block = _launch_config(node)
            self.src.launches.append(
                Launch(kernel, line_of(node), tidy(_text(node)), function, guards, loop_vars, dead, grid, block)
            )

    def _is_work_call(self, call: Node) -> bool:
        return self._launch_kernel(call) is not None or bool(_WORK_CALL_RE.match(_callee(call)))

    def _functions_doing_work(self) -> set[str]:
        calls: dict[str, set[str]] = {}
        working: set[str] = set()
        for name, _kind, node in self.definitions:
            for n in _walk(node):
                if n.type == "call_expression":
                    if self._is_work_call(n):
                        working.add(name)
                    calls.setdefault(name, set()).add(_callee(n))
        changed = True
        while changed:  # a function calling a working function works too
            changed = False
            for name, callees in calls.items():
                if name not in working and callees & working:
                    working.add(name)
                    changed = True
        return working

    def _does_work(self, node: Node, working: set[str]) -> bool:
        return any(
            n.type == "call_expression" and (self._is_work_call(n) or _callee(n) in working)
            for n in _walk(node)
        )

    def _host_loops(self, function: str, definition: Node, working: set[str], names: dict[str, Value]) -> None:
        for node in _walk(definition):
            if node.type not in ("for_statement", "while_statement", "do_statement"):
                continue
            condition = node.child_by_field_name("condition")
            bounds: list[Value] = []
            if condition is not None:
                for n in _walk(condition):
                    if n.type == "binary_expression" and _text(n.child_by_field_name("operator")) in (
                        "<", "<=", ">", ">=", "!=",
                    ):  # fmt: skip
                        for side in ("left", "right"):
                            value = evaluate(_text(n.child_by_field_name(side)), names)
                            if value is not None:
                                bounds.append(value)
            body = node.child_by_field_name("body")
            header = _text(node)[: (body.start_byte - node.start_byte) if body is not None else None]
            does_work = body is not None and self._does_work(body, working)
            work = frozenset(
                self._launch_kernel(n) or _callee(n)
                for n in (_walk(body) if body is not None else ())
                if n.type == "call_expression" and (self._launch_kernel(n) or _callee(n) in working)
            )
            self.src.loops.append(
                Loop(
                    line_of(node), tidy(header), tuple(sorted(bounds)), does_work, function, work,
                    frozenset(self._loop_vars(node)),
                )  # fmt: skip
            )

    def _work_calls(self, function: str, definition: Node, working: set[str]) -> None:
        for node in _walk(definition):
            if node.type != "call_expression" or self._launch_kernel(node) is not None:
                continue
            callee = _callee(node)
            if callee in working and self.src.functions.get(callee) == "host":
                args = node.child_by_field_name("arguments")
                texts = [squash(_text(a)) for a in (args.named_children if args else []) if a.type != "comment"]
                self.src.work_calls.append(WorkCall(line_of(node), function, callee, texts))

    # --- argv, timing --------------------------------------------------------------------------
    @staticmethod
    def _statement_of(node: Node, stop: Node) -> Node:
        p = node
        while p.parent is not None and p != stop:
            if p.type in ("declaration", "expression_statement", "return_statement", "condition_clause"):
                return p
            if p.type == "for_statement":
                return p
            p = p.parent
        return node

    def _argv(self, definition: Node, names: dict[str, Value]) -> None:
        seen: set[int] = set()
        body = definition.child_by_field_name("body")
        if body is None:
            return
        for node in _walk(body):
            if node.type == "identifier" and _text(node) in ("argv", "argc"):
                statement = self._statement_of(node, definition)
                if statement.start_byte in seen:
                    continue
                seen.add(statement.start_byte)
                text = _text(statement)
                if statement.type == "for_statement":
                    body_node = statement.child_by_field_name("body")
                    if body_node is not None:
                        text = text[: body_node.start_byte - statement.start_byte]
                self.src.argv_statements.append((line_of(statement), squash(text)))
                self._argv_defaults(statement, text, names)

    def _argv_defaults(self, statement: Node, text: str, names: dict[str, Value]) -> None:
        """Fallbacks of `cond ? <read of argv> : fallback` in a statement that reads the command line."""
        fallbacks: list[Node] = []
        for node in _walk(statement):
            if node.type != "conditional_expression" or node.start_byte >= statement.start_byte + len(text):
                continue
            condition = node.child_by_field_name("condition")
            consequence = node.child_by_field_name("consequence")
            alternative = node.child_by_field_name("alternative")
            reads = names_in(_text(condition) + " " + _text(consequence)) & {"argc", "argv"}
            if alternative is not None and reads and not names_in(_text(alternative)) & {"argc", "argv"}:
                fallbacks.append(alternative)
        if not fallbacks:
            return
        data, base = text.encode("utf-8", "replace"), statement.start_byte
        shape, end = b"", 0
        for alt in sorted(fallbacks, key=lambda n: n.start_byte):
            if alt.start_byte - base < end:
                continue  # nested in a fallback already replaced
            shape += data[end : alt.start_byte - base] + b"@"
            end = alt.end_byte - base
        shape += data[end:]
        statement_text = squash(text)
        for alt in fallbacks:
            self.src.argv_defaults.append(
                ArgvDefault(
                    line_of(alt),
                    statement_text,
                    squash(shape.decode("utf-8", "replace")),
                    _assigned_target(alt),
                    _text(alt),
                    evaluate(_text(alt), names),
                )
            )

    def _timing(self, definition: Node, working: set[str]) -> None:
        body = definition.child_by_field_name("body")
        if body is None:
            return
        timing_vars: set[str] = set()
        events: list[tuple[int, str, Node]] = []  # (start byte, "T"iming | "L"aunch | "C"opy, node)
        seen: set[int] = set()
        nodes = list(_walk(body))
        for node in nodes:  # the calls themselves, and the variables they set
            if node.type != "call_expression":
                continue
            name = _callee(node)
            if name in TIMING_CALLS:
                statement = self._statement_of(node, definition)
                timing_vars |= self._assigned_names(statement, node)
                if statement.start_byte not in seen:
                    seen.add(statement.start_byte)
                    events.append((statement.start_byte, "T", statement))
            elif re.match(r"^(?:cuda|hip)Mem(?:cpy|set)", name):
                events.append((node.start_byte, "C", node))
            elif self._is_work_call(node) or name in working:
                events.append((node.start_byte, "L", node))
        for _ in range(2):  # statements computing from timing variables, e.g. ms / REPEAT
            for node in nodes:
                if node.type == "identifier" and _text(node) in timing_vars:
                    statement = self._statement_of(node, definition)
                    if statement.start_byte in seen or statement.type == "for_statement":
                        continue
                    seen.add(statement.start_byte)
                    events.append((statement.start_byte, "T", statement))
                    timing_vars |= self._assigned_names(statement, None)
        events.sort(key=lambda e: e[0])
        launches = copies = 0
        started = False
        for _start, kind, node in events:
            if kind == "T":
                self.src.timing.append((line_of(node), squash(_text(node))))
                if started:
                    self.src.timed_regions.append((launches, copies))
                started, launches, copies = True, 0, 0
            elif kind == "C":
                copies += 1
            else:
                launches += 1

    @staticmethod
    def _assigned_names(statement: Node, call: Node | None) -> set[str]:
        names: set[str] = set()
        for n in _walk(statement):
            if n.type == "init_declarator":
                target = n.child_by_field_name("declarator")
                if target is not None and target.type == "identifier":
                    names.add(_text(target))
            elif n.type == "assignment_expression":
                left = n.child_by_field_name("left")
                if left is not None and left.type == "identifier":
                    names.add(_text(left))
        if call is not None and _callee(call).endswith("ElapsedTime"):
            args = call.child_by_field_name("arguments")
            if args is not None and args.named_children:
                names |= names_in(_text(args.named_children[0]))
        if call is not None and _callee(call) in ("clock_gettime", "gettimeofday", "timespec_get"):
            args = call.child_by_field_name("arguments")
            for a in args.named_children if args is not None else []:
                if _text(a).startswith("&"):
                    names |= names_in(_text(a))
        return names

    # --- printing and self-checks --------------------------------------------------------------
    def _prints_and_passes(self, definition: Node, names: dict[str, Value]) -> None:
        pass_re = self.pass_re
        for node in _walk(definition):
            if node.type == "string_literal":
                content = _string_content(node)
                if pass_re.search(content):
                    guards, _loops, dead = self._context(node, definition, names)
                    if not dead:
                        self.src.pass_literals.append(PassLiteral(line_of(node), content, guards))
            elif node.type == "call_expression" and _callee(node) in PRINT_CALLS:
                self.src.prints.append(self._print_call(node))
            elif node.type == "binary_expression" and self._is_stream_chain(node):
                self.src.prints.append(self._stream_chain(node))

    @staticmethod
    def _operand(node: Node) -> tuple[str, str]:
        if node.type in ("string_literal", "concatenated_string"):
            return ("s", _string_content(node))
        inner = node
        if inner.type == "unary_expression" and inner.named_child_count == 1:
            inner = inner.named_children[0]
        if inner.type == "number_literal":
            return ("n", squash(_text(node)))
        return ("e", squash(_text(node)))

    def _print_call(self, call: Node) -> PrintCall:
        args = call.child_by_field_name("arguments")
        operands = [
            self._operand(a) for a in (args.named_children if args is not None else []) if a.type != "comment"
        ]
        fmt = next((text for kind, text in operands if kind == "s"), None)
        return PrintCall(line_of(call), fmt, operands, tidy(_text(call)))

    @staticmethod
    def _is_stream_chain(node: Node) -> bool:
        if node.parent is not None and node.parent.type == "binary_expression":
            return False  # only the outermost `<<` of a chain
        left = node
        while (
            left is not None
            and left.type == "binary_expression"
            and _text(left.child_by_field_name("operator")) == "<<"
        ):
            left = left.child_by_field_name("left")
        return left is not None and squash(_text(left)) in _STREAMS and left is not node

    def _stream_chain(self, node: Node) -> PrintCall:
        operands: list[tuple[str, str]] = []
        left = node
        while left.type == "binary_expression":
            operands.append(self._operand(left.child_by_field_name("right")))
            left = left.child_by_field_name("left")
        operands.reverse()
        fmt = "".join(text if kind == "s" else "%s" for kind, text in operands)
        return PrintCall(line_of(node), fmt, operands, tidy(_text(node)))

    def _writes(self, definition: Node) -> None:
        """For each variable: the statements that set it, with the conditions and loops around them."""
        function = _function_name(definition)
        for node in _walk(definition):
            target: str | None = None
            if node.type in ("assignment_expression", "update_expression"):
                operand = node.child_by_field_name("left") or node.child_by_field_name("argument")
                if operand is not None and operand.type == "identifier":
                    target = _text(operand)
            elif node.type == "init_declarator":
                declarator = node.child_by_field_name("declarator")
                if declarator is not None and declarator.type == "identifier":
                    target = _text(declarator)
            elif node.type == "pointer_expression" and _text(node).startswith("&"):
                operand = node.child_by_field_name("argument")
                if (
                    operand is not None
                    and operand.type == "identifier"
                    and node.parent is not None
                    and node.parent.type == "argument_list"
                ):
                    target = _text(operand)
            if target is None:
                continue
            value = node.child_by_field_name("right") or node.child_by_field_name("value")
            if value is not None and node.type in ("assignment_expression", "init_declarator"):
                self.src.flows.setdefault((function, target), set()).update(_reads(value) - {target})
            statement = self._statement_of(node, definition)
            context: list[str] = []
            p = statement.parent
            while p is not None and p != definition:
                if p.type in ("if_statement", "while_statement"):
                    context.append(f"if ({tidy(_condition_text(p.child_by_field_name('condition')), _LONG)})")
                elif p.type == "for_statement":
                    body = p.child_by_field_name("body")
                    end = body.start_byte - p.start_byte if body is not None else None
                    context.append(tidy(_text(p)[:end], _LONG))
                p = p.parent
            self.src.writes.setdefault(target, []).append(
                " ".join([*reversed(context), tidy(_text(statement), _LONG)])
            )

    def _comparison_floats(self, definition: Node) -> None:
        for node in _walk(definition):
            if node.type != "number_literal":
                continue
            text = _text(node).rstrip("fFlL")
            if not re.search(r"[.eE]", text) or text.lower().startswith("0x"):
                continue
            p = node.parent
            while p is not None and p.type not in (
                "expression_statement",
                "declaration",
                "compound_statement",
            ):
                if p.type == "binary_expression" and _text(p.child_by_field_name("operator")) in (
                    "<",
                    ">",
                    "<=",
                    ">=",
                ):
                    try:
                        self.src.comparison_floats.append((line_of(node), float(text)))
                    except ValueError:
                        pass
                    break
                p = p.parent


def _reads(value: Node) -> set[str]:
    """The variables an expression reads: not the functions it calls, nor `&x` (where a result goes)."""
    found: set[str] = set()
    for node in _walk(value):
        if node.type != "identifier":
            continue
        parent = node.parent
        if parent is not None and parent.type == "call_expression" and parent.child_by_field_name("function") == node:
            continue
        if parent is not None and parent.type == "pointer_expression" and _text(parent).startswith("&"):
            continue
        found.add(_text(node))
        if parent is not None and parent.type == "subscript_expression":
            index = _text(parent.child_by_field_name("indices")).strip("[] ")
            if index.isdigit():
                found.add(f"{_text(node)}[{index}]")
    return found


def _array_defaults(target: Node | None, values: Node, function: str) -> list[Constant]:
    """`long sizes[2] = {1 << 22, 2500};`: each element, named `sizes[0]`, `sizes[1]`."""
    if target is None or target.type != "array_declarator":
        return []
    name = target.child_by_field_name("declarator")
    if name is None or name.type != "identifier":
        return []
    elements = [e for e in values.named_children if e.type != "comment"]
    return [
        Constant(f"{_text(name)}[{k}]", _text(e), None, line_of(e), function)
        for k, e in enumerate(elements)
        if e.type != "initializer_list"
    ]


def _parameter_names(definition: Node) -> list[str]:
    declarator = definition.child_by_field_name("declarator")
    while declarator is not None and declarator.type != "function_declarator":
        declarator = declarator.child_by_field_name("declarator")
    parameters = declarator.child_by_field_name("parameters") if declarator is not None else None
    found: list[str] = []
    for parameter in parameters.named_children if parameters is not None else []:
        inner = parameter.child_by_field_name("declarator")
        while inner is not None and inner.type != "identifier":
            inner = inner.child_by_field_name("declarator")
        found.append(_text(inner))
    return found


def _launch_config(call: Node) -> tuple[str, list[str]]:
    """(grid, [block size, shared memory bytes]) of a launch, as written; ("", []) when not known."""
    syntax = next((c for c in call.children if c.type == "kernel_call_syntax"), None)
    if syntax is not None:
        config = [_text(c) for c in syntax.named_children if c.type != "comment"]
        return (config[0] if config else ""), config[1:3]
    args = call.child_by_field_name("arguments")
    named = [_text(a) for a in (args.named_children if args is not None else []) if a.type != "comment"]
    positions = _API_CONFIG.get(_callee(call))
    if positions is None or len(named) <= positions[0]:
        return "", []
    grid, *rest = positions
    return named[grid], [named[i] for i in rest if i < len(named)]


def _assigned_target(node: Node) -> str:
    """The plain variable that the expression containing node is assigned to, or ""."""
    p = node.parent
    while p is not None:
        if p.type == "init_declarator":
            target = p.child_by_field_name("declarator")
            return _text(target) if target is not None and target.type == "identifier" else ""
        if p.type == "assignment_expression":
            left = p.child_by_field_name("left")
            return _text(left) if left is not None and left.type == "identifier" else ""
        if p.type in ("expression_statement", "declaration", "compound_statement"):
            return ""
        p = p.parent
    return ""


def _mutated_names(root: Node) -> set[str]:
    """Names assigned, incremented or passed by address anywhere: variables, not constants."""
    names: set[str] = set()
    for node in _walk(root):
        operand: Node | None = None
        if node.type == "assignment_expression":
            operand = node.child_by_field_name("left")
        elif node.type == "update_expression":
            operand = node.child_by_field_name("argument")
        elif node.type == "pointer_expression" and _text(node).startswith("&"):
            operand = node.child_by_field_name("argument")
        if operand is not None and operand.type == "identifier":
            names.add(_text(operand))
    return names


def _string_content(node: Node) -> str:
    if node.type == "concatenated_string":
        return "".join(_string_content(c) for c in node.named_children if c.type == "string_literal")
    parts = []
    for c in node.children:
        if c.type == "string_content":
            parts.append(_text(c))
        elif c.type == "escape_sequence":
            parts.append({"\\n": "\n", "\\t": "\t", '\\"': '"', "\\\\": "\\"}.get(_text(c), _text(c)))
    return "".join(parts)
