"""Comparisons and logical ops: boolean results, no gradient."""
from distml._backend import get_array_module
from distml.ops._util import promote
from distml.tensor import Tensor


def _compare(name, a, b):
    a, b = promote(a, b)
    data_a = a.data if isinstance(a, Tensor) else a
    data_b = b.data if isinstance(b, Tensor) else b
    xp = get_array_module(data_a if isinstance(a, Tensor) else data_b)
    return Tensor(xp.asarray(getattr(xp, name)(data_a, data_b)))


def eq(a, b):
    return _compare("equal", a, b)


def ne(a, b):
    return _compare("not_equal", a, b)


def lt(a, b):
    return _compare("less", a, b)


def le(a, b):
    return _compare("less_equal", a, b)


def gt(a, b):
    return _compare("greater", a, b)


def ge(a, b):
    return _compare("greater_equal", a, b)
