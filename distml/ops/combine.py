"""Products and tensors built from several: tensordot, kron, cdist, the addmm family, cross,
meshgrid, block_diag, cartesian_prod, combinations, vander, cov/corrcoef, diagonals and trace.

All but cdist and the diagonal embedding are composed from existing primitives."""
import builtins
import itertools
import math
import warnings

import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.amp.autocast_mode import autocast_op
from distml.autograd.function import Primitive
from distml.ops._util import broadcast_shapes, wrap_dim
from distml.ops.convert import cast
from distml.ops.elementwise import add, mul, sqrt, sub
from distml.ops.index import GetItem, getitem
from distml.ops.linalg import bmm, matmul, mm
from distml.ops.reduce import sum
from distml.ops.registry import register
from distml.ops.shape import cat, expand, movedim, permute, reshape, squeeze, stack, unsqueeze
from distml.tensor import Tensor


def _same_dtype(*tensors):
    dtype = dtypes.result_type(*[t.array for t in tensors])
    return [t if t.array.dtype == dtype else cast(t, dtype) for t in tensors]


# ---- contractions ----

@register()
@autocast_op(cuda="promote")
def tensordot(a, b, dims=2):
    """Sum of products over the last `dims` dims of a and the first of b, or over the dim
    lists `dims=([1, 0], [0, 2])`: `distml.tensordot(a, b, dims=1)`."""
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        dims_a, dims_b = list(range(-dims, 0)), list(range(dims))
    else:
        dims_a, dims_b = ([d] if isinstance(d, int) else list(d) for d in dims)
        if len(dims_a) != len(dims_b):
            raise RuntimeError(f"both dimension lists should have same length")
    for da, db in zip(dims_a, dims_b):
        sa, sb = a.array.shape[wrap_dim(da, a.array.ndim)], b.array.shape[wrap_dim(db, b.array.ndim)]
        if sa != sb:
            raise RuntimeError(f"contracted dimensions need to match, but first has size {sa} in dim {da} and "
                               f"second has size {sb} in dim {db}")
    dims_a = [wrap_dim(d, a.array.ndim) for d in dims_a]
    dims_b = [wrap_dim(d, b.array.ndim) for d in dims_b]
    free_a = [d for d in range(a.array.ndim) if d not in dims_a]
    free_b = [d for d in range(b.array.ndim) if d not in dims_b]
    a, b = _same_dtype(a, b)
    k = math.prod(a.array.shape[d] for d in dims_a)
    left = reshape(permute(a, free_a + dims_a), (-1, k) if k else (math.prod(a.array.shape[d] for d in free_a), 0))
    right = reshape(permute(b, dims_b + free_b), (k, -1) if k else (0, math.prod(b.array.shape[d] for d in free_b)))
    return reshape(mm(left, right), tuple(a.array.shape[d] for d in free_a) + tuple(b.array.shape[d] for d in free_b))


@register(method=True)
def inner(a, b):
    """Sum of products over the last dims (a product with a 0-d tensor): `distml.inner(a, b)`."""
    if a.array.ndim == 0 or b.array.ndim == 0:
        return mul(a, b)
    if a.array.shape[-1] != b.array.shape[-1]:
        raise RuntimeError(f"inner() the last dimension must match on both input tensors but got shapes "
                           f"{list(a.array.shape)} and {list(b.array.shape)}")
    return tensordot(a, b, ([-1], [-1]))


@register(method=True)
def kron(a, b):
    """The Kronecker product: blocks a[i, j] * b."""
    ndim = max(a.array.ndim, b.array.ndim)
    sa = (1,) * (ndim - a.array.ndim) + a.array.shape
    sb = (1,) * (ndim - b.array.ndim) + b.array.shape
    left = reshape(a, tuple(v for s in sa for v in (s, 1)))
    right = reshape(b, tuple(v for s in sb for v in (1, s)))
    return reshape(mul(left, right), tuple(x * y for x, y in zip(sa, sb)))


@register()
@autocast_op(cuda="lower")
def chain_matmul(*matrices):
    """The product of 2-D matrices left to right (deprecated in PyTorch for linalg.multi_dot)."""
    warnings.warn("distml.chain_matmul is deprecated and will be removed in a future PyTorch release. "
                  "Use distml.linalg.multi_dot instead, which accepts a list of two or more tensors rather than "
                  "multiple parameters.")
    if not matrices:
        raise RuntimeError("chain_matmul(): Expected one or more matrices")
    out = matrices[0]
    for i, m in enumerate(matrices):
        if m.array.ndim != 2:
            raise RuntimeError(f"Tensor dimension is {m.array.ndim}, expected 2 instead.")
        if i:
            out = mm(out, m)
    return out.clone() if len(matrices) == 1 else out


def _scaled_sum(input, product, beta, alpha):
    """beta * input + alpha * product; input is ignored (nan and inf included) when beta is 0."""
    scaled = product if alpha == 1 else mul(product, alpha)
    if beta == 0:
        broadcast_shapes(input.array.shape, scaled.array.shape)
        return scaled
    return add(input if beta == 1 else mul(input, beta), scaled)


@register(method=True, inplace=True)
@autocast_op(cpu="lower", cuda="lower")
def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2): `distml.addmm(bias, x, w)` (a sparse mat1 goes to distml.sparse)."""
    if mat1.is_sparse:
        from distml.sparse import addmm as sparse_addmm
        return sparse_addmm(input, mat1, mat2, beta=beta, alpha=alpha)
    if mat1.array.ndim != 2 or mat2.array.ndim != 2:
        raise RuntimeError(f"{'mat1' if mat1.array.ndim != 2 else 'mat2'} must be a matrix, got "
                           f"{(mat1 if mat1.array.ndim != 2 else mat2).array.ndim}-D tensor")
    return _scaled_sum(input, mm(mat1, mat2), beta, alpha)


@register(method=True, inplace=True)
@autocast_op(cpu="off", cuda="lower")
def addmv(input, mat, vec, *, beta=1, alpha=1):
    """beta * input + alpha * (mat @ vec)."""
    if mat.array.ndim != 2 or vec.array.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input.array.ndim}, {mat.array.ndim}, "
                           f"{vec.array.ndim}")
    return _scaled_sum(input, matmul(mat, vec), beta, alpha)


@register(method=True, inplace=True)
@autocast_op(cpu="lower", cuda="lower")
def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * (batch1 @ batch2), batch by batch."""
    return _scaled_sum(input, bmm(batch1, batch2), beta, alpha)


@register(method=True, inplace=True)
@autocast_op(cpu="lower", cuda="lower")
def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * the sum over the batch of batch1[i] @ batch2[i]."""
    return _scaled_sum(input, sum(bmm(batch1, batch2), 0), beta, alpha)


@register(method=True)
@autocast_op(cuda="promote")
def cross(input, other, dim=None):
    """The cross product of 3-vectors along dim (without dim: the first dim of size 3, as
    PyTorch does, with its deprecation warning)."""
    if input.array.ndim != other.array.ndim:
        raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
    if dim is None:
        warnings.warn("Using distml.cross without specifying the dim arg is deprecated.\nPlease either pass the dim "
                      "explicitly or simply use distml.linalg.cross.\nThe default value of dim will change to agree "
                      "with that of linalg.cross in a future release.")
        sizes = [d for d, s in enumerate(np.broadcast_shapes(input.array.shape, other.array.shape)) if s == 3]
        if not sizes:
            raise RuntimeError("no dimension of size 3 in input")
        dim = sizes[0]
    d = wrap_dim(dim, input.array.ndim)
    if input.array.shape[d] != 3 or other.array.shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {input.array.shape[d]} "
                           f"and {other.array.shape[d]}")
    a, b = _same_dtype(input, other)
    lead = (slice(None),) * d
    x1, y1, z1 = (getitem(a, lead + (i,)) for i in range(3))
    x2, y2, z2 = (getitem(b, lead + (i,)) for i in range(3))
    return stack([y1 * z2 - z1 * y2, z1 * x2 - x1 * z2, x1 * y2 - y1 * x2], d)


# ---- pairwise distances ----

class Cdist(Primitive):
    """The p-norm distance of every row of x1 to every row of x2 (batched over leading dims)."""

    def forward(self, x1, x2, p):
        xp = get_array_module(x1)
        self.diff = x1[..., :, None, :] - x2[..., None, :, :]
        self.p = p
        magnitude = xp.abs(self.diff)
        if p == 0:
            out = (magnitude != 0).sum(-1).astype(x1.dtype)
        elif p == math.inf:
            out = magnitude.max(-1, initial=0)
        elif p == 1:
            out = magnitude.sum(-1)
        elif p == 2:
            out = xp.sqrt((magnitude * magnitude).sum(-1))
        else:
            out = (magnitude ** p).sum(-1) ** (1 / p)
        self.out = xp.asarray(out, dtype=x1.dtype)
        return self.out

    def backward(self, grad):
        xp = get_array_module(grad)
        diff, p, dist = self.diff, self.p, self.out[..., None]
        if p == 0:
            partial = xp.zeros_like(diff)
        elif p == 1:
            partial = xp.sign(diff)
        elif p == math.inf:
            winners = xp.abs(diff) == dist
            partial = xp.sign(diff) * winners / xp.maximum(winners.sum(-1, keepdims=True), 1)
        else:
            with np.errstate(all="ignore"):
                partial = diff * xp.abs(diff) ** (p - 2) / dist ** (p - 1)
            partial = xp.where((dist == 0) | (diff == 0), 0, partial)
        full = grad[..., None] * partial
        return (full.sum(-2) if self.needs_input_grad[0] else None,
                -full.sum(-3) if self.needs_input_grad[1] else None)


@register()
@autocast_op(cpu="float32", cuda="float32")
def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """Distances between the rows of x1 (..., P, M) and x2 (..., R, M): (..., P, R)."""
    if compute_mode not in ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
                            "donot_use_mm_for_euclid_dist"):
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    for name, t in (("X1", x1), ("X2", x2)):
        if t.array.ndim < 2:
            raise RuntimeError(f"cdist only supports at least 2D tensors, {name} got: {t.array.ndim}D")
    if x1.array.shape[-1] != x2.array.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.array.shape[-1]} "
                           f"X2: {x2.array.shape[-1]}")
    if p < 0:
        raise RuntimeError("cdist only supports non-negative p values")
    for t in (x1, x2):
        if not dtypes.is_float(t.array.dtype):
            raise RuntimeError(f"cdist only supports floating-point dtypes, X{1 if t is x1 else 2} got: "
                               f"{t.dtype.legacy_name}")
        if t.array.dtype.itemsize == 2:
            raise NotImplementedError(f"\"cdist\" not implemented for '{t.dtype.legacy_name}'")
    x1, x2 = _same_dtype(x1, x2)
    batch = np.broadcast_shapes(x1.array.shape[:-2], x2.array.shape[:-2])
    x1 = expand(x1, batch + x1.array.shape[-2:])
    x2 = expand(x2, batch + x2.array.shape[-2:])
    return Cdist.apply(x1, x2, p=float(p))


# ---- grids and combinations ----

@register()
def meshgrid(*tensors, indexing=None):
    """Coordinate grids from 1-D tensors: `xs, ys = distml.meshgrid(x, y, indexing="ij")`."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("distml.meshgrid: in an upcoming release, it will be required to pass the indexing argument.")
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: {indexing}")
    if not tensors:
        raise RuntimeError("meshgrid expects a non-empty TensorList")
    for t in tensors:
        if t.array.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {t}")
        if t.array.dtype != tensors[0].array.dtype:
            raise RuntimeError("meshgrid expects all tensors to have the same dtype")
    flat = [reshape(t, -1) for t in tensors]
    swap = indexing == "xy" and len(flat) >= 2
    if swap:
        flat[0], flat[1] = flat[1], flat[0]
    shape = tuple(t.array.shape[0] for t in flat)
    grids = [expand(reshape(t, (1,) * i + (-1,) + (1,) * (len(flat) - i - 1)), shape) for i, t in enumerate(flat)]
    if swap:
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


@register()
def cartesian_prod(*tensors):
    """All tuples of one element from each 1-D tensor, as rows: (N1 * N2 * ..., k)."""
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return stack([reshape(g, -1) for g in grids], 1)


@register()
def combinations(input, r=2, with_replacement=False):
    """The length-r combinations of a 1-D tensor's elements, as rows (itertools order)."""
    if input.array.ndim != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape {list(input.array.shape)}")
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = list(pick(range(input.array.shape[0]), r))
    if r == 0 or not rows:
        return Tensor(get_array_module(input.array).empty((0,) if r == 0 else (0, r), dtype=input.array.dtype))
    return GetItem.apply(input, index=get_array_module(input.array).asarray(np.asarray(rows, dtype=np.int64)))


@register()
def block_diag(*tensors):
    """A block-diagonal matrix of 0-, 1- (one row) or 2-D tensors."""
    mats = []
    for i, t in enumerate(tensors):
        if t.array.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {i} has "
                               f"{t.array.ndim} dimensions")
        mats.append(reshape(t, (1, -1) if t.array.ndim == 1 else (1, 1)) if t.array.ndim < 2 else t)
    if not mats:
        return Tensor(np.empty((1, 0), dtype=dtypes.default_float_np()))
    mats = _same_dtype(*mats)
    xp = get_array_module(mats[0].array)
    width = builtins.sum(m.array.shape[1] for m in mats)
    rows, left = [], 0
    for m in mats:
        h, w = m.array.shape
        pieces = [Tensor(xp.zeros((h, left), dtype=m.array.dtype)), m,
                  Tensor(xp.zeros((h, width - left - w), dtype=m.array.dtype))]
        rows.append(cat(pieces, 1))
        left += w
    return cat(rows, 0)


@register()
def vander(x, N=None, increasing=False):
    """The Vandermonde matrix of a 1-D x: columns x ** (N-1), ..., x ** 0 (reversed if increasing)."""
    from distml.ops.elementwise import pow
    if x.array.ndim != 1:
        raise RuntimeError("x must be a one-dimensional tensor.")
    n = x.array.shape[0] if N is None else N
    if n < 0:
        raise RuntimeError("N must be non-negative.")
    if not dtypes.is_float(x.array.dtype) and x.array.dtype != np.int64:
        x = cast(x, np.int64)
    xp = get_array_module(x.array)
    powers = xp.arange(n, dtype=x.array.dtype if dtypes.is_float(x.array.dtype) else np.int64)
    if not increasing:
        powers = powers[::-1].copy()
    if n == 0:
        return Tensor(xp.empty((x.array.shape[0], 0), dtype=x.array.dtype))
    return pow(unsqueeze(x, 1), Tensor(powers))


# ---- covariance ----

@register(method=True)
def cov(input, *, correction=1, fweights=None, aweights=None):
    """Covariance of the variables in the rows of input (observations in the columns)."""
    from distml.ops.elementwise import _float_input
    if input.array.ndim > 2:
        raise RuntimeError(f"cov(): expected input to have two or fewer dimensions but got an input with "
                           f"{input.array.ndim} dimensions")
    x = _float_input(reshape(input, (1, -1)) if input.array.ndim < 2 else input)
    n = x.array.shape[1]
    weights = None
    for name, w in (("fweights", fweights), ("aweights", aweights)):
        if w is None:
            continue
        if w.array.ndim > 1:
            raise RuntimeError(f"cov(): expected {name} to have one or fewer dimensions but got {name} with "
                               f"{w.array.ndim} dimensions")
        if w.array.size != n:
            raise RuntimeError(f"cov(): expected {name} to have the same numel as there are observations in the "
                               f"input but got {w.array.size} != {n}")
        if name == "fweights" and w.array.dtype.kind not in "iu":
            raise RuntimeError(f"cov(): expected fweights to have integral dtype but got fweights with "
                               f"{w.dtype.legacy_name} dtype")
        if bool((w.array < 0).any()):
            raise RuntimeError(f"cov(): {name} cannot be negative")
        weights = w if weights is None else mul(weights, w)
    xp = get_array_module(x.array)
    weights = Tensor(xp.ones(n, dtype=x.array.dtype)) if weights is None else cast(weights, x.array.dtype)
    total = sum(weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sum(mul(x, weights), 1, keepdim=True) / total
        spread = 1 if aweights is None else sum(mul(weights, cast(aweights, x.array.dtype))) / total
        norm = total - correction * spread
        if not bool(norm.array > 0):
            warnings.warn("cov(): degrees of freedom is <= 0. Correction should be strictly less than the number "
                          "of observations.")
            norm = norm * 0
        centered = sub(x, mean)
        return squeeze(matmul(mul(centered, weights), centered.transpose(0, 1)) / norm)  # one variable: 0-d


@register(method=True)
def corrcoef(input):
    """Pearson correlation coefficients of the variables in the rows of input."""
    c = cov(input)
    if c.array.ndim == 0:
        return c / c
    d = diagonal(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = c / sqrt(mul(unsqueeze(d, 1), unsqueeze(d, 0)))
    from distml.ops.elementwise import clamp
    return clamp(out, -1, 1)


# ---- diagonals ----

class DiagEmbed(Primitive):
    """x's last dim written on the `offset` diagonal of new trailing (n, n) matrices, zeros elsewhere."""
    saves_inputs = False

    def forward(self, x, offset):
        xp = get_array_module(x)
        n = x.shape[-1] + abs(offset)
        self.index = _diagonal_index(xp, n, n, offset)
        out = xp.zeros(x.shape[:-1] + (n, n), dtype=x.dtype)
        out[self.index] = x
        return out

    def backward(self, grad):
        return grad[self.index]


def _diagonal_index(xp, rows, cols, offset):
    """The (..., i, j) index of the `offset` diagonal of (rows, cols) matrices."""
    start_row, start_col = max(-offset, 0), max(offset, 0)
    length = max(min(rows - start_row, cols - start_col), 0)
    return (Ellipsis, xp.arange(start_row, start_row + length), xp.arange(start_col, start_col + length))


@register(method=True)
def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """Matrices with input's last dim on their `offset` diagonal, placed at dims dim1 and dim2."""
    ndim = input.array.ndim + 1
    d1, d2 = wrap_dim(dim1, ndim), wrap_dim(dim2, ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    out = DiagEmbed.apply(input if input.array.ndim else reshape(input, 1), offset=offset)
    return out if (d1, d2) == (ndim - 2, ndim - 1) else movedim(out, (-2, -1), (d1, d2))


@register(method=True)
def diagonal(input, offset=0, dim1=0, dim2=1):
    """The `offset` diagonal of the matrices in dims dim1, dim2, as a new last dim."""
    d1, d2 = wrap_dim(dim1, input.array.ndim), wrap_dim(dim2, input.array.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    moved = movedim(input, (d1, d2), (-2, -1))
    rows, cols = moved.array.shape[-2:]
    return GetItem.apply(moved, index=_diagonal_index(get_array_module(input.array), rows, cols, offset))


@register(method=True)
def diag(input, diagonal=0):
    """A 1-D tensor's square matrix (on the `diagonal`-th diagonal), or a matrix's diagonal."""
    if input.array.ndim == 1:
        return diag_embed(input, diagonal)
    if input.array.ndim == 2:
        return globals()["diagonal"](input, diagonal)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.array.ndim}D")


@register(method=True)
@autocast_op(cpu="float32", cuda="off")  # one kernel in PyTorch, unlisted on CUDA
def trace(input):
    """The sum of a matrix's diagonal."""
    if input.array.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.array.ndim}")
    return sum(diagonal(input))


def _tri_indices(row, col, offset, dtype, device, upper):
    from distml.creation import _array_module
    xp = _array_module(device)
    rows, cols = (np.triu_indices if upper else np.tril_indices)(row, offset, col)
    np_dtype = dtypes.to_numpy(dtype)
    if np_dtype not in (np.int32, np.int64):
        raise RuntimeError(f"\"{'triu' if upper else 'tril'}_indices\" not implemented for "
                           f"'{dtypes.from_numpy(np_dtype).legacy_name}'")
    return Tensor(xp.asarray(np.stack([rows, cols]).astype(np_dtype).reshape(2, -1)))


@register()
def triu_indices(row, col, offset=0, *, dtype=dtypes.int64, device=None):
    """The (2, N) row and column indices of the upper triangle (on and above `offset`)."""
    return _tri_indices(row, col, offset, dtype, device, True)


@register()
def tril_indices(row, col, offset=0, *, dtype=dtypes.int64, device=None):
    """The (2, N) row and column indices of the lower triangle (on and below `offset`)."""
    return _tri_indices(row, col, offset, dtype, device, False)
