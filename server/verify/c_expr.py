"""Evaluating small constant C expressions: macro values, loop bounds, `if (0)` guards.

Only what static checks need: integer and floating literals (with suffixes), names bound to known
constants, arithmetic, shifts, comparisons and logic. Anything else (casts, calls, unknown names)
evaluates to None, "not known", and `||`/`&&` short-circuit around unknowns the way C would.
"""

from __future__ import annotations

import ast
import operator
import re

Value = int | float

_INT_SUFFIX_RE = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)(?:[uU](?:ll|LL|l|L)?|(?:ll|LL|l|L)[uU]?)\b")
_FLOAT_SUFFIX_RE = re.compile(r"\b((?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)[fFlL]\b|(\d+\.\d*|\.\d+)[fFlL]")
_NOT_RE = re.compile(r"!(?!=)")
_NAME_RE = re.compile(r"[A-Za-z_]\w*")

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Mod: operator.mod,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_, ast.BitXor: operator.xor,
}  # fmt: skip
_COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}  # fmt: skip
_MAX_SHIFT = 256


def _to_python(text: str) -> str:
    t = text.strip()
    t = _FLOAT_SUFFIX_RE.sub(lambda m: m.group(1) or m.group(2), t)
    t = _INT_SUFFIX_RE.sub(lambda m: m.group(1), t)
    t = re.sub(r"\btrue\b", "1", t)
    t = re.sub(r"\b(?:false|NULL|nullptr)\b", "0", t)
    t = t.replace("&&", " and ").replace("||", " or ")
    t = _NOT_RE.sub(" not ", t)
    return t.strip()


def evaluate(text: str, names: dict[str, Value] | None = None) -> Value | None:
    """The value of a constant C expression, or None when it is not constant (or not understood)."""
    try:
        tree = ast.parse(_to_python(text), mode="eval")
    except (SyntaxError, ValueError):
        return None
    try:
        return _eval(tree.body, names or {})
    except (ArithmeticError, ValueError, TypeError, OverflowError):
        return None


def _eval(node: ast.AST, names: dict[str, Value]) -> Value | None:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, names)
        if value is None:
            return None
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        if isinstance(node.op, ast.Not):
            return int(not value)
        if isinstance(node.op, ast.Invert) and isinstance(value, int):
            return ~value
        return None
    if isinstance(node, ast.BoolOp):
        return _eval_logic(node, names)
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, names), _eval(node.right, names)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Div):
            if isinstance(left, int) and isinstance(right, int):
                return int(left / right)  # C integer division truncates toward zero
            return left / right
        if isinstance(node.op, ast.LShift | ast.RShift) and (
            not isinstance(right, int) or right > _MAX_SHIFT
        ):
            return None
        fn = _BINARY.get(type(node.op))
        return fn(left, right) if fn else None
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _eval(node.left, names), _eval(node.comparators[0], names)
        if left is None or right is None:
            return None
        return int(_COMPARE[type(node.ops[0])](left, right))
    return None


def _eval_logic(node: ast.BoolOp, names: dict[str, Value]) -> Value | None:
    """C's && and || with unknown operands: `x || 1` is 1 and `x && 0` is 0 whatever x is."""
    values = [_eval(v, names) for v in node.values]
    if isinstance(node.op, ast.Or):
        if any(v is not None and v for v in values):
            return 1
        return 0 if all(v is not None for v in values) else None
    if any(v is not None and not v for v in values):
        return 0
    return 1 if all(v is not None for v in values) else None


def names_in(text: str) -> set[str]:
    return set(_NAME_RE.findall(text)) - {"true", "false", "NULL", "nullptr", "sizeof"}
