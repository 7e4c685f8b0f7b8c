"""distml.special and the top-level/method forms of its functions, against torch on the same
float64 inputs: values, dtypes, gradients, and the errors PyTorch raises."""
import numpy as np
import pytest
import torch

import distml

DOMAINS = {
    "real": lambda rng, shape: rng.uniform(-3, 3, shape),
    "positive": lambda rng, shape: rng.uniform(0.1, 5, shape),
    "unit": lambda rng, shape: rng.uniform(0.02, 0.98, shape),
    "wide": lambda rng, shape: rng.uniform(-12, 12, shape),
}

# (name, f(m, x), domain): m is distml or torch
UNARY = [
    ("gammaln", lambda m, x: m.special.gammaln(x), "positive"),
    ("lgamma", lambda m, x: m.lgamma(x), "positive"),
    ("lgamma_negative", lambda m, x: m.lgamma(x), "real"),
    ("lgamma_method", lambda m, x: x.lgamma(), "positive"),
    ("digamma", lambda m, x: m.special.digamma(x), "positive"),
    ("psi", lambda m, x: m.special.psi(x), "positive"),
    ("digamma_method", lambda m, x: x.digamma(), "positive"),
    ("polygamma1", lambda m, x: m.polygamma(1, x), "positive"),
    ("polygamma3", lambda m, x: m.special.polygamma(3, x), "positive"),
    ("polygamma0_method", lambda m, x: x.polygamma(0), "positive"),
    ("polygamma2_method", lambda m, x: x.polygamma(2), "positive"),
    ("mvlgamma", lambda m, x: m.mvlgamma(x + 2, 3), "positive"),
    ("multigammaln", lambda m, x: m.special.multigammaln(x + 1, 2), "positive"),
    ("mvlgamma_method", lambda m, x: (x + 1).mvlgamma(1), "positive"),
    ("erfcx", lambda m, x: m.special.erfcx(x), "real"),
    ("i0", lambda m, x: m.special.i0(x), "wide"),
    ("i0_top", lambda m, x: m.i0(x), "real"),
    ("i0_method", lambda m, x: x.i0(), "real"),
    ("i0e", lambda m, x: m.special.i0e(x), "wide"),
    ("i1", lambda m, x: m.special.i1(x), "wide"),
    ("i1e", lambda m, x: m.special.i1e(x), "wide"),
    ("ndtr", lambda m, x: m.special.ndtr(x), "wide"),
    ("ndtri", lambda m, x: m.special.ndtri(x), "unit"),
    ("log_ndtr", lambda m, x: m.special.log_ndtr(x), "wide"),
    ("entr", lambda m, x: m.special.entr(x), "positive"),
    ("logit", lambda m, x: m.special.logit(x), "unit"),
    ("logit_eps", lambda m, x: m.logit(x, eps=0.2), "unit"),
    ("logit_method", lambda m, x: x.logit(), "unit"),
    ("expit", lambda m, x: m.special.expit(x), "wide"),
    ("expm1", lambda m, x: m.special.expm1(x * 1e-3), "real"),
    ("exp2", lambda m, x: m.special.exp2(x), "real"),
    ("sinc", lambda m, x: m.special.sinc(x), "real"),
    ("log1p", lambda m, x: m.special.log1p(x), "positive"),
    ("softmax", lambda m, x: m.special.softmax(x, 1), "real"),
    ("log_softmax", lambda m, x: m.special.log_softmax(x, -1), "real"),
    ("logsumexp", lambda m, x: m.special.logsumexp(x, 1), "real"),
    ("logsumexp_keepdim", lambda m, x: m.special.logsumexp(x, (0, 1), keepdim=True), "real"),
]

BINARY = [
    ("xlog1py", lambda m, x, y: m.special.xlog1py(x, y), "real", "positive"),
    ("xlog1py_scalar_first", lambda m, x, y: m.special.xlog1py(2.0, y), "real", "positive"),
    ("xlog1py_scalar_second", lambda m, x, y: m.special.xlog1py(x, 0.5), "real", "positive"),
    ("zeta", lambda m, x, y: m.special.zeta(x.detach() + 1.5, y), "positive", "positive"),
    ("zeta_scalar", lambda m, x, y: m.special.zeta(3.0, y), "positive", "positive"),
    ("gammainc", lambda m, x, y: m.special.gammainc(x.detach(), y), "positive", "positive"),
    ("gammaincc", lambda m, x, y: m.special.gammaincc(x.detach(), y), "positive", "positive"),
    ("igamma", lambda m, x, y: m.igamma(x.detach(), y) + x.detach().igammac(y), "positive", "positive"),
]


def _pair(values, requires_grad=True):
    return (distml.tensor(values, dtype=distml.float64, requires_grad=requires_grad),
            torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad))


def _check(out, expected, rtol=1e-10, atol=1e-12):
    assert out.dtype.name == str(expected.dtype).split(".")[-1]
    assert tuple(out.shape) == tuple(expected.shape)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=rtol, atol=atol)


def _backward(out, expected, seed_values):
    out.backward(distml.tensor(seed_values, dtype=distml.float64))
    expected.backward(torch.tensor(seed_values, dtype=torch.float64))


@pytest.mark.parametrize("name,f,domain", UNARY, ids=[c[0] for c in UNARY])
def test_unary_value_and_gradient(name, f, domain, rng):
    a, b = _pair(DOMAINS[domain](rng, (3, 4)))
    out, expected = f(distml, a), f(torch, b)
    _check(out, expected, rtol=1e-8)  # torch's trigamma is good to ~1e-9 (SciPy's to 1e-16, as mpmath says)
    _backward(out, expected, rng.standard_normal(tuple(expected.shape)))
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name,f,domain_x,domain_y", BINARY, ids=[c[0] for c in BINARY])
def test_binary_value_and_gradient(name, f, domain_x, domain_y, rng):
    a, b = _pair(DOMAINS[domain_x](rng, (3, 1)))
    c, d = _pair(DOMAINS[domain_y](rng, (1, 4)))
    out, expected = f(distml, a, c), f(torch, b, d)
    _check(out, expected)
    _backward(out, expected, rng.standard_normal(tuple(expected.shape)))
    for mine, theirs in ((a, b), (c, d)):
        assert (mine.grad is None) == (theirs.grad is None)
        if theirs.grad is not None:
            np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["i1", "i1e", "sinc", "entr", "xlog1py"])
def test_gradients_at_zero(name):
    a, b = _pair([0.0, 1e-300, -2.0] if name != "entr" else [0.0, 1.0, 2.0])
    if name == "xlog1py":
        out, expected = distml.special.xlog1py(a, -1.0), torch.special.xlog1py(b, -1.0)
    else:
        out, expected = getattr(distml.special, name)(a), getattr(torch.special, name)(b)
    _check(out, expected)
    out.sum().backward()
    expected.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)


def test_special_values_at_the_edges():
    values = [0.0, -1.0, 1.0, -0.5, 0.5, 2.0]
    a, b = _pair(values, requires_grad=False)
    for name in ("gammaln", "digamma", "entr", "ndtri", "logit"):
        _check(getattr(distml.special, name)(a), getattr(torch.special, name)(b))


def test_logit_gradient_outside_the_interval():
    a, b = _pair([-0.5, 0.1, 0.5, 0.95, 1.5])
    _check(distml.logit(a), torch.logit(b))
    distml.logit(a).sum().backward()
    torch.logit(b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)  # NaN where torch has NaN
    a, b = _pair([-0.5, 0.1, 0.5, 0.95, 1.5])
    distml.logit(a, 0.15).sum().backward()
    torch.logit(b, 0.15).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["gammaln", "digamma", "i0", "i0e", "i1", "i1e", "ndtr", "log_ndtr", "erfcx",
                                  "expit", "logit", "entr", "expm1", "exp2", "sinc"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "bool"])
def test_dtypes(name, dtype):
    if dtype == "float16" and name in ("log_ndtr", "erfcx"):
        pytest.skip("torch's CPU build has no float16 kernel for these (distml computes them in float32)")
    values = np.array([[0.25, 1.0], [0.75, 0.0]] if dtype != "int64" else [[1, 2], [3, 0]])
    a = distml.tensor(values).to(getattr(distml, dtype))
    b = torch.tensor(values).to(getattr(torch, dtype))
    out, expected = getattr(distml.special, name)(a), getattr(torch.special, name)(b)
    tol = {"float16": 2e-3, "float32": 1e-6}.get(dtype, 1e-6)
    _check(out, expected, rtol=tol, atol=tol)


def test_float32_gradients():
    a = distml.tensor([0.5, 2.0, 3.5], requires_grad=True)
    b = torch.tensor([0.5, 2.0, 3.5], requires_grad=True)
    (distml.lgamma(a) + distml.special.i1e(a) + distml.special.ndtri(a / 4)).sum().backward()
    (torch.lgamma(b) + torch.special.i1e(b) + torch.special.ndtri(b / 4)).sum().backward()
    assert a.grad.dtype == distml.float32
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5)


def test_in_place_forms():
    for name, args in [("lgamma_", ()), ("digamma_", ()), ("polygamma_", (1,)), ("i0_", ()), ("logit_", (0.1,)),
                       ("mvlgamma_", (2,)), ("igamma_", ()),
                       ("igammac_", ())]:
        values = [1.5, 2.5, 3.0] if name != "logit_" else [0.05, 0.5, 0.7]
        a, b = _pair(values, requires_grad=False)
        if name.startswith("igamma"):
            args = (distml.tensor([0.5, 1.0, 4.0], dtype=distml.float64),)
            torch_args = (torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64),)
        else:
            torch_args = args
        assert getattr(a, name)(*args) is a
        getattr(b, name)(*torch_args)
        _check(a, b, rtol=1e-8)


def test_names_torch_has_at_the_top_level_and_as_methods():
    for name in ("lgamma", "digamma", "polygamma", "mvlgamma", "i0", "logit", "igamma", "igammac"):
        assert callable(getattr(distml, name)) and callable(getattr(distml.Tensor, name))
        assert callable(getattr(distml.Tensor, name + "_"))
    for name in ("gammaln", "psi", "entr", "ndtr", "ndtri", "log_ndtr", "i0e", "i1", "i1e", "erfcx",
                 "xlog1py", "zeta", "multigammaln", "expit", "gammainc", "gammaincc"):
        assert hasattr(torch, name) == hasattr(distml, name) is False
        assert callable(getattr(distml.special, name))


def test_the_functions_distml_has_elsewhere_are_those_functions():
    for name in ("erf", "erfc", "erfinv", "expm1", "exp2", "sinc", "xlogy", "round", "log1p", "softmax",
                 "log_softmax", "logsumexp"):
        assert getattr(distml.special, name) is getattr(distml, name)
    assert distml.special.expit is distml.sigmoid
    a, b = _pair([-1.5, 0.0, 0.3, 0.9, 1.26])
    _check(distml.special.xlogy(a, a * a + 1), torch.special.xlogy(b, b * b + 1))
    _check(distml.special.round(a, decimals=1), torch.special.round(b, decimals=1))


def _raises(f_distml, f_torch):
    with pytest.raises(Exception) as expected:
        f_torch()
    with pytest.raises(expected.type) as got:
        f_distml()
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("case", [
    lambda m: m.polygamma(-1, m.ones(2)),
    lambda m: m.special.polygamma(1.5, m.ones(2)),
    lambda m: m.polygamma(1.5, m.ones(2)),
    lambda m: m.ones(2).polygamma(1.5),
    lambda m: m.special.polygamma(True, m.ones(2)),
    lambda m: m.mvlgamma(m.ones(2), 0),
    lambda m: m.mvlgamma(m.ones(2, dtype=m.bool), 1),
    lambda m: m.special.gammainc(1.0, m.ones(2)),
    lambda m: m.special.gammainc(m.ones(2), 1.0),
    lambda m: m.special.gammainc(m.ones(2, dtype=m.int64), m.ones(2, dtype=m.int64)),
    lambda m: m.special.gammainc(m.ones(2, requires_grad=True), m.ones(2)).sum().backward(),
    lambda m: m.special.gammaincc(m.ones(2, requires_grad=True), m.ones(2)).sum().backward(),
    lambda m: m.special.zeta(m.ones(2, requires_grad=True) + 1, m.ones(2)).sum().backward(),
], ids=["polygamma_negative", "polygamma_float_n", "polygamma_top_float_n", "polygamma_method_float_n",
        "polygamma_bool_n", "mvlgamma_p", "mvlgamma_bool", "gammainc_scalar",
        "gammainc_scalar_other", "gammainc_int", "igamma_input_grad", "igammac_input_grad", "zeta_x_grad"])
def test_errors_as_torch(case):
    _raises(lambda: case(distml), lambda: case(torch))


VALUES_ONLY = ["bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1", "modified_bessel_i0", "modified_bessel_i1",
               "modified_bessel_k0", "modified_bessel_k1", "scaled_modified_bessel_k0", "scaled_modified_bessel_k1",
               "spherical_bessel_j0", "airy_ai"]


@pytest.mark.parametrize("name", VALUES_ONLY)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_functions_without_gradients(name, dtype):
    values = [0.5, 1.5, -2.0, 0.0, 7.25, 30.0]
    a = distml.tensor(values, dtype=getattr(distml, dtype), requires_grad=True)
    b = torch.tensor(values, dtype=getattr(torch, dtype), requires_grad=True)
    out, expected = getattr(distml.special, name)(a), getattr(torch.special, name)(b)
    assert not out.requires_grad and not expected.requires_grad
    # torch's j0/j1/y0/y1 past x = 5 are asymptotic series good to ~2e-8 (SciPy's agree with mpmath to 1e-16)
    _check(out, expected, rtol=1e-6 if dtype == "float64" else 1e-5, atol=5e-8 if dtype == "float64" else 1e-6)
