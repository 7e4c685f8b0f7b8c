"""Activations with inplace=True after a recorded op (DCGAN's LeakyReLU(0.2, inplace=True)): same
values and gradients as torch, the input overwritten, and backward reading the values from before."""
import numpy as np
import pytest
import torch

import distml


@pytest.mark.parametrize("name,kwargs", [("relu", {}), ("leaky_relu", {"negative_slope": 0.2}),
                                         ("elu", {"alpha": 0.7}), ("silu", {}),
                                         ("hardtanh", {"min_val": -0.5, "max_val": 3.0}), ("relu6", {}),
                                         ("selu", {}), ("celu", {"alpha": 0.5}), ("mish", {}), ("hardswish", {}),
                                         ("hardsigmoid", {}), ("threshold", {"threshold": 0.5, "value": -2.0}),
                                         ("rrelu", {"lower": 0.1, "upper": 0.3})])
def test_inplace_activation_after_an_op_matches_torch(name, kwargs):
    def run(lib):
        w = lib.linspace(-2, 2, 7, dtype=lib.float64).requires_grad_()
        hidden = w * 3
        out = getattr(lib.nn.functional, name)(hidden, inplace=True, **kwargs)
        (out * out * lib.arange(7, dtype=lib.float64)).sum().backward()
        return out.detach(), hidden.detach(), w.grad
    ours, theirs = run(distml), run(torch)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)
    assert ours[0].tolist() == ours[1].tolist()  # the input holds the result


def test_inplace_leaky_relu_module_in_a_sequential_trains_like_torch():
    def run(lib):
        lib.manual_seed(0)
        model = lib.nn.Sequential(lib.nn.Linear(4, 3), lib.nn.LeakyReLU(0.2, inplace=True), lib.nn.Linear(3, 1)).double()
        with lib.no_grad():
            for i, p in enumerate(model.parameters()):
                p.copy_(lib.linspace(-1, 1, p.numel(), dtype=lib.float64).reshape(p.shape) * (i + 1))
        x = lib.linspace(-1, 1, 8, dtype=lib.float64).reshape(2, 4)
        model(x).sum().backward()
        return [p.grad for p in model.parameters()]
    for a, b in zip(run(distml), run(torch)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,args", [("ReLU", ()), ("LeakyReLU", (0.2,)), ("ELU", (0.7,)), ("SiLU", ()),
                                       ("Hardtanh", (-0.5, 3.0)), ("ReLU6", ()), ("SELU", ()), ("CELU", (0.5,)),
                                       ("Mish", ()), ("Hardswish", ()), ("Hardsigmoid", ()), ("Threshold", (0.5, -2.0)),
                                       ("Dropout", (0.0,))])
def test_inplace_module_after_an_op_matches_torch(name, args):
    def run(lib):
        w = lib.linspace(-4, 4, 9, dtype=lib.float64).requires_grad_()
        hidden = w * 1.5
        out = getattr(lib.nn, name)(*args, inplace=True)(hidden)
        (out * out * lib.arange(9, dtype=lib.float64)).sum().backward()
        return out.detach(), w.grad
    for a, b in zip(run(distml), run(torch)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


def test_inplace_rrelu_in_training_gives_the_slopes_as_gradient():
    distml.manual_seed(0)
    w = distml.linspace(-4, -0.5, 50, dtype=distml.float64).requires_grad_()
    hidden = w * 1.0
    out = distml.nn.RReLU(0.1, 0.3, inplace=True)(hidden)
    assert out is hidden
    out.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), out.detach().numpy() / w.detach().numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        distml.nn.functional.selu(distml.ones(3, requires_grad=True), inplace=True)


def test_relu_inplace_writes_into_the_input_without_a_copy_and_backward_reads_the_result():
    w = distml.linspace(-2, 2, 9, dtype=distml.float64).requires_grad_()
    hidden = w * 3
    memory = hidden.array
    out = distml.nn.ReLU(inplace=True)(hidden)
    assert out is hidden and out.array is memory  # the same array: nothing was copied
    assert out.grad_fn.name() == "ReluBackward0" and out.grad_fn.out is memory
    (out * out).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * np.maximum(3 * w.detach().numpy(), 0) * 3, rtol=1e-12)


@pytest.mark.parametrize("spell", [lambda t: t.relu_(), lambda t: distml.relu_(t),
                                   lambda t: distml.nn.functional.relu_(t)])
def test_every_spelling_of_relu_inplace_shares_the_memory(spell):
    hidden = distml.linspace(-1, 1, 5, requires_grad=True) * 2
    memory = hidden.array
    assert spell(hidden) is hidden and hidden.array is memory
    assert hidden.tolist() == [0.0, 0.0, 0.0, 1.0, 2.0]


def test_changing_the_result_of_relu_inplace_before_backward_raises_as_in_torch():
    for lib in (distml, torch):
        w = lib.linspace(-1, 1, 5, dtype=lib.float64).requires_grad_()
        out = lib.relu_(w * 2)
        out.mul_(3)  # MulBackward reads nothing of out, but ReluBackward does
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()
        w = lib.linspace(-1, 1, 5, dtype=lib.float64).requires_grad_()
        out = lib.sigmoid(w).relu_()  # SigmoidBackward reads its output, which relu_ overwrote
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()


def test_relu_inplace_on_a_leaf_raises_before_writing():
    leaf = distml.linspace(-1, 1, 5, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        leaf.relu_()
    assert leaf.detach().tolist()[0] == -1.0
    with distml.no_grad():
        leaf.relu_()  # allowed without grad, as in torch
    assert leaf.detach().tolist()[0] == 0.0


def test_conv_batchnorm_inplace_relu_block_trains_like_torch():
    def run(lib):
        lib.manual_seed(0)
        nn = lib.nn
        model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(inplace=True),
                              nn.Conv2d(3, 2, 3, padding=1), nn.BatchNorm2d(2)).double()
        with lib.no_grad():
            for i, p in enumerate(model.parameters()):
                p.copy_(lib.linspace(-1, 1, p.numel(), dtype=lib.float64).reshape(p.shape) * (i + 1) * 0.3)
        x = lib.linspace(-2, 2, 2 * 2 * 4 * 4, dtype=lib.float64).reshape(2, 2, 4, 4).sin()
        (model(x) ** 2 * lib.arange(4, dtype=lib.float64)).sum().backward()
        return [p.grad for p in model.parameters()]
    for a, b in zip(run(distml), run(torch)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
