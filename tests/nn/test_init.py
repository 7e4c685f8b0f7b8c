"""nn.init draws from PyTorch's distributions (KS tests and moments, not exact values), and
the layers' default initialisation; nn.utils against torch."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

import distml
from distml import nn
from distml.nn import init


def sample(shape=(200, 300)):
    return nn.Parameter(distml.empty(*shape))


def ks(t, cdf):
    assert stats.kstest(t.detach().numpy().ravel(), cdf).pvalue > 1e-4


def test_distributions():
    distml.manual_seed(0)
    t = sample()
    assert init.uniform_(t, -2, 3) is t and t.requires_grad and t.grad_fn is None
    ks(t, stats.uniform(-2, 5).cdf)
    ks(init.normal_(sample(), 1.0, 2.0), stats.norm(1, 2).cdf)
    bound = math.sqrt(6 / (200 + 300))
    ks(init.xavier_uniform_(sample()), stats.uniform(-bound, 2 * bound).cdf)
    ks(init.xavier_normal_(sample(), gain=2.0), stats.norm(0, 2 * math.sqrt(2 / 500)).cdf)
    ks(init.kaiming_uniform_(sample(), a=math.sqrt(5)), stats.uniform(-1 / math.sqrt(300), 2 / math.sqrt(300)).cdf)
    ks(init.kaiming_normal_(sample(), mode="fan_out", nonlinearity="relu"), stats.norm(0, math.sqrt(2 / 200)).cdf)
    t = init.trunc_normal_(sample(), 0.5, 1.0, -1.0, 1.5)
    ks(t, stats.truncnorm(-1.5, 1.0, loc=0.5, scale=1.0).cdf)
    assert init.constant_(t, 0.3).detach().numpy().min() == np.float32(0.3)
    assert init.zeros_(t).detach().numpy().max() == 0 and init.ones_(t).detach().numpy().min() == 1


def test_orthogonal():
    for shape in [(6, 10), (10, 6), (4, 3, 2)]:
        t = init.orthogonal_(sample(shape), gain=2.0).detach().numpy().reshape(shape[0], -1).astype(np.float64)
        gram = t @ t.T if shape[0] <= t.shape[1] else t.T @ t
        np.testing.assert_allclose(gram, 4 * np.eye(len(gram)), atol=1e-5)


def test_gain_and_fans_match_torch():
    for args in [("linear",), ("relu",), ("tanh",), ("leaky_relu", 0.2), ("selu",), ("sigmoid",), ("conv2d",)]:
        assert init.calculate_gain(*args) == torch.nn.init.calculate_gain(*args)
    for shape in [(3, 4), (5, 3, 2, 2), (4, 2, 3)]:
        assert init._calculate_fan_in_and_fan_out(distml.empty(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    with pytest.raises(ValueError, match="Fan in and fan out can not be computed"):
        init.xavier_uniform_(distml.empty(3))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_default_layer_initialisation():
    distml.manual_seed(1)
    linear = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    ks(linear.weight, stats.uniform(-bound, 2 * bound).cdf)
    ks(linear.bias, stats.uniform(-bound, 2 * bound).cdf)
    conv = nn.Conv2d(16, 64, 3)
    bound = 1 / math.sqrt(16 * 9)
    ks(conv.weight, stats.uniform(-bound, 2 * bound).cdf)
    assert np.abs(conv.bias.detach().numpy()).max() <= bound
    ks(nn.Embedding(300, 200).weight, stats.norm().cdf)
    bn = nn.BatchNorm2d(5)
    assert np.all(bn.weight.detach().numpy() == 1) and np.all(bn.bias.detach().numpy() == 0)
    assert np.all(nn.LayerNorm(5).weight.detach().numpy() == 1)
    assert linear.weight.dtype == distml.float32
    assert nn.Linear(3, 2, dtype=distml.float64).weight.dtype == distml.float64


def test_clip_grad_and_vectors(rng):
    def params(lib):
        ps = [lib.nn.Parameter(lib.tensor(rng_state.standard_normal(s))) for s in [(3, 4), (5,)]]
        for p in ps:
            p.grad = lib.tensor(rng_state.standard_normal(tuple(p.shape)) * 3)
        return ps
    for norm_type in [2.0, 1.0, float("inf")]:
        rng_state = np.random.default_rng(5)
        d = params(distml)
        rng_state = np.random.default_rng(5)
        t = params(torch)
        total_d = nn.utils.clip_grad_norm_(d, 1.5, norm_type)
        total_t = torch.nn.utils.clip_grad_norm_(t, 1.5, norm_type)
        np.testing.assert_allclose(total_d.item(), total_t.item(), rtol=1e-6)
        for a, b in zip(d, t):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6)
    nn.utils.clip_grad_value_(d, 0.1)
    torch.nn.utils.clip_grad_value_(t, 0.1)
    for a, b in zip(d, t):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6)
    vec = nn.utils.parameters_to_vector(d)
    np.testing.assert_allclose(vec.detach().numpy(), torch.nn.utils.parameters_to_vector(t).detach().numpy())
    nn.utils.vector_to_parameters(vec * 2, d)
    np.testing.assert_allclose(d[1].detach().numpy(), 2 * t[1].detach().numpy())
    with pytest.raises(RuntimeError, match="is non-finite"):
        d[0].grad.array[0, 0] = np.nan
        nn.utils.clip_grad_norm_(d, 1.0, error_if_nonfinite=True)
