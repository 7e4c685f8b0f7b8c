"""Activation functions with a closed-form derivative, one primitive each (relu, sigmoid,
tanh and softmax live in elementwise.py / softmax.py)."""
import numpy as np

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
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""

    def forward(self, x, alpha):
        xp = get_array_module(x)
        self.x, self.alpha = x, alpha
        return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))

    def backward(self, grad):
        xp = get_array_module(grad)
        return xp.where(self.x > 0, grad, grad * self.alpha * xp.exp(xp.minimum(self.x, 0)))


class Gelu(Primitive):
    """x * Phi(x) (`approximate="none"`) or its tanh approximation (`"tanh"`)."""

    def forward(self, x, approximate):
        self.x, self.tanh = x, approximate == "tanh"
        if isinstance(x, np.ndarray):
            x = np.ascontiguousarray(x)
            out = np.empty_like(x)
            C.gelu(x, out, self.tanh)
            return out
        xp = get_array_module(x)
        if self.tanh:
            return 0.5 * x * (1 + xp.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + _erf_xp(x / np.sqrt(2)))

    def backward(self, grad):
        x = self.x
        if isinstance(grad, np.ndarray):
            grad_x = np.empty(x.shape, dtype=x.dtype)
            C.gelu_backward(np.ascontiguousarray(grad), np.ascontiguousarray(x), grad_x, self.tanh)
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
