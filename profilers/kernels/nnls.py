"""Non-negative least squares (Lawson–Hanson active set) on the normal equations, in pure Python.

The attribution fits a handful of powers (one per kernel, plus the GPU's power between kernels) to
hundreds or thousands of sensor windows, so the problem is given as its Gram matrix G = XᵀWX and
b = XᵀWy: small and dense, cheap to rebuild for every bootstrap replicate.
"""

from __future__ import annotations

Matrix = list[list[float]]


class SingularMatrix(ValueError):
    pass


def solve_linear(a: Matrix, b: list[float]) -> list[float]:
    """x with a·x = b, by Gaussian elimination with partial pivoting; SingularMatrix if none."""
    n = len(b)
    m = [list(row) + [b[i]] for i, row in enumerate(a)]
    scale = max((abs(v) for row in a for v in row), default=0.0) or 1.0
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) <= 1e-12 * scale:
            raise SingularMatrix(f"column {col} is (nearly) a combination of the others")
        m[col], m[pivot] = m[pivot], m[col]
        inv = 1.0 / m[col][col]
        for r in range(col + 1, n):
            f = m[r][col] * inv
            if f:
                row_r, row_c = m[r], m[col]
                for c in range(col, n + 1):
                    row_r[c] -= f * row_c[c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        s = m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))
        x[r] = s / m[r][r]
    return x


def _solve_passive(g: Matrix, b: list[float], passive: list[int]) -> list[float]:
    sub = [[g[i][j] for j in passive] for i in passive]
    rhs = [b[i] for i in passive]
    try:
        return solve_linear(sub, rhs)
    except SingularMatrix:
        # Exactly collinear columns: a tiny ridge picks one of the equally good solutions.
        ridge = 1e-9 * max(max(abs(sub[i][i]) for i in range(len(sub))), 1e-30)
        return solve_linear([[v + (ridge if i == j else 0.0) for j, v in enumerate(row)]
                             for i, row in enumerate(sub)], rhs)


def nnls_gram(g: Matrix, b: list[float], start: list[int] | None = None,
              max_iterations: int | None = None) -> list[float]:
    """argmin_{x ≥ 0} ½xᵀGx − bᵀx, i.e. min ‖W^½(Xx − y)‖² with G = XᵀWX, b = XᵀWy.

    `start`: variables expected to be positive (a similar problem's answer), to save iterations."""
    n = len(b)
    x = [0.0] * n
    passive: set[int] = set(start or ())
    warm = bool(passive)
    tol = 1e-12 * max(1.0, max((abs(v) for v in b), default=0.0))
    limit = max_iterations if max_iterations is not None else 3 * n + 10
    for _ in range(limit):
        if not warm:
            gradient = [b[i] - sum(g[i][j] * x[j] for j in range(n)) for i in range(n)]
            candidates = [j for j in range(n) if j not in passive and gradient[j] > tol]
            if not candidates:
                break
            passive.add(max(candidates, key=lambda j: gradient[j]))
        warm = False
        for _inner in range(limit):
            order = sorted(passive)
            z = _solve_passive(g, b, order)
            if all(v > 0 for v in z):
                for i, v in zip(order, z, strict=True):
                    x[i] = v
                break
            # Step from x towards z until the first passive variable hits zero; drop those at zero.
            steps = [x[i] / (x[i] - v) for i, v in zip(order, z, strict=True) if v <= 0 and x[i] - v > 0]
            alpha = min(steps, default=0.0)
            for i, v in zip(order, z, strict=True):
                x[i] += alpha * (v - x[i])
            for i in order:
                if x[i] <= 1e-12 * max(1.0, max(abs(v) for v in x)):
                    x[i] = 0.0
                    passive.discard(i)
            if not passive:
                break
    return x


def invert(a: Matrix) -> Matrix:
    """The inverse of a small square matrix (columns of solve_linear against the identity)."""
    n = len(a)
    columns = [solve_linear(a, [1.0 if r == c else 0.0 for r in range(n)]) for c in range(n)]
    return [[columns[c][r] for c in range(n)] for r in range(n)]
