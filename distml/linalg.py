"""torch.linalg: norms, inverses, determinants, solvers and decompositions, with gradients.

    import distml as torch
    A = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    torch.linalg.solve(A, torch.ones(3, dtype=torch.float64)).sum().backward()

numpy.linalg (cupy.linalg for GPU arrays) does the arithmetic; each decomposition is one
Primitive with its analytic backward (PyTorch's formulas), the rest is composed from them.
Real floating-point inputs only. The legacy top-level forms (`torch.svd`, `torch.qr`,
`torch.cholesky`, `torch.inverse`, ...) are at the end.
"""
import math
from collections import namedtuple

import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.amp.autocast_mode import autocast_op
from distml.autograd.function import Primitive
from distml.autograd.grad_mode import is_grad_enabled
from distml.ops._util import broadcast_shapes, normalize_dims, unbroadcast, wrap_dim
from distml.ops.convert import cast
from distml.ops.elementwise import log, mul, sub
from distml.ops.index import getitem
from distml.ops.linalg import matmul
from distml.ops.reduce import amax, amin, sum
from distml.ops.registry import register
from distml.ops.shape import cat, movedim, narrow, squeeze, transpose, tril, triu, unsqueeze
from distml.tensor import Tensor

__all__ = ["LinAlgError", "norm", "vector_norm", "matrix_norm", "inv", "inv_ex", "det", "slogdet", "solve",
           "cholesky", "cholesky_ex", "qr", "svd", "svdvals", "eigh", "eigvalsh", "pinv", "matrix_power",
           "matrix_rank", "cross", "lstsq", "multi_dot", "vecdot", "matmul", "diagonal", "solve_triangular",
           "lu_factor", "lu_factor_ex", "lu", "lu_solve"]


class LinAlgError(RuntimeError):
    """A matrix the operation cannot handle (singular, not positive-definite), as torch.linalg.LinAlgError."""


# The named tuples torch.return_types gives for these functions.
linalg_inv_ex = namedtuple("linalg_inv_ex", ["inverse", "info"])
linalg_slogdet = namedtuple("linalg_slogdet", ["sign", "logabsdet"])
linalg_cholesky_ex = namedtuple("linalg_cholesky_ex", ["L", "info"])
linalg_qr = namedtuple("linalg_qr", ["Q", "R"])
linalg_svd = namedtuple("linalg_svd", ["U", "S", "Vh"])
linalg_eigh = namedtuple("linalg_eigh", ["eigenvalues", "eigenvectors"])
linalg_lstsq = namedtuple("linalg_lstsq", ["solution", "residuals", "rank", "singular_values"])
linalg_lu_factor = namedtuple("linalg_lu_factor", ["LU", "pivots"])
linalg_lu_factor_ex = namedtuple("linalg_lu_factor_ex", ["LU", "pivots", "info"])
linalg_lu = namedtuple("linalg_lu", ["P", "L", "U"])
svd_legacy = namedtuple("svd", ["U", "S", "V"])
qr_legacy = namedtuple("qr", ["Q", "R"])


# ---- checks with PyTorch's messages ----

def _check_float(name, x, low_precision=False):
    """A real floating-point input (float32/float64; float16 and bfloat16 too where `low_precision`)."""
    d = x.dtype
    if d.np.kind == "c":
        raise NotImplementedError(f"{name}: complex inputs are not supported by distml")
    if not d.is_floating_point:
        raise RuntimeError(f"{name}: Expected a floating point or complex tensor as input. Got {d.legacy_name}")
    if d.itemsize < 4 and not low_precision:
        raise RuntimeError(f"{name}: Low precision dtypes not supported. Got {d.legacy_name}")


def _check_matrix(name, A, square=True, what="A"):
    shape = A.array.shape
    if len(shape) < 2:
        raise RuntimeError(f"{name}: The input tensor {what} must have at least 2 dimensions.")
    if square and shape[-1] != shape[-2]:
        raise RuntimeError(f"{name}: A must be batches of square matrices, but they are {shape[-2]} by {shape[-1]} "
                           "matrices")
    _check_float(name, A)


def _check_same_dtype(name, A, B, a="A", b="B"):
    if A.dtype != B.dtype:
        raise RuntimeError(f"{name}: Expected {a} and {b} to have the same dtype, but found {a} of type "
                           f"{A.dtype.legacy_name} and {b} of type {B.dtype.legacy_name} instead")


def _check_shapes(name, A, B, left):
    """B's matrix dims fit A's for AX = B (left) or XA = B."""
    n, (rows, cols) = A.array.shape[-1], B.array.shape[-2:]
    if (rows if left else cols) != n:
        equation = "AX = B" if left else "XA = B"
        raise RuntimeError(f"{name}: Incompatible shapes of A and B for the equation {equation} ({n}x{n} and "
                           f"{rows}x{cols})")
    broadcast_shapes(B.array.shape[:-2], A.array.shape[:-2])


def _failure(name, info, text):
    """LinAlgError for the first matrix whose LAPACK `info` is nonzero; `text` formats that info."""
    info = np.asarray(info.get() if hasattr(info, "get") else info)
    failed = np.flatnonzero(info)
    if not failed.size:  # LAPACK's blocked LU met an exact zero pivot that the step-by-step one rounded away
        return LinAlgError(f"{name}: The input matrix is singular.")
    where = f"(Batch element {failed[0]}): " if info.ndim else ""
    return LinAlgError(f"{name}: {where}{text(int(info.reshape(-1)[failed[0]]))}")


def _singular(index):
    return (f"The diagonal element {index} is zero, the inversion could not be completed because the input "
            "matrix is singular.")


def _not_positive_definite(order):
    return ("The factorization could not be completed because the input is not positive-definite (the leading "
            f"minor of order {order} is not positive-definite).")


# ---- array helpers ----

def _mT(a):
    return a.swapaxes(-1, -2)


def _lu_steps(a):
    """LU with partial pivoting of (..., m, n) arrays, step by step as LAPACK's getf2:
    (LU, pivots (1-based int32), info (0, or the first exactly zero pivot, 1-based))."""
    xp = get_array_module(a)
    *batch, m, n = a.shape
    k = min(m, n)
    lu = a.reshape(math.prod(batch), m, n).copy()
    rows = xp.arange(lu.shape[0])
    pivots = xp.zeros((lu.shape[0], k), dtype=np.int32)
    info = xp.zeros(lu.shape[0], dtype=np.int32)
    for j in range(k):
        p = j + xp.argmax(xp.abs(lu[:, j:, j]), axis=1)
        pivots[:, j] = p + 1
        row_j, row_p = lu[rows, j].copy(), lu[rows, p].copy()
        lu[rows, p], lu[rows, j] = row_j, row_p
        pivot = lu[:, j, j]
        info[(info == 0) & (pivot == 0)] = j + 1
        lu[:, j + 1:, j] /= xp.where(pivot == 0, 1, pivot)[:, None]
        lu[:, j + 1:, j + 1:] -= lu[:, j + 1:, j, None] * lu[:, j, None, j + 1:]
    return lu.reshape(a.shape), pivots.reshape(tuple(batch) + (k,)), info.reshape(tuple(batch))


def _permutation(pivots, m):
    """perm with A[..., perm, :] == L @ U: the row order getrf's swaps (`pivots`) produce."""
    xp = get_array_module(pivots)
    k = pivots.shape[-1]
    swaps = pivots.reshape(math.prod(pivots.shape[:-1]), k).astype(np.int64) - 1
    perm = xp.broadcast_to(xp.arange(m), (swaps.shape[0], m)).copy()
    rows = xp.arange(swaps.shape[0])
    for j in range(k):
        p = swaps[:, j]
        held = perm[:, j].copy()
        perm[:, j] = perm[rows, p]
        perm[rows, p] = held
    return perm.reshape(pivots.shape[:-1] + (m,))


def _take_rows(a, order):
    """The rows of each matrix of `a` in the order `order` (one per matrix; batch dims broadcast):
    P^T a for the permutation matrix P with P[order[i], i] = 1."""
    xp = get_array_module(a)
    batch = np.broadcast_shapes(a.shape[:-2], order.shape[:-1])
    a = xp.broadcast_to(a, batch + a.shape[-2:])
    order = xp.broadcast_to(order, batch + order.shape[-1:])
    return xp.take_along_axis(a, order[..., None], axis=-2)


def _unit_lower(xp, a):
    """The strictly lower triangle of `a` with ones on the diagonal (L of a square LU)."""
    return _set_diagonal(xp, xp.tril(a, -1), 1)


def _cholesky_steps(a):
    """Cholesky of the lower triangle column by column, as LAPACK's potf2: (L, info); where info > 0
    the factor stops at that column (its diagonal holds the failed pivot), as LAPACK leaves it."""
    xp = get_array_module(a)
    n = a.shape[-1]
    low = xp.tril(a)
    info = xp.zeros(a.shape[:-2], dtype=np.int32)
    for j in range(n):
        pivot = low[..., j, j] - (low[..., j, :j] ** 2).sum(-1)
        failed = (info == 0) & ~(pivot > 0)
        info[failed] = j + 1
        ok = info == 0
        root = xp.sqrt(xp.where(ok, pivot, 1))
        column = (low[..., j + 1:, j] - (low[..., j + 1:, :j] @ low[..., j, :j, None])[..., 0]) / root[..., None]
        low[..., j, j] = xp.where(ok, root, xp.where(failed, pivot, low[..., j, j]))
        low[..., j + 1:, j] = xp.where(ok[..., None], column, low[..., j + 1:, j])
    return low, info


def _substitute(t, b, upper):
    """Solve t x = b for triangular t by substitution: inf/nan where t has a zero on its diagonal, as trsm."""
    xp = get_array_module(t)
    batch = np.broadcast_shapes(t.shape[:-2], b.shape[:-2])
    t = xp.broadcast_to(t, batch + t.shape[-2:])
    b = xp.broadcast_to(b, batch + b.shape[-2:])
    x = xp.zeros(b.shape, dtype=np.result_type(t, b))
    n = t.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in reversed(range(n)) if upper else range(n):
            done = slice(i + 1, n) if upper else slice(0, i)
            x[..., i, :] = (b[..., i, :] - (t[..., i, None, done] @ x[..., done, :])[..., 0, :]) / t[..., i, i, None]
    return x


def _solve_triangular(t, b, upper):
    """t^-1 b for t exactly triangular (zero in the other triangle)."""
    try:
        return get_array_module(t).linalg.solve(t, b)
    except np.linalg.LinAlgError:  # a zero on the diagonal: no error, inf/nan, as PyTorch's triangular solve
        return _substitute(t, b, upper)


def _triangle(xp, a, upper, unitriangular):
    """The triangle of `a` that a triangular solve reads (with ones on the diagonal when unitriangular)."""
    t = xp.triu(a) if upper else xp.tril(a)
    return _set_diagonal(xp, t, 1) if unitriangular else t


def _set_diagonal(xp, a, values):
    n = a.shape[-1]
    a[..., xp.arange(n), xp.arange(n)] = values
    return a


def _inverse_transpose(a):
    """A^-T from the SVD: infinite (not an error) where A is singular."""
    xp = get_array_module(a)
    u, s, vh = xp.linalg.svd(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (u / s[..., None, :]) @ vh


def _cofactor(a):
    """det(A) A^-T (the transposed adjugate), from the SVD so that it is right for singular A too."""
    xp = get_array_module(a)
    if a.shape[-1] == 0:
        return xp.zeros_like(a)
    u, s, vh = xp.linalg.svd(a)
    ones = xp.ones(s.shape[:-1] + (1,), dtype=s.dtype)
    before = xp.concatenate([ones, xp.cumprod(s[..., :-1], axis=-1)], axis=-1)
    after = xp.concatenate([xp.cumprod(s[..., :0:-1], axis=-1)[..., ::-1], ones], axis=-1)
    sign = xp.linalg.det(u) * xp.linalg.det(vh)
    return sign[..., None, None] * ((u * (before * after)[..., None, :]) @ vh)


# ---- primitives ----

class VectorNorm(Primitive):
    """The `ord`-norm of x over `dims` (all when None), with PyTorch's gradient: zero where the norm is
    zero, and shared equally between tied elements for the inf norms."""

    def forward(self, x, ord, dims, keepdim):
        xp = get_array_module(x)
        size = abs(x)
        if ord == math.inf:
            out = size.max(axis=dims, keepdims=True)
        elif ord == -math.inf:
            out = size.min(axis=dims, keepdims=True)
        elif ord == 0:
            out = (size != 0).sum(axis=dims, keepdims=True, dtype=x.dtype)
        elif ord == 1:
            out = size.sum(axis=dims, keepdims=True)
        elif ord == 2:
            out = xp.sqrt((x * x).sum(axis=dims, keepdims=True))
        else:
            with np.errstate(divide="ignore"):
                out = (size ** ord).sum(axis=dims, keepdims=True) ** (1.0 / ord)
        self.x, self.out, self.ord, self.dims, self.keepdim = x, out, ord, dims, keepdim
        if keepdim:
            return out
        return out.reshape(tuple(s for i, s in enumerate(x.shape) if dims is not None and i not in dims))

    def backward(self, grad):
        x, out, p = self.x, self.out, self.ord
        if p == 0:
            return None
        xp = get_array_module(x)
        grad = grad.reshape(out.shape)
        if p in (math.inf, -math.inf):
            winners = abs(x) == out
            return xp.sign(x) * winners * (grad / winners.sum(axis=self.dims, keepdims=True))
        if p == 1:
            return xp.sign(x) * grad
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                return x * xp.where(out == 0, 0, grad / out)
            if p < 1:
                scaled = xp.where(x == 0, 0, xp.sign(x) * abs(x) ** (p - 1))
                return scaled * grad * out ** (1 - p)
            scaled = xp.sign(x) * abs(x) ** (p - 1)
            return scaled * xp.where(out == 0, 0, grad / out ** (p - 1))


class Inv(Primitive):
    """(A^-1, info) per matrix; info is LAPACK's (the first zero pivot of A's LU, 1-based, or 0).
    With `check`, a singular matrix raises LinAlgError naming `name`; otherwise its inverse is nan."""
    saves_inputs = False

    def forward(self, a, name, check):
        xp = get_array_module(a)
        info = xp.zeros(a.shape[:-2], dtype=np.int32)
        try:
            out = xp.linalg.inv(a)
        except np.linalg.LinAlgError:
            info = _lu_steps(a)[2]
            if check or not info.any():
                raise _failure(name, info, _singular) from None
            out = xp.full(a.shape, np.nan, dtype=a.dtype)
            out[info == 0] = xp.linalg.inv(a[info == 0])
        self.out = out
        return out, info

    def backward(self, grad, grad_info):
        t = _mT(self.out)
        return -(t @ grad @ t)


class Det(Primitive):
    saves_output = True

    def forward(self, a):
        xp = get_array_module(a)
        self.a = a
        self.out = xp.asarray(xp.linalg.det(a))
        return self.out

    def backward(self, grad):
        xp = get_array_module(grad)
        a, det = self.a, self.out
        if (det == 0).any():
            cofactor = _cofactor(a)
        else:
            cofactor = det[..., None, None] * _mT(xp.linalg.inv(a))
        return grad[..., None, None] * cofactor


class Slogdet(Primitive):
    """(sign, log|det A|); the gradient of log|det A| is A^-T (infinite at a singular A)."""

    def forward(self, a):
        xp = get_array_module(a)
        sign, logabsdet = xp.linalg.slogdet(a)
        self.a, self.sign = a, xp.asarray(sign)
        return self.sign, xp.asarray(logabsdet)

    def backward(self, grad_sign, grad_logabsdet):
        xp = get_array_module(self.a)
        inverse_t = _inverse_transpose(self.a) if (self.sign == 0).any() else _mT(xp.linalg.inv(self.a))
        return grad_logabsdet[..., None, None] * inverse_t


class Solve(Primitive):
    """A^-1 B for square A and matrices B (batch dims broadcast)."""
    saves_output = True

    def forward(self, a, b):
        xp = get_array_module(a)
        try:
            self.x = xp.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            raise _failure("torch.linalg.solve", _lu_steps(a)[2],
                           lambda _: "The solver failed because the input matrix is singular.") from None
        self.a, self.b_shape = a, b.shape
        return self.x

    def backward(self, grad):
        xp = get_array_module(grad)
        grad_b = xp.linalg.solve(_mT(self.a), grad)
        grad_a = unbroadcast(-grad_b @ _mT(self.x), self.a.shape) if self.needs_input_grad[0] else None
        return grad_a, unbroadcast(grad_b, self.b_shape)


class SolveTriangular(Primitive):
    """A^-1 B reading only A's upper (or lower) triangle; the gradient of A stays in that triangle."""
    saves_output = True

    def forward(self, a, b, upper, unitriangular):
        xp = get_array_module(a)
        self.t = _triangle(xp, a, upper, unitriangular)
        self.x = _solve_triangular(self.t, b, upper)
        self.upper, self.unitriangular, self.a_shape, self.b_shape = upper, unitriangular, a.shape, b.shape
        return self.x

    def backward(self, grad):
        xp = get_array_module(grad)
        grad_b = _solve_triangular(_mT(self.t), grad, not self.upper)
        grad_a = None
        if self.needs_input_grad[0]:
            full = -grad_b @ _mT(self.x)
            offset = 1 if self.unitriangular else 0
            grad_a = unbroadcast(xp.triu(full, offset) if self.upper else xp.tril(full, -offset), self.a_shape)
        return grad_a, unbroadcast(grad_b, self.b_shape)


class Cholesky(Primitive):
    """(L, info): the lower Cholesky factor (its transpose, read from the upper triangle, when `upper`).
    Murray's backward (arXiv:1602.07527), as PyTorch."""
    saves_inputs = False

    def forward(self, a, upper, name, check):
        xp = get_array_module(a)
        a = _mT(a) if upper else a
        info = xp.zeros(a.shape[:-2], dtype=np.int32)
        try:
            low = xp.linalg.cholesky(a)
        except np.linalg.LinAlgError:
            low, info = _cholesky_steps(a)
            if check:
                raise _failure(name, info, _not_positive_definite) from None
        self.low, self.upper = low, upper
        return (_mT(low) if upper else low), info

    def backward(self, grad, grad_info):
        xp = get_array_module(grad)
        low = self.low
        grad = _mT(grad) if self.upper else grad
        phi = xp.tril(_mT(low) @ grad)
        phi = 0.5 * (phi + _mT(xp.tril(phi, -1)))
        left = _solve_triangular(_mT(low), phi, True)
        return _mT(_solve_triangular(_mT(low), _mT(left), True))


class QR(Primitive):
    """(Q, R) for mode 'reduced' or 'complete'; for 'r', Q is empty (and there is no gradient)."""
    saves_inputs = False

    def forward(self, a, mode):
        xp = get_array_module(a)
        if mode == "r":
            q, r = xp.empty((0,), dtype=a.dtype), xp.linalg.qr(a, mode="r")
        else:
            q, r = xp.linalg.qr(a, mode=mode)
        self.q, self.r, self.mode = q, r, mode
        return q, r

    def backward(self, grad_q, grad_r):
        xp = get_array_module(grad_r)
        q, r = self.q, self.r
        if self.mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed when mode='r'. Please "
                               "use linalg.qr(A, mode='reduced') if you are going to differentiate through linalg.qr.")
        m, n = q.shape[-2], r.shape[-1]
        if self.mode == "complete" and m > n:
            raise RuntimeError("The QR decomposition is not differentiable when mode='complete' and nrows > ncols.")
        if m >= n:
            return _qr_backward(q, r, grad_q, grad_r)
        # A = [X | Y] with X = Q R1 square and Y = Q R2: R2's gradient reaches Y directly and Q through Y.
        grad_r2 = grad_r[..., m:]
        grad_x = _qr_backward(q, r[..., :m], grad_q + (q @ r[..., m:]) @ _mT(grad_r2), grad_r[..., :m])
        return xp.concatenate([grad_x, q @ grad_r2], axis=-1)


def _qr_backward(q, r, grad_q, grad_r):
    """The gradient of the thin QR (m >= n): (gQ + Q copyltu(M)) R^-T with M = R gR^T - gQ^T Q."""
    xp = get_array_module(q)
    m = r @ _mT(grad_r) - _mT(grad_q) @ q
    copyltu = xp.tril(m) + _mT(xp.tril(m, -1))
    return _mT(_solve_triangular(r, _mT(grad_q + q @ copyltu), True))


class Svd(Primitive):
    """(U, S, Vh); PyTorch's backward (distinct singular values, a loss invariant to the singular
    vectors' signs). With full_matrices only the first min(m, n) vectors carry a gradient, as PyTorch."""
    saves_inputs = False

    def forward(self, a, full_matrices):
        u, s, vh = get_array_module(a).linalg.svd(a, full_matrices=full_matrices)
        self.u, self.s, self.vh = u, s, vh
        return u, s, vh

    def backward(self, grad_u, grad_s, grad_vh):
        k = self.s.shape[-1]
        grad_u, grad_vh = grad_u[..., :k], grad_vh[..., :k, :]
        return _svd_backward(self.u[..., :k], self.s, self.vh[..., :k, :], grad_u if grad_u.any() else None,
                             grad_s, grad_vh if grad_vh.any() else None)


def _svd_backward(u, s, vh, grad_u, grad_s, grad_vh):
    """PyTorch's svd_backward (real case); grad_u / grad_vh None when the loss does not use them."""
    xp = get_array_module(s)
    m, n = u.shape[-2], vh.shape[-1]
    if grad_u is None and grad_vh is None:
        return (u * grad_s[..., None, :]) @ vh
    s2 = s * s
    e = _set_diagonal(xp, s2[..., None, :] - s2[..., :, None], 1)
    inner = _set_diagonal(xp, xp.zeros(e.shape, dtype=s.dtype), grad_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        if grad_u is not None:
            uhgu = _mT(u) @ grad_u
            inner = inner + (uhgu - _mT(uhgu)) * s[..., None, :] / e
        if grad_vh is not None:
            vhgv = vh @ _mT(grad_vh)
            inner = inner + s[..., :, None] * (vhgv - _mT(vhgv)) / e
        if m > n and grad_u is not None:
            scaled = grad_u / s[..., None, :]
            return (u @ inner + scaled - u @ (_mT(u) @ scaled)) @ vh
        if m < n and grad_vh is not None:
            scaled = grad_vh / s[..., :, None]
            return u @ (inner @ vh + scaled - (scaled @ _mT(vh)) @ vh)
    return u @ inner @ vh


class Eigh(Primitive):
    """(eigenvalues ascending, eigenvectors) of the symmetric matrix in A's UPLO triangle;
    PyTorch's backward (distinct eigenvalues, a loss invariant to the eigenvectors' signs)."""
    saves_inputs = False

    def forward(self, a, uplo):
        w, v = get_array_module(a).linalg.eigh(a, UPLO=uplo)
        self.w, self.v = w, v
        return w, v

    def backward(self, grad_w, grad_v):
        xp = get_array_module(grad_w)
        w, v = self.w, self.v
        if not grad_v.any():
            return (v * grad_w[..., None, :]) @ _mT(v)
        vhgv = _mT(v) @ grad_v
        e = _set_diagonal(xp, w[..., None, :] - w[..., :, None], 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inner = _set_diagonal(xp, 0.5 * (vhgv - _mT(vhgv)) / e, grad_w)
        return v @ inner @ _mT(v)


class Pinv(Primitive):
    """The pseudo-inverse, keeping singular values (|eigenvalues| when hermitian) above
    max(atol, rtol * largest); the gradient is the constant-rank formula PyTorch uses."""
    saves_output = True

    def forward(self, a, atol, rtol, hermitian):
        xp = get_array_module(a)
        if hermitian:
            w, v = xp.linalg.eigh(a)
            size = abs(w)
        else:
            u, size, vh = xp.linalg.svd(a, full_matrices=False)
        largest = size.max(axis=-1) if size.shape[-1] else xp.zeros(size.shape[:-1], dtype=a.dtype)
        keep = size > xp.maximum(atol, rtol * largest)[..., None]
        values = w if hermitian else size
        inverse = xp.where(keep, 1 / xp.where(keep, values, 1), 0).astype(a.dtype)
        if hermitian:
            self.out = (v * inverse[..., None, :]) @ _mT(v)
        else:
            self.out = (_mT(vh) * inverse[..., None, :]) @ _mT(u)
        self.a = a
        return self.out

    def backward(self, grad):
        a, p = self.a, self.out
        pt, gt = _mT(p), _mT(grad)
        left = gt @ p @ pt
        right = pt @ p @ gt
        return -pt @ grad @ pt + (left - a @ (p @ left)) + (right - (right @ p) @ a)


class LuFactor(Primitive):
    """(LU, pivots, info) as LAPACK's getrf; the gradient reaches A through L (strictly lower part of
    LU) and U (upper part), by PyTorch's LU backward for square, wide and tall A."""
    saves_inputs = False

    def forward(self, a):
        lu, pivots, info = _lu_steps(a)
        self.lu, self.pivots = lu, pivots
        return lu, pivots, info

    def backward(self, grad_lu, grad_pivots, grad_info):
        xp = get_array_module(grad_lu)
        lu, (m, n) = self.lu, self.lu.shape[-2:]
        k = min(m, n)
        low = _set_diagonal(xp, xp.tril(lu, -1)[..., :k], 1)
        up = xp.triu(lu[..., :k, :])
        grad_low, grad_up = xp.tril(grad_lu, -1)[..., :k], xp.triu(grad_lu)[..., :k, :]
        if m <= n:  # A = P L [U1 | U2]
            up1, up2 = up[..., :k], up[..., k:]
            inner = xp.tril(_mT(low) @ grad_low - grad_up[..., k:] @ _mT(up2), -1) + xp.triu(grad_up[..., :k]
                                                                                            @ _mT(up1))
            grad = xp.concatenate([_mT(_solve_triangular(up1, _mT(inner), True)), grad_up[..., k:]], axis=-1)
            grad = _solve_triangular(_mT(low), grad, True)
        else:  # A = P [L1; L2] U
            low1, low2 = low[..., :k, :], low[..., k:, :]
            inner = xp.tril(_mT(low1) @ grad_low[..., :k, :], -1) + xp.triu(grad_up @ _mT(up) - _mT(low2)
                                                                               @ grad_low[..., k:, :])
            grad = xp.concatenate([_solve_triangular(_mT(low1), inner, True), grad_low[..., k:, :]], axis=-2)
            grad = _mT(_solve_triangular(up, _mT(grad), True))
        return _take_rows(grad, xp.argsort(_permutation(self.pivots, m), axis=-1))


class LuSolve(Primitive):
    """A^-1 B (A^-T B when `adjoint`) from A's LU factorization; gradients for LU and B."""
    saves_output = True

    def forward(self, lu, b, pivots, adjoint):
        xp = get_array_module(lu)
        n = lu.shape[-1]
        low, up = _unit_lower(xp, lu), xp.triu(lu)
        perm = _permutation(pivots, n)
        self.low, self.up, self.perm, self.adjoint, self.b_shape = low, up, perm, adjoint, b.shape
        self.x = _lu_apply(low, up, perm, b, adjoint)
        return self.x

    def backward(self, grad):
        xp = get_array_module(grad)
        low, up, perm, x = self.low, self.up, self.perm, self.x
        grad_b = _lu_apply(low, up, perm, grad, not self.adjoint)
        grad_lu = None
        if self.needs_input_grad[0]:
            grad_a = -(x @ _mT(grad_b) if self.adjoint else grad_b @ _mT(x))
            grad_a = _take_rows(grad_a, perm)
            grad_lu = unbroadcast(xp.tril(grad_a @ _mT(up), -1) + xp.triu(_mT(low) @ grad_a), low.shape)
        return grad_lu, unbroadcast(grad_b, self.b_shape)


def _lu_apply(low, up, perm, b, adjoint):
    """A^-1 b (A^-T b when adjoint) for A = P L U, P the permutation `perm`."""
    xp = get_array_module(b)
    if adjoint:
        y = _solve_triangular(_mT(low), _solve_triangular(_mT(up), b, False), True)
        return _take_rows(y, xp.argsort(perm, axis=-1))
    return _solve_triangular(up, _solve_triangular(low, _take_rows(b, perm), False), True)


# ---- norms ----

def _norm_dtype(name, x, dtype):
    """x cast to `dtype` as torch's norms do: input and dtype floating point, no narrowing."""
    _check_float(name, x, low_precision=True)
    if dtype is None:
        return x
    target = dtypes.from_numpy(dtypes.to_numpy(dtype))
    if not target.is_floating_point:
        raise RuntimeError(f"{name}: dtype should be floating point or complex, but got {target.legacy_name}")
    if target.itemsize < x.dtype.itemsize:
        raise RuntimeError(f"{name}: the dtype of the input ({x.dtype.legacy_name}) should be convertible without "
                           f"narrowing to the specified dtype ({target.legacy_name})")
    return cast(x, target)


def _ord_text(ord):
    if ord in (math.inf, -math.inf):
        return "inf" if ord > 0 else "-inf"
    return str(int(ord)) if float(ord).is_integer() else str(ord)


@autocast_op(cuda="float32")
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """The `ord`-norm of the vectors along `dim` (all elements when None):
    `distml.linalg.vector_norm(x, 1, dim=-1)`."""
    if isinstance(ord, str) or not isinstance(ord, (int, float)):
        raise TypeError(f"linalg_vector_norm(): argument 'ord' (position 2) must be Number, not {type(ord).__name__}")
    x = _norm_dtype("linalg.vector_norm", x, dtype)
    dims = normalize_dims(dim, x.array.ndim) or None
    reduced = x.array.shape if dims is None else [x.array.shape[d] for d in dims]
    if (ord < 0 or ord == math.inf) and 0 in reduced:
        raise RuntimeError(f"linalg.vector_norm cannot compute the {_ord_text(ord)} norm on an empty tensor because "
                           "the operation does not have an identity")
    return VectorNorm.apply(x, ord=ord, dims=dims, keepdim=keepdim)


def _matrix_dims(name, A, dim):
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    if len(dims) != 2:
        raise RuntimeError(f"{name}: dim must be a 2-tuple. Got {' '.join(map(str, dims))}")
    wrapped = tuple(wrap_dim(d, A.array.ndim) for d in dims)
    if wrapped[0] == wrapped[1]:
        raise RuntimeError(f"{name}: dims must be different. Got ({dims[0]}, {dims[1]})")
    return wrapped


@autocast_op(cuda="float32")
def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """A matrix norm over the two dims `dim`: 'fro', 'nuc', inf, -inf, 1, -1, 2 or -2:
    `distml.linalg.matrix_norm(A, 'nuc')`."""
    name = "linalg.matrix_norm"
    if A.array.ndim < 2:
        raise RuntimeError(f"{name}: The input tensor A must have at least 2 dimensions.")
    _check_float(name, A, low_precision=True)
    rows, cols = _matrix_dims(name, A, dim)
    if ord not in ("fro", "nuc", math.inf, -math.inf, 1, -1, 2, -2):
        raise RuntimeError(f"{name}: Order {ord} not supported.")
    if ord == "fro":
        return vector_norm(A, 2, (rows, cols), keepdim, dtype=dtype)
    if ord in ("nuc", 2, -2):
        _check_float(name, A)
        A = _norm_dtype(name, A, dtype)
        values = svdvals(movedim(A, (rows, cols), (-2, -1)))
        out = sum(values, -1) if ord == "nuc" else amax(values, -1) if ord == 2 else amin(values, -1)
        if keepdim:
            for d in sorted((rows, cols)):
                out = unsqueeze(out, d)
        return out
    summed, extreme = (cols, rows) if abs(ord) == math.inf else (rows, cols)
    sums = vector_norm(A, 1, summed, keepdim, dtype=dtype)
    if not keepdim and summed < extreme:
        extreme -= 1
    return amax(sums, extreme, keepdim) if ord > 0 else amin(sums, extreme, keepdim)


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """A vector norm or, for a matrix (2-D A, or a 2-tuple `dim`) and a given `ord`, a matrix norm:
    `distml.linalg.norm(x)` is the 2-norm of all elements."""
    dims = None if dim is None else tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    if dims is not None and len(dims) not in (1, 2):
        raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got {list(dims)}")
    if dims is None and ord is not None and A.array.ndim not in (1, 2):
        raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. "
                           f"Got {A.array.ndim}D.")
    if ord is not None and (isinstance(ord, str) or len(dims or A.array.shape) == 2):
        return matrix_norm(A, ord, dims or (0, 1), keepdim, dtype=dtype)
    return vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype=dtype)


# ---- inverses and determinants ----

@autocast_op(cpu="float32")
def inv_ex(A, *, check_errors=False):
    """(inverse, info): info is 0, or for a singular matrix the first zero pivot (1-based) of its LU
    (its inverse is then nan); a singular matrix raises only with check_errors=True."""
    _check_matrix("linalg.inv", A)
    return linalg_inv_ex(*Inv.apply(A, name="linalg.inv_ex", check=check_errors))


@autocast_op(cpu="float32")
def inv(A):
    """The inverse of square matrices; LinAlgError for a singular one: `distml.linalg.inv(A)`."""
    _check_matrix("linalg.inv", A)
    return Inv.apply(A, name="linalg.inv", check=True)[0]


@register(method=True)
def det(A):
    """The determinant of square matrices: `distml.linalg.det(A)`, `A.det()`."""
    _check_matrix("linalg.det", A)
    return Det.apply(A)


@register(method=True)
def slogdet(A):
    """(sign, logabsdet) of the determinant, without overflow: `sign, logabsdet = distml.linalg.slogdet(A)`."""
    _check_matrix("linalg.slogdet", A)
    return linalg_slogdet(*Slogdet.apply(A))


def _vector_rhs(A, B):
    """Whether B is a (batch of) vector(s) for A, as torch.linalg.solve decides it."""
    return B.array.ndim == 1 or (B.array.ndim == A.array.ndim - 1 and B.array.shape == A.array.shape[:-1])


@autocast_op(cpu="float32")
def solve(A, B, *, left=True):
    """X with AX = B (XA = B when left=False); B a matrix or a vector, batch dims broadcast:
    `distml.linalg.solve(A, b)`."""
    name = "linalg.solve"
    _check_matrix(name, A)
    _check_float(name, B)
    _check_same_dtype(name, A, B)
    vector = _vector_rhs(A, B)
    if vector:
        B = unsqueeze(B, -1)
    _check_shapes(name, A, B, left)
    X = Solve.apply(A, B) if left else transpose(Solve.apply(transpose(A, -1, -2), transpose(B, -1, -2)), -1, -2)
    return squeeze(X, -1) if vector else X


def solve_triangular(A, B, *, upper, left=True, unitriangular=False):
    """X with AX = B (XA = B when left=False) for triangular A, read from its upper (or lower) triangle:
    `distml.linalg.solve_triangular(L, B, upper=False)`."""
    name = "linalg.solve_triangular"
    _check_matrix(name, A)
    if B.array.ndim < 2:
        raise RuntimeError(f"{name}: The input tensor B must have at least 2 dimensions.")
    _check_float(name, B)
    _check_same_dtype(name, A, B)
    _check_shapes(name, A, B, left)
    if left:
        return SolveTriangular.apply(A, B, upper=upper, unitriangular=unitriangular)
    X = SolveTriangular.apply(transpose(A, -1, -2), transpose(B, -1, -2), upper=not upper,
                              unitriangular=unitriangular)
    return transpose(X, -1, -2)


@autocast_op(cpu="float32")
def cholesky_ex(A, *, upper=False, check_errors=False):
    """(L, info): info is 0, or the order of the first leading minor that is not positive-definite
    (L is then only partly computed); raises only with check_errors=True."""
    _check_matrix("linalg.cholesky", A)
    return linalg_cholesky_ex(*Cholesky.apply(A, upper=upper, name="linalg.cholesky_ex", check=check_errors))


@autocast_op(cpu="float32")
def cholesky(A, *, upper=False):
    """The Cholesky factor L (A = L L^T) of symmetric positive-definite matrices, read from A's lower
    triangle (U with A = U^T U, from the upper triangle, when upper): `distml.linalg.cholesky(A)`."""
    _check_matrix("linalg.cholesky", A)
    return Cholesky.apply(A, upper=upper, name="linalg.cholesky", check=True)[0]


# ---- decompositions ----

@autocast_op(cpu="float32")
def qr(A, mode="reduced"):
    """Q, R with A = QR: mode 'reduced' (Q is m x k), 'complete' (Q is m x m) or 'r' (R only):
    `Q, R = distml.linalg.qr(A)`."""
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), 'r', "
                           "or 'complete'")
    _check_matrix("linalg.qr", A, square=False)
    return linalg_qr(*QR.apply(A, mode=mode))


@autocast_op(cpu="float32")
def svd(A, full_matrices=True, *, driver=None):
    """U, S, Vh with A = U diag(S) Vh, S descending: `U, S, Vh = distml.linalg.svd(A, full_matrices=False)`."""
    if driver is not None:
        raise RuntimeError("torch.linalg.svd: keyword argument `driver=` is only supported on CUDA inputs with "
                           "cuSOLVER backend.")
    _check_matrix("linalg.svd", A, square=False)
    return linalg_svd(*Svd.apply(A, full_matrices=full_matrices))


def _records(*tensors):
    return is_grad_enabled() and any(t.requires_grad for t in tensors)


@autocast_op(cpu="float32")
def svdvals(A, *, driver=None):
    """The singular values, descending: `distml.linalg.svdvals(A)`."""
    if driver is not None:
        raise RuntimeError("torch.linalg.svd: keyword argument `driver=` is only supported on CUDA inputs with "
                           "cuSOLVER backend.")
    _check_matrix("linalg.svd", A, square=False)
    if _records(A):
        return Svd.apply(A, full_matrices=False)[1]
    return Tensor(get_array_module(A.array).linalg.svd(A.array, compute_uv=False))


def _check_uplo(UPLO):
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")


@autocast_op(cpu="float32")
def eigh(A, UPLO="L"):
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices, read from the UPLO triangle:
    `w, V = distml.linalg.eigh(A)`."""
    _check_uplo(UPLO)
    _check_matrix("linalg.eigh", A)
    return linalg_eigh(*Eigh.apply(A, uplo=UPLO))


@autocast_op(cpu="float32")
def eigvalsh(A, UPLO="L"):
    """The eigenvalues (ascending) of symmetric matrices: `distml.linalg.eigvalsh(A)`."""
    _check_uplo(UPLO)
    _check_matrix("linalg.eigh", A)
    if _records(A):
        return Eigh.apply(A, uplo=UPLO)[0]
    return Tensor(get_array_module(A.array).linalg.eigvalsh(A.array, UPLO=UPLO))


# ---- pseudo-inverse, rank, least squares ----

def _tolerances(A, atol, rtol):
    """(atol, rtol) as arrays, with torch's defaults: rtol = eps * max(m, n) unless an atol > 0 is given."""
    xp = get_array_module(A.array)
    eps = np.finfo(A.array.dtype).eps * max(A.array.shape[-2:])
    atol = None if atol is None else xp.asarray(atol.array if isinstance(atol, Tensor) else atol, dtype=A.array.dtype)
    if rtol is not None:
        rtol = xp.asarray(rtol.array if isinstance(rtol, Tensor) else rtol, dtype=A.array.dtype)
    elif atol is None:
        rtol = xp.asarray(eps, dtype=A.array.dtype)
    else:
        rtol = xp.where(atol > 0, 0, eps).astype(A.array.dtype)
    return (xp.zeros((), dtype=A.array.dtype) if atol is None else atol), rtol


def pinv(A, *, atol=None, rtol=None, hermitian=False, rcond=None):
    """The Moore-Penrose pseudo-inverse, dropping singular values at or below max(atol, rtol * largest):
    `distml.linalg.pinv(A)`. `rcond` is torch's older name for rtol."""
    if rcond is not None:
        if rtol is not None:
            raise TypeError("linalg.pinv: give rtol or rcond, not both")
        rtol = rcond
    d = A.dtype
    if A.array.ndim < 2 or d not in (dtypes.float32, dtypes.float64):
        if d.np.kind == "c" and A.array.ndim >= 2:
            raise NotImplementedError("linalg.pinv: complex inputs are not supported by distml")
        raise RuntimeError(f"linalg.pinv({d.legacy_name}{{{list(A.array.shape)}}}): expected a tensor with 2 or more "
                           "dimensions of float, double, cfloat or cdouble types")
    atol, rtol = _tolerances(A, atol, rtol)
    return Pinv.apply(A, atol=atol, rtol=rtol, hermitian=hermitian)


@autocast_op(cpu="float32")
def matrix_rank(A, *, atol=None, rtol=None, hermitian=False, tol=None):
    """How many singular values (|eigenvalues| when hermitian) exceed max(atol, rtol * largest);
    `tol` is torch's older form of atol (with rtol 0)."""
    if A.array.ndim < 2:
        raise RuntimeError("torch.linalg.matrix_rank: The input tensor input must have at least 2 dimensions.")
    if A.dtype not in (dtypes.float32, dtypes.float64):
        raise RuntimeError("This function doesn't handle types other than float and double")
    if tol is not None:
        if atol is not None or rtol is not None:
            raise TypeError("linalg.matrix_rank: give tol, or atol and rtol, not both")
        atol, rtol = tol, 0.0
    xp = get_array_module(A.array)
    atol, rtol = _tolerances(A, atol, rtol)
    if hermitian:
        values = abs(xp.linalg.eigvalsh(A.array))
    else:
        values = xp.linalg.svd(A.array, compute_uv=False)
    largest = values.max(axis=-1) if values.shape[-1] else xp.zeros(values.shape[:-1], dtype=values.dtype)
    keep = values > xp.maximum(atol, rtol * largest)[..., None]
    return Tensor(xp.asarray(keep.sum(axis=-1), dtype=np.int64))


@autocast_op(cpu="float32")
def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares (minimum-norm) solution of AX = B, with residuals, rank and singular values as
    PyTorch's CPU drivers return them (default 'gelsy': rank only): `X = distml.linalg.lstsq(A, B).solution`."""
    name = "torch.linalg.lstsq"
    driver = "gelsy" if driver is None else driver
    if driver not in ("gels", "gelsy", "gelsd", "gelss"):
        raise RuntimeError(f"{name}: parameter `driver` should be one of (gels, gelsy, gelsd, gelss)")
    if A.array.ndim < 2:
        raise RuntimeError(f"{name}: input must have at least 2 dimensions.")
    if A.dtype not in (dtypes.float32, dtypes.float64) or B.dtype not in (dtypes.float32, dtypes.float64):
        raise RuntimeError("This function doesn't handle types other than float and double")
    if A.dtype != B.dtype:
        raise RuntimeError(f"{name}: Expected input and other to have the same dtype, but got input's dtype "
                           f"{A.dtype.legacy_name} and other's dtype {B.dtype.legacy_name}")
    vector = B.array.ndim == A.array.ndim - 1
    if vector:
        B = unsqueeze(B, -1)
    m, n = A.array.shape[-2:]
    if B.array.shape[-2] != m:
        raise RuntimeError(f"{name}: input.size(-2) should match other.size(-2)")
    rcond = np.finfo(A.array.dtype).eps * max(m, n) if rcond is None or rcond < 0 else rcond
    X = matmul(pinv(A, rtol=rcond), B)
    xp = get_array_module(A.array)
    empty = Tensor(xp.zeros((0,), dtype=A.array.dtype))
    values = xp.linalg.svd(A.array, compute_uv=False)
    largest = values[..., :1] if values.shape[-1] else xp.zeros(values.shape[:-1] + (1,), dtype=values.dtype)
    rank = (values > rcond * largest).sum(axis=-1)
    residuals = empty
    if driver != "gelsy" and m > n and (rank == n).all():
        difference = matmul(A, X) - B
        residuals = sum(difference * difference, -2).detach()
    return linalg_lstsq(squeeze(X, -1) if vector else X, residuals,
                        Tensor(xp.zeros((0,), dtype=np.int64)) if driver == "gels" else Tensor(xp.asarray(rank)),
                        Tensor(values) if driver in ("gelsd", "gelss") else empty)


# ---- products ----

@register(method=True)
def matrix_power(A, n):
    """A to the integer power n (n < 0: of its inverse), by repeated squaring: `A.matrix_power(3)`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"linalg_matrix_power(): argument 'n' (position 2) must be int, not {type(n).__name__}")
    name = "linalg.matrix_power"
    shape = A.array.shape
    if len(shape) < 2:
        raise RuntimeError(f"{name}: The input tensor A must have at least 2 dimensions.")
    if shape[-1] != shape[-2]:
        raise RuntimeError(f"{name}: A must be batches of square matrices, but they are {shape[-2]} by {shape[-1]} "
                           "matrices")
    if n == 0:
        xp = get_array_module(A.array)
        return Tensor(xp.broadcast_to(xp.eye(shape[-1], dtype=A.array.dtype), shape).copy())
    if n < 0:
        A, n = inv(A), -n
    result = None
    while n:
        if n & 1:
            result = A if result is None else matmul(result, A)
        n >>= 1
        if n:
            A = matmul(A, A)
    return result


def cross(input, other, *, dim=-1):
    """The cross product of 3-vectors along `dim` (other dims broadcast): `distml.linalg.cross(a, b)`."""
    if input.array.ndim != other.array.ndim:
        raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
    if input.dtype != other.dtype:
        raise RuntimeError(f"expected scalar type {input.dtype.legacy_name} but found {other.dtype.legacy_name}")
    d = wrap_dim(dim, input.array.ndim)
    if input.array.shape[d] != 3 or other.array.shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {input.array.shape[d]} "
                           f"and {other.array.shape[d]}")
    a = [narrow(input, d, i, 1) for i in range(3)]
    b = [narrow(other, d, i, 1) for i in range(3)]
    return cat([sub(mul(a[(i + 1) % 3], b[(i + 2) % 3]), mul(a[(i + 2) % 3], b[(i + 1) % 3])) for i in range(3)], d)


@autocast_op(cpu="lower", cuda="lower")
def vecdot(x, y, *, dim=-1):
    """The dot product of the vectors along `dim` (other dims broadcast): `distml.linalg.vecdot(x, y)`."""
    _check_float("linalg.vecdot", x, low_precision=True)
    _check_same_dtype("linalg.vecdot", x, y, "x", "y")
    return sum(mul(x, y), dim)


def _chain_order(sizes):
    """The cheapest parenthesisation of a matrix chain (sizes[i] x sizes[i + 1] for matrix i), as a split table."""
    count = len(sizes) - 1
    cost = [[0] * count for _ in range(count)]
    split = [[0] * count for _ in range(count)]
    for length in range(1, count):
        for i in range(count - length):
            j = i + length
            cost[i][j] = math.inf
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + sizes[i] * sizes[k + 1] * sizes[j + 1]
                if c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


@autocast_op(cuda="lower")
def multi_dot(tensors):
    """The product of a chain of matrices in the cheapest order; the first and last may be vectors:
    `distml.linalg.multi_dot([a, B, C])`."""
    tensors = list(tensors)
    if len(tensors) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(tensors)}")
    for i, t in enumerate(tensors):
        ndim = t.array.ndim
        if i in (0, len(tensors) - 1) and ndim not in (1, 2):
            raise RuntimeError(f"multi_dot(): the {'first' if i == 0 else 'last'} tensor must be 1D or 2D but got "
                               f"{ndim}D")
        if 0 < i < len(tensors) - 1 and ndim != 2:
            raise RuntimeError(f"multi_dot(): tensor {i} must be 2D but got {ndim}D")
        if t.dtype != tensors[0].dtype:
            raise RuntimeError(f"multi_dot(): all tensors must have be the same dtype but tensor 0 is "
                               f"{tensors[0].dtype.legacy_name.lower()} and tensor {i} {t.dtype.legacy_name.lower()}")
    first_vector, last_vector = tensors[0].array.ndim == 1, tensors[-1].array.ndim == 1
    if first_vector:
        tensors[0] = unsqueeze(tensors[0], 0)
    if last_vector:
        tensors[-1] = unsqueeze(tensors[-1], 1)
    for i in range(len(tensors) - 1):
        a, b = tensors[i].array.shape, tensors[i + 1].array.shape
        if a[1] != b[0]:
            raise RuntimeError(f"multi_dot(): tensors {i} and {i + 1} with shapes {list(a)} and {list(b)} cannot be "
                               "multiplied")
    split = _chain_order([t.array.shape[0] for t in tensors] + [tensors[-1].array.shape[1]])

    def product(i, j):
        return tensors[i] if i == j else matmul(product(i, split[i][j]), product(split[i][j] + 1, j))

    out = product(0, len(tensors) - 1)
    if first_vector:
        out = squeeze(out, 0)
    if last_vector:
        out = squeeze(out, -1)
    return out


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """The diagonal (shifted by `offset`) of the matrices in dims dim1, dim2, as a last dim:
    `distml.linalg.diagonal(A)`."""
    d1, d2 = wrap_dim(dim1, A.array.ndim), wrap_dim(dim2, A.array.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    moved = movedim(A, (d1, d2), (-2, -1))
    rows, cols = moved.array.shape[-2:]
    start_row, start_col = max(-offset, 0), max(offset, 0)
    length = max(0, min(rows - start_row, cols - start_col))
    xp = get_array_module(A.array)
    return getitem(moved, (Ellipsis, xp.arange(start_row, start_row + length),
                           xp.arange(start_col, start_col + length)))


# ---- LU ----

def _zero_pivot(index):
    return (f"U[{index},{index}] is zero and using it on lu_solve would result in a division by zero. If you still "
            "want to perform the factorization, consider calling linalg.lu(A, pivot) or linalg.lu_factor_ex(A, pivot)")


def _check_lu_input(name, A, pivot):
    if A.array.ndim < 2:
        raise RuntimeError(f"{name}: Expected tensor with 2 or more dimensions. Got size: {list(A.array.shape)} "
                           "instead")
    _check_float(name, A)
    if not pivot:
        raise RuntimeError("linalg.lu_factor: LU without pivoting is not implemented on the CPU")


def lu_factor_ex(A, *, pivot=True, check_errors=False):
    """(LU, pivots, info) as LAPACK's getrf: L below the diagonal of LU (unit diagonal implied), U on
    and above it, pivots 1-based row swaps (int32), info the first exactly zero pivot (1-based) or 0."""
    _check_lu_input("torch.lu_factor", A, pivot)
    LU, pivots, info = LuFactor.apply(A)
    if check_errors and info.array.any():
        raise _failure("torch.linalg.lu_factor_ex", info.array, _zero_pivot)
    return linalg_lu_factor_ex(LU, pivots, info)


def lu_factor(A, *, pivot=True):
    """(LU, pivots) for linalg.lu_solve; LinAlgError when U has an exactly zero diagonal element:
    `LU, pivots = distml.linalg.lu_factor(A)`."""
    _check_lu_input("torch.lu_factor", A, pivot)
    LU, pivots, info = LuFactor.apply(A)
    if info.array.any():
        raise _failure("torch.linalg.lu_factor", info.array, _zero_pivot)
    return linalg_lu_factor(LU, pivots)


def lu(A, *, pivot=True):
    """P, L, U with A = P L U: P a permutation, L unit lower-triangular (m x k), U upper-triangular (k x n):
    `P, L, U = distml.linalg.lu(A)`."""
    _check_lu_input("linalg.lu", A, pivot)
    LU, pivots, _ = LuFactor.apply(A)
    xp = get_array_module(A.array)
    m, n = A.array.shape[-2:]
    k = min(m, n)
    P = _take_rows(xp.eye(m, dtype=A.array.dtype), xp.argsort(_permutation(pivots.array, m), axis=-1))
    eye = Tensor(xp.eye(m, k, dtype=A.array.dtype))
    L = tril(getitem(LU, (Ellipsis, slice(None), slice(0, k))), -1) + eye
    U = triu(getitem(LU, (Ellipsis, slice(0, k), slice(None))))
    return linalg_lu(Tensor(P), L, U)


def lu_solve(LU, pivots, B, *, left=True, adjoint=False):
    """X with AX = B (A^T X = B when adjoint; XA = B / XA^T = B when left=False) from
    `LU, pivots = distml.linalg.lu_factor(A)`."""
    name = "linalg.lu_solve"
    if B.array.ndim < 2:
        raise RuntimeError(f"{name}: The input tensor B must have at least 2 dimensions.")
    _check_matrix(name, LU, what="LU")
    _check_float(name, B)
    _check_same_dtype(name, LU, B, "LU", "B")
    _check_shapes(name, LU, B, left)
    if pivots.dtype != dtypes.int32:
        raise RuntimeError(f"{name}: pivots should be a Tensor of scalar type torch.int32")
    if left:
        return LuSolve.apply(LU, B, pivots=pivots.array, adjoint=adjoint)
    X = LuSolve.apply(LU, transpose(B, -1, -2), pivots=pivots.array, adjoint=not adjoint)
    return transpose(X, -1, -2)


# ---- PyTorch's top-level forms (torch.inverse, torch.svd, ...) ----

def _legacy(name, method=True):
    """Register `fn` as torch's top-level `name` (and Tensor method), which differs from linalg.<name>."""
    def record(fn):
        fn.__name__ = fn.__qualname__ = name
        return register(method=method)(fn)
    return record


@register(method=True)
@autocast_op(cpu="float32")
def inverse(A):
    """torch.inverse: linalg.inv."""
    return inv(A)


@register(method=True)
def logdet(A):
    """log(det A): nan for a negative determinant, -inf for a singular matrix: `A.logdet()`."""
    _check_matrix("logdet", A)
    sign, logabsdet = Slogdet.apply(A)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(-1) is nan, log(0) -inf, as PyTorch says silently
        return logabsdet + log(sign)


@register(method=True)
@autocast_op(cpu="float32")
def pinverse(A, rcond=1e-15):
    """torch.pinverse: linalg.pinv with rtol=rcond."""
    return pinv(A, rtol=rcond)


@_legacy("cholesky")
def _cholesky_legacy(A, upper=False):
    """torch.cholesky(A, upper=False): linalg.cholesky with a positional `upper`."""
    _check_matrix("cholesky", A)
    return Cholesky.apply(A, upper=upper, name="cholesky", check=True)[0]


@_legacy("svd")
def _svd_legacy(A, some=True, compute_uv=True):
    """torch.svd: U, S, V (not Vh) with A = U diag(S) V^T; reduced when `some`; U and V zeros
    (full-sized) when not compute_uv."""
    if A.array.ndim < 2:
        raise RuntimeError(f"linalg.svd: input should have at least 2 dimensions, but has {A.array.ndim} dimensions "
                           "instead")
    if not compute_uv:
        xp = get_array_module(A.array)
        m, n = A.array.shape[-2:]
        batch = A.array.shape[:-2]
        return svd_legacy(Tensor(xp.zeros(batch + (m, m), dtype=A.array.dtype)), svdvals(A),
                          Tensor(xp.zeros(batch + (n, n), dtype=A.array.dtype)))
    U, S, Vh = svd(A, full_matrices=not some)
    return svd_legacy(U, S, transpose(Vh, -1, -2))


@_legacy("qr")
def _qr_legacy(A, some=True):
    """torch.qr: linalg.qr with mode 'reduced' (some=True) or 'complete'."""
    return qr_legacy(*qr(A, "reduced" if some else "complete"))


@register(method=True)
@autocast_op(cpu="float32")
def cholesky_solve(B, L, upper=False):
    """X with A X = B, given A's Cholesky factor L (A = L L^T; U with A = U^T U when upper):
    `distml.cholesky_solve(B, distml.linalg.cholesky(A))`. Solved through A rebuilt from the
    factor, so L's gradient covers the whole matrix, as PyTorch's does."""
    if B.array.dtype != L.array.dtype:
        raise RuntimeError(f"Expected b and A to have the same dtype, but found b of type {B.dtype.legacy_name} "
                           f"and A of type {L.dtype.legacy_name} instead.")
    A = matmul(transpose(L, -1, -2), L) if upper else matmul(L, transpose(L, -1, -2))
    return solve(A, B)


@register(method=True)
@autocast_op(cpu="float32")
def cholesky_inverse(L, upper=False):
    """A^-1 from A's Cholesky factor: `distml.cholesky_inverse(L)`."""
    xp = get_array_module(L.array)
    eye = Tensor(xp.broadcast_to(xp.eye(L.array.shape[-1], dtype=L.array.dtype), L.array.shape).copy())
    return cholesky_solve(eye, L, upper)
