"""Comparisons, logical and bitwise ops: no gradient flows through them."""
import numpy as np

from distml._backend import get_array_module
from distml.ops._util import promote
from distml.ops.registry import register
from distml.tensor import Tensor


def _binary(name, a, b):
    a, b = promote(a, b)
    data_a = a.array if isinstance(a, Tensor) else a
    data_b = b.array if isinstance(b, Tensor) else b
    xp = get_array_module(data_a if isinstance(a, Tensor) else data_b)
    return Tensor(xp.asarray(getattr(xp, name)(data_a, data_b)))


def _unary(name, x):
    xp = get_array_module(x.array)
    return Tensor(xp.asarray(getattr(xp, name)(x.array)))


@register(method=True)
def eq(a, b):
    return _binary("equal", a, b)


@register('not_equal', method=True)
def ne(a, b):
    return _binary("not_equal", a, b)


@register('less', method=True)
def lt(a, b):
    return _binary("less", a, b)


@register(method=True)
def le(a, b):
    return _binary("less_equal", a, b)


@register('greater', method=True)
def gt(a, b):
    return _binary("greater", a, b)


@register(method=True)
def ge(a, b):
    return _binary("greater_equal", a, b)


@register(method=True)
def equal(a, b):
    """True when a and b have the same shape and elements."""
    return a.array.shape == b.array.shape and bool((a.array == b.array).all())


@register(method=True)
def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(get_array_module(a.array).allclose(a.array, b.array, rtol=rtol, atol=atol, equal_nan=equal_nan))


@register(method=True)
def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return Tensor(get_array_module(a.array).isclose(a.array, b.array, rtol=rtol, atol=atol, equal_nan=equal_nan))


@register(method=True)
def logical_and(a, b):
    return _binary("logical_and", a, b)


@register(method=True)
def logical_or(a, b):
    return _binary("logical_or", a, b)


@register(method=True)
def logical_xor(a, b):
    return _binary("logical_xor", a, b)


@register(method=True, inplace=True)
def logical_not(x):
    return _unary("logical_not", x)


def _check_integral(name, *operands):
    from distml import dtypes
    for x in operands:
        if isinstance(x, Tensor) and x.array.dtype.kind not in "biu":
            raise NotImplementedError(f"\"{name}_cpu\" not implemented for '{x.dtype.legacy_name}'")
        if isinstance(x, float):
            raise NotImplementedError(f"\"{name}_cpu\" not implemented for '{dtypes.get_default_dtype().legacy_name}'")


@register(method=True)
def bitwise_and(a, b):
    _check_integral("bitwise_and", a, b)
    return _binary("bitwise_and", a, b)


@register(method=True)
def bitwise_or(a, b):
    _check_integral("bitwise_or", a, b)
    return _binary("bitwise_or", a, b)


@register(method=True)
def bitwise_xor(a, b):
    _check_integral("bitwise_xor", a, b)
    return _binary("bitwise_xor", a, b)


@register(method=True)
def bitwise_not(x):
    _check_integral("bitwise_not", x)
    return _unary("logical_not" if x.array.dtype == np.bool_ else "invert", x)


@register(method=True)
def isnan(x):
    return _unary("isnan", x)


@register(method=True)
def isinf(x):
    return _unary("isinf", x)


@register(method=True)
def isfinite(x):
    return _unary("isfinite", x)
