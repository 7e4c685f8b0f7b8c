"""distml.distributions against torch.distributions: log_prob, cdf, icdf, entropy, moments and
KL values and their float64 gradients on the same parameters; samples by shape, dtype, moments
and seeding (the streams differ from torch's); reparameterized gradients by their expectations;
argument validation by torch's error type and message."""
import math

import numpy as np
import pytest
import torch
import torch.distributions as TD

import distml
import distml.distributions as D


def _tensors(m, params):
    dtype = m.float64
    return {k: m.tensor(v, dtype=dtype, requires_grad=True) if isinstance(v, (list, np.ndarray)) else v
            for k, v in params.items()}


# name, build(module of distributions, tensors), parameters, values to score
CONTINUOUS = [
    ("normal", lambda d, p: d.Normal(p["a"], p["b"]), {"a": [0.3, -1.2, 2.0], "b": [0.5, 2.0, 1.1]},
     [0.1, 0.7, -3.0]),
    ("normal_scalar_scale", lambda d, p: d.Normal(p["a"], 2.0), {"a": [0.3, -1.2]}, [[0.1, 0.7], [1.0, 2.0]]),
    ("laplace", lambda d, p: d.Laplace(p["a"], p["b"]), {"a": [0.3, -1.2], "b": [0.5, 2.0]}, [0.1, 0.7]),
    ("exponential", lambda d, p: d.Exponential(p["b"]), {"b": [0.5, 2.0]}, [0.1, 0.7]),
    ("gamma", lambda d, p: d.Gamma(p["a"], p["b"]), {"a": [0.5, 2.0, 7.5], "b": [1.5, 0.3, 2.0]}, [0.1, 0.7, 4.0]),
    ("beta", lambda d, p: d.Beta(p["a"], p["b"]), {"a": [0.5, 2.0, 3.0], "b": [1.5, 0.3, 3.0]}, [0.1, 0.7, 0.5]),
    ("uniform", lambda d, p: d.Uniform(p["a"], p["b"]), {"a": [0.0, -1.2], "b": [1.5, 2.0]}, [0.1, 0.7]),
    ("lognormal", lambda d, p: d.LogNormal(p["a"], p["b"]), {"a": [0.3, -1.2], "b": [0.5, 2.0]}, [0.1, 0.7]),
    ("dirichlet", lambda d, p: d.Dirichlet(p["a"]), {"a": [[0.5, 2.0, 1.5], [3.0, 1.0, 0.7]]},
     [[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]]),
    ("mvn_scale_tril", lambda d, p: d.MultivariateNormal(p["a"], scale_tril=p["b"]),
     {"a": [0.3, -1.2], "b": [[1.2, 0.0], [0.4, 0.7]]}, [[0.1, 0.7], [-1.0, 2.0], [0.0, 0.0]]),
    ("mvn_covariance", lambda d, p: d.MultivariateNormal(p["a"], covariance_matrix=p["b"]),
     {"a": [0.3, -1.2, 0.5], "b": [[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.8]]},
     [[0.1, 0.7, 0.2], [-1.0, 2.0, 0.0]]),
    ("mvn_precision", lambda d, p: d.MultivariateNormal(p["a"], precision_matrix=p["b"]),
     {"a": [0.3, -1.2], "b": [[2.0, 0.3], [0.3, 1.0]]}, [[0.1, 0.7], [-1.0, 2.0]]),
    ("mvn_batched", lambda d, p: d.MultivariateNormal(p["a"], scale_tril=p["b"]),
     {"a": [[0.3, -1.2], [1.0, 0.0]], "b": [[1.2, 0.0], [0.4, 0.7]]}, [[[0.1, 0.7], [-1.0, 2.0]]]),
    ("independent_normal", lambda d, p: d.Independent(d.Normal(p["a"], p["b"]), 1),
     {"a": [[0.3, -1.2], [1.0, 0.0]], "b": [[0.5, 2.0], [1.0, 0.1]]}, [[0.1, 0.7], [-1.0, 2.0]]),
    ("transformed_affine_exp", lambda d, p: d.TransformedDistribution(
        d.Normal(p["a"], p["b"]), [d.transforms.AffineTransform(0.5, 0.5), d.transforms.ExpTransform()]),
     {"a": [0.3, -1.2], "b": [0.5, 0.8]}, [0.9, 3.0]),
    ("transformed_sigmoid", lambda d, p: d.TransformedDistribution(
        d.Normal(p["a"], p["b"]), d.transforms.SigmoidTransform()), {"a": [0.3, -1.2], "b": [0.5, 2.0]}, [0.2, 0.9]),
]

DISCRETE = [
    ("bernoulli_probs", lambda d, p: d.Bernoulli(probs=p["a"]), {"a": [0.2, 0.5, 0.9]}, [1.0, 0.0, 1.0]),
    ("bernoulli_logits", lambda d, p: d.Bernoulli(logits=p["a"]), {"a": [-2.0, 0.0, 3.0]}, [1.0, 0.0, 1.0]),
    ("categorical_probs", lambda d, p: d.Categorical(probs=p["a"]), {"a": [[0.2, 0.3, 0.5], [1.0, 2.0, 1.0]]},
     [[2, 0], [1, 1]]),
    ("categorical_logits", lambda d, p: d.Categorical(logits=p["a"]), {"a": [[-1.0, 0.3, 2.0], [0.0, 0.0, 1.0]]},
     [2, 0]),
    ("one_hot_categorical", lambda d, p: d.OneHotCategorical(p["a"]), {"a": [[0.2, 0.3, 0.5], [1.0, 2.0, 1.0]]},
     [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),
    ("poisson", lambda d, p: d.Poisson(p["a"]), {"a": [0.5, 3.0, 10.0]}, [0.0, 2.0, 12.0]),
    ("binomial_probs", lambda d, p: d.Binomial(10, probs=p["a"]), {"a": [0.2, 0.5, 0.9]}, [1.0, 5.0, 10.0]),
    ("binomial_logits", lambda d, p: d.Binomial(p["n"], logits=p["a"]),
     {"n": 6.0, "a": [-1.0, 0.0, 2.0]}, [0.0, 3.0, 6.0]),
]

CASES = CONTINUOUS + DISCRETE
METHODS = ["log_prob", "cdf", "icdf", "entropy", "mean", "variance", "stddev", "mode", "perplexity"]


def _value(m, values, name):
    dtype = m.int64 if name.startswith("categorical") else m.float64
    return m.tensor(values, dtype=dtype)


def _evaluate(module, d, method, values, name):
    if method in ("log_prob", "cdf"):
        return getattr(d, method)(_value(module, values, name))
    if method == "icdf":
        return d.icdf(d.cdf(_value(module, values, name)))
    if method in ("entropy", "perplexity"):
        return getattr(d, method)()
    return getattr(d, method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name,build,params,values", CASES, ids=[c[0] for c in CASES])
def test_values_and_gradients_match_torch(name, build, params, values, method):
    ours, theirs = _tensors(distml, params), _tensors(torch, params)
    try:
        expected = _evaluate(torch, build(TD, theirs), method, values, name)
    except NotImplementedError:
        with pytest.raises(NotImplementedError):
            _evaluate(distml, build(D, ours), method, values, name)
        return
    got = _evaluate(distml, build(D, ours), method, values, name)
    assert tuple(got.shape) == tuple(expected.shape)
    assert got.dtype.name == str(expected.dtype).split(".")[-1]
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-9, atol=1e-12)
    if not expected.requires_grad:
        return
    finite = np.isfinite(expected.detach().numpy())
    seed = np.where(finite, np.linspace(0.5, 1.5, finite.size).reshape(finite.shape), 0.0)
    try:
        expected.backward(torch.tensor(seed, dtype=torch.float64))
    except NotImplementedError as error:  # Gamma.cdf: torch has no igamma gradient in the concentration
        with pytest.raises(NotImplementedError, match=str(error)):
            got.backward(distml.tensor(seed, dtype=distml.float64))
        return
    got.backward(distml.tensor(seed, dtype=distml.float64))
    for key in params:
        if isinstance(theirs[key], torch.Tensor):
            assert (ours[key].grad is None) == (theirs[key].grad is None), key
            if theirs[key].grad is not None:
                np.testing.assert_allclose(ours[key].grad.numpy(), theirs[key].grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name,build,params,values", CASES, ids=[c[0] for c in CASES])
def test_shapes_support_and_expand(name, build, params, values):
    ours, theirs = build(D, _tensors(distml, params)), build(TD, _tensors(torch, params))
    assert tuple(ours.batch_shape) == tuple(theirs.batch_shape)
    assert tuple(ours.event_shape) == tuple(theirs.event_shape)
    assert ours.has_rsample == theirs.has_rsample
    assert ours.has_enumerate_support == theirs.has_enumerate_support
    assert repr(ours.support).replace("distml", "torch") == repr(theirs.support)
    assert repr(ours).replace("distml", "torch") == repr(theirs)
    new_batch = (4,) + tuple(theirs.batch_shape)
    expanded, expected = ours.expand(new_batch), theirs.expand(new_batch)
    assert tuple(expanded.batch_shape) == tuple(expected.batch_shape)
    assert tuple(expanded.event_shape) == tuple(expected.event_shape)
    value = expected.sample()
    np.testing.assert_allclose(expanded.log_prob(distml.from_numpy(value.numpy())).detach().numpy(),
                               expected.log_prob(value).detach().numpy(), rtol=1e-9)


@pytest.mark.parametrize("name,build,params,values", CASES, ids=[c[0] for c in CASES])
def test_expand_carries_parameters_validation_and_instance_as_torch(name, build, params, values):
    pair = build(D, _tensors(distml, params)), build(TD, _tensors(torch, params))
    for d in pair:
        for param in d.arg_constraints:
            getattr(d, param)  # computes the lazy ones (logits from probs, ...), which expand carries too
        d._validate_args = False
    new_batch = (4,) + tuple(pair[1].batch_shape)
    instances = [type(d).__new__(type(d)) for d in pair]
    got, expected = (d.expand(new_batch, _instance=instance) for d, instance in zip(pair, instances))
    assert got is instances[0] and expected is instances[1]
    assert got._validate_args is expected._validate_args is False
    assert tuple(got.batch_shape) == tuple(expected.batch_shape)
    assert tuple(got.event_shape) == tuple(expected.event_shape)
    held = sorted(p for p in expected.arg_constraints if p in expected.__dict__)
    assert sorted(p for p in got.arg_constraints if p in got.__dict__) == held
    for param in held:
        np.testing.assert_allclose(got.__dict__[param].detach().numpy(), expected.__dict__[param].detach().numpy(),
                                   rtol=1e-12)
    value = expected.sample()
    np.testing.assert_allclose(got.log_prob(distml.from_numpy(value.numpy())).detach().numpy(),
                               expected.log_prob(value).detach().numpy(), rtol=1e-9)


@pytest.mark.parametrize("cls,args", [("Normal", (0.0, 1.0)), ("Bernoulli", (0.3,)), ("LogNormal", (0.0, 1.0))])
def test_expand_of_subclasses_as_torch(cls, args):
    for module in (D, TD):
        class Same(getattr(module, cls)):
            pass

        class Own(getattr(module, cls)):
            def __init__(self):
                super().__init__(*args)

        expanded = Same(*args).expand((2, 3))
        assert type(expanded) is Same and tuple(expanded.batch_shape) == (2, 3)
        with pytest.raises(NotImplementedError, match=f"^Subclass Own of {cls} that defines a custom __init__ "
                                                      r"method must also define a custom \.expand\(\) method\.$"):
            Own().expand((2, 3))


@pytest.mark.parametrize("name,build,params,values", CASES, ids=[c[0] for c in CASES])
def test_samples_shape_dtype_and_seed(name, build, params, values):
    d = build(D, _tensors(distml, params))
    expected = build(TD, _tensors(torch, params)).sample((5, 2))
    distml.manual_seed(7)
    first = d.sample((5, 2))
    distml.manual_seed(7)
    again = d.sample((5, 2))
    assert tuple(first.shape) == tuple(expected.shape)
    assert first.dtype.name == str(expected.dtype).split(".")[-1]
    assert not first.requires_grad
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert bool(d.support.check(first).array.all())


MOMENTS = [c for c in CASES if c[0] not in ("transformed_affine_exp", "lognormal")]  # heavy tails


@pytest.mark.parametrize("name,build,params,values", MOMENTS, ids=[c[0] for c in MOMENTS])
def test_sample_moments(name, build, params, values):
    distml.manual_seed(0)
    d = build(D, _tensors(distml, params))
    n = 40000
    samples = d.sample((n,)).to(distml.float64).numpy()
    theirs = build(TD, _tensors(torch, params))
    try:
        mean, variance = theirs.mean.detach().numpy(), theirs.variance.detach().numpy()
    except NotImplementedError:  # the transformed ones: compare with torch's own samples
        reference = theirs.sample((n,)).numpy()
        mean, variance = reference.mean(0), reference.var(0)
    if not np.isfinite(mean).all():  # Categorical: nan moments; compare class frequencies with probs
        probs = theirs.probs.detach().numpy()
        frequencies = (samples[..., None] == np.arange(probs.shape[-1])).mean(0)
        np.testing.assert_allclose(frequencies, probs, atol=0.015)
        return
    np.testing.assert_allclose(samples.mean(0), mean, atol=6 * np.sqrt(variance.max() / n) + 1e-9)
    np.testing.assert_allclose(samples.var(0), variance, rtol=0.06, atol=1e-3)


REPARAMETERIZED = [c for c in CONTINUOUS if c[0] not in ("transformed_sigmoid",)]


@pytest.mark.parametrize("name,build,params,values", REPARAMETERIZED, ids=[c[0] for c in REPARAMETERIZED])
def test_rsample_gradient_is_the_gradient_of_the_mean(name, build, params, values):
    """E[d x / d theta] = d E[x] / d theta for a reparameterized sample x (checked on many draws)."""
    distml.manual_seed(1)
    ours, exact = _tensors(distml, params), _tensors(distml, params)
    n = 40000
    samples = build(D, ours).rsample((n,))
    assert samples.requires_grad
    samples.mean(0).sum().backward()
    if name == "transformed_affine_exp":  # no mean property: E x = exp(0.5 + loc / 2 + scale^2 / 8)
        mean = (0.5 + exact["a"] / 2 + exact["b"] ** 2 / 8).exp()
    else:
        mean = build(D, exact).mean
    mean.sum().backward()
    for key, tensor in ours.items():
        if isinstance(tensor, distml.Tensor):
            expected = exact[key].grad.numpy() if exact[key].grad is not None else np.zeros(tensor.shape)
            np.testing.assert_allclose(tensor.grad.numpy(), expected, rtol=0.05, atol=0.02)


def test_gamma_implicit_gradient_against_torch_and_mpmath():
    from distml.distributions.gamma import _standard_gamma_grad
    rng = np.random.default_rng(0)
    alpha = np.repeat([0.05, 0.3, 1.0, 2.5, 10.0, 150.0], 4)
    x = np.maximum(rng.standard_gamma(alpha), 1e-300)
    got = _standard_gamma_grad(alpha, x)
    expected = torch._standard_gamma_grad(torch.tensor(alpha), torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3)  # torch's rational approximation is good to ~3e-4
    mpmath = pytest.importorskip("mpmath")
    for a, value, g in list(zip(alpha, x, got))[::3]:
        a, value = mpmath.mpf(float(a)), mpmath.mpf(float(value))
        dcdf = mpmath.diff(lambda s: mpmath.gammainc(s, 0, value, regularized=True), a)
        pdf = value ** (a - 1) * mpmath.exp(-value) / mpmath.gamma(a)
        assert abs(g / float(-dcdf / pdf) - 1) < 1e-7


def test_gamma_rsample_gradient_in_float32():
    concentration = distml.tensor([0.7, 4.0], requires_grad=True)
    sample = D.Gamma(concentration, 2.0).rsample((3,))
    sample.sum().backward()
    assert sample.dtype == distml.float32 and concentration.grad.dtype == distml.float32
    assert bool(np.isfinite(concentration.grad.numpy()).all())


def test_categorical_normalises_probs_and_logits_as_torch():
    values = [[1.0, 2.0, 5.0], [0.5, 0.5, 1.0]]
    for kind in ("probs", "logits"):
        ours = D.Categorical(**{kind: distml.tensor(values, dtype=distml.float64)})
        theirs = TD.Categorical(**{kind: torch.tensor(values, dtype=torch.float64)})
        for attribute in ("probs", "logits"):
            np.testing.assert_allclose(getattr(ours, attribute).numpy(), getattr(theirs, attribute).numpy(),
                                       rtol=1e-12)
        np.testing.assert_array_equal(ours.enumerate_support().numpy(), theirs.enumerate_support().numpy())
        np.testing.assert_array_equal(ours.mode.numpy(), theirs.mode.numpy())


def test_bernoulli_mode_and_enumerate_support():
    ours, theirs = D.Bernoulli(distml.tensor([0.2, 0.5, 0.7])), TD.Bernoulli(torch.tensor([0.2, 0.5, 0.7]))
    np.testing.assert_array_equal(ours.mode.numpy(), theirs.mode.numpy())
    np.testing.assert_array_equal(ours.enumerate_support().numpy(), theirs.enumerate_support().numpy())
    np.testing.assert_array_equal(ours.enumerate_support(expand=False).numpy(),
                                  theirs.enumerate_support(expand=False).numpy())


def test_mvn_matrices_match_torch():
    loc, cov = [0.3, -1.2, 0.5], [[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.8]]
    ours = D.MultivariateNormal(distml.tensor(loc, dtype=distml.float64), distml.tensor(cov, dtype=distml.float64))
    theirs = TD.MultivariateNormal(torch.tensor(loc, dtype=torch.float64), torch.tensor(cov, dtype=torch.float64))
    for attribute in ("scale_tril", "covariance_matrix", "precision_matrix"):
        np.testing.assert_allclose(getattr(ours, attribute).numpy(), getattr(theirs, attribute).numpy(), rtol=1e-12,
                                   atol=1e-14)


def test_mvn_rsample_covariance():
    distml.manual_seed(3)
    tril = distml.tensor([[1.0, 0.0], [0.8, 0.5]], dtype=distml.float64)
    samples = D.MultivariateNormal(distml.tensor([1.0, -2.0], dtype=distml.float64), scale_tril=tril).sample((50000,))
    np.testing.assert_allclose(np.cov(samples.numpy().T), (tril @ tril.T).numpy(), atol=0.03)


def _pair(kind, m, scale=1.0):
    """A distribution of module m (distml or torch) and the leaf tensors it was made from."""
    leaves = []

    def t(values):
        leaves.append(m.tensor(values, dtype=m.float64, requires_grad=True))
        return leaves[-1]

    d = D if m is distml else TD
    make = {
        "normal": lambda: d.Normal(t([0.3, -1.2]), t([0.5, 2.0]) * scale),
        "laplace": lambda: d.Laplace(t([0.3, -1.2]), t([0.5, 2.0]) * scale),
        "exponential": lambda: d.Exponential(t([0.5, 2.0]) * scale),
        "gamma": lambda: d.Gamma(t([0.5, 2.0]) * scale, t([1.5, 0.3])),
        "beta": lambda: d.Beta(t([0.5, 2.0]) * scale, t([1.5, 0.3])),
        "uniform": lambda: d.Uniform(t([0.1, 0.2]) * scale, t([0.9, 0.95])),
        "poisson": lambda: d.Poisson(t([0.5, 2.0]) * scale),
        "bernoulli": lambda: d.Bernoulli(t([0.2, 0.7]) * scale),
        "binomial": lambda: d.Binomial(5, t([0.2, 0.7]) * scale),
        "categorical": lambda: d.Categorical(t([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]]) * scale),
        "one_hot": lambda: d.OneHotCategorical(t([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]]) * scale),
        "dirichlet": lambda: d.Dirichlet(t([[0.5, 2.0, 1.5], [3.0, 1.0, 0.7]]) * scale),
        "mvn": lambda: d.MultivariateNormal(t([0.3, -1.2]), scale_tril=t([[1.2, 0.0], [0.4, 0.7]]) * scale),
        "independent": lambda: d.Independent(d.Normal(t([[0.3, -1.2]]), t([[0.5, 2.0]]) * scale), 1),
        "lognormal": lambda: d.LogNormal(t([0.3, -1.2]), t([0.5, 2.0]) * scale),
    }
    return make[kind](), leaves


KL_PAIRS = [(k, k) for k in ("normal", "laplace", "exponential", "gamma", "beta", "uniform", "poisson", "bernoulli",
                             "binomial", "categorical", "one_hot", "dirichlet", "mvn", "independent", "lognormal")]
KL_PAIRS += [("bernoulli", "poisson"), ("beta", "exponential"), ("beta", "gamma"), ("beta", "normal"),
             ("beta", "uniform"), ("exponential", "gamma"), ("exponential", "normal"), ("gamma", "exponential"),
             ("gamma", "normal"), ("laplace", "normal"), ("normal", "laplace"), ("uniform", "beta"),
             ("uniform", "exponential"), ("uniform", "gamma"), ("uniform", "normal"), ("normal", "gamma"),
             ("laplace", "uniform"), ("exponential", "beta"), ("gamma", "uniform"), ("poisson", "bernoulli")]


@pytest.mark.parametrize("p_kind,q_kind", KL_PAIRS, ids=[f"{p}-{q}" for p, q in KL_PAIRS])
def test_kl_divergence_matches_torch(p_kind, q_kind):
    q_scale = 1.2 if p_kind == q_kind and p_kind not in ("uniform",) else 1.0
    if p_kind == q_kind == "uniform":
        q_scale = 0.5  # q wider than p: a finite divergence
    (p_ours, leaves), (q_ours, q_leaves) = _pair(p_kind, distml), _pair(q_kind, distml, q_scale)
    (p_theirs, expected_leaves), (q_theirs, q_expected_leaves) = _pair(p_kind, torch), _pair(q_kind, torch, q_scale)
    got, expected = D.kl_divergence(p_ours, q_ours), TD.kl_divergence(p_theirs, q_theirs)
    assert tuple(got.shape) == tuple(expected.shape)
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-9)
    finite = np.isfinite(expected.detach().numpy())
    if not finite.any():
        return
    got.backward(distml.tensor(finite.astype(np.float64)))
    expected.backward(torch.tensor(finite.astype(np.float64)))
    for a, b in zip(leaves + q_leaves, expected_leaves + q_expected_leaves):
        assert (a.grad is None) == (b.grad is None)
        if b.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_kl_registry_dispatch_and_unregistered_pairs():
    class MyNormal(D.Normal):
        pass

    p, q = MyNormal(0.0, 1.0), D.Normal(1.0, 2.0)
    np.testing.assert_allclose(D.kl_divergence(p, q).item(),
                               TD.kl_divergence(TD.Normal(0.0, 1.0), TD.Normal(1.0, 2.0)).item())

    @D.register_kl(MyNormal, D.Normal)
    def _kl_constant(p, q):
        return distml.tensor(42.0)

    assert D.kl_divergence(p, q).item() == 42.0
    with pytest.raises(NotImplementedError, match="No KL\\(p \\|\\| q\\) is implemented for p type Categorical and "
                                                  "q type Normal"):
        D.kl_divergence(D.Categorical(distml.tensor([0.5, 0.5])), D.Normal(0.0, 1.0))


def _same_error(f, module_pair=(D, TD)):
    """f(d, m) raises under torch and under distml with the same type and message (distml for torch)."""
    with pytest.raises(Exception) as expected:
        f(module_pair[1], torch)
    with pytest.raises(Exception) as got:
        f(module_pair[0], distml)
    assert type(got.value).__name__ == expected.type.__name__.lstrip("_")
    assert isinstance(got.value, expected.type.__mro__[1] if expected.type.__name__.startswith("_") else expected.type)
    assert str(got.value) == str(expected.value).replace("torch.", "distml.")


ERRORS = {
    "normal_negative_scale": lambda d, m: d.Normal(m.tensor([0.0, 1.0]), m.tensor([-1.0, 1.0])),
    "normal_scalar_negative_scale": lambda d, m: d.Normal(0.0, -1.0),
    "uniform_reversed": lambda d, m: d.Uniform(1.0, 0.0),
    "categorical_negative": lambda d, m: d.Categorical(m.tensor([-1.0, 2.0])),
    "categorical_both": lambda d, m: d.Categorical(m.tensor([0.5, 0.5]), m.tensor([0.0, 0.0])),
    "categorical_zero_dim": lambda d, m: d.Categorical(m.tensor(1.0)),
    "bernoulli_out_of_range": lambda d, m: d.Bernoulli(m.tensor([1.5])),
    "bernoulli_neither": lambda d, m: d.Bernoulli(),
    "gamma_nonpositive": lambda d, m: d.Gamma(m.tensor([0.0]), 1.0),
    "beta_nonpositive": lambda d, m: d.Beta(m.tensor([0.5]), m.tensor([-0.5])),
    "dirichlet_zero_dim": lambda d, m: d.Dirichlet(m.tensor(1.0)),
    "poisson_negative": lambda d, m: d.Poisson(m.tensor([-1.0])),
    "binomial_fractional_count": lambda d, m: d.Binomial(m.tensor([2.5]), m.tensor([0.5])),
    "log_prob_not_tensor": lambda d, m: d.Normal(0.0, 1.0).log_prob(1.0),
    "log_prob_shape": lambda d, m: d.Normal(m.zeros(2), 1.0).log_prob(m.zeros(3)),
    "log_prob_event_shape": lambda d, m: d.Dirichlet(m.ones(3)).log_prob(m.ones(2) / 2),
    "log_prob_support": lambda d, m: d.Uniform(0.0, 1.0).log_prob(m.tensor(2.0)),
    "log_prob_support_categorical": lambda d, m: d.Categorical(m.tensor([0.5, 0.5])).log_prob(m.tensor(1.5)),
    "mvn_two_matrices": lambda d, m: d.MultivariateNormal(m.zeros(2), m.eye(2), scale_tril=m.eye(2)),
    "mvn_scalar_loc": lambda d, m: d.MultivariateNormal(m.tensor(0.0), m.eye(2)),
    "mvn_vector_scale_tril": lambda d, m: d.MultivariateNormal(m.zeros(2), scale_tril=m.ones(2)),
    "mvn_not_positive_definite": lambda d, m: d.MultivariateNormal(m.zeros(2), m.tensor([[1.0, 2.0], [2.0, 1.0]])),
    "mvn_not_lower": lambda d, m: d.MultivariateNormal(m.zeros(2), scale_tril=m.tensor([[1.0, 2.0], [0.0, 1.0]])),
    "independent_too_many": lambda d, m: d.Independent(d.Normal(m.zeros(2), 1.0), 2),
    "transforms_not_list": lambda d, m: d.TransformedDistribution(d.Normal(0.0, 1.0), "exp"),
    "binomial_kl_larger_q": lambda d, m: d.kl_divergence(d.Binomial(2, m.tensor([0.5])),
                                                         d.Binomial(3, m.tensor([0.5]))),
    "binomial_entropy_inhomogeneous": lambda d, m: d.Binomial(m.tensor([2.0, 3.0]), m.tensor([0.5, 0.5])).entropy(),
    "cholesky_without_validation": lambda d, m: d.MultivariateNormal(m.zeros(2), m.tensor([[1.0, 2.0], [2.0, 1.0]]),
                                                                     validate_args=False),
}


@pytest.mark.parametrize("case", list(ERRORS), ids=list(ERRORS))
def test_errors_as_torch(case):
    _same_error(ERRORS[case])


def test_validate_args_false_skips_checks():
    d = D.Normal(0.0, -1.0, validate_args=False)
    assert math.isnan(d.log_prob(distml.tensor(0.0)).item())
    assert D.Uniform(0.0, 1.0, validate_args=False).log_prob(distml.tensor(2.0)).item() == -math.inf


def test_lazy_logits_keep_the_graph_to_probs():
    probs = distml.tensor([0.2, 0.8], dtype=distml.float64, requires_grad=True)
    tprobs = torch.tensor([0.2, 0.8], dtype=torch.float64, requires_grad=True)
    D.Bernoulli(probs).logits.sum().backward()
    TD.Bernoulli(tprobs).logits.sum().backward()
    np.testing.assert_allclose(probs.grad.numpy(), tprobs.grad.numpy(), rtol=1e-12)
