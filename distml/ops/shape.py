"""Views and shape changes, and indexing (read and write)."""
import numpy as np

from distml._backend import C, get_array_module
from distml.autograd.function import Primitive
from distml.ops._util import normalize_dims
from distml.tensor import Tensor


class Reshape(Primitive):
    saves_inputs = False
    is_view = True

    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.shape)


class Permute(Primitive):
    saves_inputs = False
    is_view = True

    def forward(self, x, dims):
        self.dims = dims
        return x.transpose(dims)

    def backward(self, grad):
        return grad.transpose(np.argsort(self.dims))


class Expand(Primitive):
    saves_inputs = False
    is_view = True

    def forward(self, x, shape):
        self.shape = x.shape
        return get_array_module(x).broadcast_to(x, shape)

    def backward(self, grad):
        from distml.ops._util import unbroadcast
        return unbroadcast(grad, self.shape)


def _infer_shape(shape, numel):
    shape = list(shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
    shape = [int(s) for s in shape]
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
        shape[shape.index(-1)] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
    return tuple(shape)


def reshape(x, *shape):
    """x with a new shape (a view when possible): `x.reshape(2, -1)`."""
    shape = _infer_shape(shape, x.data.size)
    return x if shape == x.data.shape else Reshape.apply(x, shape=shape)


def view(x, *shape):
    """Like reshape, but only ever a view: non-contiguous inputs raise as in PyTorch."""
    shape = _infer_shape(shape, x.data.size)
    try:
        x.data.view().shape = shape  # numpy refuses exactly when no view exists
    except AttributeError:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                           "dimension spans across two contiguous subspaces). Use .reshape(...) instead.") from None
    return Reshape.apply(x, shape=shape)


def permute(x, *dims):
    dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
    if len(dims) != x.data.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {x.data.ndim} is not "
                           f"equal to len(dims) = {len(dims)}")
    return Permute.apply(x, dims=normalize_dims(dims, x.data.ndim))


def transpose(x, dim0, dim1):
    dims = list(range(x.data.ndim))
    if x.data.ndim == 0:
        normalize_dims((dim0, dim1) if dim0 != dim1 else dim0, 0)
        return x
    d0, d1 = normalize_dims(dim0, x.data.ndim)[0], normalize_dims(dim1, x.data.ndim)[0]
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(x, dims=tuple(dims))


def expand(x, *sizes):
    sizes = sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    if len(sizes) < x.data.ndim:
        raise RuntimeError(f"expand(distml.{x.dtype.name}{{{list(x.data.shape)}}}, size={list(sizes)}): the number "
                           "of sizes provided must be greater or equal to the number of dimensions in the tensor")
    offset = len(sizes) - x.data.ndim
    shape = []
    for i, s in enumerate(sizes):
        old = x.data.shape[i - offset] if i >= offset else 1
        if s == -1:
            if i < offset:
                raise RuntimeError("The expanded size of the tensor (-1) isn't allowed in a leading, non-existing dimension")
            s = old
        elif old != 1 and old != s:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing size ({old}) at "
                               f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: {list(x.data.shape)}")
        shape.append(int(s))
    shape = tuple(shape)
    return x if shape == x.data.shape else Expand.apply(x, shape=shape)


# ---- indexing ----

def _to_index(index):
    """A Python/Tensor index as a numpy-style index (Tensors become their arrays)."""
    if isinstance(index, tuple):
        return tuple(_to_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray([i.item() if isinstance(i, Tensor) else i for i in index])
    return index


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice, np.integer)) for p in parts)


def _scatter_add(target, flat_positions, values):
    """target.flat[positions] += values, repeats accumulating (the _C kernel on the CPU)."""
    if isinstance(target, np.ndarray):
        C.scatter_add(target.reshape(-1), np.ascontiguousarray(flat_positions.reshape(-1), dtype=np.int64),
                      np.ascontiguousarray(values.reshape(-1), dtype=target.dtype))
    else:
        get_array_module(target).add.at(target.reshape(-1), flat_positions.reshape(-1), values.reshape(-1))


class GetItem(Primitive):
    saves_inputs = False
    is_view = True

    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        return x[index]

    def backward(self, grad):
        xp = get_array_module(grad)
        out = xp.zeros(self.shape, dtype=self.dtype)
        if _is_basic(self.index):
            out[self.index] = grad
        else:
            positions = xp.arange(out.size).reshape(self.shape)[self.index]
            _scatter_add(out, positions, xp.broadcast_to(grad, positions.shape))
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
            from distml.ops._util import unbroadcast
            grad_value = unbroadcast(grad[self.index], self.value_shape)
        return grad_x, grad_value


def _check_index(x, index):
    parts = index if isinstance(index, tuple) else (index,)
    dim = 0
    for p in parts:
        if p is None:
            continue
        if p is Ellipsis:
            dim = x.data.ndim - sum(1 for q in parts if q is not None and q is not Ellipsis)
            continue
        if isinstance(p, (int, np.integer)) and not isinstance(p, bool):
            if dim >= x.data.ndim:
                raise IndexError(f"too many indices for tensor of dimension {x.data.ndim}")
            size = x.data.shape[dim]
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
    from distml.ops.convert import cast
    index = _to_index(index)
    _check_index(x, index)
    needs_grad = is_grad_enabled() and (x.requires_grad or (isinstance(value, Tensor) and value.requires_grad))
    if isinstance(value, Tensor):
        value = cast(value, x.data.dtype) if value.data.dtype != x.data.dtype else value
    if not needs_grad:
        if x.requires_grad and x.grad_fn is None and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        x.data[index] = value.data if isinstance(value, Tensor) else value
        x._version[0] += 1
        return
    x._inplace(IndexPut.apply(x, value, index=index))
