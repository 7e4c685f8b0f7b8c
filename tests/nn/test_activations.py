"""The activations of nn.functional against PyTorch: values and input gradients in float64 and
float32 on inputs that include the kinks (0, +-lambda, +-3, the threshold), plus PyTorch's errors."""
import math
import warnings

import numpy as np
import pytest
import torch

import distml
from distml import nn

F = nn.functional
POINTS = [-30.0, -5.0, -3.0, -2.5, -1.0, -0.5, -0.25, 0.0, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0, 30.0]

CASES = [
    ("mish", (), {}), ("hardswish", (), {}), ("hardsigmoid", (), {}), ("selu", (), {}), ("celu", (), {}),
    ("celu", (0.5,), {}), ("logsigmoid", (), {}), ("softsign", (), {}), ("tanhshrink", (), {}),
    ("softshrink", (), {}), ("softshrink", (1.0,), {}), ("hardshrink", (), {}), ("hardshrink", (0.25,), {}),
    ("threshold", (0.1, 20.0), {}), ("threshold", (-1.0, -1.0), {}), ("elu", (), {"alpha": 0.7}),
    ("rrelu", (), {}), ("rrelu", (0.1, 0.3), {"training": False}),
    ("glu", (), {}), ("glu", (0,), {}), ("softmin", (), {"dim": 1}), ("softmin", (0,), {}),
]


def grid(rng, dtype):
    x = np.concatenate([POINTS, rng.standard_normal(32) * 3]).reshape(4, 12)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,args,kwargs", CASES, ids=lambda v: str(v))
def test_functional_matches_torch(rng, name, args, kwargs, dtype):
    x = grid(rng, dtype)
    upstream = rng.standard_normal(getattr(torch.nn.functional, name)(torch.tensor(x), *args, **kwargs).shape)
    results = []
    for lib in (distml, torch):
        t = lib.tensor(x, requires_grad=True)
        out = getattr(lib.nn.functional, name)(t, *args, **kwargs)
        out.backward(lib.tensor(upstream.astype(dtype)))
        results.append((out.detach().numpy(), t.grad.numpy(), out.dtype))
    (out_d, grad_d, dt_d), (out_t, grad_t, dt_t) = results
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(out_d, out_t, **tol)
    np.testing.assert_allclose(grad_d, grad_t, **tol)
    assert str(dt_d).split(".")[1] == str(dt_t).split(".")[1]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weight,shape", [([0.25], (3, 4, 5)), ([0.1, -0.2, 0.3], (4, 3)),
                                          ([0.1, -0.2, 0.3], (2, 3, 2, 2)), ([0.5], (7,)), ([0.5], ()), (0.3, (3, 4))])
def test_prelu_matches_torch_input_and_weight_gradients(rng, weight, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[:1] = 0.0
    upstream = rng.standard_normal(shape).astype(dtype)
    results = []
    for lib in (distml, torch):
        t = lib.tensor(x, requires_grad=True)
        w = lib.tensor(np.array(weight, dtype=dtype), requires_grad=True)
        out = lib.nn.functional.prelu(t, w)
        out.backward(lib.tensor(upstream))
        results.append([out.detach().numpy(), t.grad.numpy(), w.grad.numpy()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_nan_and_inf_pass_as_in_torch():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.5])
    for name, args in [("hardshrink", ()), ("softshrink", ()), ("threshold", (0.0, 7.0)), ("mish", ()),
                       ("logsigmoid", ()), ("hardswish", ()), ("hardsigmoid", ()), ("selu", ()), ("celu", ())]:
        ours = getattr(F, name)(distml.tensor(x), *args).numpy()
        theirs = getattr(torch.nn.functional, name)(torch.tensor(x), *args).numpy()
        np.testing.assert_array_equal(ours, theirs, err_msg=name)


def test_rrelu_training_draws_slopes_in_range_and_the_gradient_is_the_slope():
    distml.manual_seed(0)
    x = distml.tensor(np.concatenate([-np.linspace(0.1, 2, 5000), np.linspace(0.01, 2, 1000)]), requires_grad=True)
    out = F.rrelu(x, 0.1, 0.3, training=True)
    out.sum().backward()
    neg = x.detach().numpy() < 0
    slopes = out.detach().numpy()[neg] / x.detach().numpy()[neg]
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3
    assert abs(slopes.mean() - 0.2) < 0.005 and abs(slopes.std() - 0.2 / math.sqrt(12)) < 0.005  # uniform(0.1, 0.3)
    assert len(np.unique(slopes)) > 4000  # one slope per element
    np.testing.assert_allclose(x.grad.numpy()[neg], slopes, rtol=1e-12)
    np.testing.assert_array_equal(out.detach().numpy()[~neg], x.detach().numpy()[~neg])
    np.testing.assert_array_equal(x.grad.numpy()[~neg], 1.0)
    module = nn.RReLU(0.1, 0.3)
    assert module.training and not np.allclose(module(x).detach().numpy()[neg], 0.2 * x.detach().numpy()[neg])
    module.eval()
    np.testing.assert_allclose(module(x).detach().numpy()[neg], 0.2 * x.detach().numpy()[neg], rtol=1e-12)


def test_softmin_and_softmax2d():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmin has been deprecated"):
        ours = F.softmin(distml.tensor(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(ours.numpy(), torch.nn.functional.softmin(torch.tensor(x)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(F.softmin(distml.tensor(x), 1, dtype=distml.float32).numpy(),
                               torch.nn.functional.softmin(torch.tensor(x), 1, dtype=torch.float32).numpy(), rtol=1e-6)
    for shape in [(2, 3, 4, 5), (3, 4, 5)]:
        y = x.reshape(-1)[:int(np.prod(shape))].reshape(shape)
        np.testing.assert_allclose(nn.Softmax2d()(distml.tensor(y)).numpy(),
                                   torch.nn.Softmax2d()(torch.tensor(y)).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="Softmax2d: expected input to be 3D or 4D, got 2D instead"):
        nn.Softmax2d()(distml.randn(2, 3))


@pytest.mark.parametrize("call,error,message", [
    (lambda f, t: f.glu(t.randn(3)), RuntimeError, "Halving dimension must be even, but dimension 0 is size 3"),
    (lambda f, t: f.glu(t.tensor(3.0)), RuntimeError, "glu does not support scalars because halving size must be even"),
    (lambda f, t: f.glu(t.randn(4, 2), 5), IndexError,
     r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 5\)"),
    (lambda f, t: f.softshrink(t.randn(3), -1), RuntimeError,
     r"lambda must be in range \[0, 3.40282e\+38\] for input dtype Float, but found -1"),
    (lambda f, t: f.softshrink(t.randn(3).double(), -0.5), RuntimeError,
     r"lambda must be in range \[0, 1.79769e\+308\] for input dtype Double, but found -0.5"),
    (lambda f, t: f.celu(t.randn(3), 0.0), RuntimeError, "ZeroDivisionError: alpha cannot be 0 for CELU"),
    (lambda f, t: f.rrelu(t.randn(3), 0.5, 0.1), RuntimeError,
     "Lower bound should be less than or equal to the upper bound"),
    (lambda f, t: f.rrelu(t.randn(3), 0.5, 0.1, True), RuntimeError, "Lower bound should be less than or equal"),
    (lambda f, t: f.prelu(t.randn(2, 3, 4), t.ones(4)), RuntimeError,
     r"Mismatch of parameter numbers and input channel size. Found parameter numbers = 4 and channel size = 3."),
    (lambda f, t: f.prelu(t.randn(3), t.ones(3)), RuntimeError, "Found parameter numbers = 3 and channel size = 1."),
    (lambda f, t: f.prelu(t.tensor(1.0), t.ones(2)), RuntimeError, "Not allow zero-dim input tensor."),
    (lambda f, t: f.prelu(t.randn(2, 3), t.ones(1, 3)), RuntimeError,
     "prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = 2"),
    (lambda f, t: t.nn.Hardtanh(1.0, 1.0), AssertionError, r"max_val \(1.0\) must be greater than min_val \(1.0\)"),
])
def test_errors_match_torch(call, error, message):
    for lib in (distml, torch):
        with pytest.raises(error, match=message):
            call(lib.nn.functional, lib)


REPRS = [("Threshold", (0.1, 20)), ("Threshold", (0.1, 2.0, True)), ("RReLU", ()), ("RReLU", (0.1, 0.3, True)),
         ("SELU", ()), ("SELU", (True,)), ("CELU", ()), ("CELU", (2.0, True)), ("Mish", ()), ("Mish", (True,)),
         ("Hardswish", (True,)), ("Hardsigmoid", (True,)), ("PReLU", ()), ("PReLU", (3, 0.1)), ("GLU", ()),
         ("GLU", (1,)), ("LogSigmoid", ()), ("Softsign", ()), ("Tanhshrink", ()), ("Softshrink", ()),
         ("Softshrink", (1.5,)), ("Hardshrink", (0.25,)), ("Softmin", ()), ("Softmin", (1,)), ("Softmax2d", ())]


@pytest.mark.parametrize("name,args", REPRS, ids=lambda v: str(v))
def test_module_repr_matches_torch(name, args):
    assert repr(getattr(nn, name)(*args)) == repr(getattr(torch.nn, name)(*args))


def test_prelu_module_parameter_and_state_dict():
    ours, theirs = nn.PReLU(3, init=0.1), torch.nn.PReLU(3, init=0.1)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    np.testing.assert_allclose(ours.weight.detach().numpy(), theirs.weight.detach().numpy())
    assert ours.weight.requires_grad and ours.init == 0.1 and ours.num_parameters == 3
    assert nn.PReLU(dtype=distml.float64).weight.dtype == distml.float64


def test_inplace_functional_forms_exist_and_write_the_input():
    x = np.linspace(-2, 2, 9)
    for name, args in [("relu_", ()), ("elu_", (0.5,)), ("leaky_relu_", (0.2,)), ("hardtanh_", (-0.5, 0.5)),
                       ("selu_", ()), ("celu_", (0.5,)), ("rrelu_", (0.1, 0.3)), ("threshold_", (0.5, -4.0))]:
        ours, theirs = distml.tensor(x), torch.tensor(x)
        out_d, out_t = getattr(F, name)(ours, *args), getattr(torch.nn.functional, name)(theirs, *args)
        assert out_d is ours
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, err_msg=name)
