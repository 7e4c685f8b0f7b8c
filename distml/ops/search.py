"""Finding and counting values: unique, unique_consecutive, searchsorted, bucketize, bincount,
histc, isin, argwhere. Their outputs are indices or counts, so none records a gradient."""
import numpy as np

from distml import dtypes, return_types
from distml._backend import get_array_module
from distml.ops._util import wrap_dim
from distml.ops.registry import register
from distml.tensor import Tensor


def _as_array(value, like):
    """A Tensor's array, or a Python number as a 0-d array on like's device."""
    if isinstance(value, Tensor):
        return value.array
    return get_array_module(like).asarray(value)


def _unique_results(values, inverse, counts, return_inverse, return_counts):
    out = (Tensor(values),)
    if return_inverse:
        out += (Tensor(inverse.astype(np.int64)),)
    if return_counts:
        out += (Tensor(counts.astype(np.int64)),)
    return out[0] if len(out) == 1 else out


@register(method=True)
def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values, with where each element went and how often each occurs:
    `values, inverse, counts = distml.unique(x, return_inverse=True, return_counts=True)`.
    The values come sorted whatever `sorted` says (PyTorch's CPU kernel sorts them too)."""
    xp = get_array_module(input.array)
    if dim is None:
        values, inverse, counts = xp.unique(input.array.reshape(-1), return_inverse=True, return_counts=True,
                                            equal_nan=False)
        inverse = inverse.reshape(input.array.shape)
    else:
        d = wrap_dim(dim, input.array.ndim)
        if input.array.shape[d] == 0:
            return _unique_results(input.array, xp.zeros(0, np.int64), xp.zeros(0, np.int64),
                                   return_inverse, return_counts)
        values, inverse, counts = xp.unique(input.array, return_inverse=True, return_counts=True, axis=d)
        inverse = inverse.reshape(-1)
    return _unique_results(values, inverse, counts, return_inverse, return_counts)


@register(method=True)
def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """Each run of equal consecutive values (or slices along dim) reduced to one."""
    xp = get_array_module(input.array)
    if dim is None:
        data = input.array.reshape(-1)
        starts = xp.concatenate([xp.ones(min(data.size, 1), bool), data[1:] != data[:-1]])
    else:
        d = wrap_dim(dim, input.array.ndim)
        data = xp.moveaxis(input.array, d, 0)
        changed = (data[1:] != data[:-1]).reshape(max(data.shape[0] - 1, 0), -1).any(axis=1)
        starts = xp.concatenate([xp.ones(min(data.shape[0], 1), bool), changed])
    inverse = xp.cumsum(starts) - 1
    positions = xp.flatnonzero(starts)
    counts = xp.diff(xp.concatenate([positions, xp.asarray([starts.shape[0]])]))
    values = data[positions] if dim is None else xp.moveaxis(data[positions], 0, d)
    if dim is None:
        inverse = inverse.reshape(input.array.shape)
    return _unique_results(xp.ascontiguousarray(values), inverse, counts, return_inverse, return_counts)


def _search_error(boundaries, values):
    return RuntimeError("torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 dimensions "
                        "of boundaries tensor and input value tensor must match, but we got boundaries tensor "
                        f"{list(boundaries.shape)} and input value tensor {list(values.shape)}")


@register()
def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None, sorter=None):
    """Where each value would be inserted to keep sorted_sequence (1-D, or sorted along its
    last dim with leading dims matching input's) sorted: `distml.searchsorted(edges, x)`."""
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, got side of left "
                               "while right was True")
        right = side == "right"
    boundaries = sorted_sequence.array
    xp = get_array_module(boundaries)
    scalar = not isinstance(input, Tensor)
    values = _as_array(input, boundaries)
    if sorter is not None:
        if sorter.array.shape != boundaries.shape:
            raise RuntimeError(f"torch.searchsorted(): boundary and sorter must have the same size, but got boundary "
                               f"tensor {list(boundaries.shape)}and got sorter tensor {list(sorter.array.shape)}")
        boundaries = xp.take_along_axis(boundaries, sorter.array, axis=-1)
    if boundaries.ndim != 1 and (scalar or boundaries.shape[:-1] != values.shape[:-1]):
        raise _search_error(boundaries, values)
    side = "right" if right else "left"
    if boundaries.ndim == 1:
        out = xp.searchsorted(boundaries, values, side=side)
    else:
        rows_b = boundaries.reshape(-1, boundaries.shape[-1])
        rows_v = values.reshape(-1, values.shape[-1])
        out = xp.stack([xp.searchsorted(b, v, side=side) for b, v in zip(rows_b, rows_v)]).reshape(values.shape) \
            if rows_v.shape[0] else xp.zeros(values.shape, np.int64)
    return Tensor(xp.asarray(out, dtype=np.int32 if out_int32 else np.int64))


@register()
def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The index of the bucket (between consecutive 1-D boundaries) each value falls in."""
    if boundaries.array.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({boundaries.array.ndim})")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


@register(method=True)
def bincount(input, weights=None, minlength=0):
    """How often each non-negative integer occurs in a 1-D tensor (or the sum of its weights)."""
    data = input.array
    if dtypes.is_float(data.dtype):
        raise NotImplementedError(f"\"bincount_cpu\" not implemented for '{input.dtype.legacy_name}'")
    if data.ndim != 1 or (data.size and data.min() < 0):
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    xp = get_array_module(data)
    if weights is None:
        return Tensor(xp.bincount(data, minlength=minlength).astype(np.int64))
    if weights.array.ndim != 1 or weights.array.shape[0] != data.shape[0]:
        raise RuntimeError("weights should be 1-d and have the same length as input")
    dtype = np.float32 if weights.array.dtype == np.float32 else np.float64
    return Tensor(xp.bincount(data, weights.array.astype(np.float64), minlength=minlength).astype(dtype))


@register(method=True)
def histc(input, bins=100, min=0, max=0):
    """A histogram of `bins` equal bins over [min, max] (the data's range when both are 0);
    values outside are ignored and max itself counts in the last bin."""
    data = input.array
    if not dtypes.is_float(data.dtype):
        raise NotImplementedError(f"\"histogram_cpu\" not implemented for '{input.dtype.legacy_name}'")
    if bins <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
    if max < min:
        raise RuntimeError("torch.histc: max must be larger than min")
    xp = get_array_module(data)
    wide = data.astype(np.float64).reshape(-1)
    low, high = float(min), float(max)
    if low == high and wide.size:
        finite = wide[xp.isfinite(wide)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (low, high)
    if low == high:
        low, high = low - 1, high + 1
    inside = wide[(wide >= low) & (wide <= high)]
    index = xp.minimum(((inside - low) * bins / (high - low)).astype(np.int64), bins - 1)
    return Tensor(xp.bincount(index, minlength=bins).astype(data.dtype))


@register(method=True)
def histogram(input, bins=100, *, range=None, weight=None, density=False):
    """(hist, bin_edges): counts (or weights) in `bins` equal bins over `range` (the data's by
    default), or in the bins a 1-d tensor of increasing edges gives; the last bin includes its
    right edge. `density=True` divides by the total and the bin widths."""
    data = input.array
    if not dtypes.is_float(data.dtype):
        raise NotImplementedError(f"\"histogramdd\" not implemented for '{input.dtype.legacy_name}'")
    xp = get_array_module(data)
    edges = bins.array.astype(np.float64) if isinstance(bins, Tensor) else bins
    if isinstance(edges, int) and edges <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {edges} for dimension 0")
    hist, edges = xp.histogram(data.astype(np.float64).reshape(-1), bins=edges, range=range, density=density,
                               weights=None if weight is None else weight.array.astype(np.float64).reshape(-1))
    return return_types.histogram(Tensor(hist.astype(data.dtype)), Tensor(edges.astype(data.dtype)))


@register()
def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """True where an element of `elements` is among `test_elements` (either may be a number)."""
    if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
        raise TypeError("isin() expected at least one of elements and test_elements to be a Tensor")
    like = (elements if isinstance(elements, Tensor) else test_elements).array
    xp = get_array_module(like)
    a, b = _as_array(elements, like), _as_array(test_elements, like)
    return Tensor(xp.asarray(xp.isin(a, b, assume_unique=assume_unique, invert=invert)))


@register(method=True)
def argwhere(input):
    """The indices of the non-zero elements, one row each: (N, input.ndim)."""
    xp = get_array_module(input.array)
    return Tensor(xp.argwhere(input.array).astype(np.int64))
