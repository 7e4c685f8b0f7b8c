"""one_hot, normalize, cosine_similarity, pairwise_distance, poisson_nll_loss, gaussian_nll_loss and
their Module forms against torch: values, dtypes, float64 gradients of every floating input, errors."""
import numpy as np
import pytest
import torch

import distml
from distml import nn
from distml.nn import functional as F


def both(call, *arrays, grad=True):
    """Run `call(F-module, *tensors)` on distml and torch; backprop a random upstream gradient;
    compare the outputs, their dtypes and the gradients of the floating inputs."""
    ours = [distml.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    theirs = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    d, t = call(F, *ours), call(torch.nn.functional, *theirs)
    assert tuple(d.shape) == tuple(t.shape)
    assert d.dtype.name == str(t.dtype).replace("torch.", "")
    np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)
    if t.requires_grad:
        upstream = np.random.default_rng(3).standard_normal(tuple(t.shape))
        (d * distml.tensor(upstream)).sum().backward()
        (t * torch.from_numpy(upstream)).sum().backward()
        for a, b in zip(ours, theirs):
            if b.grad is None:  # no gradient reaches the input (the 0-norm)
                assert a.grad is None
            elif b.requires_grad:
                np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)
    return d


def raises_like(call, *arrays):
    """Both libraries raise the same exception type with the same message."""
    with pytest.raises(Exception) as theirs:
        call(torch, *[torch.tensor(a) if isinstance(a, np.ndarray) else a for a in arrays])
    with pytest.raises(theirs.type) as ours:
        call(distml, *[distml.tensor(a) if isinstance(a, np.ndarray) else a for a in arrays])
    assert str(ours.value) == str(theirs.value)


def test_one_hot_matches_torch():
    labels = np.array([[0, 3], [2, 1]])
    for num_classes in (-1, 4, 6):
        d, t = F.one_hot(distml.tensor(labels), num_classes), torch.nn.functional.one_hot(torch.tensor(labels),
                                                                                        num_classes)
        assert d.dtype == distml.int64 and tuple(d.shape) == tuple(t.shape)
        np.testing.assert_array_equal(d.numpy(), t.numpy())
    np.testing.assert_array_equal(F.one_hot(distml.tensor(2), 3).numpy(), [0, 0, 1])
    assert tuple(F.one_hot(distml.tensor(np.zeros(0, np.int64)), 3).shape) == (0, 3)


@pytest.mark.parametrize("args", [
    (np.array([0, 1], np.int32), 3), (np.array([0.0, 1.0]), 3), (np.array([True, False]), 2),
    (np.array([0, -1]), 3), (np.array([0, 3]), 3), (np.array([0, 1]), -2), (np.zeros(0, np.int64), -1),
    (np.zeros(0, np.int64), 0), (np.array([0, 1]), 2.0), ([0, 1], 2),
], ids=["int32", "float", "bool", "negative", "too-large", "minus-two", "empty-infer", "empty-zero", "float-classes",
        "list"])
def test_one_hot_errors(args):
    raises_like(lambda lib, x, n: lib.nn.functional.one_hot(x, n), *args)


@pytest.mark.parametrize("p, dim", [(2.0, 1), (1, 0), (3, -1), (float("inf"), 1), (0.5, 1)])
def test_normalize(rng, p, dim):
    x = rng.standard_normal((3, 4))
    x[1] = 0  # a zero row: the norm is clamped to eps
    both(lambda f, a: f.normalize(a, p=p, dim=dim), x)
    both(lambda f, a: f.normalize(a, p=p, dim=dim, eps=0.5), x)
    both(lambda f, a: f.normalize(a, p=p, dim=dim), x.astype(np.float32), grad=False)


def test_normalize_errors():
    raises_like(lambda lib, a: lib.nn.functional.normalize(a, dim=0), np.array([1, 2]))
    raises_like(lambda lib, a: lib.nn.functional.normalize(a, dim=3), np.ones((2, 3)))


@pytest.mark.parametrize("shapes, dim", [(((4, 3), (4, 3)), 1), (((4, 3), (3,)), -1), (((2, 1, 3), (4, 3)), 0),
                                         (((5,), (5,)), 0), (((), ()), 0)])
def test_cosine_similarity(rng, shapes, dim):
    a, b = (rng.standard_normal(s) for s in shapes)
    both(lambda f, x, y: f.cosine_similarity(x, y, dim=dim), a, b)
    both(lambda f, x, y: f.cosine_similarity(x, y, dim=dim, eps=0.8), a * 0.1, b)


def test_cosine_similarity_zero_vectors_dtypes_and_errors(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    a[0] = 0
    b[2] = 1e-9
    both(lambda f, x, y: f.cosine_similarity(x, y), a, b)
    both(lambda f, x, y: f.cosine_similarity(x, y, dim=0), np.array([1, 2, 3]), np.array([1.0, 0.0, 1.0]))
    both(lambda f, x, y: f.cosine_similarity(x, y), a.astype(np.float32), b, grad=False)
    raises_like(lambda lib, x, y: lib.nn.functional.cosine_similarity(x, y, dim=0), np.array([1, 2]), np.array([3, 4]))
    raises_like(lambda lib, x, y: lib.nn.functional.cosine_similarity(x, y, dim=2), a, b)
    raises_like(lambda lib, x, y: lib.nn.functional.cosine_similarity(x, y), a, np.ones((4, 4)))


@pytest.mark.parametrize("p", [2.0, 1, 3, 0, float("inf"), -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_pairwise_distance(rng, p, keepdim):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    b[1] = a[1]  # identical rows: the distance is eps-sized
    both(lambda f, x, y: f.pairwise_distance(x, y, p=p, keepdim=keepdim), a, b)
    both(lambda f, x, y: f.pairwise_distance(x, y, p=p, keepdim=keepdim), a, b[0])


def test_pairwise_distance_shapes_and_errors(rng):
    both(lambda f, x, y: f.pairwise_distance(x, y), rng.standard_normal(5), rng.standard_normal(5))
    both(lambda f, x, y: f.pairwise_distance(x, y, eps=0.1), np.array(1.0), np.array(3.0))
    both(lambda f, x, y: f.pairwise_distance(x, y), rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 4)))
    both(lambda f, x, y: f.pairwise_distance(x, y), np.array([1, 2]), np.array([3, 3]))
    raises_like(lambda lib, x, y: lib.nn.functional.pairwise_distance(x, y), np.ones((2, 3)), np.ones((3, 3)))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # 0 * log(0) masked out, as in PyTorch
@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_poisson_nll_loss(rng, log_input, full, reduction):
    counts = rng.poisson(2.0, (3, 5)).astype(np.float64)
    counts[0, :3] = (0.0, 1.0, 0.5)
    rate = rng.uniform(0.1, 3.0, (3, 5))
    x = np.log(rate) if log_input else rate
    both(lambda f, a, t: f.poisson_nll_loss(a, t, log_input=log_input, full=full, reduction=reduction), x, counts)
    both(lambda f, a, t: f.poisson_nll_loss(a, t, log_input=log_input, eps=0.3, reduction=reduction), x, counts)


def test_poisson_nll_loss_errors():
    raises_like(lambda lib, a, t: lib.nn.functional.poisson_nll_loss(a, t, reduction="avg"), np.ones(2), np.ones(2))


@pytest.mark.parametrize("var_shape", [(4, 3), (4, 1), (4,), (1, 3), "float"])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gaussian_nll_loss(rng, var_shape, full, reduction):
    mean, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    if var_shape == "float":
        both(lambda f, m, t: f.gaussian_nll_loss(m, t, 0.7, full=full, reduction=reduction), mean, target)
        return
    var = rng.uniform(0.1, 2.0, var_shape)
    var.flat[0] = 1e-9  # clamped to eps; the gradient passes the clamp
    both(lambda f, m, t, v: f.gaussian_nll_loss(m, t, v, full=full, reduction=reduction), mean, target, var)


@pytest.mark.parametrize("var, reduction", [(np.full((4, 3), -1.0), "mean"), (-1.0, "mean"), (np.ones((4, 2)), "mean"),
                                            (np.ones((2, 1)), "mean"), (np.ones((4, 3)), "avg")],
                         ids=["negative", "negative-float", "wrong-size", "two-mismatched", "reduction"])
def test_gaussian_nll_loss_errors(var, reduction):
    raises_like(lambda lib, m, t, v: lib.nn.functional.gaussian_nll_loss(m, t, v, reduction=reduction),
                np.zeros((4, 3)), np.zeros((4, 3)), var)


def test_module_forms(rng):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    var = rng.uniform(0.5, 1.0, (4, 3))
    cases = [
        (lambda lib: lib.nn.CosineSimilarity(dim=0, eps=1e-3), (a, b)),
        (lambda lib: lib.nn.PairwiseDistance(p=1, eps=1e-3, keepdim=True), (a, b)),
        (lambda lib: lib.nn.PoissonNLLLoss(log_input=False, full=True, eps=1e-4, reduction="sum"),
         (np.abs(a) + 0.1, np.abs(np.round(b * 3)))),
        (lambda lib: lib.nn.GaussianNLLLoss(full=True, eps=1e-3, reduction="none"), (a, b, var)),
    ]
    for make, arrays in cases:
        dm, tm = make(distml), make(torch)
        assert repr(dm) == repr(tm)
        both(lambda f, *x: (dm if f is F else tm)(*x), *arrays)
    assert isinstance(nn.PairwiseDistance().norm, float)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_on_bfloat16_rounds_the_float32_result(approximate):
    x = np.linspace(-3, 3, 101).astype(np.float32)
    d = F.gelu(distml.tensor(x).bfloat16(), approximate)
    t = torch.nn.functional.gelu(torch.tensor(x).bfloat16(), approximate=approximate)
    assert d.dtype == distml.bfloat16
    np.testing.assert_array_equal(d.float().numpy(), t.float().numpy())


@pytest.mark.parametrize("input_dtype,param_dtype", [("bfloat16", "float32"), ("float16", "float32"),
                                                     ("float64", "float32"), ("float32", "float64"),
                                                     ("float32", "bfloat16")])
def test_layer_norm_mixed_dtypes_as_torch_cpu(input_dtype, param_dtype):
    values = np.random.default_rng(0).standard_normal((2, 4))
    outcomes = []
    for lib in (distml, torch):
        x = lib.tensor(values).to(getattr(lib, input_dtype))
        w = lib.linspace(0.5, 2, 4).to(getattr(lib, param_dtype))
        b = lib.linspace(-1, 1, 4).to(getattr(lib, param_dtype))
        try:
            out = lib.nn.functional.layer_norm(x, (4,), w, b)
            outcomes.append((str(out.dtype).split(".")[1], out.float().detach().numpy()))
        except RuntimeError as error:
            outcomes.append((type(error).__name__, str(error)))
    (ours, ours_value), (theirs, theirs_value) = outcomes
    assert ours == theirs
    if isinstance(ours_value, np.ndarray):
        np.testing.assert_allclose(ours_value, theirs_value, rtol=1e-2, atol=1e-2)
    else:
        assert ours_value == theirs_value
