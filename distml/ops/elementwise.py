"""Elementwise arithmetic and math, with PyTorch's broadcasting and type promotion."""
import contextlib
import numbers

import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.amp.autocast_mode import autocast_op
from distml.autograd.function import Primitive
from distml.ops._util import broadcast_shapes, complex_grads, promote, unbroadcast
from distml.ops.convert import cast
from distml.ops.registry import register
from distml.tensor import Tensor, _label, write_out


def _shape(x):
    return x.shape if hasattr(x, "shape") else ()


# ---- binary primitives ----

class Add(Primitive):
    saves_inputs = False

    def forward(self, a, b, alpha=1):
        self.shape_a, self.shape_b, self.alpha = getattr(a, "shape", ()), getattr(b, "shape", ()), alpha
        return a + b if alpha == 1 else a + alpha * b

    def backward(self, grad):
        needs = self.needs_input_grad
        return (unbroadcast(grad, self.shape_a) if needs[0] else None,
                unbroadcast(grad if self.alpha == 1 else grad * self.alpha, self.shape_b) if needs[1] else None)


class Mul(Primitive):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        needs = self.needs_input_grad
        if grad.dtype.kind == "c":
            return complex_grads(grad, self.a, self.b,
                                 lambda g, a, b: unbroadcast(g * b, _shape(a)) if needs[0] else None,
                                 lambda g, a, b: unbroadcast(g * a, _shape(b)) if needs[1] else None)
        return (unbroadcast(grad * self.b, _shape(self.a)) if needs[0] else None,
                unbroadcast(grad * self.a, _shape(self.b)) if needs[1] else None)


class Scale(Primitive):
    """x times (or divided by) a Python number: backward needs neither x nor the output."""
    saves_inputs = False

    def forward(self, x, factor, divide):
        self.factor, self.divide = factor, divide
        return x / factor if divide else x * factor

    def backward(self, grad):
        return grad / self.factor if self.divide else grad * self.factor

    def name(self):
        return "DivBackward0" if getattr(self, "divide", False) else "MulBackward0"


class Div(Primitive):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, grad):
        needs = self.needs_input_grad
        if grad.dtype.kind == "c":
            return complex_grads(grad, self.a, self.b,
                                 lambda g, a, b: unbroadcast(g / b, _shape(a)) if needs[0] else None,
                                 lambda g, a, b: unbroadcast(-g * a / (b * b), _shape(b)) if needs[1] else None)
        grad_a = grad / self.b
        return (unbroadcast(grad_a, _shape(self.a)) if needs[0] else None,
                unbroadcast(-grad_a * self.a / self.b, _shape(self.b)) if needs[1] else None)


class Pow(Primitive):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, grad):
        a, b = self.a, self.b
        needs = self.needs_input_grad
        grad_a = grad_b = None
        if needs[0]:
            # d/da a**b = b * a**(b-1), taken as 0 where b == 0 (as PyTorch does, also at a == 0)
            xp = get_array_module(grad)
            grad_a = unbroadcast(xp.where(b == 0, 0, grad * b * a ** (b - 1)), _shape(a))
        if needs[1]:
            xp = get_array_module(self.out)
            log_a = xp.log(xp.where(a > 0, a, 1)) if hasattr(a, "shape") else (np.log(a) if a > 0 else 0.0)
            grad_b = unbroadcast(grad * self.out * log_a, _shape(b))
        return grad_a, grad_b


class Maximum(Primitive):
    """max(a, b) or min(a, b) elementwise; ties share the gradient equally, as in PyTorch."""

    def forward(self, a, b, take_max):
        xp = get_array_module(a)
        self.a, self.b, self.take_max = a, b, take_max
        return xp.maximum(a, b) if take_max else xp.minimum(a, b)

    def backward(self, grad):
        xp = get_array_module(grad)
        a, b = self.a, self.b
        a_wins = (a > b) if self.take_max else (a < b)
        share = xp.where(a_wins, 1.0, xp.where(a == b, 0.5, 0.0)).astype(grad.dtype)
        needs = self.needs_input_grad
        return (unbroadcast(grad * share, _shape(a)) if needs[0] else None,
                unbroadcast(grad * (1 - share), _shape(b)) if needs[1] else None)


class Where(Primitive):
    saves_inputs = False

    def forward(self, a, b, condition):
        self.shapes, self.condition = (_shape(a), _shape(b)), condition
        return get_array_module(condition).where(condition, a, b)

    def backward(self, grad):
        xp = get_array_module(grad)
        needs = self.needs_input_grad
        return (unbroadcast(xp.where(self.condition, grad, 0), self.shapes[0]) if needs[0] else None,
                unbroadcast(xp.where(self.condition, 0, grad), self.shapes[1]) if needs[1] else None)


# ---- unary primitives ----

class Neg(Primitive):
    saves_inputs = False

    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


class Exp(Primitive):
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        self.out = get_array_module(x).exp(x)
        return self.out

    def backward(self, grad):
        return grad * self.out


class Log(Primitive):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, grad):
        return grad / self.x


class Log1p(Primitive):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log1p(x)

    def backward(self, grad):
        return grad / (1 + self.x)


class Sqrt(Primitive):
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        self.out = get_array_module(x).sqrt(x)
        return self.out

    def backward(self, grad):
        return grad / (2 * self.out)


class Abs(Primitive):
    def forward(self, x):
        self.x = x
        return get_array_module(x).abs(x)

    def backward(self, grad):
        return grad * get_array_module(grad).sign(self.x)


class Sign(Primitive):
    """sign(x): its gradient is zero everywhere (PyTorch still records it)."""
    saves_inputs = False

    def forward(self, x):
        return get_array_module(x).sign(x)

    def backward(self, grad):
        return get_array_module(grad).zeros_like(grad)


class Sin(Primitive):
    def forward(self, x):
        self.x = x
        return get_array_module(x).sin(x)

    def backward(self, grad):
        return grad * get_array_module(grad).cos(self.x)


class Cos(Primitive):
    def forward(self, x):
        self.x = x
        return get_array_module(x).cos(x)

    def backward(self, grad):
        return -grad * get_array_module(grad).sin(self.x)


class Tanh(Primitive):
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        self.out = get_array_module(x).tanh(x)
        return self.out

    def backward(self, grad):
        return grad * (1 - self.out * self.out)


class Sigmoid(Primitive):
    """1 / (1 + exp(-x)), written so that neither branch overflows."""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))
        self.out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self.out

    def backward(self, grad):
        return grad * self.out * (1 - self.out)


class Relu(Primitive):
    """max(x, 0); `inplace=True` writes it into x's memory (backward reads only the result)."""
    saves_inputs = False
    saves_output = True

    def forward(self, x, inplace=False):
        self.out = get_array_module(x).maximum(x, 0, out=x if inplace else None)
        return self.out

    def backward(self, grad):
        return grad * (self.out > 0)


class Clamp(Primitive):
    """x limited to [low, high] (either None; numbers or arrays that broadcast), with PyTorch's gradients:
    x's where low <= x <= high, low's where x < low (and low < high), high's where x > high (or high < low)."""

    def forward(self, x, low, high):
        self.x, self.low, self.high = x, low, high
        return get_array_module(x).clip(x, low, high).astype(x.dtype, copy=False)  # bfloat16 clips in float32

    def backward(self, grad):
        xp = get_array_module(grad)
        x, low, high = self.x, self.low, self.high
        needs = self.needs_input_grad
        grad_x = grad_low = grad_high = None
        if needs[0]:
            keep = (x >= low) if high is None else (x <= high) if low is None else (x >= low) & (x <= high)
            grad_x = unbroadcast(xp.where(keep, grad, 0), x.shape)
        if needs[1]:
            below = (x < low) if high is None else (x < low) & (low < high)
            grad_low = unbroadcast(xp.where(below, grad, 0), low.shape)
        if needs[2]:
            above = (x > high) if low is None else (x > high) | (high < low)
            grad_high = unbroadcast(xp.where(above, grad, 0), high.shape)
        return grad_x, grad_low, grad_high


# ---- public functions ----

@register(method=True)
def add(a, b, alpha=1):
    """a + alpha * b, broadcasting: `distml.add(x, y, alpha=2)`."""
    a, b = promote(a, b)
    return Add.apply(a, b) if alpha == 1 else Add.apply(a, b, alpha=alpha)


@register('subtract', method=True)
def sub(a, b, alpha=1):
    """a - alpha * b."""
    if isinstance(a, Tensor) and a.array.dtype == np.bool_ and isinstance(b, Tensor) and b.array.dtype == np.bool_:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    a, b = promote(a, b)
    return Add.apply(a, b, alpha=-alpha)


@register()
def rsub(a, b, alpha=1):
    """b - alpha * a."""
    return sub(b, a, alpha=alpha)


@register('multiply', method=True)
def mul(a, b):
    a, b = promote(a, b)
    if not isinstance(b, Tensor):
        return Scale.apply(a, factor=b, divide=False)
    if not isinstance(a, Tensor):
        return Scale.apply(b, factor=a, divide=False)
    return Mul.apply(a, b)


@register('divide', 'true_divide', method=True)
def div(a, b, rounding_mode=None):
    """a / b; integer inputs give a float result; rounding_mode "trunc" or "floor" rounds it."""
    if rounding_mode is None:
        a, b = promote(a, b, to_float=True)
        return Scale.apply(a, factor=b, divide=True) if not isinstance(b, Tensor) else Div.apply(a, b)
    if rounding_mode not in ("trunc", "floor"):
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")
    a, b = promote(a, b)
    return _rounded_divide(a, b, rounding_mode)


def _rounded_divide(a, b, mode):
    data_a = a.array if isinstance(a, Tensor) else a
    data_b = b.array if isinstance(b, Tensor) else b
    xp = get_array_module(data_a if isinstance(a, Tensor) else data_b)
    if mode == "floor":
        out = xp.floor_divide(data_a, data_b)
    else:
        quotient = xp.true_divide(data_a, data_b)
        out = xp.trunc(quotient).astype(quotient.dtype if dtypes.is_float(xp.result_type(data_a, data_b))
                                        else xp.result_type(data_a, data_b))
    return Tensor(xp.asarray(out))


@register(method=True, inplace=True)
def floor_divide(a, b):
    return div(a, b, rounding_mode="floor")


@register(method=True, inplace=True)
def remainder(a, b):
    """Python's modulo (sign of the divisor): a - floor(a / b) * b."""
    a, b = promote(a, b)
    return sub(a, mul(floor_divide(a, b), b))


@register(method=True)
@autocast_op(cuda="float32")
def pow(base, exponent):
    """base ** exponent; `distml.pow(x, 2)`."""
    base, exponent = promote(base, exponent)
    return Pow.apply(base, exponent)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")  # PyTorch's square is pow(x, 2)
def square(x):
    return mul(x, x)


def _tensor_operands(function, *operands):
    """PyTorch's TypeError for an op that takes tensors only (`maximum(x, 1.)`): operands are
    (name, position, value)."""
    for name, position, x in operands:
        if not isinstance(x, Tensor):
            raise TypeError(f"{function}(): argument '{name}' (position {position}) must be Tensor, not {_label(x)}")


@register(method=True, inplace=True)
def maximum(input, other, *, out=None):
    """Elementwise max of two tensors (broadcasting, promoting; NaN wins; ties share the gradient)."""
    _tensor_operands("maximum", ("input", 1, input), ("other", 2, other))
    result = Maximum.apply(*promote(input, other), take_max=True)
    return result if out is None else write_out(result, out, "maximum")


@register(method=True, inplace=True)
def minimum(input, other, *, out=None):
    """Elementwise min of two tensors (broadcasting, promoting; NaN wins; ties share the gradient)."""
    _tensor_operands("minimum", ("input", 1, input), ("other", 2, other))
    result = Maximum.apply(*promote(input, other), take_max=False)
    return result if out is None else write_out(result, out, "minimum")


_WHERE_SIGNATURES = ("\n * (Tensor condition)\n * (Tensor condition, Tensor input, Tensor other, *, Tensor out = None)"
                     "\n * (Tensor condition, Number self, Tensor other)\n * (Tensor condition, Tensor input, Number other)"
                     "\n * (Tensor condition, Number self, Number other)\n")


def _is_operand(v):
    """A tensor or a Python number (the fast check first: where runs in every masked loss)."""
    return type(v) in (Tensor, float, int, bool) or isinstance(v, (Tensor, numbers.Number))


@register()
def where(condition, input=None, other=None, *, out=None):
    """input where condition is true, else other; either may be a Python number, and all three broadcast
    (`where(c, 1, 0)` is int64, `where(c, x, 0.)` has x's dtype): `distml.where(x > 0, x, 0.)`.
    `where(condition)` is `nonzero(condition, as_tuple=True)`."""
    if not (isinstance(condition, Tensor) and _is_operand(input) and _is_operand(other)):
        if isinstance(condition, Tensor) and input is None and other is None and out is None:
            from distml.ops.index import nonzero
            return nonzero(condition.reshape(1) if condition.array.ndim == 0 else condition, as_tuple=True)
        given = ", ".join(_label(v) for v in (condition, input, other) if v is not None)
        raise TypeError(f"where() received an invalid combination of arguments - got ({given}), but expected one "
                        f"of:{_WHERE_SIGNATURES}")
    if condition.array.dtype != np.bool_:
        raise RuntimeError("where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{condition.dtype.legacy_name}")
    if out is not None:
        _tensor_operands("where", ("input", 2, input), ("other", 3, other))
    if isinstance(input, Tensor) or isinstance(other, Tensor):
        input, other = promote(input, other)
        like = input if isinstance(input, Tensor) else other
        plain = like.array.dtype.kind == "f" and type(input) in (Tensor, int, float) and type(other) in (Tensor, int, float)
    else:
        like = Tensor(get_array_module(condition.array).empty((), dtype=dtypes.result_type(input, other)))
        plain = False
    if not plain:  # numbers become 0-d tensors of the result dtype (PyTorch's error when one does not fit)
        input, other = (v if isinstance(v, Tensor) else _scalar(v, like) for v in (input, other))
    shapes = [v.array.shape for v in (input, other) if isinstance(v, Tensor)]
    if any(shape != condition.array.shape for shape in shapes):
        broadcast_shapes(condition.array.shape, broadcast_shapes(*shapes) if len(shapes) == 2 else shapes[0])
    result = Where.apply(input, other, condition=condition.array)
    if out is not None and out.dtype is not result.dtype:
        raise RuntimeError(f"Expected out type to be {result.dtype.legacy_name} but got {out.dtype.legacy_name}")
    return result if out is None else write_out(result, out, "where")


# How PyTorch's C++ messages name a dtype ("got mask with dtype long int").
_CPP_NAMES = {"bool": "bool", "uint8": "unsigned char", "int8": "signed char", "int16": "short int", "int32": "int",
              "int64": "long int", "float16": "c10::Half", "bfloat16": "c10::BFloat16", "float32": "float",
              "float64": "double"}


def _scalar(value, like):
    """A Python number as a 0-d tensor of like's dtype and device, with PyTorch's error when it does not fit."""
    try:
        with np.errstate(invalid="raise") if isinstance(value, np.generic) else contextlib.nullcontext():
            return Tensor(get_array_module(like.array).asarray(value, dtype=like.array.dtype))
    except (OverflowError, ValueError, FloatingPointError):
        raise RuntimeError(f"value cannot be converted to type {like.array.dtype.name}_t without overflow") from None


def _fill_value(value, like, function):
    """masked_fill's value: a number as a 0-d array of like's dtype, or a 0-d tensor
    (kept as a tensor when it requires grad, so the gradient reaches it)."""
    if isinstance(value, Tensor):
        if value.array.ndim:
            raise RuntimeError(f"{function} only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.array.ndim} dimension(s).")
        if value.requires_grad:
            from distml.ops.convert import cast
            return cast(value, like.array.dtype)
        value = value.item()
    if not isinstance(value, numbers.Number):
        raise TypeError(f"{function.rstrip('_')}() received an invalid combination of arguments - got (Tensor, "
                        f"{_label(value)}), but expected one of:\n * (Tensor mask, Tensor value)\n"
                        " * (Tensor mask, Number value)\n")
    return _scalar(value, like)


@register(method=True, inplace=True)
def masked_fill(x, mask, value):
    """x with value (a number or a 0-d tensor) where mask is true, mask and x broadcasting:
    `scores.masked_fill(mask, float("-inf"))`; the result has x's dtype."""
    if not isinstance(mask, Tensor) or mask.array.dtype != np.bool_:
        found = _CPP_NAMES.get(mask.array.dtype.name, mask.array.dtype.name) if isinstance(mask, Tensor) else _label(mask)
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {found}")
    broadcast_shapes(mask.array.shape, x.array.shape)
    return Where.apply(_fill_value(value, x, "masked_fill_"), x, condition=mask.array)


@register(method=True, inplace=True)
def neg(x):
    if x.array.dtype == np.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    return Neg.apply(x)


def _float_input(x):
    """Integer and bool inputs of float functions are computed in the default float dtype."""
    return x if dtypes.is_float(x.array.dtype) else cast(x, dtypes.get_default_dtype())


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def exp(x):
    return Exp.apply(_float_input(x))


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def log(x):
    return Log.apply(_float_input(x))


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def log1p(x):
    """log(1 + x), accurate for small x."""
    return Log1p.apply(_float_input(x))


@register(method=True, inplace=True)
def sqrt(x):
    return Sqrt.apply(_float_input(x))


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def rsqrt(x):
    """1 / sqrt(x)."""
    return div(1.0, sqrt(x))


@register(method=True, inplace=True)
def sin(x):
    return Sin.apply(_float_input(x))


@register(method=True, inplace=True)
def cos(x):
    return Cos.apply(_float_input(x))


@register(method=True, inplace=True)
def tanh(x):
    return Tanh.apply(_float_input(x))


@register(method=True, inplace=True)
def sigmoid(x):
    return Sigmoid.apply(_float_input(x))


@register('absolute', method=True, inplace=True)
def abs(x):
    return x if x.array.dtype == np.bool_ else Abs.apply(x)


@register(method=True, inplace=True)
def sign(x):
    return Sign.apply(x)


@register(method=True)
def relu(x):
    return Relu.apply(x)


@register(method=True)
def relu_(x):
    """relu written into x's memory, with no copy of x: backward reads the result, which x now
    holds (`x.relu_()`, `F.relu(x, inplace=True)`, `nn.ReLU(inplace=True)`)."""
    from distml.autograd.grad_mode import _State
    records = x.requires_grad and _State.enabled
    if records and (x.grad_fn is None or x._base is not None):
        return x._inplace(Relu.apply(x))  # a leaf or a view: _inplace raises PyTorch's error, before any write
    out = Relu.apply(x, inplace=True)
    x._inplace(out)
    if records:  # the node saved `out`, which is x's memory: it must watch x's versions from here on
        out.grad_fn.saved_versions = ((x._version, x._version[0]),)
    return x


@register('clip', method=True, inplace=True)
def clamp(x, min=None, max=None, *, out=None):
    """x limited to [min, max]; the bounds are numbers or tensors (broadcasting), either may be None:
    `x.clamp(min=0)`, `distml.clamp(x, lo, hi)`. The result type promotes x with the bounds
    (`int_x.clamp(0.5)` is float); min > max gives max."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if not (x.array.dtype.kind == "f" and type(min) in _PLAIN_BOUNDS and type(max) in _PLAIN_BOUNDS):
        x, min, max = _clamp_operands(x, min, max)
    result = Clamp.apply(x, min, max)
    if out is not None and out.dtype is not result.dtype:
        raise RuntimeError(f"Found dtype {out.dtype.legacy_name} but expected {result.dtype.legacy_name}")
    return result if out is None else write_out(result, out, "clamp")


_PLAIN_BOUNDS = (int, float, type(None))  # bounds that leave a float x's dtype as it is


def _clamp_operands(x, min, max):
    """clamp's x and bounds in their promoted dtype: tensor bounds cast, number bounds as 0-d tensors
    (PyTorch's error when one does not fit), tensor bounds checked to broadcast."""
    for name, b in (("min", min), ("max", max)):
        if b is not None and not isinstance(b, (Tensor, numbers.Number)):
            raise TypeError(f"clamp(): argument '{name}' must be Number or Tensor, not {_label(b)}")
    bounds = [b.array if isinstance(b, Tensor) else b for b in (min, max) if b is not None]
    dtype = dtypes.result_type(x.array, *bounds)
    from distml.ops.convert import cast
    x = cast(x, dtype) if x.array.dtype != dtype else x
    min, max = (b if b is None else cast(b, dtype) if isinstance(b, Tensor) else _scalar(b, x) for b in (min, max))
    for b in (min, max):
        if b is not None:
            broadcast_shapes(x.array.shape, b.array.shape)
    return x, min, max
