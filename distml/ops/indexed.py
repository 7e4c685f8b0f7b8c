"""Writing into a tensor at indices: index_add, index_copy, index_fill, masked_scatter, put and
scatter_reduce. The first ones are composed from scatter, where and index_put; scatter_reduce
is a primitive (its gradient depends on the reduction)."""
import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.ops._util import wrap_dim
from distml.ops.convert import cast
from distml.ops.elementwise import Where, mul
from distml.ops.index import IndexPut, _check_gather_args, _index_array, _positions_along, _scatter, getitem
from distml.ops.registry import register
from distml.ops.shape import expand, reshape
from distml.tensor import Tensor


def _index_dim(x, dim, index, bad_rank, bad_dtype):
    """dim as an axis; `bad_rank` / `bad_dtype` are PyTorch's errors for a 2-D or a non-integer index."""
    d = wrap_dim(dim, x.array.ndim)
    if index.array.ndim > 1:
        raise bad_rank
    if index.array.dtype.kind not in "iu":
        raise bad_dtype
    return d


def _check_bounds(x, d, index, error, prefix=""):
    size = x.array.shape[d] if x.array.ndim else 1
    if index.array.size and (index.array.min() < -size or index.array.max() >= size):
        bad = int(index.array.max() if index.array.max() >= size else index.array.min())
        raise error(f"{prefix}index {bad} is out of bounds for dimension {d} with size {size}")


def _along(source, d):
    return source.array.shape[d] if source.array.ndim else 1


def _spread(index, d, shape):
    """A 1-D index along d as a scatter index of `shape` (index[i] at every position of slice i)."""
    xp = get_array_module(index.array)
    view = [1] * len(shape)
    if shape:
        view[d] = -1
    data = index.array.astype(np.int64).reshape(view) if shape else index.array.astype(np.int64).reshape(())
    return Tensor(xp.ascontiguousarray(xp.broadcast_to(data, shape)))


@register(method=True, inplace=True)
def index_add(input, dim, index, source, *, alpha=1):
    """input with alpha * source's slices added at `index` along dim (repeats accumulate)."""
    d = _index_dim(input, dim, index, IndexError(
        f"index_add_(): Index is supposed to be a vector, but got dim: {index.array.ndim} with type: "
        f"{index.dtype.legacy_name} and size: {list(index.array.shape)}"), RuntimeError(
        f"index_add_(): Expected dtype int32/int64 for index but got: {index.dtype.legacy_name}"))
    if index.array.size != _along(source, d):
        raise RuntimeError(f"index_add_(): Number of indices ({index.array.size}) should be equal to "
                           f"source.size(dim): ({_along(source, d)}), for dim: {d}")
    _check_bounds(input, d, index, RuntimeError)
    source = source if alpha == 1 else mul(source, alpha)
    return _scatter(input, d, _spread(index, d, source.array.shape), source, add=True)


@register(method=True, inplace=True)
def index_copy(input, dim, index, source):
    """input with source's slices written at `index` along dim."""
    d = _index_dim(input, dim, index, IndexError(
        f"index_copy_(): Index should have dimension 1 or 0 (got {index.array.ndim})"), RuntimeError(
        f"index_copy_(): Expected a long tensor for index, but got {index.dtype.legacy_name}"))
    if index.array.size != _along(source, d):
        raise IndexError(f"index_copy_(): Number of indices ({index.array.size}) should be equal to "
                         f"source.size(dim) ({_along(source, d)})")
    _check_bounds(input, d, index, IndexError, "index_copy_(): ")
    return _scatter(input, d, _spread(index, d, source.array.shape), source, add=False)


@register(method=True, inplace=True)
def index_fill(input, dim, index, value):
    """input with the slices at `index` along dim set to value (a number or 0-d tensor)."""
    d = _index_dim(input, dim, index, RuntimeError("Index has to be a vector/scalar"),
                   IndexError("index_fill_(): Expected dtype int64 for index."))
    _check_bounds(input, d, index, IndexError)
    if isinstance(value, Tensor):
        if value.array.ndim:
            raise RuntimeError("index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.array.ndim} dimension(s).")
        value = cast(value, input.array.dtype)
    else:
        value = Tensor(get_array_module(input.array).asarray(value, dtype=input.array.dtype))
    xp = get_array_module(input.array)
    chosen = xp.zeros(input.array.shape[d] if input.array.ndim else 1, dtype=bool)
    chosen[index.array] = True
    shape = [1] * input.array.ndim
    if shape:
        shape[d] = -1
    return Where.apply(value, input, condition=chosen.reshape(shape) if shape else chosen.reshape(()))


@register(method=True, inplace=True)
def masked_scatter(input, mask, source):
    """input with source's leading elements, in order, written where mask (broadcast) is true."""
    from distml.ops._util import broadcast_shapes
    if mask.array.dtype != np.bool_:
        raise RuntimeError(f"masked_scatter_ only supports boolean masks, but got mask with dtype "
                           f"{mask.dtype.name}")
    shape = broadcast_shapes(input.array.shape, mask.array.shape)
    xp = get_array_module(input.array)
    where = xp.broadcast_to(mask.array, shape)
    count = int(where.sum())
    if source.array.size < count:
        raise RuntimeError("Number of elements of source < number of ones in mask")
    values = getitem(reshape(source, -1), slice(0, count))
    values = cast(values, input.array.dtype) if values.array.dtype != input.array.dtype else values
    base = expand(input, shape) if shape != input.array.shape else input
    return IndexPut.apply(base, values, index=xp.ascontiguousarray(where))


@register(method=True, inplace=True)
def put(input, index, source, accumulate=False):
    """input treated as 1-d, with source written (or added) at `index`."""
    if index.array.dtype.kind not in "iu":
        raise RuntimeError("put_(): Expected a long tensor for index")
    if index.array.size != source.array.size:
        raise RuntimeError(f"put_(): Expected source and index to have the same number of elements, but got "
                           f"source.numel() = {source.array.size}, index.numel() = {index.array.size}")
    flat = reshape(input, -1)
    size = flat.array.shape[0]
    data = index.array.reshape(-1)
    if data.size and (data.max() >= size or data.min() < -size):
        bad = int(data.max() if data.max() >= size else data.min())
        raise IndexError(f"out of range: tried to access index {bad} on a tensor of {size} elements.")
    out = _scatter(flat, 0, Tensor(data + size * (data < 0)), reshape(source, -1), add=accumulate)
    return reshape(out, input.array.shape)


# ---- scatter_reduce ----

_REDUCES = ("sum", "prod", "mean", "amax", "amin")


class ScatterReduce(Primitive):
    """x with src reduced (sum, prod, mean, amax or amin) into the positions index picks along
    dim; include_self says whether x's own values take part."""

    def forward(self, x, src, dim, index, reduce, include_self):
        xp = get_array_module(x)
        positions = _positions_along(x.shape, dim, index).reshape(-1)
        values = src[tuple(slice(0, s) for s in index.shape)].reshape(-1)
        self.x, self.values, self.positions = x, values, positions
        self.reduce, self.include_self = reduce, include_self
        self.src_shape, self.index_shape = src.shape, index.shape
        self.hit = xp.zeros(x.size, dtype=bool)
        self.hit[positions] = True
        wide = np.float32 if x.dtype == dtypes.bfloat16.np else x.dtype
        out = x.astype(wide).reshape(-1)
        if not include_self:
            out[self.hit] = _identity(reduce, x.dtype)
        ufunc = {"sum": xp.add, "mean": xp.add, "prod": xp.multiply, "amax": xp.maximum, "amin": xp.minimum}[reduce]
        ufunc.at(out, positions, values.astype(wide))
        if reduce == "mean":
            self.count = xp.full(x.size, 1 if include_self else 0, dtype=np.int64)
            xp.add.at(self.count, positions, 1)
            divisor = xp.maximum(self.count, 1)
            out = out / divisor if dtypes.is_float(x.dtype) else out // divisor
        self.out = out.astype(x.dtype).reshape(x.shape)
        return self.out

    def backward(self, grad):
        xp = get_array_module(grad)
        g = grad.reshape(-1)
        positions, reduce = self.positions, self.reduce
        x, values, out = self.x.reshape(-1), self.values, self.out.reshape(-1)
        grad_x = grad_src = None
        if reduce == "sum":
            own, picked = g * (self.include_self | ~self.hit), g[positions]
        elif reduce == "mean":
            share = g / xp.maximum(self.count, 1)
            own, picked = share * (self.include_self | ~self.hit), share[positions]
        elif reduce == "prod":
            own, picked = self._prod_grads(xp, g, x, values, positions)
        else:
            winners_x = (x == out) & (self.include_self | ~self.hit)
            winners_src = values == out[positions]
            ties = winners_x.astype(g.dtype)
            xp.add.at(ties, positions, winners_src.astype(g.dtype))
            share = g / xp.maximum(ties, 1)
            own = share * winners_x
            picked = xp.where(winners_src, share[positions], 0)
        if self.needs_input_grad[0]:
            grad_x = own.reshape(self.x.shape).astype(grad.dtype, copy=False)
        if self.needs_input_grad[1]:
            grad_src = xp.zeros(self.src_shape, dtype=grad.dtype)
            grad_src[tuple(slice(0, s) for s in self.index_shape)] = picked.reshape(self.index_shape)
        return grad_x, grad_src

    def _prod_grads(self, xp, g, x, values, positions):
        """Gradients of a product: for each factor, the product of the others (exact with zeros)."""
        size = x.shape[0]
        factors_self = self.include_self | ~self.hit
        zeros = xp.where(factors_self, x == 0, False).astype(np.int64)
        xp.add.at(zeros, positions, (values == 0).astype(np.int64))
        nonzero = xp.where(factors_self & (x != 0), x, 1).astype(g.dtype)
        xp.multiply.at(nonzero, positions, xp.where(values != 0, values, 1).astype(g.dtype))

        def others(own_values, at):
            """The product of the other factors at position `at` of a factor `own_values`."""
            z, p = zeros[at], nonzero[at]
            with np.errstate(divide="ignore", invalid="ignore"):
                return xp.where(z == 0, p / xp.where(own_values == 0, 1, own_values),
                                xp.where((z == 1) & (own_values == 0), p, 0))
        own = xp.where(factors_self, g * others(x, xp.arange(size)), 0)
        return own, g[positions] * others(values, positions)


def _identity(reduce, dtype):
    """The value that leaves `reduce` unchanged, in dtype's range."""
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if dtypes.is_float(dtype):
        return -np.inf if reduce == "amax" else np.inf
    if dtype == np.bool_:
        return reduce == "amin"
    return np.iinfo(dtype).min if reduce == "amax" else np.iinfo(dtype).max


@register(method=True, inplace=True)
def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """input with src reduced into the positions index picks along dim:
    `x.scatter_reduce(0, idx, src, reduce="amax", include_self=False)`."""
    if reduce not in _REDUCES:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    d = _check_gather_args("scatter", input, dim, index)
    if src.array.dtype != input.array.dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    size = input.array.shape[d] if input.array.ndim else 1
    return ScatterReduce.apply(input, src, dim=d, index=_index_array(index, size), reduce=reduce,
                               include_self=include_self)
