"""Every differentiable op, defined once (forward + backward) and device-generic.

The names in `__all__` are also the top-level `distml.*` functions; those in METHODS are
Tensor methods too, and those in INPLACE have a `name_` in-place method.
"""
from distml.ops.compare import (allclose, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, eq, equal, ge, gt,
                                isclose, isfinite, isinf, isnan, le, logical_and, logical_not, logical_or,
                                logical_xor, lt, ne)
from distml.ops.convert import cast, clone, expand_as_copy, full_like_value, to_device
from distml.ops.elementwise import (abs, add, clamp, clip, cos, div, exp, floor_divide, log, log1p, masked_fill,
                                    maximum, minimum, mul, neg, pow, relu, remainder, rsqrt, rsub, sigmoid, sign,
                                    sin, sqrt, square, sub, tanh, where)
from distml.ops.index import (gather, getitem, index_select, masked_select, nonzero, scatter, scatter_add, setitem,
                              take_along_dim)
from distml.ops.linalg import bmm, dot, einsum, matmul, mm, outer
from distml.ops.reduce import (amax, amin, argmax, argmin, count_nonzero, cumsum, logsumexp, max, mean, min, norm,
                               prod, std, std_mean, sum, var, var_mean)
from distml.ops.shape import (cat, chunk, concat, concatenate, expand, expand_as, flatten, flip, movedim, narrow,
                              permute, repeat, reshape, reshape_as, roll, split, squeeze, stack, swapaxes, swapdims,
                              t, tile, transpose, tril, triu, unbind, unflatten, unsqueeze, view, view_as)
from distml.ops.softmax import log_softmax, softmax
from distml.ops.sort import argsort, msort, sort, topk

absolute, multiply, divide, subtract, true_divide, greater, less, not_equal = abs, mul, div, sub, div, gt, lt, ne

__all__ = [
    "allclose", "bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor", "eq", "equal", "ge", "gt", "isclose",
    "isfinite", "isinf", "isnan", "le", "logical_and", "logical_not", "logical_or", "logical_xor", "lt", "ne",
    "clone", "abs", "absolute", "add", "clamp", "clip", "cos", "div", "divide", "exp", "floor_divide", "log",
    "log1p", "masked_fill", "maximum", "minimum", "mul", "multiply", "neg", "pow", "relu", "remainder", "rsqrt",
    "rsub", "sigmoid", "sign", "sin", "sqrt", "square", "sub", "subtract", "tanh", "true_divide", "where",
    "greater", "less", "not_equal",
    "gather", "index_select", "masked_select", "nonzero", "scatter", "scatter_add", "take_along_dim",
    "bmm", "dot", "einsum", "matmul", "mm", "outer",
    "amax", "amin", "argmax", "argmin", "count_nonzero", "cumsum", "logsumexp", "max", "mean", "min", "norm",
    "prod", "std", "std_mean", "sum", "var", "var_mean",
    "cat", "chunk", "concat", "concatenate", "flatten", "flip", "movedim", "narrow", "permute", "reshape", "roll",
    "split", "squeeze", "stack", "swapaxes", "swapdims", "t", "tile", "transpose", "tril", "triu", "unbind",
    "unflatten", "unsqueeze",
    "log_softmax", "softmax",
    "argsort", "msort", "sort", "topk",
]

METHODS = [
    "eq", "ne", "lt", "le", "gt", "ge", "equal", "allclose", "isclose", "isnan", "isinf", "isfinite",
    "logical_and", "logical_or", "logical_xor", "logical_not",
    "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
    "exp", "log", "log1p", "sqrt", "rsqrt", "abs", "absolute", "sign", "sin", "cos", "tanh", "sigmoid", "relu",
    "neg", "square", "clamp", "clip", "maximum", "minimum", "floor_divide", "remainder", "masked_fill",
    "gather", "scatter", "scatter_add", "index_select", "masked_select", "nonzero", "take_along_dim",
    "mm", "bmm", "dot", "outer",
    "sum", "mean", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "var", "std", "norm", "logsumexp",
    "cumsum", "count_nonzero",
    "reshape", "view", "permute", "transpose", "expand", "expand_as", "view_as", "reshape_as", "flatten",
    "unflatten", "squeeze", "unsqueeze", "swapaxes", "swapdims", "t", "movedim", "narrow", "flip", "roll", "tril",
    "triu", "repeat", "tile", "split", "chunk", "unbind",
    "softmax", "log_softmax", "sort", "argsort", "topk", "msort",
]
INPLACE = ["exp", "log", "log1p", "sqrt", "rsqrt", "abs", "sign", "sin", "cos", "tanh", "sigmoid", "relu", "neg",
           "square", "clamp", "clip", "masked_fill", "scatter", "scatter_add", "floor_divide", "remainder",
           "tril", "triu", "maximum", "minimum", "logical_not"]
