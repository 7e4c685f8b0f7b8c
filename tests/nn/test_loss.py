"""Every loss and option against PyTorch: values and input gradients, float64 (and float32
for cross-entropy); PyTorch's errors for targets of the wrong dtype or shape."""
import numpy as np
import pytest
import torch

import distml
from distml import nn


def compare(name, inputs, kwargs=None, grads=(0,), dtype=np.float64, rtol=1e-7, atol=1e-10, module_kwargs=None):
    """Run distml.nn.<name>(**module_kwargs)(*inputs) and torch's; compare the value and the
    gradients of the inputs listed in `grads`."""
    module_kwargs = module_kwargs or {}
    d_kwargs = {k: distml.tensor(v) if isinstance(v, np.ndarray) else v for k, v in module_kwargs.items()}
    t_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in module_kwargs.items()}
    d_in, t_in = [], []
    for i, x in enumerate(inputs):
        x = x.astype(dtype) if x.dtype.kind == "f" else x
        d_in.append(distml.tensor(x, requires_grad=i in grads))
        t_in.append(torch.tensor(x, requires_grad=i in grads))
    d_out = getattr(nn, name)(**d_kwargs)(*d_in)
    t_out = getattr(torch.nn, name)(**t_kwargs)(*t_in)
    np.testing.assert_allclose(d_out.detach().numpy(), t_out.detach().numpy(), rtol=rtol, atol=atol)
    if grads:
        upstream = np.random.default_rng(3).standard_normal(tuple(t_out.shape)).astype(dtype)
        d_out.backward(distml.tensor(upstream))
        t_out.backward(torch.tensor(upstream))
        for i in grads:
            np.testing.assert_allclose(d_in[i].grad.numpy(), t_in[i].grad.numpy(), rtol=rtol, atol=atol)


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,options", [("MSELoss", {}), ("L1Loss", {}), ("SmoothL1Loss", {"beta": 0.5}),
                                          ("SmoothL1Loss", {"beta": 0.0}), ("HuberLoss", {"delta": 0.7})])
def test_regression_losses(rng, name, options, reduction):
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    compare(name, [x, y], grads=(0, 1), module_kwargs=dict(options, reduction=reduction))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": "w"}, {"ignore_index": 1}, {"label_smoothing": 0.2},
                                     {"weight": "w", "ignore_index": 2, "label_smoothing": 0.1}])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4), (2, 5, 3, 2)])
def test_cross_entropy_class_indices(rng, shape, options, reduction, dtype):
    x = rng.standard_normal(shape) * 3
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    options = {k: (rng.random(shape[1]) + 0.2).astype(dtype) if v == "w" else v for k, v in options.items()}
    tol = dict(rtol=1e-7, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6)
    compare("CrossEntropyLoss", [x, target], dtype=dtype, module_kwargs=dict(options, reduction=reduction), **tol)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": "w"}, {"label_smoothing": 0.3}])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4)])
def test_cross_entropy_probabilities(rng, shape, options, reduction):
    x = rng.standard_normal(shape)
    p = rng.random(shape)
    p /= p.sum(axis=1, keepdims=True)
    options = {k: rng.random(shape[1]) + 0.2 if v == "w" else v for k, v in options.items()}
    compare("CrossEntropyLoss", [x, p], grads=(0, 1), module_kwargs=dict(options, reduction=reduction))


def test_cross_entropy_unbatched_and_all_ignored(rng):
    compare("CrossEntropyLoss", [rng.standard_normal(5), np.array(3)])
    compare("CrossEntropyLoss", [rng.standard_normal(5), np.array(3)], module_kwargs={"reduction": "none"})
    x, target = rng.standard_normal((3, 4)), np.full(3, -100)
    d = nn.functional.cross_entropy(distml.tensor(x), distml.tensor(target))
    assert np.isnan(d.item()) and np.isnan(torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(target)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": "w"}, {"ignore_index": 0}])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4)])
def test_nll_loss(rng, shape, options, reduction):
    x = np.log(rng.random(shape))
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    options = {k: rng.random(shape[1]) + 0.2 if v == "w" else v for k, v in options.items()}
    compare("NLLLoss", [x, target], module_kwargs=dict(options, reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce(rng, weighted, reduction):
    x, y = rng.random((4, 3)) * 0.98 + 0.01, rng.random((4, 3))
    options = {"weight": rng.random((4, 3))} if weighted else {}
    compare("BCELoss", [x, y], grads=(0, 1), module_kwargs=dict(options, reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": (3,)}, {"pos_weight": (3,)}, {"weight": (4, 3), "pos_weight": (3,)}])
def test_bce_with_logits(rng, options, reduction):
    x, y = rng.standard_normal((4, 3)) * 30, rng.random((4, 3))
    options = {k: rng.random(v) + 0.5 for k, v in options.items()}
    compare("BCEWithLogitsLoss", [x, y], grads=(0, 1), module_kwargs=dict(options, reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(rng, log_target, reduction):
    x = np.log(rng.dirichlet(np.ones(5), 4))
    t = rng.dirichlet(np.ones(5), 4)
    t[0, 0] = 0.0
    t = np.log(t + 1e-3) if log_target else t
    compare("KLDivLoss", [x, t], module_kwargs={"reduction": reduction, "log_target": log_target})


def test_target_errors():
    F, TF = nn.functional, torch.nn.functional
    x = np.zeros((3, 4))
    cases = [
        (lambda f, lib: f.cross_entropy(lib.tensor(x), lib.tensor([0.0, 1.0, 2.0])), RuntimeError,
         "expected target dtype to be Long or Byte, but got Float"),
        (lambda f, lib: f.cross_entropy(lib.tensor(x), lib.tensor([0, 1, 2], dtype=lib.int32)), RuntimeError,
         "expected target dtype to be Long or Byte, but got Int"),
        (lambda f, lib: f.cross_entropy(lib.zeros(2, 3, 4), lib.zeros(2, 5, dtype=lib.int64)), RuntimeError,
         r"Expected target size \[2, 4\], got \[2, 5\]"),
        (lambda f, lib: f.cross_entropy(lib.tensor(x), lib.tensor([[0, 1, 3]] * 3)), RuntimeError,
         "0D or 1D target tensor expected, multi-target not supported"),
        (lambda f, lib: f.cross_entropy(lib.tensor(x), lib.tensor([0, 1, 2, 3])), ValueError,
         r"Expected input batch_size \(3\) to match target batch_size \(4\)."),
        (lambda f, lib: f.nll_loss(lib.tensor(x), lib.tensor([0, 1, 2, 3])), ValueError,
         r"Expected input batch_size \(3\) to match target batch_size \(4\)."),
        (lambda f, lib: f.cross_entropy(lib.tensor(x), lib.tensor([0, 1, 4])), IndexError,
         "Target 4 is out of bounds."),
        (lambda f, lib: f.binary_cross_entropy(lib.tensor([0.5, 0.5]), lib.tensor([[1.0, 0.0]])), ValueError,
         "Using a target size"),
        (lambda f, lib: f.binary_cross_entropy_with_logits(lib.tensor([0.5, 0.5]), lib.tensor([1.0])), ValueError,
         r"Target size \((distml|torch)\.Size\(\[1\]\)\) must be the same as input size"),
        (lambda f, lib: f.mse_loss(lib.tensor([1.0]), lib.tensor([1.0]), reduction="avg"), ValueError,
         "avg is not a valid value for reduction"),
        (lambda f, lib: f.binary_cross_entropy(lib.tensor([1.5]), lib.tensor([1.0])), RuntimeError,
         "all elements of input should be between 0 and 1"),
    ]
    for call, error, message in cases:
        for f, lib in ((F, distml), (TF, torch)):
            with pytest.raises(error, match=message):
                call(f, lib)


