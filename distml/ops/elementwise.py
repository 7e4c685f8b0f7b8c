"""Elementwise arithmetic and math, with PyTorch's broadcasting and type promotion."""
import numpy as np

from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.ops._util import promote, unbroadcast
from distml.tensor import Tensor


def _shape(x):
    return x.shape if hasattr(x, "shape") else ()


class Add(Primitive):
    saves_inputs = False

    def forward(self, a, b, alpha=1):
        self.shapes, self.alpha = (_shape(a), _shape(b)), alpha
        return a + b if alpha == 1 else a + alpha * b

    def backward(self, grad):
        needs = self.needs_input_grad
        return (unbroadcast(grad, self.shapes[0]) if needs[0] else None,
                unbroadcast(grad if self.alpha == 1 else grad * self.alpha, self.shapes[1]) if needs[1] else None)


class Mul(Primitive):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        needs = self.needs_input_grad
        return (unbroadcast(grad * self.b, _shape(self.a)) if needs[0] else None,
                unbroadcast(grad * self.a, _shape(self.b)) if needs[1] else None)


class Div(Primitive):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, grad):
        needs = self.needs_input_grad
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
            grad_a = unbroadcast(grad * b * a ** (b - 1) if not (np.isscalar(b) and b == 0) else grad * 0, _shape(a))
        if needs[1]:
            xp = get_array_module(self.out)
            log_a = xp.log(xp.where(a > 0, a, 1)) if hasattr(a, "shape") else np.log(a) if a > 0 else 0.0
            grad_b = unbroadcast(grad * self.out * log_a, _shape(b))
        return grad_a, grad_b


class Neg(Primitive):
    saves_inputs = False

    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


def add(a, b, alpha=1):
    """a + alpha * b, broadcasting: `distml.add(x, y, alpha=2)`."""
    a, b = promote(a, b)
    return Add.apply(a, b, alpha=alpha)


def sub(a, b, alpha=1):
    """a - alpha * b."""
    if isinstance(a, Tensor) and a.data.dtype == np.bool_ and isinstance(b, Tensor) and b.data.dtype == np.bool_:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    a, b = promote(a, b)
    return Add.apply(a, b, alpha=-alpha)


def mul(a, b):
    a, b = promote(a, b)
    return Mul.apply(a, b)


def div(a, b, rounding_mode=None):
    """a / b; integer inputs give a float result; rounding_mode "trunc" or "floor" rounds it."""
    if rounding_mode is None:
        a, b = promote(a, b, to_float=True)
        return Div.apply(a, b)
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")
    a, b = promote(a, b)
    return _rounded_divide(a, b, rounding_mode)


def _rounded_divide(a, b, mode):
    data_a = a.data if isinstance(a, Tensor) else a
    data_b = b.data if isinstance(b, Tensor) else b
    xp = get_array_module(data_a if isinstance(a, Tensor) else data_b)
    if mode == "floor":
        out = xp.floor_divide(data_a, data_b)
    else:
        quotient = xp.true_divide(data_a, data_b)
        out = xp.trunc(quotient).astype(quotient.dtype if xp.result_type(data_a, data_b).kind == "f"
                                        else xp.result_type(data_a, data_b))
    return Tensor(xp.asarray(out))


def floor_divide(a, b):
    return div(a, b, rounding_mode="floor")


def remainder(a, b):
    """Python's modulo (sign of the divisor): a - floor(a / b) * b."""
    a, b = promote(a, b)
    return sub(a, mul(floor_divide(a, b), b))


def pow(base, exponent):
    """base ** exponent; `distml.pow(x, 2)`."""
    base, exponent = promote(base, exponent)
    return Pow.apply(base, exponent)


def neg(x):
    if x.data.dtype == np.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    return Neg.apply(x)


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


class Tanh(Primitive):
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        self.out = get_array_module(x).tanh(x)
        return self.out

    def backward(self, grad):
        return grad * (1 - self.out * self.out)


class Relu(Primitive):
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        self.out = get_array_module(x).maximum(x, 0)
        return self.out

    def backward(self, grad):
        return grad * (self.out > 0)


def _float_input(x):
    from distml.ops.convert import cast
    from distml import dtypes
    return x if x.data.dtype.kind == "f" else cast(x, dtypes.get_default_dtype())


def exp(x):
    return Exp.apply(_float_input(x))


def log(x):
    return Log.apply(_float_input(x))


def tanh(x):
    return Tanh.apply(_float_input(x))


def relu(x):
    return Relu.apply(x)
