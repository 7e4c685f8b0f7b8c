"""distml.special: PyTorch's torch.special (gamma family, Bessel, error and normal functions).

    import distml as torch
    torch.special.gammaln(torch.tensor([0.5, 3.0]))
    x.lgamma(), torch.digamma(x), torch.polygamma(1, x)

The values come from SciPy (scipy.special for host arrays, cupyx.scipy.special, which has the
same names, for CUDA arrays); each function's derivative is written beside it in a table that
one primitive reads; multigammaln is composed from lgamma. The functions distml already has
elsewhere (erf, erfc, erfinv, xlogy, expm1, exp2, sinc, round, sigmoid as expit, log1p, softmax,
log_softmax, logsumexp) are those same functions, not second copies.
"""
import math

import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.ops._util import promote, unbroadcast
from distml.ops.elementwise import _float_input, log1p, sigmoid
from distml.ops.math import erf, erfc, erfinv, exp2, expm1, round, sinc, xlogy
from distml.ops.reduce import logsumexp, sum
from distml.ops.registry import register
from distml.ops.softmax import log_softmax, softmax
from distml.tensor import Tensor

__all__ = ["airy_ai", "bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1", "digamma", "entr", "erf", "erfc", "erfcx",
           "erfinv", "exp2", "expit", "expm1", "gammainc", "gammaincc", "gammaln", "i0", "i0e", "i1", "i1e", "log1p",
           "log_ndtr", "log_softmax", "logit", "logsumexp", "modified_bessel_i0", "modified_bessel_i1",
           "modified_bessel_k0", "modified_bessel_k1", "multigammaln", "ndtr", "ndtri", "polygamma", "psi", "round",
           "scaled_modified_bessel_k0", "scaled_modified_bessel_k1", "sinc", "softmax", "spherical_bessel_j0",
           "xlog1py", "xlogy", "zeta"]

_SQRT_2PI = math.sqrt(2 * math.pi)


def _scipy_special(array):
    """scipy.special for host arrays, cupyx.scipy.special for CUDA arrays."""
    if get_array_module(array) is np:
        import scipy.special
        return scipy.special
    import cupyx.scipy.special  # only reached for cupy arrays
    return cupyx.scipy.special


def _wide(array):
    """array in a dtype SciPy computes in: float32/float64 as they are, float16/bfloat16 as float32."""
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float32)


# name -> (value(sp, x, n), derivative(sp, x, out, n)); sp is the scipy.special module, n the order
# of polygamma (None for the others), out the value already computed.
_UNARY = {
    "lgamma": (lambda sp, x, n: sp.gammaln(x), lambda sp, x, out, n: sp.psi(x)),
    "digamma": (lambda sp, x, n: sp.psi(x), lambda sp, x, out, n: sp.polygamma(1, x)),
    "polygamma": (lambda sp, x, n: sp.polygamma(n, x), lambda sp, x, out, n: sp.polygamma(n + 1, x)),
    "erfcx": (lambda sp, x, n: sp.erfcx(x), lambda sp, x, out, n: 2 * x * out - 2 / math.sqrt(math.pi)),
    "i0": (lambda sp, x, n: sp.i0(x), lambda sp, x, out, n: sp.i1(x)),
    "i0e": (lambda sp, x, n: sp.i0e(x), lambda sp, x, out, n: sp.i1e(x) - get_array_module(x).sign(x) * out),
    # i1(x) / x -> 1/2 as x -> 0, so the derivatives of i1 and i1e are 1/2 there
    "i1": (lambda sp, x, n: sp.i1(x),
           lambda sp, x, out, n: _where_zero(x, 0.5, lambda safe: sp.i0(safe) - sp.i1(safe) / safe)),
    "i1e": (lambda sp, x, n: sp.i1e(x),
            lambda sp, x, out, n: _where_zero(x, 0.5, lambda safe: sp.i0e(safe) - sp.i1e(safe) * (
                get_array_module(x).sign(safe) + 1 / safe))),
    "ndtr": (lambda sp, x, n: sp.ndtr(x), lambda sp, x, out, n: get_array_module(x).exp(-0.5 * x * x) / _SQRT_2PI),
    "ndtri": (lambda sp, x, n: sp.ndtri(x), lambda sp, x, out, n: _SQRT_2PI * get_array_module(x).exp(0.5 * out * out)),
    "log_ndtr": (lambda sp, x, n: sp.log_ndtr(x),
                 lambda sp, x, out, n: get_array_module(x).exp(-0.5 * x * x - out) / _SQRT_2PI),
    "entr": (lambda sp, x, n: sp.entr(x), lambda sp, x, out, n: -(get_array_module(x).log(x) + 1)),
}


# The primitives return IEEE values at the edges (lgamma(0) = inf, logit(1) = inf) as PyTorch
# does, without NumPy's warnings about them.
def _quietly():
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def _node_name(node, default):
    """LgammaBackward0, I0eBackward0, ...: the function's name, as grad_fn shows it."""
    return "".join(part.capitalize() for part in getattr(node, "name_", default).split("_")) + "Backward0"


def _where_zero(x, at_zero, formula):
    """formula(x) where x != 0 and `at_zero` where x == 0, without evaluating formula at 0."""
    xp = get_array_module(x)
    zero = x == 0
    return xp.where(zero, at_zero, formula(xp.where(zero, 1, x)))


class Special(Primitive):
    """out = f(x) for the function `name` of the table above (`n` is polygamma's order)."""

    @_quietly()
    def forward(self, x, name, n=None):
        self.x, self.name_, self.n = x, name, n
        self.out = _UNARY[name][0](_scipy_special(x), _wide(x), n).astype(x.dtype, copy=False)
        return self.out

    @_quietly()
    def backward(self, grad):
        x = _wide(self.x)
        derivative = _UNARY[self.name_][1](_scipy_special(x), x, _wide(self.out), self.n)
        return (grad * derivative).astype(grad.dtype, copy=False)

    def name(self):
        return _node_name(self, "special")


def _unary(name, x, n=None):
    return Special.apply(_float_input(x), name=name, n=n)


class Logit(Primitive):
    """log(z / (1 - z)) with z = x, or x clamped to [eps, 1 - eps]; the gradient is 0 outside
    that interval (NaN outside [0, 1] without eps), as in PyTorch."""

    @_quietly()
    def forward(self, x, eps):
        xp = get_array_module(x)
        self.x, self.eps = x, eps
        z = x if eps is None else xp.clip(x, eps, 1 - eps)
        return xp.log(z / (1 - z)).astype(x.dtype, copy=False)

    @_quietly()
    def backward(self, grad):
        xp = get_array_module(grad)
        x = self.x
        low, high, outside = (0, 1, np.nan) if self.eps is None else (self.eps, 1 - self.eps, 0)
        return xp.where((x < low) | (x > high), outside, grad / (x * (1 - x))).astype(grad.dtype, copy=False)


class Binary(Primitive):
    """out = f(a, b) for xlog1py, zeta and the incomplete gamma functions; PyTorch differentiates
    xlog1py in both arguments and the others only in b (asking for a's gradient raises)."""

    @_quietly()
    def forward(self, a, b, name):
        self.a, self.b, self.name_ = a, b, name
        return getattr(_scipy_special(a), name)(_wide(a), _wide(b)).astype(a.dtype, copy=False)

    @_quietly()
    def backward(self, grad):
        xp = get_array_module(grad)
        sp = _scipy_special(grad)
        a, b, name, needs = _wide(self.a), _wide(self.b), self.name_, self.needs_input_grad
        if needs[0] and name != "xlog1py":
            what = {"zeta": "zeta", "gammainc": "igamma: input", "gammaincc": "igammac: input"}[name]
            raise NotImplementedError(f"the derivative for '{what}' is not implemented.")
        grad_a = grad_b = None
        if name == "xlog1py":
            grad_a = grad * xp.where(a == 0, 0, xp.log1p(b)) if needs[0] else None
            grad_b = grad * a / (1 + b) if needs[1] else None
        elif name == "zeta":
            grad_b = grad * -a * sp.zeta(a + 1, b) if needs[1] else None
        elif needs[1]:
            sign = 1 if name == "gammainc" else -1
            grad_b = sign * grad * xp.exp((a - 1) * xp.log(b) - b - sp.gammaln(a))
        return (None if grad_a is None else unbroadcast(grad_a, a.shape).astype(grad.dtype, copy=False),
                None if grad_b is None else unbroadcast(grad_b, b.shape).astype(grad.dtype, copy=False))

    def name(self):
        return _node_name(self, "special")


def _binary(name, a, b):
    """f(a, b) with PyTorch's promotion; a Python number becomes a 0-d tensor of the other's dtype."""
    a, b = promote(a, b, to_float=True)
    tensor = a if isinstance(a, Tensor) else b
    xp = get_array_module(tensor.array)
    a, b = (v if isinstance(v, Tensor) else Tensor(xp.asarray(v, dtype=tensor.array.dtype)) for v in (a, b))
    return Binary.apply(a, b, name=name)


def _is_float(x):
    return dtypes.from_numpy(x.array.dtype).is_floating_point


# ---- the gamma family ----

@register(method=True, inplace=True)
def lgamma(input):
    """log|Gamma(x)|: `distml.lgamma(x)`, `x.lgamma()`, `distml.special.gammaln(x)`."""
    return _unary("lgamma", input)


gammaln = lgamma


@register(method=True, inplace=True)
def digamma(input):
    """d/dx log Gamma(x): `x.digamma()`, `distml.special.psi(x)`."""
    return _unary("digamma", input)


psi = digamma


def polygamma(n, input):
    """The n-th derivative of digamma: `distml.special.polygamma(1, x)`, `distml.polygamma(1, x)`,
    `x.polygamma(1)`."""
    return _polygamma(n, input, "special_polygamma")


def _polygamma(n, input, name):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name}(): argument 'n' (position 1) must be int, not {type(n).__name__}")
    if n < 0:
        raise RuntimeError("polygamma(n, x) does not support negative n.")
    return _unary("digamma", input) if n == 0 else _unary("polygamma", input, n=int(n))


def _register_as(name, fn, **where):
    """@register for a function whose Python name differs from the op's (the argument order of
    distml.polygamma(n, x) and x.polygamma(n) differ, so each has its own function)."""
    fn.__name__ = name
    return register(**where)(fn)


_register_as("polygamma", lambda n, input: _polygamma(n, input, "polygamma"))
_register_as("polygamma", lambda x, n: _polygamma(n, x, "polygamma"), function=False, method=True, inplace=True)


@register(method=True, inplace=True)
def mvlgamma(input, p):
    """The multivariate log-gamma of dimension p: sum_i lgamma(x - i/2) + p(p-1)/4 log(pi)."""
    if input.array.dtype == np.bool_:
        raise RuntimeError("The input tensor may not be a boolean tensor.")
    if p < 1:
        raise RuntimeError("p has to be greater than or equal to 1")
    x = _float_input(input)
    offsets = Tensor(get_array_module(x.array).arange(p, dtype=x.array.dtype) * -0.5)
    return sum(lgamma(x.unsqueeze(-1) + offsets), -1) + p * (p - 1) / 4 * math.log(math.pi)


def multigammaln(input, p):
    """`distml.special.multigammaln(x, p)` is `distml.mvlgamma(x, p)`."""
    return mvlgamma(input, p)


@register(method=True, inplace=True)
def igamma(input, other):
    """The regularized lower incomplete gamma function P(input, other) (differentiable in other)."""
    return _gamma_inc("gammainc", input, other)


@register(method=True, inplace=True)
def igammac(input, other):
    """The regularized upper incomplete gamma function Q(input, other) = 1 - P(input, other)."""
    return _gamma_inc("gammaincc", input, other)


def _gamma_inc(name, input, other):
    for position, (argument, value) in enumerate((("input", input), ("other", other)), 1):
        if not isinstance(value, Tensor):
            raise TypeError(f"special_{name}(): argument '{argument}' (position {position}) must be Tensor, "
                            f"not {type(value).__name__}")
    if not (_is_float(input) or _is_float(other)):
        kind = dtypes.from_numpy(np.result_type(input.array, other.array)).legacy_name
        raise NotImplementedError(f"\"igamma{'c' if name == 'gammaincc' else ''}_cpu\" not implemented for '{kind}'")
    return _binary(name, input, other)


def gammainc(input, other):
    """`distml.special.gammainc(a, x)` is `distml.igamma(a, x)`."""
    return igamma(input, other)


def gammaincc(input, other):
    """`distml.special.gammaincc(a, x)` is `distml.igammac(a, x)`."""
    return igammac(input, other)


def zeta(input, other):
    """The Hurwitz zeta function sum_k (k + other) ** -input: `distml.special.zeta(2., q)`."""
    return _binary("zeta", input, other)


# ---- Bessel functions ----

@register(method=True, inplace=True)
def i0(input):
    """The modified Bessel function of the first kind, order 0: `x.i0()`."""
    return _unary("i0", input)


def i0e(input):
    """exp(-|x|) * i0(x)."""
    return _unary("i0e", input)


def i1(input):
    """The modified Bessel function of the first kind, order 1."""
    return _unary("i1", input)


def i1e(input):
    """exp(-|x|) * i1(x)."""
    return _unary("i1e", input)


def _values_only(scipy_name, input):
    """scipy.special.<scipy_name>(x) as a tensor that autograd does not track (PyTorch has no
    derivative for these)."""
    x = _float_input(input).array
    with _quietly():
        return Tensor(getattr(_scipy_special(x), scipy_name)(_wide(x)).astype(x.dtype, copy=False))


def bessel_j0(input):
    """The Bessel function of the first kind of order 0 (no gradient, as in PyTorch)."""
    return _values_only("j0", input)


def bessel_j1(input):
    """The Bessel function of the first kind of order 1 (no gradient)."""
    return _values_only("j1", input)


def bessel_y0(input):
    """The Bessel function of the second kind of order 0 (no gradient)."""
    return _values_only("y0", input)


def bessel_y1(input):
    """The Bessel function of the second kind of order 1 (no gradient)."""
    return _values_only("y1", input)


def modified_bessel_i0(input):
    """i0, without a gradient (PyTorch's modified_bessel_i0 has none)."""
    return _values_only("i0", input)


def modified_bessel_i1(input):
    """i1, without a gradient."""
    return _values_only("i1", input)


def modified_bessel_k0(input):
    """The modified Bessel function of the second kind of order 0 (no gradient)."""
    return _values_only("k0", input)


def modified_bessel_k1(input):
    """The modified Bessel function of the second kind of order 1 (no gradient)."""
    return _values_only("k1", input)


def scaled_modified_bessel_k0(input):
    """exp(x) * k0(x) (no gradient)."""
    return _values_only("k0e", input)


def scaled_modified_bessel_k1(input):
    """exp(x) * k1(x) (no gradient)."""
    return _values_only("k1e", input)


def spherical_bessel_j0(input):
    """sin(x) / x, and 1 at 0 (no gradient)."""
    x = _float_input(input).array
    xp = get_array_module(x)
    return Tensor(_where_zero(x, 1.0, lambda safe: xp.sin(safe) / safe).astype(x.dtype, copy=False))


def airy_ai(input):
    """The Airy function Ai (no gradient)."""
    x = _float_input(input).array
    return Tensor(_scipy_special(x).airy(_wide(x))[0].astype(x.dtype, copy=False))


# ---- error function and the normal distribution ----

def erfcx(input):
    """The scaled complementary error function exp(x ** 2) * erfc(x)."""
    return _unary("erfcx", input)


def ndtr(input):
    """The standard normal CDF: `distml.special.ndtr(x)`."""
    return _unary("ndtr", input)


def ndtri(input):
    """The standard normal quantile function (the inverse of ndtr)."""
    return _unary("ndtri", input)


def log_ndtr(input):
    """log(ndtr(x)), accurate far into the left tail."""
    return _unary("log_ndtr", input)


# ---- logs, exps and the logistic function ----

@register(method=True, inplace=True)
def logit(input, eps=None):
    """log(x / (1 - x)), with x clamped to [eps, 1 - eps] when eps is given: `p.logit(1e-6)`."""
    return Logit.apply(_float_input(input), eps=None if eps is None else float(eps))


expit = sigmoid


def xlog1py(input, other):
    """x * log1p(y), taken as 0 where x == 0: `distml.special.xlog1py(x, y)`."""
    return _binary("xlog1py", input, other)


def entr(input):
    """-x * log(x) elementwise (0 at 0, -inf below 0)."""
    return _unary("entr", input)
