"""SparseTensor (the COO layout), its construction (`sparse_coo_tensor`, `Tensor.to_sparse`) and
the two primitives every other sparse op builds on: coalescing and densifying."""
from copy import deepcopy

import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.device import device as Device
from distml.ops.convert import _move, cast, clone, to_device
from distml.ops.index import getitem, scatter_add_flat
from distml.ops.registry import register
from distml.tensor import Size, Tensor, _format, _to_arguments, layout, preserve_format, strided  # noqa: F401  (strided: distml.sparse.strided)

sparse_coo = layout("sparse_coo")

_NOT_FOR_SPARSE = ("Could not run this operation with arguments from the '{}' backend: it is defined for dense "
                   "(strided) tensors only; call .to_dense() first")
_NO_HOOKS = ("{} on a sparse tensor is not supported by distml; build it with sparse_coo_tensor(indices, values) "
             "from values that require grad and hook those")


# ---- the primitives ----

class Alias(Primitive):
    """The values of a new sparse tensor: the same array under a node named after the op that
    made it (`grad_fn=<SparseCooTensorWithDimsAndTensorsBackward0>`, as PyTorch names it)."""
    saves_inputs = False

    def forward(self, values, label):
        self.label = label
        return values

    def backward(self, grad):
        return grad

    def name(self):
        return getattr(self, "label", "Alias") + "Backward0"


class Coalesce(Primitive):
    """Row u of the output is the sum of the value rows k with inverse[k] == u; the gradient of
    each summed row is its group's gradient."""
    saves_inputs = False

    def forward(self, values, inverse, count):
        self.inverse = inverse
        out = get_array_module(values).zeros((count,) + values.shape[1:], values.dtype)
        scatter_rows(out, inverse, values)
        return out

    def backward(self, grad):
        return grad[self.inverse]


class ToDense(Primitive):
    """The dense tensor: each value row added at its flat sparse position; its gradient reads
    the dense gradient back at those positions."""
    saves_inputs = False

    def forward(self, values, positions, shape):
        self.positions, self.values_shape = positions, values.shape
        out = get_array_module(values).zeros(shape, values.dtype)
        scatter_rows(out.reshape(-1, *values.shape[1:]), positions, values)
        return out

    def backward(self, grad):
        return grad.reshape(-1, *self.values_shape[1:])[self.positions]


def scatter_rows(target, rows, values):
    """target[rows[k]] += values[k] for every k (repeats accumulate), through the one scatter-add kernel."""
    xp = get_array_module(target)
    width = int(np.prod(target.shape[1:], dtype=np.int64))
    positions = rows if width == 1 else rows[:, None] * width + xp.arange(width)
    scatter_add_flat(target, positions, values)


def flat_positions(indices, sizes):
    """Each column of `indices` as a row-major position in a tensor of shape `sizes`."""
    xp = get_array_module(indices)
    key = xp.zeros(indices.shape[1], dtype=np.int64)
    for row, size in zip(indices, sizes):
        key = key * size + row
    return key


# ---- the tensor ----

class SparseTensor(Tensor):
    """A sparse COO tensor (PyTorch's `layout=torch.sparse_coo`): `indices` (sparse_dim x nnz,
    int64) say where the `values` (nnz x dense dims) sit in a tensor of `size`. Make one with
    `distml.sparse_coo_tensor(indices, values, size)` or `dense.to_sparse()`.

    Autograd sees it through its values Tensor: `requires_grad`, `grad_fn` and `is_leaf` are the
    values', and a leaf's `.grad` is a sparse tensor on its (coalesced) indices.
    """

    __slots__ = ("_index", "_value", "_size", "_coalesced", "_csr")
    is_sparse = True
    layout = sparse_coo

    def __init__(self, indices, values, size, coalesced=False):
        # Internal: `indices` an int64 array, `values` a Tensor no other SparseTensor holds; unchecked.
        self._index, self._value, self._size = indices, values, tuple(size)
        self._coalesced = coalesced
        self._csr = None  # the row order distml.sparse.mm builds once per tensor

    @property
    def array(self):
        raise NotImplementedError(_NOT_FOR_SPARSE.format(self._backend()))

    def _backend(self):
        return "SparseCPU" if isinstance(self._index, np.ndarray) else "SparseCUDA"

    # ---- metadata ----
    @property
    def shape(self):
        return Size(self._size)

    def size(self, dim=None):
        return Size(self._size) if dim is None else self._size[_wrap(dim, len(self._size))]

    def dim(self):
        return len(self._size)

    @property
    def ndim(self):
        return len(self._size)

    def numel(self):
        return int(np.prod(self._size, dtype=np.int64))

    def __len__(self):
        if not self._size:
            raise TypeError("len() of a 0-d tensor")
        return self._size[0]

    @property
    def dtype(self):
        return self._value.dtype

    @property
    def device(self):
        return self._value.device

    @property
    def is_cuda(self):
        return self._value.is_cuda

    def is_floating_point(self):
        return self._value.is_floating_point()

    def element_size(self):
        return self._value.element_size()

    def type(self, dtype=None):
        """PyTorch's type string, 'torch.sparse.FloatTensor'; `s.type(distml.float64)` converts."""
        if dtype is None:
            return f"torch.{'cuda.' if self.is_cuda else ''}sparse.{self.dtype.legacy_name}Tensor"
        return self.to(dtype)

    def sparse_dim(self):
        return self._index.shape[0]

    def dense_dim(self):
        return self._value.array.ndim - 1

    def _nnz(self):
        return self._index.shape[1]

    def is_coalesced(self):
        return self._coalesced

    def __repr__(self):
        return _format_sparse(self)

    # ---- autograd, through the values ----
    @property
    def requires_grad(self):
        return self._value.requires_grad

    @requires_grad.setter
    def requires_grad(self, requires_grad):
        self.requires_grad_(requires_grad)

    def requires_grad_(self, requires_grad=True):
        self._value.requires_grad_(requires_grad)
        return self

    @property
    def grad_fn(self):
        return self._value.grad_fn

    @property
    def grad(self):
        """A leaf's gradient: a sparse tensor on its coalesced indices (each duplicate of an index
        gets the same gradient, that of the dense entry they add up to)."""
        grad = self._value.grad
        if grad is None:
            return None
        if self._coalesced:
            return SparseTensor(self._index, Tensor(grad.array), self._size, coalesced=True)
        xp = get_array_module(self._index)
        _, first = xp.unique(flat_positions(self._index, self._size), return_index=True)
        return SparseTensor(self._index[:, first], Tensor(grad.array[first]), self._size, coalesced=True)

    @grad.setter
    def grad(self, grad):
        if grad is not None:
            raise RuntimeError("distml can only set the .grad of a sparse tensor to None")
        self._value.grad = None

    def register_hook(self, hook):
        raise NotImplementedError(_NO_HOOKS.format("register_hook"))

    def register_post_accumulate_grad_hook(self, hook):
        raise NotImplementedError(_NO_HOOKS.format("register_post_accumulate_grad_hook"))

    def retain_grad(self):
        raise NotImplementedError(_NO_HOOKS.format("retain_grad"))

    @property
    def data(self):
        return self.detach()

    def detach(self):
        return SparseTensor(self._index, Tensor(self._value.array), self._size, self._coalesced)

    def clone(self):
        return SparseTensor(self._index.copy(), clone(self._value), self._size, self._coalesced)

    def __deepcopy__(self, memo):
        return SparseTensor(self._index.copy(), deepcopy(self._value, memo), self._size, self._coalesced)

    def __reduce_ex__(self, protocol):
        return (SparseTensor, (self._index, self._value, self._size, self._coalesced))

    # ---- the COO parts ----
    def indices(self):
        """The indices of a coalesced tensor (`s.coalesce().indices()`)."""
        _require_coalesced(self, "indices")
        return Tensor(self._index)

    def values(self):
        """The values of a coalesced tensor, differentiable (`s.coalesce().values()`)."""
        _require_coalesced(self, "values")
        return Alias.apply(self._value, label="Values")

    def _indices(self):
        return Tensor(self._index)

    def _values(self):
        """The values as stored (duplicates and all), not tracked by autograd."""
        return Tensor(self._value.array)

    def coalesce(self):
        """Duplicate indices summed, indices sorted (row-major): `s.coalesce()`."""
        if self._coalesced:
            return self
        xp = get_array_module(self._index)
        unique, first, inverse = xp.unique(flat_positions(self._index, self._size), return_index=True,
                                           return_inverse=True)
        values = Coalesce.apply(self._value, inverse=inverse.reshape(-1), count=len(unique))
        return SparseTensor(self._index[:, first], values, self._size, coalesced=True)

    def to_dense(self):
        sparse_sizes = self._size[:self.sparse_dim()]
        return ToDense.apply(self._value, positions=flat_positions(self._index, sparse_sizes), shape=self._size)

    def to_sparse(self, sparse_dim=None):
        if sparse_dim is not None and sparse_dim != self.sparse_dim():
            raise RuntimeError("to_sparse: conversion from Sparse to Sparse with sparse_dim argument "
                               "!=self.sparse_dim() is not supported")
        return self

    # ---- dtype and device ----
    def to(self, *args, **kwargs):
        """`s.to(distml.float64)`, `s.to("cuda")`, `s.to(other)` (Tensor.to's arguments): the values
        cast / both parts moved."""
        device, dtype, non_blocking, copy, memory_format = _to_arguments(args, kwargs)
        if memory_format is not preserve_format:
            raise RuntimeError(f"to(options): COO only supports memory format Preserve, but got {memory_format} instead.")
        index, values = self._index, self._value
        if device is not None:
            device = Device(device)
            values = to_device(values, device, non_blocking=non_blocking)
            index = _move(index, device)
        if dtype is not None:
            values = cast(values, dtype)
        if values is self._value:
            return self.clone() if copy else self
        return SparseTensor(index, values, self._size, self._coalesced)

    def numpy(self):
        raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")

    def view(self, *shape):
        raise NotImplementedError(f"Could not run 'aten::view' with arguments from the '{self._backend()}' backend.")

    def reshape(self, *shape):
        raise RuntimeError("reshape is not implemented for sparse tensors")

    def flatten(self, start_dim=0, end_dim=-1):
        raise RuntimeError("reshape is not implemented for sparse tensors")

    # ---- shape ----
    def transpose(self, dim0, dim1):
        """Swap two sparse dimensions (the index rows): `s.transpose(0, 1)`."""
        ndim = len(self._size)
        dim0, dim1 = _wrap(dim0, ndim), _wrap(dim1, ndim)
        if max(dim0, dim1) >= self.sparse_dim():
            raise NotImplementedError("transpose of a dense dimension of a hybrid sparse tensor is not supported "
                                      "by distml")
        order = list(range(ndim))
        order[dim0], order[dim1] = dim1, dim0
        size = tuple(self._size[d] for d in order)
        values = Alias.apply(self._value, label="Transpose")
        return SparseTensor(self._index[order[:self.sparse_dim()]], values, size,
                            coalesced=self._coalesced and dim0 == dim1)

    def t(self):
        if len(self._size) > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {len(self._size)}D")
        return self.transpose(0, -1) if self._size else self

    @property
    def T(self):
        return self.t()

    @property
    def mT(self):
        return self.transpose(-2, -1)

    # ---- math (distml/sparse/_ops.py) ----
    def sum(self, dim=None, keepdim=False, dtype=None):
        return _ops.reduce_sum(self, dim, keepdim, dtype)

    def mm(self, mat2):
        return _ops.mm(self, mat2)

    def smm(self, mat2):
        return _ops.smm(self, mat2)

    def matmul(self, other):
        return _ops.matmul(self, other)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def add(self, other, alpha=1):
        return _ops.add(self, other, alpha)

    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add_to_dense(other, self)

    def sub(self, other, alpha=1):
        return _ops.add(self, other, -alpha)

    def __sub__(self, other):
        return _ops.add(self, other, -1)

    def __rsub__(self, other):
        return _ops.add_to_dense(other, self, -1)

    def mul(self, other):
        return _ops.mul(self, other)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(self, other)

    def div(self, other):
        return _ops.div(self, other)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def neg(self):
        return _ops.neg(self)

    def __neg__(self):
        return _ops.neg(self)


def _wrap(dim, ndim):
    from distml.ops._util import wrap_dim
    return wrap_dim(dim, ndim)


def _require_coalesced(s, what):
    if not s._coalesced:
        raise RuntimeError(f"Cannot get {what} on an uncoalesced tensor, please call .coalesce() first")


# ---- construction ----

@register()
def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None, pin_memory=False, requires_grad=False,
                      check_invariants=None, is_coalesced=None):
    """A sparse COO tensor with `values[k]` at the position `indices[:, k]`:

        s = distml.sparse_coo_tensor([[0, 1, 1], [2, 0, 2]], [3., 4., 5.], (2, 3))

    The size is inferred (max index + 1) when None. Values that require grad stay in the graph
    (their gradient flows back through every op on `s`); `requires_grad=True` makes `s` a leaf.
    Indices are always checked against the size (distml's kernels index with them);
    `check_invariants=True` also verifies an `is_coalesced=True` claim.
    """
    from distml.creation import tensor
    if pin_memory:
        raise RuntimeError("Cannot access accelerator device when none is available.")
    index = indices.array if isinstance(indices, Tensor) else tensor(indices).array
    values = values if isinstance(values, Tensor) else tensor(values, dtype=dtype)
    if dtype is not None:
        values = cast(values, dtype)
    if device is not None:
        values = to_device(values, Device(device))
        index = _move(index, Device(device))
    elif type(index) is not type(values.array):
        raise RuntimeError(f"indices and values must be on the same device, but got indices on "
                           f"{Tensor(index).device} and values on {values.device}")
    if values.array.ndim == 0:
        values = values.reshape(1)
    index = index.astype(np.int64, copy=False)
    size = _checked_size(index, values.array.shape, size)
    xp = get_array_module(index)
    coalesced = is_coalesced if is_coalesced is not None else index.shape[1] < 2
    if is_coalesced and check_invariants:
        if len(xp.unique(flat_positions(index, size))) != index.shape[1] or not _sorted(flat_positions(index, size)):
            raise RuntimeError("cannot set is_coalesced to true if indices correspond to uncoalesced COO tensor")
    if requires_grad and not values.is_floating_point():
        raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
    if values.requires_grad:
        values = Alias.apply(values, label="SparseCooTensorWithDimsAndTensors")
    else:
        values = Tensor(values.array)
        if requires_grad:
            values.requires_grad_(True)
    return SparseTensor(index, values, size, coalesced)


def _sorted(keys):
    return bool((keys[1:] >= keys[:-1]).all())


def _checked_size(index, values_shape, size):
    """The tensor's size (inferred from the indices when None), with PyTorch's checks."""
    if index.ndim != 2:
        raise RuntimeError(f"indices must be sparse_dim x nnz, but got: {list(index.shape)}")
    sparse_dim, nnz = index.shape
    if values_shape[0] != nnz:
        raise RuntimeError(f"indices and values must have same nnz, but got nnz from indices: {nnz}, "
                           f"nnz from values: {values_shape[0]}")
    if nnz:
        lowest, highest = index.min(axis=1).tolist(), index.max(axis=1).tolist()
        for d, low in enumerate(lowest):
            if low < 0:
                raise RuntimeError(f"found negative index {low} for dim {d}")
    else:
        highest = [-1] * sparse_dim
    if size is None:
        return tuple(h + 1 for h in highest) + tuple(values_shape[1:])
    size = tuple(int(s) for s in size)
    if any(s < 0 for s in size):
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(size)}: {list(size)}")
    dense_dim = len(values_shape) - 1
    if len(size) != sparse_dim + dense_dim:
        raise RuntimeError(f"'len(size) == sparse_dim + dense_dim' is not satisfied: len(size) = {len(size)}, "
                           f"sparse_dim = {sparse_dim}, dense_dim = {dense_dim}")
    if tuple(values_shape[1:]) != size[sparse_dim:]:
        raise RuntimeError(f"values has incorrect size, expected {[nnz] + list(size[sparse_dim:])}, "
                           f"got {list(values_shape)}")
    for d, high in enumerate(highest):
        if high >= size[d]:
            raise RuntimeError(f"size is inconsistent with indices: for dim {d}, size is {size[d]} but found "
                               f"index {high}")
    return size


@register(method=True, function=False)
def to_sparse(x, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None):
    """The nonzero entries of dense x as a coalesced sparse COO tensor: `x.to_sparse()`; with
    `sparse_dim` (or `dense_dim`), the trailing dims stay dense in the values."""
    if sparse_dim is not None and (layout is not None or blocksize is not None or dense_dim is not None):
        raise TypeError("to_sparse() takes 0 positional arguments but 1 was given")
    if layout is not None and layout is not sparse_coo:
        raise NotImplementedError(f"to_sparse(layout={layout}): distml has only the distml.sparse_coo layout")
    if blocksize is not None:
        raise NotImplementedError("to_sparse(blocksize=...): distml has no block sparse layouts")
    ndim = x.array.ndim
    if sparse_dim is None:
        sparse_dim = ndim if dense_dim is None else ndim - dense_dim
    if not 0 <= sparse_dim <= ndim:
        raise RuntimeError(f"dense_to_sparse: sparse_dim argument must be in [0,{ndim}] range, but {sparse_dim} "
                           "is given")
    if sparse_dim == 0 and ndim > 0:
        raise RuntimeError("dense_to_sparse: sparse_dim argument must be in >0 when self.dim()>0")
    xp = get_array_module(x.array)
    if ndim == 0:
        nnz = int(x.array != 0)
        return SparseTensor(xp.zeros((0, nnz), np.int64), getitem(x.reshape(1), slice(0, nnz)), (), coalesced=True)
    nonzero = (x.array != 0).any(axis=tuple(range(sparse_dim, ndim)))
    where = xp.nonzero(nonzero)
    return SparseTensor(xp.stack(where).astype(np.int64, copy=False), getitem(x, where), x.array.shape,
                        coalesced=True)


@register(method=True, function=False)
def to_dense(x):
    """A dense tensor is its own dense form (`s.to_dense()` densifies a sparse one)."""
    return x


# ---- repr, as PyTorch prints sparse tensors ----

def _format_sparse(s):
    indent = len("tensor(")
    indices = _body(s._index, indent + len("indices=tensor("))
    if s._index.size == 0:
        indices += f", size={tuple(s._index.shape)}"
    values = _body(s._value.array, indent + len("values=tensor("))
    if s._value.array.size == 0:
        values += f", size={tuple(s._value.array.shape)}"
    text = f"tensor(indices=tensor({indices}),\n{' ' * indent}values=tensor({values})"
    suffixes = []
    if s.is_cuda:
        suffixes.append(f"device='{s.device}'")
    suffixes += [f"size={tuple(s._size)}", f"nnz={s._nnz()}"]
    if s._value.array.dtype not in (dtypes.default_float_np(), np.int64, np.bool_):
        suffixes.append(f"dtype={s.dtype!r}")
    suffixes.append(f"layout={sparse_coo!r}")
    if s.grad_fn is not None:
        suffixes.append(f"grad_fn={s.grad_fn!r}")
    elif s.requires_grad:
        suffixes.append("requires_grad=True")
    # PyTorch's _add_suffixes: the first suffix on a new line, the rest wrapped at 80 columns
    last_line = len(text) - text.rfind("\n") + 1
    force_newline = True
    for suffix in suffixes:
        if force_newline or last_line + len(suffix) + 2 > 80:
            text += ",\n" + " " * indent + suffix
            last_line = indent + len(suffix)
            force_newline = False
        else:
            text += ", " + suffix
            last_line += len(suffix) + 2
    return text + ")"


def _body(array, indent):
    """The dense repr's bracketed numbers, continued at `indent` columns: tensor.py's formatter
    (values of at least one dim end at their last ']', before any suffix)."""
    text = _format(Tensor(array))
    return text[len("tensor("):text.rindex("]") + 1].replace("\n", "\n" + " " * (indent - len("tensor(")))


from distml.sparse import _ops  # noqa: E402  (the sparse math is built on SparseTensor)
