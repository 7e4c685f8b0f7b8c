"""The one table from distml's primitives to ONNX: `CONVERTERS[primitive class] = (convert, key)`.

`convert(c)` gets a Context (distml/onnx/_graph.py) and returns the ONNX name of each output
(a list for primitives with several outputs; UNAVAILABLE for one it cannot produce).
`key(call)` is what must be equal in every trace when dynamic axes are declared (by default the
params and inputs): a converter whose attributes follow the input's size (a reshape target)
leaves those out of its key and reads `c.variants` itself.

Converters are keyed by the primitive classes imported from their modules, so a primitive that
moves needs only its import here changed.
"""
import math

import numpy as np

from distml.ops.activation import Elu, Gelu, Hardtanh, LeakyRelu, Silu, Softplus
from distml.ops.conv import Conv, ConvTranspose
from distml.ops.convert import Cast, Clone, ToDevice
from distml.ops.elementwise import (Abs, Add, Clamp, Cos, Div, Exp, Log, Log1p, Maximum, Mul, Neg, Pow, Relu, Scale,
                                    Sigmoid, Sign, Sin, Sqrt, Tanh, Where)
from distml.ops.index import Gather, GetItem, IndexPut, Scatter
from distml.ops.linalg import Einsum, MatMul
from distml.ops.linear import Embedding, Linear
from distml.ops.math import Binary, Rounding, Unary
from distml.ops.norm import BatchNorm, LayerNorm, Normalize
from distml.ops.pool import AdaptiveAvgPool, AdaptiveMaxPool, AvgPool, MaxPool
from distml.ops.reduce import AMax, CumSum, Prod, Sum
from distml.ops.rnn import MODES, RecurrentLayer
from distml.ops.shape import Cat, Expand, Flip, Permute, Reshape, Split
from distml.ops.softmax import Softmax
from distml.onnx._graph import UNAVAILABLE
from distml.onnx.errors import OnnxExporterError

CONVERTERS = {}
INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def default_key(call):
    return call.inputs, call.params


def converts(*primitives, key=default_key):
    def register(fn):
        for primitive in primitives:
            CONVERTERS[primitive] = (fn, key)
        return fn
    return register


def _key_without(*names):
    return lambda call: (call.inputs, {k: v for k, v in call.params.items() if k not in names})


# ---- elementwise ----

_SAME_NAME = {Neg: "Neg", Exp: "Exp", Log: "Log", Sqrt: "Sqrt", Abs: "Abs", Sign: "Sign", Sin: "Sin", Cos: "Cos",
              Tanh: "Tanh", Sigmoid: "Sigmoid", Relu: "Relu", MatMul: "MatMul"}


@converts(*_SAME_NAME)
def _same_name(c):
    return c.node(_SAME_NAME[c.call.op], *(c.cast_input(i) for i in range(len(c.call.inputs))))


@converts(Mul, Div)
def _mul_div(c):
    return c.node(c.op_name, c.cast_input(0), c.cast_input(1))


@converts(Add)
def _add(c):
    a, b = c.cast_input(0), c.cast_input(1)
    alpha = c.params.get("alpha", 1)
    if alpha == 1:
        return c.node("Add", a, b)
    if alpha == -1:
        return c.node("Sub", a, b)
    return c.node("Add", a, c.node("Mul", b, c.scalar(alpha)))


@converts(Scale)
def _scale(c):
    return c.node("Div" if c.params["divide"] else "Mul", c.cast_input(0), c.scalar(c.params["factor"]))


@converts(Pow)
def _pow(c):
    return c.node("Pow", c.cast_input(0), c.cast_input(1))


@converts(Maximum)
def _maximum(c):
    return c.node("Max" if c.params["take_max"] else "Min", c.cast_input(0), c.cast_input(1))


@converts(Where)
def _where(c):
    return c.node("Where", c.value(c.params["condition"]), c.cast_input(0), c.cast_input(1))


@converts(Log1p)
def _log1p(c):
    return c.node("Log", c.node("Add", c.input(0), c.scalar(1)))


@converts(Clamp)
def _clamp(c):
    x, low, high = c.call.inputs
    if all(v is None or not hasattr(v, "kind") or v.shape == () for v in (low, high)):
        return c.node("Clip", c.cast_input(0), c.cast_input(1) if low is not None else "",
                      c.cast_input(2) if high is not None else "")
    out = c.cast_input(0)
    if low is not None:
        out = c.node("Max", out, c.cast_input(1))
    if high is not None:
        out = c.node("Min", out, c.cast_input(2))
    return out


# ---- activations ----

@converts(LeakyRelu)
def _leaky_relu(c):
    return c.node("LeakyRelu", c.input(0), alpha=float(c.params["negative_slope"]))


@converts(Hardtanh)
def _hardtanh(c):
    return c.node("Clip", c.input(0), c.scalar(c.params["min_val"]), c.scalar(c.params["max_val"]))


@converts(Elu)
def _elu(c):
    """elu, and selu / celu (Elu's `scale` and `input_scale`): scale * x for x > 0,
    scale * alpha * (exp(input_scale * x) - 1) otherwise."""
    x, alpha = c.input(0), float(c.params["alpha"])
    scale, input_scale = float(c.params.get("scale", 1.0)), float(c.params.get("input_scale", 1.0))
    if scale == 1.0 and input_scale == 1.0:
        return c.node("Elu", x, alpha=alpha)
    if input_scale == 1.0:
        return c.node("Selu", x, alpha=alpha, gamma=scale)
    negative = c.node("Mul", c.node("Sub", c.node("Exp", c.node("Mul", x, c.scalar(input_scale))), c.scalar(1)),
                      c.scalar(alpha * scale))
    return c.node("Where", c.node("Greater", x, c.scalar(0)), c.node("Mul", x, c.scalar(scale)), negative)


@converts(Gelu)
def _gelu(c):
    x, approximate = c.input(0), c.params["approximate"]
    if c.opset >= 20:
        return c.node("Gelu", x, approximate=approximate)
    if approximate == "tanh":
        cube = c.node("Mul", c.node("Mul", x, x), x)
        inner = c.node("Add", x, c.node("Mul", cube, c.scalar(0.044715)))
        inner = c.node("Mul", inner, c.scalar(math.sqrt(2 / math.pi)))
        phi = c.node("Add", c.node("Tanh", inner), c.scalar(1))
    else:
        phi = c.node("Add", c.node("Erf", c.node("Mul", x, c.scalar(1 / math.sqrt(2)))), c.scalar(1))
    return c.node("Mul", c.node("Mul", x, c.scalar(0.5)), phi)


@converts(Silu)
def _silu(c):
    x = c.input(0)
    return c.node("Mul", x, c.node("Sigmoid", x))


@converts(Softplus)
def _softplus(c):
    x, beta = c.input(0), c.params["beta"]
    bx = c.node("Mul", x, c.scalar(beta))
    soft = c.node("Div", c.node("Softplus", bx), c.scalar(beta))
    return c.node("Where", c.node("Greater", bx, c.scalar(c.params["threshold"])), x, soft)


@converts(Softmax)
def _softmax(c):
    return c.node("LogSoftmax" if c.params["log"] else "Softmax", c.input(0), axis=int(c.params["dim"]))


# ---- math.py: the unary and binary tables, rounding ----

_UNARY_SAME = {"sinh": "Sinh", "cosh": "Cosh", "tan": "Tan", "asin": "Asin", "acos": "Acos", "atan": "Atan",
               "asinh": "Asinh", "acosh": "Acosh", "atanh": "Atanh", "erf": "Erf"}


@converts(Unary)
def _unary(c):
    op, x = c.params["op"], c.input(0)
    if op in _UNARY_SAME:
        return c.node(_UNARY_SAME[op], x)
    if op in ("log2", "log10"):
        return c.node("Div", c.node("Log", x), c.scalar(math.log(2 if op == "log2" else 10)))
    if op == "exp2":
        return c.node("Pow", c.scalar(2), x)
    if op == "expm1":
        return c.node("Sub", c.node("Exp", x), c.scalar(1))
    if op == "erfc":
        return c.node("Sub", c.scalar(1), c.node("Erf", x))
    raise c.unsupported(f"the function '{op}' has no ONNX form in distml")


@converts(Rounding)
def _rounding(c):
    op, x = c.params["op"], c.input(0)
    if op in ("floor", "ceil"):
        return c.node(op.capitalize(), x)
    if op == "trunc":
        return c.node("Mul", c.node("Sign", x), c.node("Floor", c.node("Abs", x)))
    if op == "round":
        if c.params["decimals"] == 0:
            return c.node("Round", x)
        scale = c.scalar(10.0 ** c.params["decimals"])
        return c.node("Div", c.node("Round", c.node("Mul", x, scale)), scale)
    raise c.unsupported(f"the rounding '{op}' has no ONNX form in distml")


@converts(Binary)
def _binary(c):
    op, a, b = c.params["op"], c.cast_input(0), c.cast_input(1)
    if op == "fmod":
        return c.node("Mod", a, b, fmod=1)
    if op == "hypot":
        return c.node("Sqrt", c.node("Add", c.node("Mul", a, a), c.node("Mul", b, b)))
    if op in ("logaddexp", "logaddexp2"):  # max + log(1 + exp(-|a - b|)), in base 2 for logaddexp2
        gap = c.node("Neg", c.node("Abs", c.node("Sub", a, b)))
        if op == "logaddexp":
            return c.node("Add", c.node("Max", a, b), c.node("Log", c.node("Add", c.scalar(1), c.node("Exp", gap))))
        log2 = c.scalar(math.log(2))
        rest = c.node("Log", c.node("Add", c.scalar(1), c.node("Pow", c.scalar(2), gap)))
        return c.node("Add", c.node("Max", a, b), c.node("Div", rest, log2))
    if op == "atan2":  # atan(a / b) moved to the quadrant of (b, a)
        zero, pi = c.scalar(0), c.scalar(math.pi)
        base = c.node("Atan", c.node("Div", a, b))
        turn = c.node("Where", c.node("Less", a, zero), c.node("Neg", pi), pi)
        axis = c.node("Mul", c.node("Sign", a), c.scalar(math.pi / 2))
        left = c.node("Where", c.node("Less", b, zero), c.node("Add", base, turn), axis)
        return c.node("Where", c.node("Greater", b, zero), base, left)
    if op in ("fmax", "fmin"):  # NaN loses
        best = c.node("Max" if op == "fmax" else "Min", a, b)
        return c.node("Where", c.node("IsNaN", a), b, c.node("Where", c.node("IsNaN", b), a, best))
    if op == "xlogy":  # 0 where a == 0 (unless b is NaN)
        product = c.node("Mul", a, c.node("Log", b))
        at_zero = c.node("Where", c.node("IsNaN", b), b, c.scalar(0))
        return c.node("Where", c.node("Equal", a, c.scalar(0)), at_zero, product)
    raise c.unsupported(f"the function '{op}' has no ONNX form in distml")


# ---- dtype, copies ----

@converts(Cast)
def _cast(c):
    return c.cast(c.input(0), c.out_dtype)


@converts(Clone, ToDevice)
def _identity(c):
    return c.node("Identity", c.input(0))


# ---- shapes ----

def _dynamic_dims(c, name, target):
    """Per dim of the param `name` (a shape), the dynamic axes whose doubling changed it."""
    changed = [set() for _ in target]
    for symbol, variant in c.variants:
        other = tuple(variant.params[name])
        if len(other) != len(target):
            raise OnnxExporterError(f"the rank of the {c.op_name} target {list(target)} (in module "
                                    f"'{c.call.module}') changes with dynamic axis '{symbol}'")
        for d, (a, b) in enumerate(zip(target, other)):
            if a != b:
                changed[d].add(symbol)
    return changed


def _follows_input(c, name, d, xd):
    """Whether target dim d equals input dim xd in every trace."""
    if xd < 0 or xd >= len(c.shape(0)) or c.params[name][d] != c.shape(0)[xd]:
        return False
    return all(v.params[name][d] == v.inputs[0].shape[xd] for _, v in c.variants)


def _proportional(c, name, d, symbols):
    """Target dim d, which doubles with each of `symbols`, from the inputs' Shape at run time."""
    what = f"dim {d} of the {c.op_name} target {list(c.params[name])} (in module '{c.call.module}')"
    for symbol, variant in c.variants:
        if symbol in symbols and variant.params[name][d] != 2 * c.params[name][d]:
            raise OnnxExporterError(f"{what} changes with dynamic axis '{symbol}' in a way distml cannot express "
                                    "from the input shapes")
    return c.graph.dim_value(c.params[name][d], symbols, what)


def _shape_tensor(c, name, expand):
    """The param `name` (a target shape) as an int64 tensor: constant dims as they are, dims that
    follow dynamic axes computed at run time (0 = copy the input's dim for Reshape, 1 = keep the
    input's dim for Expand, one -1 for Reshape, else from the inputs' Shape)."""
    target = tuple(int(v) for v in c.params[name])
    changed = _dynamic_dims(c, name, target)
    if not any(changed):
        return c.ints(target)
    zero = 0 in target
    pieces, rest = list(target), []
    offset = len(target) - len(c.shape(0))
    for d, symbols in enumerate(changed):
        if not symbols:
            continue
        if expand and _follows_input(c, name, d, d - offset):
            pieces[d] = 1
        elif not expand and not zero and _follows_input(c, name, d, d):
            pieces[d] = 0
        else:
            rest.append(d)
    if not expand and len(rest) == 1:
        pieces[rest[0]] = -1
    else:
        for d in rest:
            pieces[d] = _proportional(c, name, d, changed[d])
    return c.graph.shape_tensor(pieces, target)


@converts(Reshape, key=_key_without("shape"))
def _reshape(c):
    target = _shape_tensor(c, "shape", expand=False)
    if 0 in c.params["shape"]:  # a zero-size dim, not ONNX's "copy the input's dim"
        return c.node("Reshape", c.input(0), target, allowzero=1)
    return c.node("Reshape", c.input(0), target)


@converts(Expand, key=_key_without("shape"))
def _expand(c):
    return c.node("Expand", c.input(0), _shape_tensor(c, "shape", expand=True))


@converts(Permute)
def _permute(c):
    return c.node("Transpose", c.input(0), perm=[int(d) for d in c.params["dims"]])


@converts(Flip)
def _flip(c):
    dims = list(c.params["dims"])
    n = len(dims)
    return c.node("Slice", c.input(0), c.ints([-1] * n), c.ints([INT64_MIN] * n), c.ints(dims), c.ints([-1] * n))


@converts(Cat)
def _cat(c):
    return c.node("Concat", *(c.cast_input(i) for i in range(len(c.call.inputs))), axis=int(c.params["dim"]))


def _index_parts(index):
    return list(index) if isinstance(index, tuple) else [index]


def _index_key(index):
    """An index with its slices' bounds left out (they may follow dynamic axes: _bound checks them)."""
    return [("slice", p.step) if isinstance(p, slice) else p for p in _index_parts(index)]


def _bound(c, value, default, others, what):
    """A slice bound as a 1-D int64 piece: constant, or doubling with dynamic axes (split sizes along a
    dynamic batch) and then computed from the inputs' Shape."""
    value = default if value is None else int(value)
    symbols = {s for s, other in others if (default if other is None else int(other)) != value}
    if not symbols:
        return value
    if any((default if other is None else int(other)) != 2 * value for s, other in others if s in symbols):
        raise OnnxExporterError(f"{what} changes with dynamic axes {sorted(symbols)} in a way distml cannot "
                                "express from the input shapes")
    return c.graph.dim_value(value, symbols, what)


@converts(Split, key=lambda call: (call.inputs, [_index_key(k) for k in call.params["keys"]]))
def _split(c):
    x = c.input(0)
    return [_basic_index(c, x, len(c.shape(0)), key, [(s, v.params["keys"][j]) for s, v in c.variants])
            for j, key in enumerate(c.params["keys"])]


# ---- indexing ----

def _basic_index(c, x, ndim, index, variants):
    """x[index] for ints, slices, None, Ellipsis and at most one integer tensor (with slices only);
    `variants`: (dynamic axis, the same index in the trace where it was doubled)."""
    parts = _index_parts(index)
    is_tensor = [hasattr(p, "kind") for p in parts]
    if any(t and p.dtype == np.bool_ for p, t in zip(parts, is_tensor)):
        raise c.unsupported("indexing with a boolean mask gives a data-dependent shape")
    used = sum(1 for p in parts if p is not None and p is not Ellipsis)
    ellipsis = [i for i, p in enumerate(parts) if p is Ellipsis]
    tensors = sum(is_tensor)
    if tensors > 1 or (tensors and any(p is None or (not hasattr(p, "kind") and isinstance(p, (int, np.integer)))
                                       for p in parts)):
        raise c.unsupported("only one tensor index, combined with slices only, is supported")
    starts, ends, axes, steps, gathers, nones = [], [], [], [], [], []
    dim = position = 0
    for k, p in enumerate(parts):
        if p is Ellipsis:
            dim += ndim - used
            position += ndim - used
        elif p is None:
            nones.append(position)
            position += 1
        elif isinstance(p, slice):
            if p != slice(None):
                others = [(s, _index_parts(v)[k]) for s, v in variants]
                what = f"the slice {p} (of {c.op_name} in module '{c.call.module}')"
                starts.append(_bound(c, p.start, 0, [(s, o.start) for s, o in others], what))
                ends.append(_bound(c, p.stop, INT64_MAX, [(s, o.stop) for s, o in others], what))
                axes.append(dim)
                steps.append(1 if p.step is None else int(p.step))
            dim += 1
            position += 1
        elif hasattr(p, "kind"):
            gathers.append((dim, c.value(p)))
            dim += 1
            position += len(p.shape)
        else:
            gathers.append((dim, c.const(np.asarray(int(p), np.int64))))
            dim += 1
    out = x
    if axes:
        out = c.node("Slice", out, c.graph.shape_tensor(starts, starts), c.graph.shape_tensor(ends, ends),
                     c.ints(axes), c.ints(steps))
    for d, indices in reversed(gathers):
        out = c.node("Gather", out, indices, axis=d)
    if nones:
        out = c.node("Unsqueeze", out, c.ints(nones))
    if out is x:
        out = c.node("Identity", x)
    return out


@converts(GetItem, key=lambda call: (call.inputs, _index_key(call.params["index"])))
def _getitem(c):
    return _basic_index(c, c.input(0), len(c.shape(0)), c.params["index"],
                        [(s, v.params["index"]) for s, v in c.variants])


@converts(IndexPut)
def _index_put(c):
    """x with x[index] = value as ScatterND at the (constant) positions the index picks."""
    index = c.params["index"]
    parts = index if isinstance(index, tuple) else (index,)
    if any(hasattr(p, "kind") and p.kind != "const" for p in parts):
        raise c.unsupported("writing at positions given by a traced tensor")
    numpy_index = tuple(p.value if hasattr(p, "kind") else p for p in parts)
    shape = c.shape(0)
    positions = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)[numpy_index]
    if positions.size == 0:
        return c.node("Identity", c.input(0))
    if np.unique(positions).size != positions.size:
        raise c.unsupported("writing at repeated positions")
    value, region = c.cast_input(1, c.ref(0).dtype), positions.shape
    value_shape = getattr(c.ref(1), "shape", ())
    if len(value_shape) > len(region):  # numpy drops the value's leading 1s
        value = c.node("Reshape", value, c.ints(value_shape[len(value_shape) - len(region):]))
    indices = np.stack(np.unravel_index(positions, shape), axis=-1)
    return c.node("ScatterND", c.input(0), c.const(indices), c.node("Expand", value, c.ints(region)))


def _leading_block(c, name, shape, block, dim=None):
    """name (of `shape`) cut to the leading `block` (all of `dim` kept), as Gather/Scatter's forward does."""
    axes = [d for d, (s, b) in enumerate(zip(shape, block)) if d != dim and s != b]
    if not axes:
        return name
    return c.node("Slice", name, c.ints([0] * len(axes)), c.ints([block[d] for d in axes]), c.ints(axes))


@converts(Gather)
def _gather(c):
    indices, dim = c.params["index"], int(c.params["dim"])
    x = _leading_block(c, c.input(0), c.shape(0), indices.shape, dim)
    return c.node("GatherElements", x, c.value(indices), axis=dim)


@converts(Scatter)
def _scatter(c):
    indices, dim = c.params["index"], int(c.params["dim"])
    src = c.call.inputs[1]
    if hasattr(src, "kind") and src.shape:
        updates = _leading_block(c, c.input(1), src.shape, indices.shape)
    else:
        updates = c.node("Expand", c.cast_input(1), c.node("Shape", c.value(indices)))
    if c.params["add"]:
        if c.opset < 16:
            raise c.unsupported("scatter_add needs ScatterElements with reduction (opset 16)")
        return c.node("ScatterElements", c.input(0), c.value(indices), updates, axis=dim, reduction="add")
    return c.node("ScatterElements", c.input(0), c.value(indices), updates, axis=dim)


@converts(Embedding)
def _embedding(c):
    return c.node("Gather", c.input(0), c.input(1), axis=0)


# ---- dense layers ----

@converts(Linear)
def _linear(c):
    x, w, b = c.input(0), c.input(1), c.input(2)
    if len(c.shape(0)) == 2:
        return c.node("Gemm", x, w, *([b] if b else []), transB=1)
    out = c.node("MatMul", x, c.node("Transpose", w, perm=[1, 0]))
    return c.node("Add", out, b) if b else out


@converts(Einsum)
def _einsum(c):
    equation = ",".join(c.params["inputs"]) + "->" + c.params["output"]
    return c.node("Einsum", *(c.input(i) for i in range(len(c.call.inputs))), equation=equation)


# ---- convolution and pooling ----

def _window_pads(size, k, s, p, d, out):
    """(begin, end) padding that gives `out` windows, preferring PyTorch's symmetric padding."""
    if out == (size + 2 * p - d * (k - 1) - 1) // s + 1:
        return p, p
    return p, max(0, (out - 1) * s + d * (k - 1) + 1 - size - p)


def _window_attributes(window):
    """Conv's attributes for a distml.ops.conv.Window, in 1 to 3 spatial dims."""
    begin, end = zip(*(_window_pads(*dims) for dims in zip(window.size, window.kernel, window.stride, window.padding,
                                                               window.dilation, window.out)))
    return {"kernel_shape": list(window.kernel), "strides": list(window.stride), "pads": list(begin) + list(end),
            "dilations": list(window.dilation)}


def _conv_key(call):
    return call.inputs, _window_attributes(call.params["window"]), call.params["groups"]


def _with_bias(c):
    bias = c.input(2)
    return [c.input(0), c.input(1)] + ([bias] if bias else [])


@converts(Conv, key=_conv_key)
def _conv(c):
    return c.node("Conv", *_with_bias(c), group=int(c.params["groups"]), **_window_attributes(c.params["window"]))


def _conv_transpose_attributes(call):
    """The window is the convolution mapping the output (its `size`) back to x (its `out`)."""
    w = call.params["window"]
    extra = [size - ((out - 1) * s - 2 * p + d * (k - 1) + 1)
             for size, out, s, p, d, k in zip(w.size, w.out, w.stride, w.padding, w.dilation, w.kernel)]
    return {"kernel_shape": list(w.kernel), "strides": list(w.stride), "pads": list(w.padding) * 2,
            "dilations": list(w.dilation), "output_padding": extra}


@converts(ConvTranspose, key=lambda call: (call.inputs, _conv_transpose_attributes(call), call.params["groups"]))
def _conv_transpose(c):
    return c.node("ConvTranspose", *_with_bias(c), group=int(c.params["groups"]), **_conv_transpose_attributes(c.call))


def _pool_window(call):
    """The last `dims` entries of each part of a pool geometry (csrc/kernels/pool.h's tuple):
    sizes, kernel, stride, padding, dilation and output sizes."""
    g, n = call.params["geometry"], call.params["dims"]
    return [list(g[1 + 3 * part:4 + 3 * part][3 - n:]) for part in range(6)]


def _pool_attributes(call, dilations=True):
    size, kernel, stride, pad, dilation, out = _pool_window(call)
    floor = all(o == (s + 2 * p - d * (k - 1) - 1) // st + 1
                for s, k, st, p, d, o in zip(size, kernel, stride, pad, dilation, out))
    attributes = {"kernel_shape": kernel, "strides": stride, "pads": pad + pad, "ceil_mode": int(not floor)}
    if dilations:
        attributes["dilations"] = dilation
    elif any(d != 1 for d in dilation):
        raise OnnxExporterError("average pooling with dilation has no ONNX form")
    return attributes


def _batched(c, n, pool):
    """pool(name) on input 0 with the (N, C, *spatial) layout ONNX's pools want: an unbatched
    (C, *spatial) input gets a batch dim of 1 around it."""
    rank = len(c.shape(0))
    if rank == n + 2:
        return pool(c.input(0))
    if rank != n + 1:
        raise c.unsupported(f"pooling a {rank}-d input over its last {n} dims (ONNX wants (N, C, *spatial))")
    outputs = pool(c.node("Unsqueeze", c.input(0), c.ints([0])))
    first = outputs[0] if isinstance(outputs, list) else outputs
    squeezed = c.node("Squeeze", first, c.ints([0]))
    return [squeezed] + outputs[1:] if isinstance(outputs, list) else squeezed


@converts(MaxPool, key=lambda call: (call.inputs, _pool_attributes(call)))
def _max_pool(c):
    attributes = _pool_attributes(c.call)
    return _batched(c, c.params["dims"], lambda x: [c.node("MaxPool", x, **attributes), UNAVAILABLE])


@converts(AvgPool, key=lambda call: (call.inputs, _pool_attributes(call, dilations=False),
                                      call.params["count_include_pad"], call.params["divisor_override"]))
def _avg_pool(c):
    if c.params["divisor_override"]:
        raise c.unsupported("divisor_override (ONNX's AveragePool divides by the window or its valid part)")
    attributes = dict(_pool_attributes(c.call, dilations=False), count_include_pad=int(c.params["count_include_pad"]))
    return _batched(c, c.params["dims"], lambda x: c.node("AveragePool", x, **attributes))


def _adaptive_kernel(call):
    """None for global pooling, the kernel when the output size divides the input's, else "uneven"."""
    out = list(call.params["output_size"])
    size = list(call.inputs[0].shape[-len(out):])
    if all(o == 1 for o in out):
        return None
    if any(s % o for s, o in zip(size, out)):
        return "uneven"
    return [s // o for s, o in zip(size, out)]


def _adaptive(c, op_type, n_outputs):
    kernel, n = _adaptive_kernel(c.call), len(c.params["output_size"])
    if kernel == "uneven":
        raise c.unsupported(f"output size {list(c.params['output_size'])} does not divide the input size "
                            f"{list(c.shape(0)[-n:])}")

    def pool(x):
        out = c.node(f"Global{op_type}", x) if kernel is None else c.node(op_type, x, kernel_shape=kernel,
                                                                            strides=kernel)
        return [out, UNAVAILABLE] if n_outputs == 2 else out
    return _batched(c, n, pool)


@converts(AdaptiveAvgPool, key=lambda call: (call.inputs, _adaptive_kernel(call)))
def _adaptive_avg_pool(c):
    return _adaptive(c, "AveragePool", 1)


@converts(AdaptiveMaxPool, key=lambda call: (call.inputs, _adaptive_kernel(call)))
def _adaptive_max_pool(c):
    return _adaptive(c, "MaxPool", 2)


# ---- normalisation ----

@converts(BatchNorm)
def _batch_norm(c):
    """Evaluation mode only: BatchNormalization with epsilon 0 and the variance 1 / invstd^2 (the
    primitive holds invstd = 1 / sqrt(running_var + eps))."""
    if c.params["training"]:
        raise c.unsupported("batch_norm with batch statistics (training mode); export exports in eval mode")
    invstd = c.value(c.params["invstd"])
    channels = np.ones(c.shape(0)[1], dtype=c.out_dtype)
    weight = c.input(1) or c.const(channels)
    bias = c.input(2) or c.const(np.zeros_like(channels))
    var = c.node("Reciprocal", c.node("Mul", invstd, invstd))
    return c.node("BatchNormalization", c.input(0), weight, bias, c.value(c.params["mean"]), var, epsilon=0.0)


@converts(Normalize)
def _normalize(c):
    x, axes, ndim = c.input(0), [int(a) for a in c.params["axes"]], len(c.shape(0))
    eps = float(c.params["eps"])
    if c.opset >= 17 and axes == list(range(axes[0], ndim)):
        scale = c.const(np.ones(c.shape(0)[axes[0]:], dtype=c.out_dtype))
        return c.node("LayerNormalization", x, scale, axis=axes[0], epsilon=eps)
    centered = c.node("Sub", x, c.reduce("ReduceMean", x, axes, True))
    var = c.reduce("ReduceMean", c.node("Mul", centered, centered), axes, True)
    return c.node("Div", centered, c.node("Sqrt", c.node("Add", var, c.scalar(eps))))


@converts(LayerNorm)
def _layer_norm(c):
    """LayerNormalization from opset 17, before it the normalisation composed, then Mul and Add."""
    x, dims, ndim = c.input(0), int(c.params["dims"]), len(c.shape(0))
    eps = float(c.params["eps"])
    if c.opset >= 17:
        weight = c.input(1) or c.const(np.ones(c.shape(0)[ndim - dims:], dtype=c.out_dtype))
        bias = [c.input(2)] if c.input(2) else []  # an empty trailing name crashes onnxruntime's loader
        return c.node("LayerNormalization", x, weight, *bias, axis=ndim - dims, epsilon=eps)
    axes = list(range(ndim - dims, ndim))
    centered = c.node("Sub", x, c.reduce("ReduceMean", x, axes, True))
    var = c.reduce("ReduceMean", c.node("Mul", centered, centered), axes, True)
    out = c.node("Div", centered, c.node("Sqrt", c.node("Add", var, c.scalar(eps))))
    out = c.node("Mul", out, c.input(1)) if c.input(1) else out
    return c.node("Add", out, c.input(2)) if c.input(2) else out


# ---- reductions ----

@converts(Sum)
def _sum(c):
    dims = c.params["dims"]
    x = c.cast_input(0)
    if dims == ():
        return c.node("Identity", x)
    return c.reduce("ReduceSum", x, dims, c.params["keepdim"])


@converts(Prod)
def _prod(c):
    dim = c.params["dim"]
    return c.reduce("ReduceProd", c.cast_input(0), None if dim is None else [dim], c.params["keepdim"])


@converts(AMax)
def _amax(c):
    return c.reduce("ReduceMax" if c.params["take_max"] else "ReduceMin", c.input(0), c.params["dims"],
                    c.params["keepdim"])


@converts(CumSum)
def _cumsum(c):
    return c.node("CumSum", c.cast_input(0), c.const(np.asarray(c.params["dim"], np.int64)))


# ---- recurrent layers ----

_ONNX_RNN = {  # distml mode -> (ONNX op, order of PyTorch's gate blocks in ONNX's, attributes)
    MODES["RNN_TANH"]: ("RNN", [0], {"activations": ["Tanh"]}),
    MODES["RNN_RELU"]: ("RNN", [0], {"activations": ["Relu"]}),
    MODES["LSTM"]: ("LSTM", [0, 3, 1, 2], {}),  # PyTorch i f g o -> ONNX i o f c
    MODES["GRU"]: ("GRU", [1, 0, 2], {"linear_before_reset": 1}),  # PyTorch r z n -> ONNX z r h
}


def _gate_blocks(c, name, order):
    """`name`'s gate blocks (along dim 0) in ONNX's order, with a leading num_directions axis of 1."""
    if len(order) > 1:
        blocks = c.node("Split", name, c.ints([c.shape(3)[0] // len(order)] * len(order)), outputs=len(order))
        name = c.node("Concat", *[blocks[k] for k in order], axis=0)
    return c.node("Unsqueeze", name, c.ints([0]))


def _rnn_key(call):
    return call.inputs, {k: v for k, v in call.params.items() if k != "batch_sizes"}


@converts(RecurrentLayer, key=_rnn_key)
def _recurrent_layer(c):
    """One layer and direction as ONNX's RNN / LSTM / GRU over (steps, batch, features)."""
    mode, batch_sizes = c.params["mode"], c.params["batch_sizes"]
    if len(set(np.asarray(getattr(batch_sizes, "value", batch_sizes)).tolist())) > 1:
        raise c.unsupported("packed sequences of different lengths (export a padded batch instead)")
    if c.call.inputs[7] is not None:
        raise c.unsupported("LSTM with proj_size (ONNX's LSTM has no projection)")
    op_type, order, attributes = _ONNX_RNN[mode]
    hidden = c.shape(4)[1]
    x, h0 = c.input(0), c.input(1)
    batch = c.node("Slice", c.node("Shape", h0), c.ints([0]), c.ints([1]))
    steps = c.node("Reshape", x, c.node("Concat", c.ints([-1]), batch, c.ints([c.shape(0)[1]]), axis=0))
    w, r = _gate_blocks(c, c.input(3), order), _gate_blocks(c, c.input(4), order)
    bias = ""
    if c.call.inputs[5] is not None:
        b_ih, b_hh = (c.node("Squeeze", _gate_blocks(c, c.input(i), order), c.ints([0])) for i in (5, 6))
        bias = c.node("Unsqueeze", c.node("Concat", b_ih, b_hh, axis=0), c.ints([0]))
    states = [c.node("Unsqueeze", h0, c.ints([0]))]
    if op_type == "LSTM":
        states.append(c.node("Unsqueeze", c.input(2), c.ints([0])))
    direction = "reverse" if c.params["reverse"] else "forward"
    outputs = c.node(op_type, steps, w, r, bias, "", *states, outputs=len(states) + 1, hidden_size=hidden,
                     direction=direction, **attributes)
    y = c.node("Reshape", c.node("Squeeze", outputs[0], c.ints([1])), c.ints([-1, hidden]))
    return [y] + [c.node("Squeeze", state, c.ints([0])) for state in outputs[1:]]
