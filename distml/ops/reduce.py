"""Reductions over dimensions: sum, mean, prod, max/min, var/std, norm, logsumexp, cumsum."""
import builtins
import math

import numpy as np

from distml import dtypes, return_types
from distml._backend import get_array_module
from distml.amp.autocast_mode import autocast_op
from distml.autograd.function import Primitive
from distml.ops._util import normalize_dims, wrap_dim
from distml.ops.registry import register
from distml.tensor import Tensor


def _keepdim_shape(shape, dims):
    return tuple(1 if dims is None or i in dims else s for i, s in enumerate(shape))


class Sum(Primitive):
    saves_inputs = False

    def forward(self, x, dims, keepdim, dtype):
        self.shape, self.dims, self.keepdim = x.shape, dims, keepdim
        if dtype is None and x.dtype.kind in "biu":
            dtype = np.int64
        if dtype is None and x.dtype == dtypes.bfloat16.np:  # NumPy's bfloat16 sum rounds at every step
            return get_array_module(x).asarray(x.sum(axis=dims, keepdims=keepdim, dtype=np.float32).astype(x.dtype))
        return get_array_module(x).asarray(x.sum(axis=dims, keepdims=keepdim, dtype=dtype))

    def backward(self, grad):
        if not self.keepdim and self.dims is not None:  # a sum of everything is 0-d: it broadcasts as it is
            grad = grad.reshape(_keepdim_shape(self.shape, self.dims))
        return get_array_module(grad).broadcast_to(grad, self.shape)


class Prod(Primitive):
    """Product over one dim (or all); the gradient is the product of the other elements,
    computed from exclusive cumulative products so that zeros are handled exactly."""

    def forward(self, x, dim, keepdim, dtype):
        self.x, self.dim, self.keepdim = x, dim, keepdim
        if dtype is None and x.dtype.kind in "biu":
            dtype = np.int64
        if dtype is None and x.dtype == dtypes.bfloat16.np:  # NumPy's bfloat16 product rounds at every step
            return get_array_module(x).asarray(x.prod(axis=dim, keepdims=keepdim, dtype=np.float32).astype(x.dtype))
        return get_array_module(x).asarray(x.prod(axis=dim, keepdims=keepdim, dtype=dtype))

    def backward(self, grad):
        xp = get_array_module(grad)
        x = self.x
        moved = x.reshape(-1) if self.dim is None else xp.moveaxis(x, self.dim, -1)
        ones = xp.ones(moved.shape[:-1] + (1,), dtype=x.dtype)
        before = xp.concatenate([ones, xp.cumprod(moved[..., :-1], axis=-1)], axis=-1)
        after = xp.concatenate([xp.cumprod(moved[..., :0:-1], axis=-1)[..., ::-1], ones], axis=-1)
        others = before * after
        others = others.reshape(x.shape) if self.dim is None else xp.moveaxis(others, -1, self.dim)
        if not self.keepdim:
            grad = grad.reshape(_keepdim_shape(x.shape, None if self.dim is None else (self.dim,)))
        return grad * others


class AMax(Primitive):
    """Largest (or smallest) value over dims; tied elements share the gradient equally."""

    def forward(self, x, dims, keepdim, take_max):
        self.x, self.dims, self.keepdim = x, dims, keepdim
        out = x.max(axis=dims, keepdims=True) if take_max else x.min(axis=dims, keepdims=True)
        self.out = out
        return get_array_module(x).asarray(out if keepdim else out.reshape(_reduced_shape(x.shape, dims)))

    def backward(self, grad):
        if not self.keepdim:
            grad = grad.reshape(self.out.shape)
        winners = self.x == self.out
        return grad * winners / winners.sum(axis=self.dims, keepdims=True)


class CumSum(Primitive):
    saves_inputs = False

    def forward(self, x, dim, dtype):
        self.dim = dim
        if dtype is None and x.dtype.kind in "biu":
            dtype = np.int64
        if dtype is None and x.dtype == dtypes.bfloat16.np:  # NumPy's bfloat16 cumsum rounds at every step
            return get_array_module(x).cumsum(x, axis=dim, dtype=np.float32).astype(x.dtype)
        return get_array_module(x).cumsum(x, axis=dim, dtype=dtype)

    def backward(self, grad):
        xp = get_array_module(grad)
        return xp.flip(xp.cumsum(xp.flip(grad, self.dim), axis=self.dim), self.dim)


def _reduced_shape(shape, dims):
    return tuple(s for i, s in enumerate(shape) if dims is not None and i not in dims)


def _check_nonempty(name, x, dims):
    for d in range(x.array.ndim) if dims is None else dims:
        if x.array.shape[d] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
    if dims is None and x.array.size == 0:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                           "Specify the reduction dim with the 'dim' argument.")


@register(method=True)
@autocast_op(cuda="float32")
def sum(x, dim=None, keepdim=False, dtype=None):
    """Sum over `dim` (int, tuple, or all): `x.sum(dim=(0, 2), keepdim=True)`."""
    return Sum.apply(x, dims=normalize_dims(dim, x.array.ndim), keepdim=keepdim, dtype=dtypes.to_numpy(dtype))


@register(method=True)
def mean(x, dim=None, keepdim=False, dtype=None):
    """Average over `dim`; needs a floating-point input (or `dtype=`) as in PyTorch."""
    if dtype is not None:
        from distml.ops.convert import cast
        x = cast(x, dtype)
    if not dtypes.is_float(x.array.dtype):
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating point "
                           f"or complex dtype. Got: {x.dtype.legacy_name}")
    dims = normalize_dims(dim, x.array.ndim)
    count = x.array.size if dims is None else math.prod(x.array.shape[d] for d in dims)
    total = Sum.apply(x, dims=dims, keepdim=keepdim, dtype=None)
    return total / count if count else total * float("nan")


@register(method=True)
@autocast_op(cpu="float32", cuda="float32")
def prod(x, dim=None, keepdim=False, dtype=None):
    """Product of all elements, or over one dim: `x.prod(1)`."""
    dim = None if dim is None else wrap_dim(dim, x.array.ndim)
    if x.array.ndim == 0:
        dim = None
    return Prod.apply(x, dim=dim, keepdim=keepdim, dtype=dtypes.to_numpy(dtype))


@register(method=True)
def amax(x, dim=(), keepdim=False):
    """Largest value over `dim` (all dims when empty); ties share the gradient."""
    dims = normalize_dims(dim, x.array.ndim) if dim != () else None
    _check_nonempty("amax", x, dims)
    return AMax.apply(x, dims=dims, keepdim=keepdim, take_max=True)


@register(method=True)
def amin(x, dim=(), keepdim=False):
    dims = normalize_dims(dim, x.array.ndim) if dim != () else None
    _check_nonempty("amin", x, dims)
    return AMax.apply(x, dims=dims, keepdim=keepdim, take_max=False)


def _arg_extreme(name, x, dim, keepdim):
    xp = get_array_module(x.array)
    if dim is None:
        _check_nonempty(name, x, None)
        index = getattr(xp, name)(x.array.reshape(-1))
        return Tensor(xp.asarray(index, dtype=np.int64).reshape((1,) * x.array.ndim if keepdim else ()))
    d = wrap_dim(dim, x.array.ndim)
    if x.array.ndim == 0:
        return Tensor(xp.zeros((), dtype=np.int64))
    _check_nonempty(name, x, (d,))
    return Tensor(xp.asarray(getattr(xp, name)(x.array, axis=d, keepdims=keepdim), dtype=np.int64))


@register(method=True)
def argmax(x, dim=None, keepdim=False):
    """Index of the largest value (of the flattened tensor when dim is None)."""
    return _arg_extreme("argmax", x, dim, keepdim)


@register(method=True)
def argmin(x, dim=None, keepdim=False):
    return _arg_extreme("argmin", x, dim, keepdim)


def _extreme(x, dim, keepdim, other, take_max):
    from distml.ops.elementwise import maximum, minimum
    from distml.ops.index import gather
    from distml.ops.shape import squeeze
    if isinstance(dim, Tensor):
        other = dim
    if other is not None:
        return maximum(x, other) if take_max else minimum(x, other)
    if dim is None:
        return amax(x) if take_max else amin(x)
    indices = _arg_extreme("argmax" if take_max else "argmin", x, dim, True)
    values = gather(x, dim, indices) if x.array.ndim else x
    if not keepdim and x.array.ndim:
        values, indices = squeeze(values, dim), squeeze(indices, dim)
    return (return_types.max if take_max else return_types.min)(values, indices)


@register(method=True)
def max(x, dim=None, keepdim=False, *, other=None):
    """`x.max()` (a tensor), `x.max(dim)` ((values, indices)), or `distml.max(x, y)` (elementwise)."""
    return _extreme(x, dim, keepdim, other, True)


@register(method=True)
def min(x, dim=None, keepdim=False, *, other=None):
    return _extreme(x, dim, keepdim, other, False)


@register(method=True)
@autocast_op(cuda="off")  # one kernel in PyTorch: no sum inside is cast
def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over `dim` with Bessel's correction by default: `x.var(0, correction=0)`."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    from distml.ops.elementwise import _float_input
    x = _float_input(x)
    dims = normalize_dims(dim, x.array.ndim)
    count = x.array.size if dims is None else math.prod(x.array.shape[d] for d in dims)
    centered = x - mean(x, dims, keepdim=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sum(centered * centered, dims, keepdim=keepdim) / builtins.max(count - correction, 0)


@register(method=True)
@autocast_op(cuda="off")
def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    from distml.ops.elementwise import sqrt
    return sqrt(var(x, dim, unbiased, keepdim, correction=correction))


@register()
@autocast_op(cuda="off")
def var_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(x, dim, unbiased, keepdim, correction=correction), mean(x, dim, keepdim)


@register()
@autocast_op(cuda="off")
def std_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(x, dim, unbiased, keepdim, correction=correction), mean(x, dim, keepdim)


@register(method=True)
@autocast_op(cuda="float32")
def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """The p-norm over `dim` (all elements by default): `x.norm()`, `x.norm(1, dim=1)`, `x.norm("nuc")`.
    torch.norm's rules: a number or "fro" is linalg.vector_norm (a zero gradient at 0), "nuc" the nuclear norm."""
    from distml import linalg
    if p == "nuc":
        return linalg.matrix_norm(x, "nuc", (-2, -1) if dim is None else dim, keepdim, dtype=dtype)
    if isinstance(p, str) and p != "fro":
        raise RuntimeError(f"norm: unsupported norm type '{p}'")
    return linalg.vector_norm(x, 2 if p == "fro" else p, dim, keepdim, dtype=dtype)


@register(method=True)
@autocast_op(cuda="float32")
def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x), dim)) without overflow: `scores.logsumexp(-1)`."""
    from distml.ops.elementwise import _float_input, exp, log
    x = _float_input(x)
    dims = normalize_dims(dim, x.array.ndim)
    xp = get_array_module(x.array)
    if x.array.size == 0:
        return log(sum(exp(x), dims, keepdim))
    shift = x.array.max(axis=dims, keepdims=True)
    shift = Tensor(xp.where(xp.isinf(shift), 0, shift))
    out = log(sum(exp(x - shift), dims, keepdim=True)) + shift
    return out if keepdim else out.reshape(_reduced_shape(x.array.shape, dims))


@register(method=True)
@autocast_op(cuda="float32")
def cumsum(x, dim, dtype=None):
    """Running sum along `dim`: `x.cumsum(0)`."""
    d = wrap_dim(dim, x.array.ndim)
    if x.array.ndim == 0:
        return Sum.apply(x, dims=(), keepdim=False, dtype=dtypes.to_numpy(dtype))
    return CumSum.apply(x, dim=d, dtype=dtypes.to_numpy(dtype))


@register(method=True)
def count_nonzero(x, dim=None):
    return sum(x != 0, dim)


def _logical_reduce(name, x, dim, keepdim):
    xp = get_array_module(x.array)
    dims = normalize_dims(dim, x.array.ndim)
    out = getattr(xp, name)(x.array, axis=dims, keepdims=keepdim)
    return Tensor(xp.asarray(out, dtype=np.uint8 if x.array.dtype == np.uint8 else np.bool_))


@register(method=True)
def all(x, dim=None, keepdim=False):
    """Whether every element (along dim) is nonzero: `mask.all()`, `distml.all(x, 1)`; uint8 stays uint8."""
    return _logical_reduce("all", x, dim, keepdim)


@register(method=True)
def any(x, dim=None, keepdim=False):
    """Whether some element (along dim) is nonzero: `(x < 0).any()`."""
    return _logical_reduce("any", x, dim, keepdim)
