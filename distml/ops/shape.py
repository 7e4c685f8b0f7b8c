"""Views and shape changes; joining and splitting."""
import math

import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.ops._util import check_same_device, normalize_dims, unbroadcast, wrap_dim
from distml.ops.registry import register
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


class Repeat(Primitive):
    """x tiled: a new array (writable, unlike an expanded view), as PyTorch's repeat."""
    saves_inputs = False

    def forward(self, x, repeats):
        self.shape = x.shape
        return get_array_module(x).tile(x, repeats)

    def backward(self, grad):
        shape = (1,) * (grad.ndim - len(self.shape)) + self.shape
        tiles = grad.reshape([v for r, s in zip(grad.shape, shape) for v in (r // s if s else 0, s)])
        return tiles.sum(axis=tuple(range(0, tiles.ndim, 2))).reshape(self.shape)


class Expand(Primitive):
    saves_inputs = False
    is_view = True

    def forward(self, x, shape):
        self.shape = x.shape
        return get_array_module(x).broadcast_to(x, shape)

    def backward(self, grad):
        return unbroadcast(grad, self.shape)


def _infer_shape(shape, numel):
    shape = list(shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
    shape = [int(s) for s in shape]
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
        shape[shape.index(-1)] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
    return tuple(shape)


@register(method=True)
def reshape(x, *sizes, shape=None):
    """x with a new shape (a view when possible): `x.reshape(2, -1)`, `x.reshape(shape=(2, -1))`."""
    shape = _infer_shape(_sizes_arg(sizes, shape, "shape"), x.array.size)
    return x if shape == x.array.shape else Reshape.apply(x, shape=shape)


@register(method=True, function=False)
def view(x, *sizes, size=None):
    """Like reshape, but only ever a view: non-contiguous inputs raise as in PyTorch."""
    shape = _infer_shape(_sizes_arg(sizes, size, "size"), x.array.size)
    try:
        x.array.view().shape = shape  # numpy refuses exactly when no view exists
    except AttributeError:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                           "dimension spans across two contiguous subspaces). Use .reshape(...) instead.") from None
    return Reshape.apply(x, shape=shape)


@register(method=True)
def permute(x, *order, dims=None):
    dims = _sizes_arg(order, dims, "dims")
    if len(dims) != x.array.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {x.array.ndim} is not "
                           f"equal to len(dims) = {len(dims)}")
    return Permute.apply(x, dims=normalize_dims(dims, x.array.ndim))


@register(method=True)
def transpose(x, dim0, dim1):
    dims = list(range(x.array.ndim))
    if x.array.ndim == 0:
        normalize_dims((dim0, dim1) if dim0 != dim1 else dim0, 0)
        return x
    d0, d1 = normalize_dims(dim0, x.array.ndim)[0], normalize_dims(dim1, x.array.ndim)[0]
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(x, dims=tuple(dims))


@register(method=True, function=False)
def expand(x, *sizes, size=None):
    sizes = _sizes_arg(sizes, size, "size")
    if len(sizes) < x.array.ndim:
        raise RuntimeError(f"expand(distml.{x.dtype.name}{{{list(x.array.shape)}}}, size={list(sizes)}): the number "
                           "of sizes provided must be greater or equal to the number of dimensions in the tensor")
    offset = len(sizes) - x.array.ndim
    shape = []
    for i, s in enumerate(sizes):
        old = x.array.shape[i - offset] if i >= offset else 1
        if s == -1:
            if i < offset:
                raise RuntimeError("The expanded size of the tensor (-1) isn't allowed in a leading, non-existing dimension")
            s = old
        elif old != 1 and old != s:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing size ({old}) at "
                               f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: {list(x.array.shape)}")
        shape.append(int(s))
    shape = tuple(shape)
    return x if shape == x.array.shape else Expand.apply(x, shape=shape)


class Flip(Primitive):
    saves_inputs = False

    def forward(self, x, dims):
        self.dims = dims
        return get_array_module(x).flip(x, dims).copy()

    def backward(self, grad):
        return get_array_module(grad).flip(grad, self.dims)


class Cat(Primitive):
    saves_inputs = False

    def forward(self, *arrays, dim):
        self.dim, self.sizes = dim, [a.shape[dim] for a in arrays]
        return get_array_module(arrays[0]).concatenate(arrays, axis=dim)

    def backward(self, grad):
        xp = get_array_module(grad)
        splits = xp.split(grad, np.cumsum(self.sizes)[:-1].tolist(), axis=self.dim)
        return tuple(g if need else None for g, need in zip(splits, self.needs_input_grad))


def _dims_arg(dims):
    return dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims


def _sizes_arg(positional, keyword, name):
    """PyTorch's spellings of a size or dim list: `x.f(2, 3)`, `x.f((2, 3))` or `x.f(name=(2, 3))`."""
    if keyword is None:
        return tuple(_dims_arg(positional))
    if positional:
        raise TypeError(f"got multiple values for argument '{name}'")
    return tuple(keyword) if isinstance(keyword, (tuple, list)) else (keyword,)


@register(method=True, function=False)
def view_as(x, other):
    return view(x, other.array.shape)


@register(method=True, function=False)
def reshape_as(x, other):
    return reshape(x, other.array.shape)


@register(method=True, function=False)
def expand_as(x, other):
    return expand(x, other.array.shape)


@register(method=True)
def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one: `x.flatten(1)` for (N, C, H, W) -> (N, C*H*W)."""
    if x.array.ndim == 0:
        return reshape(x, 1)
    start, end = wrap_dim(start_dim, x.array.ndim), wrap_dim(end_dim, x.array.ndim)
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = x.array.shape
    return reshape(x, shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])


@register(method=True)
def unflatten(x, dim, sizes):
    """Split dim into `sizes` (one may be -1): `x.unflatten(1, (C, H, W))`."""
    d = wrap_dim(dim, x.array.ndim)
    sizes = list(sizes)
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        sizes[sizes.index(-1)] = x.array.shape[d] // known if known else 0
    if math.prod(sizes) != x.array.shape[d]:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} "
                           f"({x.array.shape[d]}) in the input tensor")
    return reshape(x, x.array.shape[:d] + tuple(sizes) + x.array.shape[d + 1:])


@register(method=True)
def squeeze(x, dim=None):
    """Drop dims of size 1 (all, or those in dim): `x.squeeze(1)`."""
    dims = normalize_dims(dim, x.array.ndim)
    shape = tuple(s for i, s in enumerate(x.array.shape) if s != 1 or (dims is not None and i not in dims))
    return reshape(x, shape)


@register(method=True)
def unsqueeze(x, dim):
    """Insert a dim of size 1 at `dim`: `x.unsqueeze(0)`."""
    d = wrap_dim(dim, x.array.ndim + 1)
    return reshape(x, x.array.shape[:d] + (1,) + x.array.shape[d:])


@register('swapdims', method=True)
def swapaxes(x, axis0, axis1):
    return transpose(x, axis0, axis1)




@register(method=True)
def t(x):
    """Transpose of a tensor with at most 2 dims."""
    if x.array.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.array.ndim}D")
    return x if x.array.ndim < 2 else transpose(x, 0, 1)


@register(method=True)
def movedim(x, source, destination):
    source = normalize_dims(source, x.array.ndim)
    destination = normalize_dims(destination, x.array.ndim)
    if len(source) != len(destination):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(source)} dims) should "
                           f"contain the same number of dims as destination ({list(destination)} dims)")
    order = [d for d in range(x.array.ndim) if d not in source]
    for dst, src in sorted(zip(destination, source)):
        order.insert(dst, src)
    return permute(x, order)


@register(method=True)
def narrow(x, dim, start, length):
    from distml.ops.index import getitem
    d = wrap_dim(dim, x.array.ndim)
    start = start % x.array.shape[d] if start < 0 else start
    if start + length > x.array.shape[d]:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({x.array.shape[d]}).")
    return getitem(x, (slice(None),) * d + (slice(start, start + length),))


@register(method=True)
def flip(x, *order, dims=None):
    """x reversed along dims (a copy, as in PyTorch): `distml.flip(x, dims=[1])`, `x.flip(1)`."""
    return Flip.apply(x, dims=normalize_dims(_sizes_arg(order, dims, "dims"), x.array.ndim))


@register(method=True)
def roll(x, shifts, dims=None):
    """Elements shifted along dims, wrapping around: `x.roll(1, 0)`."""
    if dims is None:
        return reshape(roll(flatten(x), shifts, 0), x.array.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    out = x
    for shift, dim in zip(shifts, dims):
        d = wrap_dim(dim, x.array.ndim)
        size = x.array.shape[d]
        shift = shift % size if size else 0
        if shift:
            head, tail = split(out, [size - shift, shift], d)
            out = cat([tail, head], d)
    return out


def _triangle(x, diagonal, lower):
    from distml.ops.elementwise import Where
    if x.array.ndim < 2:
        raise RuntimeError(f"{'tril' if lower else 'triu'}: input tensor must have at least 2 dimensions")
    xp = get_array_module(x.array)
    rows, cols = x.array.shape[-2:]
    mask = xp.tri(rows, cols, diagonal if lower else diagonal - 1, dtype=bool)
    return Where.apply(x, Tensor(xp.zeros((), dtype=x.array.dtype)), condition=mask if lower else ~mask)


@register(method=True, inplace=True)
def tril(x, diagonal=0):
    """The lower triangle (on and below `diagonal`) of the last two dims; the rest zero."""
    return _triangle(x, diagonal, True)


@register(method=True, inplace=True)
def triu(x, diagonal=0):
    """The upper triangle (on and above `diagonal`) of the last two dims; the rest zero."""
    return _triangle(x, diagonal, False)


@register(method=True, function=False)
def repeat(x, *counts, repeats=None):
    """x tiled `repeats` times along each dim: `x.repeat(2, 1)`."""
    repeats = _sizes_arg(counts, repeats, "repeats")
    if len(repeats) < x.array.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    return Repeat.apply(x, repeats=tuple(int(r) for r in repeats))


@register(method=True)
def tile(x, dims):
    dims = tuple(dims)
    return repeat(x, (1,) * (x.array.ndim - len(dims)) + dims)


@register('concat', 'concatenate')
def cat(tensors, dim=0):
    """Join tensors along an existing dim: `distml.cat([a, b], dim=1)`."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    first = tensors[0]
    if first.array.ndim == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = wrap_dim(dim, first.array.ndim)
    for i, t in enumerate(tensors[1:], 1):
        check_same_device(first, t)
        if t.array.ndim != first.array.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {first.array.ndim} and {t.array.ndim}")
        for k, (a, b) in enumerate(zip(first.array.shape, t.array.shape)):
            if k != d and a != b:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size {a} but got "
                                   f"size {b} for tensor number {i} in the list.")
    dtype = dtypes.result_type(*[t.array for t in tensors])
    if any(t.array.dtype != dtype for t in tensors):
        from distml.ops.convert import cast
        tensors = [cast(t, dtype) for t in tensors]
    return Cat.apply(*tensors, dim=d)




@register()
def stack(tensors, dim=0):
    """Join equal-shaped tensors along a new dim: `distml.stack([a, b])`."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors[1:], 1):
        if t.array.shape != tensors[0].array.shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].array.shape)} "
                               f"at entry 0 and {list(t.array.shape)} at entry {i}")
    d = wrap_dim(dim, tensors[0].array.ndim + 1)
    return cat([unsqueeze(t, d) for t in tensors], d)


@register(method=True)
def split(x, split_size_or_sections, dim=0):
    """Views of x in pieces along dim: of size n each (the last may be smaller), or of the given sizes."""
    d = wrap_dim(dim, x.array.ndim)
    size = x.array.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0 and size:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {size}")
        sizes = [min(step, size - i) for i in range(0, size, step)] if step else [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != size:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's size "
                               f"at dimension {d}), but got split_sizes={sizes}")
    starts = np.cumsum([0] + sizes[:-1]).tolist()
    lead = (slice(None),) * d
    return _pieces(x, [lead + (slice(s, s + n),) for s, n in zip(starts, sizes)])


@register(method=True)
def chunk(x, chunks, dim=0):
    """x split into `chunks` pieces of equal size (the last may be smaller)."""
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    size = x.array.shape[wrap_dim(dim, x.array.ndim)]
    return split(x, max(-(-size // chunks), 1), dim)


@register(method=True)
def unbind(x, dim=0):
    """The slices of x along dim, each without that dim."""
    d = wrap_dim(dim, x.array.ndim)
    return _pieces(x, [(slice(None),) * d + (i,) for i in range(x.array.shape[d])])


class Split(Primitive):
    """All pieces of a split or unbind as the outputs of one node, so backward writes one
    full-size gradient (a getitem per piece would write one per piece: quadratic). The pieces
    are disjoint and cover x, so backward fills every element of it."""

    saves_inputs = False
    is_view = True

    def forward(self, x, keys):
        self.shape, self.dtype, self.keys = x.shape, x.dtype, keys
        xp = get_array_module(x)
        return tuple(xp.asarray(x[key]) for key in keys)  # a full integer index gives a numpy scalar

    def backward(self, *grads):
        out = get_array_module(grads[0]).empty(self.shape, dtype=self.dtype)
        for key, grad in zip(self.keys, grads):
            out[key] = grad
        return out


def _pieces(x, keys):
    """Views of x at each basic index in keys (disjoint, covering x), the outputs of one Split node."""
    return Split.apply(x, keys=keys)
