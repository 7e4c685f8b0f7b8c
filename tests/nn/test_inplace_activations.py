"""Activations with inplace=True after a recorded op (DCGAN's LeakyReLU(0.2, inplace=True)): same
values and gradients as torch, the input overwritten, and backward reading the values from before."""
import numpy as np
import pytest
import torch

import distml


@pytest.mark.parametrize("name,kwargs", [("relu", {}), ("leaky_relu", {"negative_slope": 0.2}),
                                         ("elu", {"alpha": 0.7}), ("silu", {}),
                                         ("hardtanh", {"min_val": -0.5, "max_val": 3.0}), ("relu6", {})])
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
