"""Order statistics and scans: median, nanmedian, quantile, nanquantile, mode, kthvalue, aminmax,
nansum, nanmean, cumprod, cummax/cummin, logcumsumexp, renorm.

Selections find their indices without a gradient and gather the values (gather's backward
sends each gradient to the element chosen); cumprod and logcumsumexp are primitives."""
from collections import namedtuple

import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.amp.autocast_mode import autocast_op
from distml.autograd.function import Primitive
from distml.ops._util import normalize_dims, wrap_dim
from distml.ops.convert import cast
from distml.ops.elementwise import Where, div, mul
from distml.ops.index import gather
from distml.ops.reduce import amax, amin, norm, sum
from distml.ops.registry import register
from distml.ops.shape import movedim, reshape, squeeze, unsqueeze
from distml.tensor import Tensor

# The named tuples these ops return, named as torch.return_types.
median_type = namedtuple("median", ["values", "indices"])
nanmedian_type = namedtuple("nanmedian", ["values", "indices"])
mode_type = namedtuple("mode", ["values", "indices"])
kthvalue_type = namedtuple("kthvalue", ["values", "indices"])
aminmax_type = namedtuple("aminmax", ["min", "max"])
cummax_type = namedtuple("cummax", ["values", "indices"])
cummin_type = namedtuple("cummin", ["values", "indices"])


def _select(x, d, indices, keepdim, result_type):
    """(values, indices) of x picked along d at `indices` (keepdim-shaped int64 array)."""
    index = Tensor(indices)
    values = gather(x, d, index)
    if not keepdim:
        values, index = squeeze(values, d), squeeze(index, d)
    return result_type(values, index)


def _check_dim_nonempty(name, x, d):
    if x.array.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


def _median(name, x, dim, keepdim, ignore_nan):
    xp = get_array_module(x.array)
    if dim is None:
        if x.array.size == 0:
            return sum(x) * float("nan")
        flat = reshape(x, -1)
        picked = _median_positions(xp, flat.array[None], ignore_nan)
        return reshape(gather(flat, 0, Tensor(picked.reshape(1))), ())
    d = wrap_dim(dim, x.array.ndim)
    if x.array.ndim == 0:
        return (median_type if not ignore_nan else nanmedian_type)(x.clone(), Tensor(xp.zeros((), np.int64)))
    _check_dim_nonempty(name, x, d)
    moved = xp.moveaxis(x.array, d, -1)
    picked = _median_positions(xp, moved.reshape(-1, moved.shape[-1]), ignore_nan)
    indices = xp.moveaxis(picked.reshape(moved.shape[:-1] + (1,)), -1, d)
    return _select(x, d, indices, keepdim, nanmedian_type if ignore_nan else median_type)


def _median_positions(xp, rows, ignore_nan):
    """For each row: the index of its lower median (the first nan when a nan is there and
    counts, as PyTorch's median reports)."""
    order = xp.argsort(rows, axis=-1, kind="stable")
    n = rows.shape[-1]
    nans = xp.isnan(rows).sum(-1) if dtypes.is_float(rows.dtype) else xp.zeros(rows.shape[0], np.int64)
    if ignore_nan:
        rank = xp.maximum(n - nans - 1, 0) // 2
    else:
        rank = xp.where(nans > 0, n - nans, (n - 1) // 2)
    return xp.take_along_axis(order, rank[:, None], -1)[:, 0].astype(np.int64)


@register(method=True)
def median(input, dim=None, keepdim=False):
    """The lower median (of all elements, or (values, indices) along dim); nan if any is nan."""
    return _median("median", input, dim, keepdim, ignore_nan=False)


@register(method=True)
def nanmedian(input, dim=None, keepdim=False):
    """The lower median of the values that are not nan."""
    return _median("nanmedian", input, dim, keepdim, ignore_nan=True)


@register(method=True)
def kthvalue(input, k, dim=-1, keepdim=False):
    """(values, indices) of the k-th smallest element along dim (k counts from 1)."""
    xp = get_array_module(input.array)
    d = wrap_dim(dim, input.array.ndim)
    size = input.array.shape[d] if input.array.ndim else 1
    if not 1 <= k <= size:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
    if input.array.ndim == 0:
        return kthvalue_type(input.clone(), Tensor(xp.zeros((), np.int64)))
    order = xp.argsort(input.array, axis=d, kind="stable")
    indices = xp.take(order, [k - 1], axis=d).astype(np.int64)
    return _select(input, d, indices, keepdim, kthvalue_type)


@register(method=True)
def mode(input, dim=-1, keepdim=False):
    """(values, indices): the most frequent value along dim (the smallest among equally
    frequent ones) and the index of its last occurrence."""
    xp = get_array_module(input.array)
    d = wrap_dim(dim, input.array.ndim)
    if input.array.ndim == 0:
        return mode_type(input.clone(), Tensor(xp.zeros((), np.int64)))
    _check_dim_nonempty("mode", input, d)
    moved = np.moveaxis(input.array if xp is np else input.array.get(), d, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    picked = np.empty(rows.shape[0], np.int64)
    for r, row in enumerate(rows):
        values, counts = np.unique(row, return_counts=True)
        best = values[np.argmax(counts)]
        picked[r] = row.shape[0] - 1 - np.flatnonzero(row[::-1] == best)[0]
    indices = xp.asarray(np.moveaxis(picked.reshape(moved.shape[:-1] + (1,)), -1, d))
    return _select(input, d, indices, keepdim, mode_type)


@register(method=True)
def aminmax(input, *, dim=None, keepdim=False):
    """(min, max) of all elements or along dim."""
    extent = () if dim is None else dim
    if dim is None and keepdim:
        extent = tuple(range(input.array.ndim))
    return aminmax_type(amin(input, extent, keepdim), amax(input, extent, keepdim))


# ---- quantiles ----

_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(name, input, q, dim, keepdim, interpolation, ignore_nan):
    if input.array.dtype not in (np.float32, np.float64):
        raise RuntimeError(f"{name}() input tensor must be either float or double dtype")
    if interpolation not in _INTERPOLATIONS:
        raise RuntimeError(f"{name}() interpolation must be one of linear, lower, higher, midpoint or nearest, "
                           f"but got {interpolation}")
    xp = get_array_module(input.array)
    scalar_q = not isinstance(q, Tensor)
    if scalar_q:
        if not 0 <= q <= 1:
            raise RuntimeError(f"{name}() q must be in the range [0, 1] but got {q}")
        qs = xp.asarray([q], dtype=np.float64)
    else:
        if q.array.ndim > 1:
            raise RuntimeError(f"{name}() q must be a scalar or 1D tensor")
        if q.array.dtype != input.array.dtype:
            raise RuntimeError(f"{name}() q tensor must be same dtype as the input tensor")
        qs = q.array.reshape(-1).astype(np.float64)
        if qs.size and bool(((qs < 0) | (qs > 1)).any()):
            raise RuntimeError(f"{name}() q values must be in the range [0, 1]")
    if input.array.size == 0:
        raise RuntimeError(f"{name}() input tensor must be non-empty")
    if dim is None:
        rows, d = reshape(input, -1), None
    else:
        d = wrap_dim(dim, input.array.ndim)
        rows = movedim(input, d, -1) if input.array.ndim else reshape(input, 1)
    order = xp.argsort(rows.array, axis=-1, kind="stable")
    ordered = gather(rows, -1, Tensor(order))
    n = rows.array.shape[-1]
    nans = xp.isnan(rows.array).sum(-1, keepdims=True)
    valid = (n - nans) if ignore_nan else xp.full_like(nans, n)
    position = qs * (valid - 1)  # (..., Q)
    low, high = xp.floor(position), xp.ceil(position)
    if interpolation == "nearest":
        low = high = xp.round(position)
    low_index = Tensor(xp.clip(low, 0, n - 1).astype(np.int64))
    high_index = Tensor(xp.clip(high, 0, n - 1).astype(np.int64))
    below = gather(ordered, -1, low_index)
    if interpolation in ("lower", "nearest"):
        out = below
    else:
        above = gather(ordered, -1, high_index)
        if interpolation == "higher":
            out = above
        else:
            weight = 0.5 if interpolation == "midpoint" else Tensor((position - low).astype(input.array.dtype))
            out = below + (above - below) * weight
    if not ignore_nan:
        has_nan = xp.broadcast_to(nans > 0, out.array.shape)
        out = Where.apply(Tensor(xp.full((), np.nan, dtype=input.array.dtype)), out, condition=has_nan)
    out = movedim(out, -1, 0)  # (Q, ...)
    if keepdim:
        out = reshape(out, (out.array.shape[0],) + (1,) * input.array.ndim) if d is None else unsqueeze(out, d + 1)
    return reshape(out, out.array.shape[1:]) if scalar_q else out


@register(method=True)
@autocast_op(cpu="float32")
def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The q-th quantiles (q a number or a 1-D tensor in [0, 1]) of all elements or along dim;
    nan where a nan is involved. A tensor q adds a leading dim."""
    return _quantile("quantile", input, q, dim, keepdim, interpolation, ignore_nan=False)


@register(method=True)
@autocast_op(cpu="float32")
def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """Like quantile, over the values that are not nan."""
    return _quantile("nanquantile", input, q, dim, keepdim, interpolation, ignore_nan=True)


# ---- sums and means that skip nan ----

def _without_nan(x):
    if not dtypes.is_float(x.array.dtype):
        return x
    xp = get_array_module(x.array)
    return Where.apply(Tensor(xp.zeros((), dtype=x.array.dtype)), x, condition=xp.isnan(x.array))


@register(method=True)
def nansum(input, dim=None, keepdim=False, *, dtype=None):
    """The sum, counting nan as zero."""
    return sum(_without_nan(input), dim, keepdim, dtype=dtype)


@register(method=True)
def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    """The mean of the values that are not nan (nan where there are none)."""
    if dtype is not None:
        input = cast(input, dtype)
    if not dtypes.is_float(input.array.dtype):
        raise RuntimeError("nanmean(): expected input to have floating point or complex dtype but got "
                           f"{input.dtype.legacy_name}")
    xp = get_array_module(input.array)
    count = Tensor(xp.asarray((~xp.isnan(input.array)).sum(axis=normalize_dims(dim, input.array.ndim),
                                                           keepdims=keepdim), dtype=input.array.dtype))
    with np.errstate(divide="ignore", invalid="ignore"):
        return div(nansum(input, dim, keepdim), count)


# ---- scans ----

class CumProd(Primitive):
    """Running product along dim. Backward is exact with zeros: grad_x[k] = (prod of x before k)
    * S[k], where S[k] = grad[k] + x[k+1] * S[k+1] sums the products after k."""

    def forward(self, x, dim, dtype):
        xp = get_array_module(x)
        self.x, self.dim = x, dim
        if dtype is None and x.dtype.kind in "biu":
            dtype = np.int64
        wide = np.float32 if x.dtype == dtypes.bfloat16.np and dtype is None else dtype
        return xp.cumprod(x, axis=dim, dtype=wide).astype(dtype or x.dtype, copy=False)

    def backward(self, grad):
        xp = get_array_module(grad)
        x = xp.moveaxis(self.x, self.dim, 0).astype(grad.dtype)
        g = xp.moveaxis(grad, self.dim, 0)
        before = xp.concatenate([xp.ones_like(x[:1]), xp.cumprod(x[:-1], axis=0)], axis=0)
        after = xp.empty_like(g)
        running = xp.zeros_like(g[0]) if g.shape[0] else None
        for k in range(g.shape[0] - 1, -1, -1):
            running = g[k] + (x[k + 1] * running if k + 1 < g.shape[0] else 0)
            after[k] = running
        return xp.moveaxis(before * after, 0, self.dim)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def cumprod(input, dim, *, dtype=None):
    """Running product along dim: `x.cumprod(0)`."""
    d = wrap_dim(dim, input.array.ndim)
    if input.array.ndim == 0:
        return input.clone() if dtype is None else cast(input, dtype)
    return CumProd.apply(input, dim=d, dtype=dtypes.to_numpy(dtype))


def _cumulative_extreme(x, dim, take_max):
    xp = get_array_module(x.array)
    d = wrap_dim(dim, x.array.ndim)
    result = cummax_type if take_max else cummin_type
    if x.array.ndim == 0:
        return result(x.clone(), Tensor(xp.zeros((), np.int64)))
    data = x.array.astype(np.int64) if x.array.dtype == np.bool_ else x.array
    running = (xp.maximum if take_max else xp.minimum).accumulate(data, axis=d)  # nan, once seen, stays
    shape = [1] * data.ndim
    shape[d] = data.shape[d]
    positions = xp.arange(data.shape[d], dtype=np.int64).reshape(shape)
    hits = (data == running) | (xp.isnan(data) if dtypes.is_float(data.dtype) else False)
    indices = xp.maximum.accumulate(xp.where(hits, positions, 0), axis=d)
    return result(gather(x, d, Tensor(indices)), Tensor(indices))


@register(method=True)
def cummax(input, dim):
    """(values, indices): the running maximum along dim and where it was last reached."""
    return _cumulative_extreme(input, dim, True)


@register(method=True)
def cummin(input, dim):
    """(values, indices): the running minimum along dim and where it was last reached."""
    return _cumulative_extreme(input, dim, False)


class LogCumSumExp(Primitive):
    """log(cumsum(exp(x))) along dim, by logaddexp.accumulate (no overflow); backward sums the
    positive and negative parts of the gradient in log space for the same reason."""
    saves_output = True

    def forward(self, x, dim):
        xp = get_array_module(x)
        self.x, self.dim = x, dim
        self.out = xp.logaddexp.accumulate(x, axis=dim)
        return self.out

    def backward(self, grad):
        xp, d = get_array_module(grad), self.dim
        out = 0
        with np.errstate(divide="ignore", invalid="ignore"):
            for sign in (1, -1):
                part = xp.flip(xp.log(xp.maximum(sign * grad, 0)) - self.out, d)
                tail = xp.flip(xp.logaddexp.accumulate(part, axis=d), d)  # log of the sum over later positions
                out = out + sign * xp.exp(self.x + tail)
        return out


@register(method=True)
def logcumsumexp(input, dim):
    """log(cumsum(exp(input))) along dim, without overflow."""
    from distml.ops.elementwise import _float_input
    x = _float_input(input)
    d = wrap_dim(dim, x.array.ndim)
    if x.array.ndim == 0:
        return x.clone()
    return LogCumSumExp.apply(x, dim=d)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def renorm(input, p, dim, maxnorm):
    """input with each slice along dim whose p-norm exceeds maxnorm scaled down to maxnorm."""
    if p <= 0:
        raise RuntimeError("renorm: non-positive-norm not supported")
    if maxnorm < 0:
        raise RuntimeError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm}")
    d = wrap_dim(dim, input.array.ndim)
    others = tuple(i for i in range(input.array.ndim) if i != d)
    norms = norm(input, p, others, keepdim=True)
    xp = get_array_module(input.array)
    over = norms.array > maxnorm
    factor = Where.apply(maxnorm / (norms + 1e-7), Tensor(xp.ones((), dtype=input.array.dtype)), condition=over)
    return mul(input, factor)
