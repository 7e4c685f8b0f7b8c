"""Indexing (read and write), gather/scatter, index_select: every backward that sends
gradients to indexed positions goes through one scatter-add (the _C kernel, or its CUDA twin)."""
import numpy as np

from distml import dtypes, kernels
from distml._backend import C, get_array_module
from distml.amp.autocast_mode import autocast_op
from distml.autograd.function import Primitive
from distml.ops._util import unbroadcast, wrap_dim
from distml.ops.registry import register
from distml.tensor import Tensor


# The dtypes scatter_add_flat adds in `_C` (the halves widened to float32); others take xp's add.at.
_SCATTER_DTYPES = (np.float16, dtypes.bfloat16.np, np.float32, np.float64, np.int32, np.int64)


def scatter_add_flat(target, positions, values):
    """target.flat[positions] += values with repeats accumulating; target is C-contiguous."""
    xp = kernels.compiled("scatter_add", target, _SCATTER_DTYPES)
    if xp is None:
        get_array_module(target).add.at(target.reshape(-1), positions.reshape(-1), values.reshape(-1))
        return
    positions = xp.ascontiguousarray(positions.reshape(-1), dtype=np.int64)
    if target.dtype in (np.float16, dtypes.bfloat16.np):  # accumulate in float32, as PyTorch does for half
        wide = target.astype(np.float32)
        C.scatter_add(wide.reshape(-1), positions, xp.ascontiguousarray(values.reshape(-1), dtype=np.float32))
        target[...] = wide
        return
    C.scatter_add(target.reshape(-1), positions, xp.ascontiguousarray(values.reshape(-1), dtype=target.dtype))


def _flat_positions(shape, index):
    """Where each element of x[index] sits in the flattened x."""
    xp = get_array_module(index) if hasattr(index, "dtype") else np
    return xp.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)[index]


# ---- x[index] and x[index] = value ----

class GetItem(Primitive):
    saves_inputs = False
    is_view = True

    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        return get_array_module(x).asarray(x[index])  # a full integer index gives a numpy scalar

    def backward(self, grad):
        xp = get_array_module(grad)
        out = xp.zeros(self.shape, dtype=self.dtype)
        if _is_basic(self.index):
            out[self.index] = grad
        else:
            positions = _flat_positions(self.shape, self.index)
            scatter_add_flat(out, positions, xp.broadcast_to(grad, positions.shape))
        return out


class IndexPut(Primitive):
    """x with x[index] = value, as a new array (the grad-recording form of setitem)."""
    saves_inputs = False

    def forward(self, x, value, index):
        self.index, self.value_shape = index, getattr(value, "shape", ())
        out = x.copy()
        out[index] = value
        return out

    def backward(self, grad):
        grad_x = grad_value = None
        if self.needs_input_grad[0]:
            grad_x = grad.copy()
            grad_x[self.index] = 0
        if self.needs_input_grad[1]:
            grad_value = unbroadcast(grad[self.index], self.value_shape)
        return grad_x, grad_value


def _to_index(index):
    """A Python/Tensor index as a numpy-style index (Tensors become their arrays)."""
    if isinstance(index, tuple):
        return tuple(_to_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.array
    if isinstance(index, list):
        return np.asarray([i.item() if isinstance(i, Tensor) else i for i in index])
    return index


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice, np.integer)) for p in parts)


def _check_index(x, index):
    parts = index if isinstance(index, tuple) else (index,)
    dim = 0
    for p in parts:
        if p is None:
            continue
        if p is Ellipsis:
            dim = x.array.ndim - sum(1 for q in parts if q is not None and q is not Ellipsis)
            continue
        if isinstance(p, slice) and p.step is not None and p.step <= 0:
            raise ValueError("step must be greater than zero")
        if isinstance(p, (int, np.integer)) and not isinstance(p, bool):
            if dim >= x.array.ndim:
                raise IndexError(f"too many indices for tensor of dimension {x.array.ndim}")
            size = x.array.shape[dim]
            if not -size <= p < size:
                raise IndexError(f"index {p} is out of bounds for dimension {dim} with size {size}")
        if hasattr(p, "dtype") and p.dtype.kind not in "iub":
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        dim += p.ndim if hasattr(p, "dtype") and p.dtype == np.bool_ else 1


def getitem(x, index):
    index = _to_index(index)
    _check_index(x, index)
    return GetItem.apply(x, index=index)


def setitem(x, index, value):
    """x[index] = value, recorded for autograd when x or value requires grad."""
    from distml.autograd.grad_mode import is_grad_enabled
    from distml.ops.convert import cast, to_device
    index = _to_index(index)
    _check_index(x, index)
    needs_grad = is_grad_enabled() and (x.requires_grad or (isinstance(value, Tensor) and value.requires_grad))
    if isinstance(value, Tensor):
        value = to_device(value, x.device)
        value = cast(value, x.array.dtype) if value.array.dtype != x.array.dtype else value
    if not needs_grad:
        if x.requires_grad and x.grad_fn is None and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        x.array[index] = value.array if isinstance(value, Tensor) else value
        x._version[0] += 1
        return
    x._inplace(IndexPut.apply(x, value, index=index))


# ---- gather / scatter along a dim ----

def _prefix(shape, dim):
    """Slices that take the leading `shape` block of a larger array, keeping all of `dim`."""
    return tuple(slice(None) if d == dim else slice(0, s) for d, s in enumerate(shape))


def _block(shape):
    """Slices that take the leading `shape` block of a larger array."""
    return tuple(slice(0, s) for s in shape)


def _positions_along(shape, dim, index):
    """Flat positions in an array of `shape` of the elements that index (along dim) picks."""
    xp = get_array_module(index)
    grid = xp.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)[_prefix(index.shape, dim)]
    return xp.take_along_axis(grid, index, axis=dim)


class Gather(Primitive):
    saves_inputs = False

    def forward(self, x, dim, index):
        self.shape, self.dtype, self.dim, self.index = x.shape, x.dtype, dim, index
        return get_array_module(x).take_along_axis(x[_prefix(index.shape, dim)], index, axis=dim)

    def backward(self, grad):
        out = get_array_module(grad).zeros(self.shape, dtype=self.dtype)
        scatter_add_flat(out, _positions_along(self.shape, self.dim, self.index), grad)
        return out


class Scatter(Primitive):
    """x with src's leading block written (or added, with `add`) at index along dim."""
    saves_inputs = False

    def forward(self, x, src, dim, index, add):
        xp = get_array_module(x)
        self.dim, self.index, self.add = dim, index, add
        self.src_shape = getattr(src, "shape", None)
        out = x.copy()
        positions = _positions_along(x.shape, dim, index)
        values = src[_block(index.shape)] if self.src_shape else xp.broadcast_to(src, index.shape)
        if add:
            scatter_add_flat(out, positions, values)
        else:
            out.reshape(-1)[positions.reshape(-1)] = values.reshape(-1)
        self.positions = positions
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        grad_x = grad_src = None
        if self.needs_input_grad[0]:
            grad_x = grad
            if not self.add:
                grad_x = grad.copy()
                grad_x.reshape(-1)[self.positions.reshape(-1)] = 0
        if self.needs_input_grad[1]:
            grad_src = xp.zeros(self.src_shape, dtype=grad.dtype)
            grad_src[_block(self.index.shape)] = grad.reshape(-1)[self.positions]
        return grad_x, grad_src


def _check_gather_args(name, x, dim, index):
    if index.array.dtype not in (np.int32, np.int64):
        raise RuntimeError(f"{name}(): Expected dtype int32/int64 for index")
    if index.array.ndim != x.array.ndim and not (index.array.ndim <= 1 and x.array.ndim <= 1):
        raise RuntimeError(f"Index tensor must have the same number of dimensions as {'input' if name == 'gather' else 'self'} tensor")
    d = wrap_dim(dim, x.array.ndim)
    for i, (s, t) in enumerate(zip(index.array.shape, x.array.shape)):
        if i != d and s > t:
            raise RuntimeError(f"Size does not match at dimension {i} expected index {list(index.array.shape)} to be "
                               f"smaller than self {list(x.array.shape)} apart from dimension {d}")
    size = x.array.shape[d] if x.array.ndim else 1
    if index.array.size and (index.array.min() < -size or index.array.max() >= size):
        bad = index.array.max() if index.array.max() >= size else index.array.min()
        raise RuntimeError(f"index {bad} is out of bounds for dimension {d} with size {size}")
    return d


def _index_array(index, size):
    """The index's array with negative entries wrapped (PyTorch's gather wraps them too)."""
    data = index.array
    return data + size * (data < 0) if data.size and data.min() < 0 else data


@register(method=True)
def gather(x, dim, index):
    """Values of x picked along dim: out[i][j] = x[i][index[i][j]] for dim=1."""
    d = _check_gather_args("gather", x, dim, index)
    if x.array.ndim == 0:
        return GetItem.apply(x, index=index.array.reshape(()) if index.array.ndim else index.array)
    return Gather.apply(x, dim=d, index=_index_array(index, x.array.shape[d]))


def _scatter(x, dim, index, src, add):
    from distml.ops.convert import cast
    d = _check_gather_args("scatter", x, dim, index)
    if isinstance(src, Tensor):
        src = cast(src, x.array.dtype) if src.array.dtype != x.array.dtype else src
    return Scatter.apply(x, src, dim=d, index=_index_array(index, x.array.shape[d] if x.array.ndim else 1), add=add)


@register(method=True, inplace=True)
def scatter(x, dim, index, src=None, value=None):
    """x with src (or the scalar value) written at index along dim: out[i][index[i][j]] = src[i][j]."""
    return _scatter(x, dim, index, value if src is None else src, add=False)


@register(method=True, inplace=True)
@autocast_op(cuda="promote")
def scatter_add(x, dim, index, src):
    """x with src added at index along dim; repeated indices accumulate."""
    return _scatter(x, dim, index, src, add=True)


@register(method=True)
def index_select(x, dim, index):
    """The slices of x along dim given by a 1-D index: `x.index_select(0, idx)`."""
    if index.array.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index.array.dtype.kind not in "iu":
        raise IndexError(f"index_select(): Expected dtype int32/int64 for index but got: {index.dtype.name}")
    d = wrap_dim(dim, x.array.ndim)
    size = x.array.shape[d] if x.array.ndim else 1
    if index.array.size and (index.array.min() < 0 or index.array.max() >= size):
        raise IndexError(f"index out of range in self")
    return GetItem.apply(x, index=(slice(None),) * d + (index.array.reshape(-1),))


@register(method=True)
def take_along_dim(x, indices, dim):
    return gather(x, dim, indices)


@register(method=True)
def masked_select(x, mask):
    """The elements of x where mask is true, as a 1-D tensor."""
    from distml.ops.shape import expand
    shape = np.broadcast_shapes(x.array.shape, mask.array.shape)
    return getitem(expand(x, shape), get_array_module(mask.array).broadcast_to(mask.array, shape))


@register(method=True)
def nonzero(x, as_tuple=False):
    xp = get_array_module(x.array)
    found = xp.nonzero(x.array)
    if as_tuple:
        return tuple(Tensor(f.astype(np.int64)) for f in found)
    return Tensor(xp.stack(found, axis=1).astype(np.int64) if found else xp.zeros((1, 0), dtype=np.int64))
