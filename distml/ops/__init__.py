"""Every differentiable op, defined once (forward + backward) and device-generic.

The functions here are also the top-level `distml.*` functions; those in METHODS are
Tensor methods too, and those in INPLACE have a `name_` in-place method.
"""
from distml.ops.compare import eq, ge, gt, le, lt, ne
from distml.ops.convert import cast, clone, expand_as_copy, full_like_value, to_device
from distml.ops.elementwise import (add, div, exp, floor_divide, log, mul, neg, pow, relu, remainder, sub,
                                    tanh)
from distml.ops.linalg import bmm, matmul, mm
from distml.ops.reduce import mean, sum
from distml.ops.shape import expand, getitem, permute, reshape, setitem, transpose, view

METHODS = [
    "eq", "ne", "lt", "le", "gt", "ge",
    "exp", "log", "tanh", "relu", "neg", "floor_divide", "remainder",
    "mm", "bmm",
    "sum", "mean",
    "reshape", "view", "permute", "transpose", "expand",
]
INPLACE = ["exp", "log", "tanh", "relu", "neg"]
