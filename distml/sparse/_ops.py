"""Sparse math: products with dense and sparse matrices, sums, softmax, elementwise arithmetic.

Each op works on a sparse tensor's values with existing dense primitives where it can, so the
gradients come for free; the product with a dense matrix has its own primitive over one kernel.
"""
import numpy as np

from distml import dtypes, ops
from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.ops._util import check_same_device, normalize_dims, wrap_dim
from distml.ops.convert import cast
from distml.ops.index import getitem
from distml.ops.registry import register
from distml.ops.shape import expand
from distml.sparse._tensor import Alias, SparseTensor, flat_positions, scatter_rows
from distml.tensor import Tensor


# ---- sparse @ dense: one kernel, one primitive ----

def _row_order(s):
    """(order, rows, cols, indptr) of 2-D sparse s sorted by row (order None when it already is),
    the compressed-row form of its pattern; built once per tensor (a GCN reuses its adjacency)."""
    if s._csr is None:
        rows, cols = s._index
        xp = get_array_module(rows)
        order = None if bool((rows[1:] >= rows[:-1]).all()) else xp.argsort(rows)
        if order is not None:
            rows, cols = rows[order], cols[order]
        indptr = xp.searchsorted(rows, xp.arange(s._size[0] + 1))
        if xp is np and max(s._size + (rows.size,)) < 2 ** 31:
            cols, indptr = cols.astype(np.int32), indptr.astype(np.int32)  # what SciPy would convert to per call
        s._csr = (order, rows, cols, indptr)
    return s._csr


def _spmm(csr, values, dense, shape, transpose):
    """S @ dense, or S^T @ dense, for S of `shape` with `values` on the pattern `csr` (see _row_order).

    On the CPU this is SciPy's compiled CSR product (no nnz x k temporary, ~10x numpy's
    reduceat); elsewhere a scatter-add of the row products.
    """
    order, rows, cols, indptr = csr
    data = values if order is None else values[order]
    if isinstance(dense, np.ndarray):
        from scipy.sparse import csr_matrix
        wide = np.float32 if dtypes.is_float(data.dtype) and data.dtype.itemsize < 4 else data.dtype
        matrix = csr_matrix((data.astype(wide, copy=False), cols, indptr), shape=shape)
        out = (matrix.T if transpose else matrix) @ dense.astype(wide, copy=False)
        return np.asarray(out, dtype=data.dtype)
    xp = get_array_module(dense)
    source, target = (rows, cols) if transpose else (cols, rows)
    out = xp.zeros((shape[1 if transpose else 0], dense.shape[1]), dtype=dense.dtype)
    scatter_rows(out, target, data[:, None] * dense[source])
    return out


class SparseAddmm(Primitive):
    """S @ D (S^T @ D with `transpose`) for a 2-D sparse S given by its values and pattern;
    the gradients are dS_k = G[row_k] . D[col_k] on S's pattern, and dD = S^T @ G."""

    def forward(self, values, dense, csr, index, shape, transpose):
        self.values, self.dense, self.csr, self.index, self.shape, self.transpose = (values, dense, csr, index,
                                                                                     shape, transpose)
        return _spmm(csr, values, dense, shape, transpose)

    def backward(self, grad):
        grad_values = grad_dense = None
        if self.needs_input_grad[0]:
            xp = get_array_module(grad)
            rows, cols = self.index if not self.transpose else self.index[::-1]
            grad_values = xp.einsum("ij,ij->i", grad[rows], self.dense[cols])
        if self.needs_input_grad[1]:
            grad_dense = _spmm(self.csr, self.values, grad, self.shape, not self.transpose)
        return grad_values, grad_dense


def _check_sparse_matrix(s):
    if s.dim() == 1:
        raise IndexError("Dimension out of range (expected to be in range of [-1, 0], but got 1)")
    if s.dim() != 2:
        raise RuntimeError(f"addmm: matrices expected, got {s.dim()}D tensor")
    if s.dense_dim():
        raise NotImplementedError("distml.sparse.mm of a hybrid sparse matrix (sparse_dim=1, dense_dim=1) is not "
                                  "supported; use a sparse_dim=2 matrix")


def _sparse_dense(s, d, transpose=False):
    """s @ d (s^T @ d with `transpose`) with PyTorch's checks, as a dense tensor."""
    _check_sparse_matrix(s)
    if d.array.ndim != 2:
        if d.array.ndim == 1:
            raise IndexError("Dimension out of range (expected to be in range of [-1, 0], but got 1)")
        raise RuntimeError(f"addmm: matrices expected, got {d.array.ndim}D tensor")
    check_same_device(s._value, d)
    if s.dtype != d.dtype:
        raise RuntimeError(f"expected scalar type {s.dtype.legacy_name} but found {d.dtype.legacy_name}")
    inner = s._size[0 if transpose else 1]
    if d.array.shape[0] != inner:
        raise RuntimeError(f"addmm: Argument #3 (dense): Expected dim 0 size {inner}, got {d.array.shape[0]}")
    return SparseAddmm.apply(s._value, d, csr=_row_order(s), index=s._index, shape=s._size, transpose=transpose)


def _sparse_sparse(a, b):
    """a @ b for two sparse matrices, on the structural pattern of the product (PyTorch's).
    Densifies b (a k x m array): fine for the graph sizes this serves, not for huge ones."""
    for s in (a, b):
        _check_sparse_matrix(s)
    if a.dtype != b.dtype:
        raise RuntimeError(f"mat1 dtype {a.dtype.legacy_name} does not match mat2 dtype {b.dtype.legacy_name}")
    if a._size[1] != b._size[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a._size[0]}x{a._size[1]} and "
                           f"{b._size[0]}x{b._size[1]})")
    product = _sparse_dense(a, b.to_dense())
    xp = get_array_module(a._index)
    b_pattern = xp.zeros(b._size, np.float64)
    b_pattern[tuple(b._index)] = 1
    hits = _spmm(_row_order(a), xp.ones(a._nnz()), b_pattern, a._size, transpose=False)
    where = xp.nonzero(hits)
    return SparseTensor(xp.stack(where).astype(np.int64, copy=False), getitem(product, where), product.array.shape,
                        coalesced=True)


def mm(mat1, mat2, reduce=None):
    """Matrix product with a sparse operand: `distml.sparse.mm(adjacency, features)`.

    sparse @ dense and dense @ sparse give dense results, sparse @ sparse a sparse one; gradients
    flow to dense operands and to the values of sparse ones (a sparse leaf's `.grad` is sparse).
    """
    if reduce is not None:
        raise NotImplementedError(f"distml.sparse.mm(reduce={reduce!r}) is for sparse CSR tensors, which distml "
                                  "does not have")
    first, second = isinstance(mat1, SparseTensor), isinstance(mat2, SparseTensor)
    if first and second:
        return _sparse_sparse(mat1, mat2)
    if first:
        return _sparse_dense(mat1, mat2)
    if second:
        if mat1.array.ndim != 2:
            raise RuntimeError(f"addmm: matrices expected, got {mat1.array.ndim}D tensor")
        return ops.transpose(_sparse_dense(mat2, ops.transpose(mat1, 0, 1), transpose=True), 0, 1)
    return ops.mm(mat1, mat2)


def matmul(a, b):
    """`a @ b` where a or b is sparse: mm for matrices, a matrix-vector product for a 1-D dense operand."""
    if isinstance(a, SparseTensor) and a.dim() == 1:
        raise IndexError("Dimension out of range (expected to be in range of [-1, 0], but got -2)")
    dense = b if isinstance(a, SparseTensor) else a
    if isinstance(dense, SparseTensor) or dense.array.ndim == 2:
        return mm(a, b)
    if dense.array.ndim != 1:
        raise RuntimeError("expand is unsupported for Sparse tensors")
    if a is dense:
        return mm(a.reshape(1, -1), b).reshape(-1)
    _check_sparse_matrix(a)
    if a._size[1] != b.array.shape[0]:
        raise RuntimeError("mv: expected self.size(-1) == vec.size(-1)")
    return mm(a, b.reshape(-1, 1)).reshape(-1)


@register()
def spmm(input, mat2):
    """mm whose first operand may be sparse: `distml.spmm(adjacency, features)`."""
    return mm(input, mat2)


@register()
def smm(input, mat2):
    """sparse @ dense as a sparse matrix: each row of `input` that holds an entry gives a full row."""
    if not isinstance(input, SparseTensor):
        raise RuntimeError(f"smm: expected a sparse COO first argument, got a {type(input).__name__} of layout "
                           "distml.strided")
    product = mm(input, mat2)
    xp = get_array_module(input._index)
    rows = xp.unique(input._index[0])
    n = product.array.shape[1]
    index = xp.stack([xp.repeat(rows, n), xp.tile(xp.arange(n), len(rows))])
    return SparseTensor(index, getitem(product, (index[0], index[1])), product.array.shape, coalesced=True)


def addmm(mat, mat1, mat2, *, beta=1.0, alpha=1.0):
    """beta * mat + alpha * (mat1 @ mat2) with a sparse mat1: `distml.sparse.addmm(bias, adjacency, x)`."""
    product = mm(mat1, mat2)
    if isinstance(product, SparseTensor):
        product = product.to_dense()
    if alpha != 1:
        product = ops.mul(product, alpha)
    if beta == 0:
        return product
    return ops.add(mat if beta == 1 else ops.mul(mat, beta), product)


# ---- sums ----

def sum(input, dim=None, dtype=None):
    """The sum of a sparse tensor's entries (a dense 0-d tensor) or over `dim`: sparse while
    sparse dims remain, dense once all are summed. `distml.sparse.sum(adjacency, 1)`."""
    return reduce_sum(input, dim, False, dtype)


def reduce_sum(s, dim, keepdim, dtype):
    """Tensor.sum on a sparse tensor (also `keepdim`)."""
    values = s._value if dtype is None else cast(s._value, dtype)
    if dim is None:
        return ops.sum(values)
    sparse_dim, ndim = s.sparse_dim(), s.dim()
    dims = normalize_dims(dim, ndim)
    summed = [d for d in range(sparse_dim) if d in dims]
    dense_axes = tuple(d - sparse_dim + 1 for d in dims if d >= sparse_dim)
    if dense_axes:
        values = ops.sum(values, dim=dense_axes, keepdim=keepdim)
    size = tuple(1 if d in dims else n for d, n in enumerate(s._size) if keepdim or d not in dims)
    if len(summed) == sparse_dim:
        out = ops.sum(values, dim=0)
        return out.reshape(size) if keepdim else out
    if not summed:
        return SparseTensor(s._index, values if dense_axes else Alias.apply(values, label="SparseSum"), size,
                            s._coalesced)
    index = s._index.copy()
    index[summed] = 0
    if not keepdim:
        index = index[[d for d in range(sparse_dim) if d not in summed]]
    return SparseTensor(index, values, size).coalesce()


# ---- softmax ----

class SparseSoftmax(Primitive):
    """Softmax of the values within each group (the entries that share every index but the
    softmax dim's); entries not stored count as -inf, as PyTorch's sparse softmax does."""
    saves_inputs = False

    def forward(self, values, groups, count):
        xp = get_array_module(values)
        top = xp.full((count,) + values.shape[1:], -xp.inf, dtype=values.dtype)
        xp.maximum.at(top, groups, values)
        self.count = count
        exp = xp.exp(values - top[groups])
        total = xp.zeros_like(top)
        scatter_rows(total, groups, exp)
        self.out, self.groups = exp / total[groups], groups
        return self.out

    def backward(self, grad):
        weighted = grad * self.out
        total = get_array_module(grad).zeros((self.count,) + grad.shape[1:], dtype=grad.dtype)
        scatter_rows(total, self.groups, weighted)
        return weighted - self.out * total[self.groups]


def softmax(input, dim, *, dtype=None):
    """Softmax along `dim` over the stored entries only: `distml.sparse.softmax(scores, 1)` (GAT)."""
    if not isinstance(input, SparseTensor):
        raise NotImplementedError("Could not run 'aten::_sparse_softmax' with arguments from the 'CPU' backend: "
                                  "distml.sparse.softmax takes a sparse tensor (use distml.softmax for dense ones)")
    dim = wrap_dim(dim, input.dim())
    s = (input if dtype is None else input.to(dtype)).coalesce()
    sparse_dim = s.sparse_dim()
    if dim >= sparse_dim:
        values = ops.softmax(s._value, dim - sparse_dim + 1)
    else:
        xp = get_array_module(s._index)
        others = [d for d in range(sparse_dim) if d != dim]
        keys = flat_positions(s._index[others], [s._size[d] for d in others])
        unique, groups = xp.unique(keys, return_inverse=True)
        values = SparseSoftmax.apply(s._value, groups=groups.reshape(-1), count=len(unique))
    return SparseTensor(s._index, values, s._size, coalesced=True)


# ---- elementwise ----

def add(a, b, alpha=1):
    """sparse + alpha * sparse: the entries of both (summed where both are coalesced)."""
    if not isinstance(b, SparseTensor):
        raise RuntimeError("add(sparse, dense) is not supported. Use add(dense, sparse) instead.")
    if a._size != b._size:
        raise RuntimeError(f"add: expected sizes of 'self' and 'other' to match, but {list(a._size)} != "
                           f"{list(b._size)}")
    if a.sparse_dim() != b.sparse_dim():
        raise RuntimeError(f"add: expected 'self' and 'other' to have same sparse dimensions, but "
                           f"{a.sparse_dim()} != {b.sparse_dim()}")
    check_same_device(a._value, b._value)
    other = b._value if alpha == 1 else ops.mul(b._value, alpha)
    xp = get_array_module(a._index)
    out = SparseTensor(xp.concatenate([a._index, b._index], axis=1), ops.cat([a._value, other]), a._size)
    return out.coalesce() if a._coalesced and b._coalesced else out


def add_to_dense(dense, s, alpha=1):
    """dense + alpha * sparse, a dense tensor (what `dense + s` and `dense - s` give)."""
    if not isinstance(dense, Tensor):
        raise RuntimeError("add(sparse, dense) is not supported. Use add(dense, sparse) instead.")
    return ops.add(dense, s.to_dense(), alpha=alpha)


def mul(s, other):
    """sparse * scalar, or * a dense tensor broadcast to s's shape (read at s's entries)."""
    if isinstance(other, SparseTensor):
        raise NotImplementedError("distml does not multiply two sparse tensors elementwise; multiply by a dense "
                                  "tensor (other.to_dense())")
    if isinstance(other, Tensor) and other.array.ndim:
        dense = getitem(expand(other, *s._size), tuple(s._index))
        return SparseTensor(s._index, ops.mul(s._value, dense), s._size, s._coalesced)
    return SparseTensor(s._index, ops.mul(s._value, other), s._size, s._coalesced)


def div(s, other):
    """sparse / scalar (or a 0-d dense tensor)."""
    if isinstance(other, Tensor) and (isinstance(other, SparseTensor) or other.array.ndim):
        raise RuntimeError("Sparse division requires a scalar or zero-dim dense tensor divisor (got shape "
                           f"{list(other.shape)} for divisor)")
    return SparseTensor(s._index, ops.div(s._value, other), s._size, s._coalesced)


def neg(s):
    return SparseTensor(s._index, ops.neg(s._value), s._size, s._coalesced)
