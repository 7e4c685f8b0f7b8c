"""The fused LayerNorm primitive (distml/ops/norm.py): its _C kernels and its xp twin against torch's
layer_norm, values and gradients of input, weight and bias."""
import numpy as np
import pytest
import torch

import distml
from distml.ops import norm
from distml.ops.norm import LayerNorm

TOL = {np.float64: dict(rtol=1e-10, atol=1e-11), np.float32: dict(rtol=2e-5, atol=2e-5)}


def _pair(array):
    return distml.tensor(array, requires_grad=True), torch.tensor(array, requires_grad=True)


def _check(shape, dims, dtype, affine=(True, True), eps=1e-5):
    rng = np.random.default_rng(sum(shape) + dims)
    x, tx = _pair((rng.standard_normal(shape) * 3 + 1).astype(dtype))
    normalized = shape[len(shape) - dims:]
    w, tw = _pair(rng.standard_normal(normalized).astype(dtype)) if affine[0] else (None, None)
    b, tb = _pair(rng.standard_normal(normalized).astype(dtype)) if affine[1] else (None, None)
    out = LayerNorm.apply(x, w, b, dims=dims, eps=eps)
    expected = torch.nn.functional.layer_norm(tx, normalized, tw, tb, eps)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), **TOL[dtype])
    grad = rng.standard_normal(shape).astype(dtype)
    out.backward(distml.tensor(grad))
    expected.backward(torch.tensor(grad))
    for mine, theirs in ((x, tx), (w, tw), (b, tb)):
        if mine is not None:
            assert mine.grad.shape == tuple(theirs.grad.shape)
            np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, dims", [((4, 7, 33), 1), ((6, 5, 4), 2), ((3, 128), 1), ((5,), 1)])
def test_layer_norm_kernel_matches_torch(shape, dims, dtype):
    _check(shape, dims, dtype)


@pytest.mark.parametrize("affine", [(False, False), (True, False), (False, True)])
def test_layer_norm_without_weight_or_bias(affine):
    _check((4, 9, 16), 1, np.float64, affine)


def test_layer_norm_xp_twin_matches_torch(monkeypatch):
    """The array-module version (what cupy arrays without a CUDA twin take) on the same inputs."""
    monkeypatch.setattr(norm.kernels, "compiled", lambda *args: None)
    _check((4, 7, 33), 1, np.float64)
    _check((6, 5, 4), 2, np.float32, eps=1e-3)
    _check((4, 9, 16), 1, np.float64, (False, True))


def test_layer_norm_only_input_needs_grad():
    x, tx = _pair(np.random.default_rng(1).standard_normal((3, 8)))
    w = distml.ones(8, dtype=distml.float64)
    out = LayerNorm.apply(x, w, None, dims=1, eps=1e-5)
    out.sum().backward()
    torch.nn.functional.layer_norm(tx, (8,), torch.ones(8, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert w.grad is None


def test_layer_norm_mixed_dtypes_take_the_twin():
    """float32 input with float64 parameters is refused by F.layer_norm; the primitive's kernel check
    sends such arrays to the xp twin rather than to a kernel that would misread them."""
    x = np.random.default_rng(2).standard_normal((2, 6)).astype(np.float32)
    out = LayerNorm.apply(distml.tensor(x), distml.ones(6, dtype=distml.float64), None, dims=1, eps=1e-5)
    expected = torch.nn.functional.layer_norm(torch.tensor(x), (6,))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
