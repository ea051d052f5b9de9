"""Kernel symbol -> the `__global__` definition in the sources: file and line.

CUPTI names kernels by their (mangled) symbol. We demangle it, reduce it to the name written in the
source (no return type, namespace, template arguments or parameters), and look that name up among
the `__global__` definitions found by tree-sitter-cuda. Overloads are told apart by parameter count
and types (template parameters match any type). Macros are handled two ways: an object-like macro
that stands for `__global__` (`#define KERNEL __global__`) is expanded before parsing, and a
function-like macro whose body defines a kernel (`DEFINE_KERNEL(add_one, +1)`) yields a kernel at
each use, named by the argument that fills the name. Without the grammar a regex scanner does the
same on source with comments and strings blanked out.
"""

from __future__ import annotations

import bisect
import functools
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field


@dataclass
class KernelDef:
    """A `__global__` function defined in a source file."""

    name: str  # as written in the source: no namespace, no template arguments
    line: int  # 1-based first line of the definition (its `template` line for templates)
    end_line: int  # 1-based last line (closing brace)
    params: list[str]  # parameter declarations as written, e.g. "const float* __restrict__ x"
    is_template: bool = False
    qualified_name: str = ""  # with enclosing namespaces: "ns::scale"
    param_types: list[str] = field(default_factory=list)  # params without names: "const float*"
    template_params: list[str] = field(default_factory=list)  # ["T", "N"]
    from_macro: str = ""  # the macro whose expansion defines this kernel, if any

    def to_dict(self) -> dict:
        return asdict(self)


# --- demangling and names --------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def demangle(symbol: str) -> str:
    """`_Z5saxpyifPfS_` -> `saxpy(int, float, float*, float*)`; other names are returned unchanged.

    Uses the cxxfilt package when installed, else the `c++filt` tool, else leaves the name mangled.
    """
    if not symbol.startswith("_Z"):
        return symbol
    try:
        import cxxfilt

        return cxxfilt.demangle(symbol)
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - cxxfilt raises its own InvalidName for what it cannot read
        return symbol
    tool = shutil.which("c++filt")
    if tool:
        try:
            out = subprocess.run([tool, symbol], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return symbol


_OPEN = {"(": ")", "<": ">", "[": "]"}
_CLOSE = {v: k for k, v in _OPEN.items()}


def _split_top(text: str, sep: str) -> list[str]:
    """Split at `sep` outside (), <> and []."""
    parts, depth, start = [], 0, 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _split_signature(demangled: str) -> tuple[str, str | None]:
    """`void ns::k<int>(int*, float)` -> (`void ns::k<int>`, `int*, float`); (name, None) without ()."""
    s = demangled.strip()
    if not s.endswith(")"):
        return s, None
    depth = 0
    for i in range(len(s) - 1, -1, -1):
        if s[i] == ")":
            depth += 1
        elif s[i] == "(":
            depth -= 1
            if depth == 0:
                return s[:i].rstrip(), s[i + 1 : -1]
    return s, None


def _strip_template_args(name: str) -> str:
    out, depth = [], 0
    for ch in name:
        if ch in "<(":
            depth += 1
        elif ch in ">)" and depth:
            depth -= 1
            continue
        if depth == 0:
            out.append(ch)
    return "".join(out)


def qualified_kernel_name(symbol: str) -> str:
    """`void ns::scale<float, 4>(float*, float, int)` -> `ns::scale`."""
    head, _ = _split_signature(demangle(symbol))
    words = [w for w in _split_top(head, " ") if w]
    last = words[-1] if words else head
    return "::".join(_strip_template_args(p).strip() for p in _split_top(last, "::"))


def kernel_base_name(symbol: str) -> str:
    """The name a kernel has in its source: `_ZN2ns5scaleIfLi4EEEvPT_S1_i` -> `scale`."""
    return qualified_kernel_name(symbol).rsplit("::", 1)[-1]


def demangled_param_types(symbol: str) -> list[str] | None:
    """Parameter types from a demangled signature; None when the symbol carries none (extern "C")."""
    _, params = _split_signature(demangle(symbol))
    if params is None:
        return None
    params = params.strip()
    if params in ("", "void"):
        return []
    return [p.strip() for p in _split_top(params, ",")]


_IGNORED_TYPE_WORDS = {"const", "volatile", "__restrict__", "__restrict", "restrict", "struct", "class",
                       "typename", "enum", "__grid_constant__"}


def _normal_type(text: str) -> str:
    """A comparable spelling of a type: no cv/restrict words, arrays as pointers, no namespaces."""
    t = re.sub(r"\[[^\]]*\]", "*", text)
    t = re.sub(r"\b[A-Za-z_]\w*::", "", t)
    words = re.findall(r"[A-Za-z_]\w*|[*&]|<[^>]*>", t)
    return " ".join(w for w in words if w not in _IGNORED_TYPE_WORDS)


def _type_score(declared: str, actual: str, template_params: list[str]) -> int:
    """2: same type; 1: plausible (a template parameter, or same indirection); 0: different."""
    d, a = _normal_type(declared), _normal_type(actual)
    if d == a:
        return 2
    base = [w for w in d.split() if w not in ("*", "&")]
    same_indirection = d.count("*") == a.count("*") and d.count("&") == a.count("&")
    if any(w in template_params for w in base):
        return 1 if d.count("*") <= a.count("*") else 0
    return 1 if same_indirection else 0


# --- macros ----------------------------------------------------------------------------------------

_DEFINE = re.compile(
    r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(\([^)]*\))?[ \t]*"  # name, (params)
    r"((?:[^\n\\]|\\.)*(?:\\\n(?:[^\n\\]|\\.)*)*)",  # body, with continuation lines
    re.MULTILINE)
# In a macro body: `__global__ ... NAME(params)`, where NAME may paste parameters: `prefix ## NAME`.
_MACRO_KERNEL = re.compile(r"\b__global__\b(.*?)([A-Za-z_]\w*(?:\s*##\s*[A-Za-z_]\w*)*)\s*\(([^()]*)\)",
                           re.DOTALL)


@dataclass
class _KernelMacro:
    name: str
    params: list[str]
    body: str


def _macros(text: str) -> tuple[dict[str, str], list[_KernelMacro], list[tuple[int, int]]]:
    """Object-like macros that stand for `__global__`, function-like macros that define kernels, and
    the spans of every #define (so a macro's own definition is never read as a use)."""
    aliases: dict[str, str] = {}
    kernel_macros: list[_KernelMacro] = []
    spans: list[tuple[int, int]] = []
    for m in _DEFINE.finditer(text):
        spans.append((m.start(), m.end()))
        body = re.sub(r"\\\n", " ", m.group(3) or "")
        if not re.search(r"\b__global__\b", body):
            continue
        if m.group(2) is None:
            aliases[m.group(1)] = body.strip()
        else:
            params = [p.strip() for p in m.group(2)[1:-1].split(",") if p.strip()]
            kernel_macros.append(_KernelMacro(m.group(1), params, body))
    return aliases, kernel_macros, spans


def _inside(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= pos < b for a, b in spans)


def _expand_aliases(text: str, aliases: dict[str, str], spans: list[tuple[int, int]]) -> str:
    """Replace `KERNEL` by `__global__` outside #defines; lines keep their numbers."""
    if not aliases:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, aliases)) + r")\b")
    return pattern.sub(lambda m: m.group(0) if _inside(m.start(), spans) else aliases[m.group(1)], text)


def _macro_kernels(text: str, blanked: str, kernel_macros: list[_KernelMacro],
                   spans: list[tuple[int, int]], lines: _Lines) -> list[KernelDef]:
    found: list[KernelDef] = []
    for macro in kernel_macros:
        m = _MACRO_KERNEL.search(macro.body)
        if not m:
            continue
        name_expr, param_text = m.group(2), m.group(3)
        for use in re.finditer(r"\b" + re.escape(macro.name) + r"\s*\(", blanked):
            if _inside(use.start(), spans):
                continue
            close = _match_forward(blanked, use.end() - 1)
            if close is None:
                continue
            args = [a.strip() for a in _split_top(text[use.end() : close], ",")]
            bind = dict(zip(macro.params, args, strict=False))
            name = "".join(bind.get(p.strip(), p.strip()) for p in name_expr.split("##"))
            if not re.fullmatch(r"[A-Za-z_]\w*", name):
                continue
            params = [bind.get(p.strip(), p.strip()) for p in _split_top(param_text, ",") if p.strip()]
            params = [" ".join(bind.get(w, w) for w in p.split()) for p in params]
            found.append(KernelDef(name=name, line=lines.line(use.start()), end_line=lines.line(close),
                                   params=params, qualified_name=name,
                                   param_types=[_drop_param_name(p) for p in params], from_macro=macro.name))
    return found


# --- scanning helpers ------------------------------------------------------------------------------


class _Lines:
    def __init__(self, text: str):
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)


def _blank_comments_and_strings(text: str) -> str:
    """Comments and string/char literals become spaces (newlines kept), so offsets stay valid."""
    out = list(text)
    pattern = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.DOTALL)
    for m in pattern.finditer(text):
        for i in range(m.start(), m.end()):
            if out[i] != "\n":
                out[i] = " "
        if m.group(0).startswith('"'):  # keep the quotes: `extern "C"` still reads as a linkage spec
            out[m.start()] = out[m.end() - 1] = '"'
    return "".join(out)


def _blank_directives(text: str) -> str:
    """Preprocessor lines (with their continuations) become spaces: a #define body is no definition."""
    return re.sub(r"^[ \t]*#(?:[^\n\\]|\\.)*(?:\\\n(?:[^\n\\]|\\.)*)*",
                  lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.MULTILINE)


def _match_forward(text: str, open_pos: int) -> int | None:
    """Offset of the bracket closing the one at open_pos, or None."""
    opener = text[open_pos]
    closer = {"(": ")", "{": "}", "<": ">", "[": "]"}[opener]
    depth = 0
    for i in range(open_pos, len(text)):
        if text[i] == opener:
            depth += 1
        elif text[i] == closer:
            depth -= 1
            if depth == 0:
                return i
    return None


_TYPE_KEYWORDS = {"int", "float", "double", "char", "short", "long", "unsigned", "signed", "bool", "void",
                  "size_t", "half", "auto"}


def _drop_param_name(param: str) -> str:
    """`const float* __restrict__ x` -> `const float* __restrict__`; `int` stays `int`."""
    p = param.split("=", 1)[0].strip()
    m = re.match(r"^(.*?[\w*&>\]\s])\s*([A-Za-z_]\w*)\s*((?:\[[^\]]*\])*)$", p)
    if not m or m.group(2) in _TYPE_KEYWORDS or m.group(2) in ("const", "__restrict__", "volatile"):
        return p
    head = m.group(1).strip()
    if not re.search(r"[A-Za-z_]", head):
        return p
    return (head + ("*" * m.group(3).count("["))).strip()


_ATTRIBUTE_CALLS = {"__launch_bounds__", "__attribute__", "__maxnreg__", "__cluster_dims__", "alignas",
                    "__declspec", "__align__"}
_TOKEN = re.compile(r"[A-Za-z_]\w*|::|\[\[|\S")


def _regex_kernels(blanked: str, lines: _Lines) -> list[KernelDef]:
    found: list[KernelDef] = []
    for g in re.finditer(r"\b__global__\b", blanked):
        kernel = _regex_kernel_at(blanked, g.start(), g.end(), lines)
        if kernel is not None:
            found.append(kernel)
    return found


def _regex_kernel_at(text: str, start: int, pos: int, lines: _Lines) -> KernelDef | None:
    scope = ""  # `ns::` parts read so far
    while True:  # walk to the kernel's name: the identifier right before the parameter list
        m = _TOKEN.search(text, pos)
        if m is None or m.group() in (";", "{", "}"):
            return None
        tok, pos = m.group(), m.end()
        if tok == "[[":
            close = text.find("]]", pos)
            pos = close + 2 if close >= 0 else len(text)
            continue
        if not re.fullmatch(r"[A-Za-z_]\w*", tok):
            continue
        nxt = _TOKEN.search(text, pos)
        following = nxt.group() if nxt else ""
        if following == "(" and tok in _ATTRIBUTE_CALLS:
            close = _match_forward(text, nxt.start())
            if close is None:
                return None
            pos = close + 1
        elif following == "(":
            paren, qualified = nxt.start(), scope + tok
            break
        elif following == "::":
            scope, pos = scope + tok + "::", nxt.end()
        elif following == "<":  # template arguments: of the kernel (a specialization) or of a type
            close = _match_forward(text, nxt.start())
            if close is None:
                return None
            after = _TOKEN.search(text, close + 1)
            if after and after.group() == "(":
                paren, qualified = after.start(), scope + tok
                break
            scope, pos = "", close + 1
        else:
            scope = ""
    close = _match_forward(text, paren)
    if close is None:
        return None
    after = re.compile(r"\s*(?:const\b|noexcept\b|->[^{;]*)?\s*([{;])").match(text, close + 1)
    if not after or after.group(1) != "{":
        return None  # a declaration, not the definition
    end = _match_forward(text, after.end() - 1)
    params = [" ".join(p.split("=", 1)[0].split()) for p in _split_top(text[paren + 1 : close], ",")
              if p.strip()]
    if params == ["void"]:
        params = []
    first, template_params = _template_prefix(text, start)
    return KernelDef(name=qualified.rsplit("::", 1)[-1], line=lines.line(first),
                     end_line=lines.line(end if end is not None else close), params=params,
                     is_template=first != start, qualified_name=qualified,
                     param_types=[_drop_param_name(p) for p in params], template_params=template_params)


_TEMPLATE_LOOKBACK = 4000


def _template_prefix(text: str, start: int) -> tuple[int, list[str]]:
    """If `template <...>` (and specifiers) precede offset `start`, its offset and parameter names."""
    base = max(0, start - _TEMPLATE_LOOKBACK)  # anchored searches on the whole prefix would be quadratic
    head = text[base:start].rstrip()
    while True:
        m = re.search(r'(?:\b(?:static|inline|__forceinline__|__noinline__|extern)|"\s*")\s*$', head)
        if not m:
            break
        head = head[: m.start()].rstrip()
    if not head.endswith(">"):
        return start, []
    depth = 0
    for i in range(len(head) - 1, -1, -1):
        if head[i] == ">":
            depth += 1
        elif head[i] == "<":
            depth -= 1
            if depth == 0:
                before = re.search(r"\btemplate\s*$", head[:i])
                if not before:
                    return start, []
                names = [re.findall(r"[A-Za-z_]\w*", p.split("=")[0])[-1:]
                         for p in _split_top(head[i + 1 : -1], ",")]
                return base + before.start(), [n[0] for n in names if n]
    return start, []


# --- tree-sitter -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _parser():
    """tree-sitter-cuda's parser, or None when the grammar is not installed."""
    try:
        import tree_sitter
        import tree_sitter_cuda
    except ImportError:
        return None
    try:
        return tree_sitter.Parser(tree_sitter.Language(tree_sitter_cuda.language()))
    except Exception:  # noqa: BLE001 - a grammar built for another tree-sitter ABI: use the fallback
        return None


def _walk(node, skip: frozenset[str] = frozenset()) -> Iterator:
    """Nodes in document order; the insides of `skip` node types are not entered."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if n.type not in skip:
            stack.extend(reversed(n.children))


# Kernels are defined at namespace scope: function bodies and parameter lists need no search.
_NO_KERNELS_INSIDE = frozenset({"compound_statement", "parameter_list", "field_declaration_list",
                                "initializer_list", "argument_list"})


def _tree_sitter_kernels(parser, text: str) -> list[KernelDef]:
    data = text.encode("utf-8", errors="replace")
    tree = parser.parse(data)
    found: list[KernelDef] = []
    for node in _walk(tree.root_node, _NO_KERNELS_INSIDE):
        if node.type != "function_definition" or not any(c.type == "__global__" for c in node.children):
            continue
        declarator = node.child_by_field_name("declarator")
        while declarator is not None and declarator.type != "function_declarator":
            declarator = declarator.child_by_field_name("declarator")
        if declarator is None:
            continue
        name_node = declarator.child_by_field_name("declarator")
        parameters = declarator.child_by_field_name("parameters")
        qualified = _ts_name(name_node)
        if not qualified:
            continue
        outer = node
        template_params: list[str] = []
        if node.parent is not None and node.parent.type == "template_declaration":
            outer = node.parent
            plist = outer.child_by_field_name("parameters")
            template_params = _ts_template_params(plist) if plist is not None else []
        scope = _ts_namespaces(node)
        params, types = _ts_params(parameters)
        full = "::".join([*scope, qualified]) if scope and "::" not in qualified else qualified
        found.append(KernelDef(name=qualified.rsplit("::", 1)[-1], line=outer.start_point[0] + 1,
                               end_line=node.end_point[0] + 1, params=params, is_template=outer is not node,
                               qualified_name=full, param_types=types, template_params=template_params))
    return found


def _ts_text(node) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None else ""


def _ts_name(node) -> str:
    if node is None:
        return ""
    if node.type == "template_function":
        return _ts_text(node.child_by_field_name("name"))
    if node.type == "qualified_identifier":
        scope = _ts_text(node.child_by_field_name("scope"))
        return f"{scope}::{_ts_name(node.child_by_field_name('name'))}" if scope else ""
    if node.type in ("identifier", "field_identifier"):
        return _ts_text(node)
    return ""


def _ts_namespaces(node) -> list[str]:
    names = []
    parent = node.parent
    while parent is not None:
        if parent.type == "namespace_definition":
            name = parent.child_by_field_name("name")
            names.append(_ts_text(name) if name is not None else "(anonymous namespace)")
        parent = parent.parent
    return list(reversed(names))


def _ts_template_params(plist) -> list[str]:
    names = []
    for p in plist.named_children:
        idents = [c for c in _walk(p) if c.type in ("type_identifier", "identifier")]
        if idents:
            names.append(_ts_text(idents[-1]))
    return names


_PARAMETER_NODES = ("parameter_declaration", "optional_parameter_declaration",
                    "variadic_parameter_declaration")


def _ts_params(parameters) -> tuple[list[str], list[str]]:
    params, types = [], []
    if parameters is None:
        return params, types
    for p in parameters.named_children:
        if p.type not in _PARAMETER_NODES:
            continue
        default = p.child_by_field_name("default_value")
        text = _ts_text(p)
        if default is not None:
            text = text[: default.start_byte - p.start_byte].rstrip().rstrip("=").rstrip()
        params.append(" ".join(text.split()))
        name = _ts_param_name(p.child_by_field_name("declarator"))
        if name is not None:
            cut_at, cut_to = name.start_byte - p.start_byte, name.end_byte - p.start_byte
            type_text = text[:cut_at] + text[cut_to:] if cut_to <= len(text) else text
        else:
            type_text = text
        types.append(" ".join(type_text.split()))
    if params == ["void"]:
        return [], []
    return params, types


def _ts_param_name(declarator):
    node = declarator
    while node is not None:
        if node.type == "identifier":
            return node
        inner = node.child_by_field_name("declarator")
        if inner is None:
            inner = next((c for c in node.named_children
                          if c.type.endswith("declarator") or c.type == "identifier"), None)
        node = inner
    return None


# --- public ----------------------------------------------------------------------------------------


def find_kernel_definitions(source: str) -> list[KernelDef]:
    """Every `__global__` function defined in this source, in line order (declarations excluded)."""
    aliases, kernel_macros, spans = _macros(source)
    expanded = _expand_aliases(source, aliases, spans)
    blanked = _blank_comments_and_strings(expanded)
    lines = _Lines(expanded)
    parser = _parser()
    found = _tree_sitter_kernels(parser, expanded) if parser is not None else []
    # The scanner also runs behind tree-sitter: it picks up kernels in regions the grammar could not parse.
    seen = {(k.name, k.line) for k in found}
    covered = {k.line for k in found}
    for k in _regex_kernels(_blank_directives(blanked), lines):
        if (k.name, k.line) not in seen and k.line not in covered:
            found.append(k)
    found += _macro_kernels(expanded, blanked, kernel_macros, spans, lines)
    found.sort(key=lambda k: (k.line, k.name))
    return found


@functools.lru_cache(maxsize=64)
def _cached_definitions(text: str) -> tuple[KernelDef, ...]:
    """One parse per source text, however many kernels are looked up in it."""
    return tuple(find_kernel_definitions(text))


def _match_score(kernel: KernelDef, symbol_types: list[str] | None, symbol_scope: str) -> tuple[int, ...]:
    count_ok = symbol_types is None or len(symbol_types) == len(kernel.param_types)
    types = 0
    if symbol_types is not None and count_ok:
        pairs = zip(kernel.param_types, symbol_types, strict=True)
        types = sum(_type_score(declared, actual, kernel.template_params) for declared, actual in pairs)
    scope_ok = int(kernel.qualified_name.rsplit("::", 1)[0] == symbol_scope) if symbol_scope else 0
    return int(count_ok), types, scope_ok


def locate_kernel(symbol: str, sources: dict[str, str]) -> tuple[str, int] | None:
    """(path, 1-based line) of the definition of the kernel `symbol` (mangled or demangled), or None."""
    match = locate_kernel_definition(symbol, sources)
    return (match[0], match[1].line) if match else None


def locate_kernel_definition(symbol: str, sources: dict[str, str]) -> tuple[str, KernelDef] | None:
    base = kernel_base_name(symbol)
    if not base:
        return None
    qualified = qualified_kernel_name(symbol)
    scope = qualified.rsplit("::", 1)[0] if "::" in qualified else ""
    types = demangled_param_types(symbol)
    best: tuple[tuple[int, ...], str, KernelDef] | None = None
    for path, text in sources.items():
        for kernel in _cached_definitions(text):
            if kernel.name != base:
                continue
            score = _match_score(kernel, types, scope)
            if best is None or score > best[0]:
                best = (score, path, kernel)
    return (best[1], best[2]) if best else None
