"""Shape and layout helpers composed from the view, cat and index primitives: broadcast_to and
friends, atleast_nd, h/v/d/column_stack, tensor_split and h/v/dsplit, rot90, fliplr/flipud,
repeat_interleave, diff, take, narrow_copy."""
import numpy as np

from distml._backend import get_array_module
from distml.ops._util import broadcast_shapes as _broadcast_two, wrap_dim
from distml.ops.compare import logical_xor
from distml.ops.elementwise import sub
from distml.ops.index import GetItem, getitem
from distml.ops.registry import register
from distml.ops.shape import _pieces, cat, expand, flip, movedim, narrow, reshape, transpose
from distml.tensor import Size, Tensor


# ---- broadcasting ----

@register(method=True)
def broadcast_to(input, size):
    """input expanded (a view) to `size`: `distml.broadcast_to(x, (3, 4))`."""
    return expand(input, tuple(size))


@register()
def broadcast_shapes(*shapes):
    """The shape that tensors of the given shapes broadcast to: `distml.broadcast_shapes((2, 1), (3,))`."""
    result = ()
    for i, shape in enumerate(shapes):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        ndim = max(len(result), len(shape))
        padded_r, padded_s = (1,) * (ndim - len(result)) + result, (1,) * (ndim - len(shape)) + shape
        for d in range(ndim - 1, -1, -1):
            r, s = padded_r[d], padded_s[d]
            if r != s and r != 1 and s != 1:
                raise RuntimeError(f"Attempting to broadcast a dimension of length {s} at {d - ndim}! Mismatching "
                                   f"argument at index {i} had {shape}; but expected shape should be broadcastable "
                                   f"to {list(result)}")
        result = tuple(s if r == 1 else r for r, s in zip(padded_r, padded_s))
    return Size(result)


@register()
def broadcast_tensors(*tensors):
    """The tensors expanded to their common broadcast shape (views)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    shape = ()
    for t in tensors:
        shape = _broadcast_two(shape, t.array.shape)
    return tuple(expand(t, shape) for t in tensors)


# ---- at least n dims, and stacking along the first three ----

def _tensors_arg(tensors):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        return tuple(tensors[0]), True
    return tensors, len(tensors) > 1


def _atleast(tensors, fix):
    tensors, many = _tensors_arg(tensors)
    out = tuple(fix(t) for t in tensors)
    return out if many else out[0]


@register()
def atleast_1d(*tensors):
    """0-d tensors as 1-d; a tuple for several tensors (or a list of them)."""
    return _atleast(tensors, lambda t: reshape(t, 1) if t.array.ndim == 0 else t)


@register()
def atleast_2d(*tensors):
    """0- and 1-d tensors as (1, n)."""
    return _atleast(tensors, lambda t: reshape(t, (1, -1) if t.array.ndim == 1 else (1, 1)) if t.array.ndim < 2 else t)


def _to_3d(t):
    if t.array.ndim == 0:
        return reshape(t, (1, 1, 1))
    if t.array.ndim == 1:
        return reshape(t, (1, -1, 1))
    return reshape(t, t.array.shape + (1,)) if t.array.ndim == 2 else t


@register()
def atleast_3d(*tensors):
    """0-d as (1, 1, 1), 1-d (n) as (1, n, 1), 2-d (m, n) as (m, n, 1)."""
    return _atleast(tensors, _to_3d)


def _list(tensors, name):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError(f"{name} expects a non-empty TensorList")
    return tensors


@register()
def hstack(tensors):
    """Join along dim 1 (dim 0 for 1-d tensors): `distml.hstack([a, b])`."""
    tensors = [atleast_1d(t) for t in _list(tensors, "hstack")]
    return cat(tensors, 0 if tensors[0].array.ndim == 1 else 1)


@register("row_stack")
def vstack(tensors):
    """Join along dim 0, 1-d tensors as rows."""
    return cat([atleast_2d(t) for t in _list(tensors, "vstack")], 0)


@register()
def dstack(tensors):
    """Join along dim 2 (depth), after atleast_3d."""
    return cat([atleast_3d(t) for t in _list(tensors, "dstack")], 2)


@register()
def column_stack(tensors):
    """0- and 1-d tensors as columns, joined along dim 1 with the 2-d ones."""
    return cat([reshape(t, (-1, 1)) if t.array.ndim < 2 else t for t in _list(tensors, "column_stack")], 1)


# ---- splitting ----

@register(method=True)
def tensor_split(input, indices_or_sections, dim=0):
    """Views of input split into n nearly equal pieces (the first ones one longer), or at the
    given indices along dim: `x.tensor_split(3)`, `x.tensor_split([1, 4], dim=1)`."""
    d = wrap_dim(dim, input.array.ndim)
    size = input.array.shape[d]
    if isinstance(indices_or_sections, Tensor):
        if indices_or_sections.array.dtype.kind not in "iu" or indices_or_sections.array.ndim > 1:
            raise RuntimeError("tensor_split expected tensor_indices_or_sections to be a zero-dimensional or "
                               "one-dimensional tensor, but got a tensor with "
                               f"{indices_or_sections.array.ndim} dims")
        indices_or_sections = indices_or_sections.tolist()
    if isinstance(indices_or_sections, int):
        n = indices_or_sections
        if n <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {n}")
        lengths = [size // n + (1 if i < size % n else 0) for i in range(n)]
        bounds = np.cumsum([0] + lengths).tolist()
    else:
        bounds = [0] + [min(max(i + size if i < 0 else i, 0), size) for i in indices_or_sections] + [size]
    lead = (slice(None),) * d
    keys = [lead + (slice(bounds[i], max(bounds[i], bounds[i + 1])),) for i in range(len(bounds) - 1)]
    if bounds != sorted(bounds):  # decreasing indices make overlapping pieces: one node each
        return tuple(getitem(input, key) for key in keys)
    return _pieces(input, keys)


def _directional_split(name, input, sections, dim, min_ndim):
    if input.array.ndim < min_ndim:
        raise RuntimeError(f"torch.{name} requires a tensor with at least {min_ndim} dimension, but got a tensor "
                           f"with {input.array.ndim} dimensions!")
    if isinstance(sections, int):
        size = input.array.shape[dim]
        if sections == 0 or size % sections:
            raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but the size of the "
                               f"dimension {size} is not divisible by the split_size {sections}!")
    return tensor_split(input, sections, dim)


@register(method=True)
def hsplit(input, indices_or_sections):
    """Split along dim 1 (dim 0 for 1-d tensors) into equal pieces or at indices."""
    return _directional_split("hsplit", input, indices_or_sections, 0 if input.array.ndim == 1 else 1, 1)


@register(method=True)
def vsplit(input, indices_or_sections):
    return _directional_split("vsplit", input, indices_or_sections, 0, 2)


@register(method=True)
def dsplit(input, indices_or_sections):
    return _directional_split("dsplit", input, indices_or_sections, 2, 3)


# ---- flips and rotation ----

@register(method=True)
def fliplr(input):
    """input reversed along dim 1."""
    if input.array.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(input, 1)


@register(method=True)
def flipud(input):
    """input reversed along dim 0."""
    if input.array.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(input, 0)


@register(method=True)
def rot90(input, k=1, dims=(0, 1)):
    """input rotated by k quarter turns in the plane of dims, from the first towards the second."""
    dims = list(dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.array.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.array.ndim}")
    d0, d1 = wrap_dim(dims[0], input.array.ndim), wrap_dim(dims[1], input.array.ndim)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return transpose(flip(input, d1), d0, d1)
    if k == 2:
        return flip(input, (d0, d1))
    if k == 3:
        return transpose(flip(input, d0), d0, d1)
    return input.clone()


@register(method=True)
def moveaxis(input, source, destination):
    """Alias of movedim (NumPy's name)."""
    return movedim(input, source, destination)


# ---- repeats, differences, flat indexing ----

@register(method=True)
def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Each element (or slice along dim) repeated: `x.repeat_interleave(2)`, or with a count per
    element. `repeat_interleave(counts)` alone gives the indices 0, 0, 1, ... (counts[i] of i)."""
    xp = get_array_module(input.array)
    if repeats is None:
        if input.array.ndim != 1 or input.array.dtype.kind not in "iu":
            raise RuntimeError("repeat_interleave only accept 1D vector as repeat")
        return Tensor(xp.repeat(xp.arange(input.array.shape[0], dtype=np.int64), input.array))
    source = reshape(input, -1) if dim is None else input
    d = 0 if dim is None else wrap_dim(dim, input.array.ndim)
    size = source.array.shape[d] if source.array.ndim else 1
    counts = repeats.array if isinstance(repeats, Tensor) else np.int64(repeats)
    if isinstance(repeats, Tensor) and counts.ndim == 1 and counts.shape[0] not in (1, size):
        raise RuntimeError(f"repeats must have the same size as input along dim, but got repeats.size(0) = "
                           f"{counts.shape[0]} and input.size(0) = {size}")
    if isinstance(repeats, Tensor) and counts.ndim > 1:
        raise RuntimeError("repeats must be 0-dim or 1-dim tensor")
    if (counts < 0).any():
        raise RuntimeError("repeats can not be negative")
    index = xp.repeat(xp.arange(size, dtype=np.int64), counts.reshape(-1) if counts.ndim else int(counts))
    if output_size is not None and index.shape[0] != output_size:
        raise RuntimeError(f"allocated size does not match required size")
    if source.array.ndim == 0:
        source = reshape(source, 1)
    return GetItem.apply(source, index=(slice(None),) * d + (index,))


@register(method=True)
def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along dim (xor for bool): `x.diff()`."""
    if input.array.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    d = wrap_dim(dim, input.array.ndim)
    pieces = [t for t in (prepend, input, append) if t is not None]
    out = cat(pieces, d) if len(pieces) > 1 else input
    for _ in range(n):
        length = out.array.shape[d]
        if length == 0:
            break
        later, earlier = narrow(out, d, 1, length - 1), narrow(out, d, 0, length - 1)
        out = logical_xor(later, earlier) if out.array.dtype == np.bool_ else sub(later, earlier)
    return out


@register(method=True)
def take(input, index):
    """input treated as 1-d, read at `index` (any shape): `x.take(idx)`."""
    if index.array.dtype.kind not in "iu":
        raise RuntimeError(f"take(): Expected a long tensor for index, but got {index.dtype.name}")
    size = input.array.size
    data = index.array
    if data.size and (data.max() >= size or data.min() < -size):
        bad = int(data.max() if data.max() >= size else data.min())
        raise IndexError(f"out of range: tried to access index {bad} on a tensor of {size} elements.")
    return getitem(reshape(input, -1), Tensor(data + size * (data < 0)))


@register(method=True)
def narrow_copy(input, dim, start, length):
    """Like narrow, but a copy."""
    return narrow(input, dim, start, length).clone()
