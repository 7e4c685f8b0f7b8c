"""Elementwise math beyond the core arithmetic: rounding, trigonometric and hyperbolic functions,
logs and exponentials in other bases, the error function, and binary math (atan2, hypot, fmod, ...).

Each unary function is one row of `_UNARY` (the function and its derivative) run by one
primitive; bfloat16 inputs are computed in float32 and rounded back, as PyTorch's CPU kernels do.
The error functions come from scipy.special (cupyx.scipy.special on the GPU).
"""
import math

import ml_dtypes
import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.amp.autocast_mode import autocast_op
from distml.autograd.function import Primitive
from distml.ops._util import promote, unbroadcast
from distml.ops.convert import cast, clone
from distml.ops.elementwise import Where, _float_input, _shape, add, clamp, mul, sub
from distml.ops.registry import register
from distml.tensor import Tensor


def _widen(x):
    """bfloat16 arrays as float32 (NumPy's bfloat16 loops round every step); others unchanged."""
    return x.astype(np.float32) if x.dtype == dtypes.bfloat16.np else x


def _special(x):
    """scipy.special for host arrays, cupyx.scipy.special for CUDA arrays: the error functions."""
    if get_array_module(x) is np:
        import scipy.special
        return scipy.special
    from cupyx.scipy import special  # only reached for cupy arrays
    return special


_SQRT_PI = math.sqrt(math.pi)


def _sinc(xp, x):
    px = math.pi * x
    with np.errstate(all="ignore"):
        return xp.where(x == 0, 1, xp.sin(px) / px).astype(x.dtype, copy=False)


def _sinc_derivative(xp, x, out):
    px = math.pi * x
    with np.errstate(all="ignore"):
        return xp.where(x == 0, 0, (xp.cos(px) - out) / x)



# name -> (f(xp, x), f'(xp, x, f(x)))
_UNARY = {
    "sinh": (lambda xp, x: xp.sinh(x), lambda xp, x, y: xp.cosh(x)),
    "cosh": (lambda xp, x: xp.cosh(x), lambda xp, x, y: xp.sinh(x)),
    "tan": (lambda xp, x: xp.tan(x), lambda xp, x, y: 1 + y * y),
    "asin": (lambda xp, x: xp.arcsin(x), lambda xp, x, y: 1 / xp.sqrt(1 - x * x)),
    "acos": (lambda xp, x: xp.arccos(x), lambda xp, x, y: -1 / xp.sqrt(1 - x * x)),
    "atan": (lambda xp, x: xp.arctan(x), lambda xp, x, y: 1 / (1 + x * x)),
    "asinh": (lambda xp, x: xp.arcsinh(x), lambda xp, x, y: 1 / xp.sqrt(x * x + 1)),
    "acosh": (lambda xp, x: xp.arccosh(x), lambda xp, x, y: 1 / xp.sqrt((x - 1) * (x + 1))),
    "atanh": (lambda xp, x: xp.arctanh(x), lambda xp, x, y: 1 / (1 - x * x)),
    "log2": (lambda xp, x: xp.log2(x), lambda xp, x, y: 1 / (x * math.log(2))),
    "log10": (lambda xp, x: xp.log10(x), lambda xp, x, y: 1 / (x * math.log(10))),
    "exp2": (lambda xp, x: xp.exp2(x), lambda xp, x, y: y * math.log(2)),
    "expm1": (lambda xp, x: xp.expm1(x), lambda xp, x, y: y + 1),
    "sinc": (_sinc, _sinc_derivative),
    "erf": (lambda xp, x: _special(x).erf(x), lambda xp, x, y: 2 / _SQRT_PI * xp.exp(-x * x)),
    "erfc": (lambda xp, x: _special(x).erfc(x), lambda xp, x, y: -2 / _SQRT_PI * xp.exp(-x * x)),
    "erfinv": (lambda xp, x: _special(x).erfinv(x), lambda xp, x, y: _SQRT_PI / 2 * xp.exp(y * y)),
    "frac": (lambda xp, x: x - xp.trunc(x), lambda xp, x, y: 1),
}


class Unary(Primitive):
    """One function of `_UNARY` elementwise; backward multiplies by its derivative."""

    def forward(self, x, op):
        xp = get_array_module(x)
        self.op, self.x = op, _widen(x)
        with np.errstate(all="ignore"):
            self.out = xp.asarray(_UNARY[op][0](xp, self.x))
        return self.out.astype(x.dtype, copy=False)

    def backward(self, grad):
        with np.errstate(all="ignore"):
            derivative = _UNARY[self.op][1](get_array_module(grad), self.x, self.out)
        return (grad * derivative).astype(grad.dtype, copy=False)

    def name(self):
        return self.op.capitalize() + "Backward0"


def _unary(op, x):
    return Unary.apply(_float_input(x), op=op)


@register("arcsinh", method=True, inplace=True)
def asinh(x):
    return _unary("asinh", x)


@register("arccosh", method=True, inplace=True)
def acosh(x):
    return _unary("acosh", x)


@register("arctanh", method=True, inplace=True)
def atanh(x):
    return _unary("atanh", x)


@register("arcsin", method=True, inplace=True)
@autocast_op(cuda="float32")
def asin(x):
    return _unary("asin", x)


@register("arccos", method=True, inplace=True)
@autocast_op(cuda="float32")
def acos(x):
    return _unary("acos", x)


@register("arctan", method=True, inplace=True)
def atan(x):
    return _unary("atan", x)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def sinh(x):
    return _unary("sinh", x)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def cosh(x):
    return _unary("cosh", x)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def tan(x):
    return _unary("tan", x)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def log2(x):
    return _unary("log2", x)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def log10(x):
    return _unary("log10", x)


@register(method=True, inplace=True)
def exp2(x):
    """2 ** x."""
    return _unary("exp2", x)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def expm1(x):
    """exp(x) - 1, accurate for small x."""
    return _unary("expm1", x)


@register(method=True, inplace=True)
def sinc(x):
    """sin(pi x) / (pi x), and 1 at x = 0."""
    return _unary("sinc", x)


@register(method=True, inplace=True)
def erf(x):
    """The error function: `distml.erf(x)` (also used by distml.special)."""
    return _unary("erf", x)


@register(method=True, inplace=True)
def erfc(x):
    """1 - erf(x), accurate where erf(x) is near 1."""
    return _unary("erfc", x)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def erfinv(x):
    """The inverse of erf on (-1, 1); +-inf at +-1 and nan outside."""
    return _unary("erfinv", x)


@register(method=True, inplace=True)
def frac(x):
    """x - trunc(x), keeping x's sign."""
    if not dtypes.is_float(x.array.dtype):
        raise NotImplementedError(f"\"frac_cpu\" not implemented for '{x.dtype.legacy_name}'")
    return Unary.apply(x, op="frac")


# ---- rounding: the gradient is zero everywhere ----

class Rounding(Primitive):
    saves_inputs = False

    def forward(self, x, op, decimals):
        xp = get_array_module(x)
        self.op = op
        if op == "round":
            return xp.asarray(xp.round(_widen(x), decimals)).astype(x.dtype, copy=False)
        return xp.asarray(getattr(xp, op)(_widen(x))).astype(x.dtype, copy=False)

    def backward(self, grad):
        return get_array_module(grad).zeros_like(grad)

    def name(self):
        return self.op.capitalize() + "Backward0"


def _rounding(op, x, decimals=0):
    if not dtypes.is_float(x.array.dtype):
        if decimals:
            raise NotImplementedError(f"\"round_cpu\" not implemented for '{x.dtype.legacy_name}'")
        return clone(x)
    return Rounding.apply(x, op=op, decimals=decimals)


@register(method=True, inplace=True)
def floor(x):
    return _rounding("floor", x)


@register(method=True, inplace=True)
def ceil(x):
    return _rounding("ceil", x)


@register("fix", method=True, inplace=True)
def trunc(x):
    """x rounded toward zero."""
    return _rounding("trunc", x)


@register(method=True, inplace=True)
def round(x, decimals=0):
    """x rounded half to even, to `decimals` places: `x.round(decimals=2)`."""
    return _rounding("round", x, decimals)


# ---- elementwise predicates and fixes ----

def _predicate(x, fn):
    return Tensor(get_array_module(x.array).asarray(fn(get_array_module(x.array), _widen(x.array))))


@register(method=True)
def signbit(x):
    """True where the sign bit is set (also for -0.0)."""
    return _predicate(x, lambda xp, a: xp.signbit(a) if dtypes.is_float(a.dtype) else a < 0)


@register(method=True)
def isposinf(x):
    return _predicate(x, lambda xp, a: xp.isposinf(a) if dtypes.is_float(a.dtype) else xp.zeros(a.shape, bool))


@register(method=True)
def isneginf(x):
    return _predicate(x, lambda xp, a: xp.isneginf(a) if dtypes.is_float(a.dtype) else xp.zeros(a.shape, bool))


@register(method=True)
def isreal(x):
    """True where the imaginary part is zero (everywhere, for real dtypes)."""
    return _predicate(x, lambda xp, a: a.imag == 0 if a.dtype.kind == "c" else xp.ones(a.shape, bool))


@register(method=True, inplace=True)
def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """x with nan, +inf and -inf replaced (by 0 and the dtype's largest / smallest finite value)."""
    if not dtypes.is_float(x.array.dtype):
        return clone(x)
    xp = get_array_module(x.array)
    info = _finfo(x.array.dtype)
    out = x
    for condition, value in ((xp.isnan(x.array), nan), (xp.isposinf(x.array), info.max if posinf is None else posinf),
                             (xp.isneginf(x.array), info.min if neginf is None else neginf)):
        out = Where.apply(Tensor(xp.asarray(value, dtype=x.array.dtype)), out, condition=condition)
    return out


def _finfo(np_dtype):
    return ml_dtypes.finfo(np_dtype) if np_dtype == dtypes.bfloat16.np else np.finfo(np_dtype)


@register(method=True, inplace=True)
@autocast_op(cuda="float32")
def reciprocal(x):
    """1 / x (integers give the default float dtype)."""
    from distml.ops.elementwise import div
    return div(1.0, x)


@register(method=True, inplace=True)
def clamp_min(x, min):
    return clamp(x, min=min)


@register(method=True, inplace=True)
def clamp_max(x, max):
    return clamp(x, max=max)


@register(method=True)
def lerp(start, end, weight):
    """start + weight * (end - start); weight is a number or a tensor: `distml.lerp(a, b, 0.5)`."""
    _require_tensors("lerp", input=start, end=end)
    if not dtypes.is_float(start.array.dtype):
        raise NotImplementedError(f"\"lerp_kernel_scalar\" not implemented for '{start.dtype.legacy_name}'")
    for name, t in (("end", end), ("weight", weight)):
        if isinstance(t, Tensor) and t.array.dtype != start.array.dtype:
            raise RuntimeError(f"expected dtype {start.dtype.legacy_name.lower()} for `{name}` but got dtype "
                               f"{t.dtype.legacy_name.lower()}")
    return add(start, mul(weight, sub(end, start)))


# ---- binary math ----

def _fmax_share(xp, a, b, out):
    """Where fmax/fmin took a: a won, tied, or b was nan."""
    return (a == out) | xp.isnan(b)


# name -> (f(xp, a, b), d/da(xp, a, b, out), d/db(xp, a, b, out))
_BINARY = {
    "atan2": (lambda xp, a, b: xp.arctan2(a, b),
              lambda xp, a, b, y: b / (a * a + b * b), lambda xp, a, b, y: -a / (a * a + b * b)),
    "hypot": (lambda xp, a, b: xp.hypot(a, b), lambda xp, a, b, y: a / y, lambda xp, a, b, y: b / y),
    "logaddexp": (lambda xp, a, b: xp.logaddexp(a, b),
                  lambda xp, a, b, y: xp.exp(a - y), lambda xp, a, b, y: xp.exp(b - y)),
    "logaddexp2": (lambda xp, a, b: xp.logaddexp2(a, b),
                   lambda xp, a, b, y: xp.exp2(a - y), lambda xp, a, b, y: xp.exp2(b - y)),
    "copysign": (lambda xp, a, b: xp.copysign(a, b),
                 lambda xp, a, b, y: xp.where(a == 0, 0, y / xp.where(a == 0, 1, a)), lambda xp, a, b, y: 0 * y),
    "fmod": (lambda xp, a, b: xp.fmod(a, b), lambda xp, a, b, y: 1 + 0 * y,
             lambda xp, a, b, y: -xp.trunc(a / b)),
    "fmax": (lambda xp, a, b: xp.fmax(a, b), lambda xp, a, b, y: _fmax_share(xp, a, b, y),
             lambda xp, a, b, y: ~_fmax_share(xp, a, b, y)),
    "fmin": (lambda xp, a, b: xp.fmin(a, b), lambda xp, a, b, y: _fmax_share(xp, a, b, y),
             lambda xp, a, b, y: ~_fmax_share(xp, a, b, y)),
    "xlogy": (lambda xp, a, b: xp.where(a == 0, xp.where(xp.isnan(b), b, 0), a * xp.log(b)),
              lambda xp, a, b, y: xp.where((a == 0) & (b <= 0), 0, xp.log(b)), lambda xp, a, b, y: a / b),
}


class Binary(Primitive):
    """One function of `_BINARY` elementwise, broadcasting; each input's gradient from its partial."""

    def forward(self, a, b, op):
        xp = get_array_module(a if hasattr(a, "shape") else b)
        self.op, self.a, self.b = op, a, b
        self.shapes = _shape(a), _shape(b)
        dtype = a.dtype if hasattr(a, "dtype") else b.dtype
        wa = _widen(a) if hasattr(a, "dtype") else a
        wb = _widen(b) if hasattr(b, "dtype") else b
        with np.errstate(all="ignore"):
            self.out = xp.asarray(_BINARY[op][0](xp, wa, wb))
        self.wide = wa, wb
        return self.out.astype(dtype, copy=False)

    def backward(self, grad):
        xp = get_array_module(grad)
        (wa, wb), grads = self.wide, []
        for i in range(2):
            if not self.needs_input_grad[i]:
                grads.append(None)
                continue
            with np.errstate(all="ignore"):
                partial = _BINARY[self.op][1 + i](xp, wa, wb, self.out)
            grads.append(unbroadcast((grad * partial).astype(grad.dtype, copy=False), self.shapes[i]))
        return tuple(grads)

    def name(self):
        return self.op.capitalize() + "Backward0"


def _require_tensors(name, **arguments):
    """PyTorch's TypeError for a non-Tensor where only a Tensor is accepted."""
    for position, (argument, value) in enumerate(arguments.items(), 1):
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"{name}(): argument '{argument}' (position {position}) must be Tensor, not "
                            f"{type(value).__name__}")


def _binary(op, a, b, to_float=True, floats_only=False):
    a, b = promote(a, b, to_float=to_float)
    if floats_only:
        for t in (a, b):
            if isinstance(t, Tensor) and not dtypes.is_float(t.array.dtype):
                raise NotImplementedError(f"\"{op}_cpu\" not implemented for '{t.dtype.legacy_name}'")
    return Binary.apply(a, b, op=op)


@register("arctan2", method=True, inplace=True)
@autocast_op(cuda="promote")
def atan2(input, other):
    """The angle of the point (other, input): atan(input / other) in the right quadrant."""
    _require_tensors("atan2", input=input, other=other)
    return _binary("atan2", input, other)


@register(method=True, inplace=True)
def hypot(input, other):
    """sqrt(input ** 2 + other ** 2) without overflow."""
    _require_tensors("hypot", input=input, other=other)
    return _binary("hypot", input, other, to_float=False, floats_only=True)


@register(method=True)
def logaddexp(input, other):
    """log(exp(input) + exp(other)) without overflow."""
    _require_tensors("logaddexp", input=input, other=other)
    return _binary("logaddexp", input, other, to_float=False, floats_only=True)


@register(method=True)
def logaddexp2(input, other):
    """log2(2 ** input + 2 ** other) without overflow."""
    _require_tensors("logaddexp2", input=input, other=other)
    return _binary("logaddexp2", input, other, to_float=False, floats_only=True)


@register(method=True, inplace=True)
def copysign(input, other):
    """|input| with the sign of other (a tensor or a number)."""
    _require_tensors("copysign", input=input)
    return _binary("copysign", input, other)


@register(method=True, inplace=True)
def fmod(input, other):
    """C's remainder (the sign of the dividend): input - trunc(input / other) * other."""
    _require_tensors("fmod", input=input)
    a, b = promote(input, other)
    data_a, data_b = (t.array if isinstance(t, Tensor) else t for t in (a, b))
    if dtypes.is_float(dtypes.result_type(data_a, data_b)):
        return Binary.apply(a, b, op="fmod")
    if bool((data_b == 0).any() if isinstance(b, Tensor) else data_b == 0):
        raise RuntimeError("ZeroDivisionError")
    xp = get_array_module(data_a if isinstance(a, Tensor) else data_b)
    return Tensor(xp.asarray(xp.fmod(data_a, data_b)))


@register(method=True)
def fmax(input, other):
    """Elementwise max that ignores nan (nan only where both are nan)."""
    _require_tensors("fmax", input=input, other=other)
    return _binary("fmax", input, other, to_float=False)


@register(method=True)
def fmin(input, other):
    _require_tensors("fmin", input=input, other=other)
    return _binary("fmin", input, other, to_float=False)


@register(method=True, inplace=True)
def xlogy(input, other):
    """input * log(other), and 0 where input is 0 (unless other is nan)."""
    return _binary("xlogy", input, other)


@register(method=True, inplace=True)
def heaviside(input, values):
    """0 where input < 0, 1 where input > 0, `values` where input == 0 (no gradient, as in PyTorch)."""
    _require_tensors("heaviside", input=input, values=values)
    if input.array.dtype != values.array.dtype:
        raise RuntimeError("heaviside is not yet implemented for tensors with different dtypes.")
    xp = get_array_module(input.array)
    return Tensor(xp.asarray(xp.heaviside(input.array, values.array)).astype(input.array.dtype, copy=False))


# ---- conversion that tensor.py does not have yet ----

@register(method=True, function=False)
def bfloat16(x):
    """x as bfloat16: `x.bfloat16()`."""
    return cast(x, dtypes.bfloat16)
