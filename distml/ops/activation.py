"""Activation functions with a closed-form derivative, one primitive each (relu, sigmoid,
tanh and softmax live in elementwise.py / softmax.py)."""
import numpy as np

from distml import kernels
from distml._backend import C, get_array_module
from distml.autograd.function import Primitive


class LeakyRelu(Primitive):
    def forward(self, x, negative_slope):
        self.x, self.slope = x, negative_slope
        return get_array_module(x).where(x > 0, x, x * negative_slope)

    def backward(self, grad):
        return get_array_module(grad).where(self.x > 0, grad, grad * self.slope)


class Hardtanh(Primitive):
    """x clamped to [min_val, max_val]; the gradient passes strictly inside the range, as PyTorch's."""

    def forward(self, x, min_val, max_val):
        self.inside = (x > min_val) & (x < max_val)
        return get_array_module(x).clip(x, min_val, max_val).astype(x.dtype, copy=False)

    def backward(self, grad):
        return grad * self.inside


class Elu(Primitive):
    """scale * x for x > 0, scale * alpha * (exp(input_scale * x) - 1) otherwise: elu, and with
    scale or input_scale set, selu and celu (PyTorch computes all three in one kernel too)."""

    def forward(self, x, alpha, scale=1.0, input_scale=1.0):
        xp = get_array_module(x)
        self.x, self.alpha, self.scale, self.input_scale = x, alpha, scale, input_scale
        negative = (alpha * scale) * xp.expm1(xp.minimum(x, 0) * input_scale)
        return xp.where(x > 0, x * scale if scale != 1.0 else x, negative).astype(x.dtype, copy=False)

    def backward(self, grad):
        xp = get_array_module(grad)
        slope = (self.alpha * self.scale * self.input_scale) * xp.exp(xp.minimum(self.x, 0) * self.input_scale)
        positive = grad * self.scale if self.scale != 1.0 else grad
        return xp.where(self.x > 0, positive, grad * slope).astype(grad.dtype, copy=False)


class Gelu(Primitive):
    """x * Phi(x) (`approximate="none"`) or its tanh approximation (`"tanh"`)."""

    def forward(self, x, approximate):
        self.x, self.tanh = x, approximate == "tanh"
        xp = kernels.compiled("gelu", x)
        if xp is not None:
            x = xp.ascontiguousarray(x)
            out = xp.empty_like(x)
            C.gelu(x, out, self.tanh)
            return out
        xp = get_array_module(x)
        if self.tanh:
            return 0.5 * x * (1 + xp.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + _erf_xp(x / np.sqrt(2)))

    def backward(self, grad):
        x = self.x
        xp = kernels.compiled("gelu_backward", grad)
        if xp is not None:
            grad_x = xp.empty(x.shape, dtype=x.dtype)
            C.gelu_backward(xp.ascontiguousarray(grad), xp.ascontiguousarray(x), grad_x, self.tanh)
            return grad_x
        xp = get_array_module(grad)
        if self.tanh:
            k = np.sqrt(2 / np.pi)
            t = xp.tanh(k * (x + 0.044715 * x ** 3))
            return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))
        return grad * (0.5 * (1 + _erf_xp(x / np.sqrt(2))) + x * xp.exp(-0.5 * x * x) / np.sqrt(2 * np.pi))


def _erf_xp(x):
    from cupyx.scipy.special import erf  # only reached for cupy arrays
    return erf(x)


class Silu(Primitive):
    """x * sigmoid(x)."""

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        self.sig = (1 / (1 + xp.exp(-x))).astype(x.dtype, copy=False)
        return x * self.sig

    def backward(self, grad):
        return grad * self.sig * (1 + self.x * (1 - self.sig))


class Softplus(Primitive):
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold."""

    def forward(self, x, beta, threshold):
        xp = get_array_module(x)
        self.x, self.beta, self.threshold = x, beta, threshold
        bx = x * beta
        return xp.where(bx > threshold, x, xp.logaddexp(0, bx) / beta).astype(x.dtype, copy=False)

    def backward(self, grad):
        xp = get_array_module(grad)
        bx = self.x * self.beta
        sig = 1 / (1 + xp.exp(-bx))
        return xp.where(bx > self.threshold, grad, grad * sig).astype(grad.dtype, copy=False)


class Mish(Primitive):
    """x * tanh(softplus(x))."""

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        self.tanh_sp = xp.tanh(xp.logaddexp(0, x)).astype(x.dtype, copy=False)
        return x * self.tanh_sp

    def backward(self, grad):
        xp = get_array_module(grad)
        t, x = self.tanh_sp, self.x
        sig = (1 / (1 + xp.exp(-x))).astype(x.dtype, copy=False)
        return grad * (t + x * (1 - t * t) * sig)


class Hardswish(Primitive):
    """x * relu6(x + 3) / 6; the slope is 0 up to -3, x / 3 + 1/2 strictly between -3 and 3, 1 from 3 (PyTorch's)."""

    def forward(self, x):
        self.x = x
        return x * (get_array_module(x).clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False)

    def backward(self, grad):
        xp = get_array_module(grad)
        x = self.x
        return xp.where(x <= -3, 0, xp.where(x < 3, grad * (x / 3 + 0.5), grad)).astype(grad.dtype, copy=False)


class Hardsigmoid(Primitive):
    """relu6(x + 3) / 6; the slope 1/6 strictly between -3 and 3, 0 elsewhere (PyTorch's)."""

    def forward(self, x):
        self.inside = (x > -3) & (x < 3)
        return (get_array_module(x).clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False)

    def backward(self, grad):
        return grad * (self.inside * _ONE_SIXTH).astype(grad.dtype, copy=False)


_ONE_SIXTH = float(np.float32(1) / np.float32(6))  # PyTorch's CPU kernel takes 1/6 in float32, for double too


class LogSigmoid(Primitive):
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)), without overflow."""

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        self.e = xp.exp(-xp.abs(x))
        return (xp.minimum(x, 0) - xp.log1p(self.e)).astype(x.dtype, copy=False)

    def backward(self, grad):
        xp = get_array_module(grad)
        sig_neg = xp.where(self.x >= 0, self.e, 1) / (1 + self.e)  # sigmoid(-x)
        return (grad * sig_neg).astype(grad.dtype, copy=False)


class Softshrink(Primitive):
    """x - lambd above lambd, x + lambd below -lambd, 0 in [-lambd, lambd]; NaN passes (PyTorch's)."""

    def forward(self, x, lambd):
        xp = get_array_module(x)
        self.inside = (x >= -lambd) & (x <= lambd)
        return xp.where(x > lambd, x - lambd, xp.where(x < -lambd, x + lambd, x * 0)).astype(x.dtype, copy=False)

    def backward(self, grad):
        return grad * ~self.inside


class Hardshrink(Primitive):
    """x outside [-lambd, lambd], 0 inside; NaN passes (PyTorch's)."""

    def forward(self, x, lambd):
        self.inside = (x >= -lambd) & (x <= lambd)
        return get_array_module(x).where(self.inside, x.dtype.type(0), x)

    def backward(self, grad):
        return grad * ~self.inside


class Threshold(Primitive):
    """x where x > threshold, else value (a NaN stays NaN); the gradient passes where x > threshold."""

    def forward(self, x, threshold, value):
        xp = get_array_module(x)
        self.below = x <= threshold
        return xp.where(self.below, xp.asarray(value).astype(x.dtype), x)

    def backward(self, grad):
        return grad * ~self.below
