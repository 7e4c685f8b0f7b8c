"""Winograd's F(2x2, 3x3) convolutions (csrc/kernels/winograd.cpp, distml/ops/conv.py) against
PyTorch: output, input, weight and bias gradients in float32 and float64, odd plane sizes (partial
tiles), paddings 0-2, batch 1, frozen inputs or weights; and which convolutions conv.py gives them."""
import numpy as np
import pytest
import torch

import distml
from distml.nn import functional as F
from distml.ops import conv

# (x shape, out channels, padding)
CASES = [
    ((2, 3, 7, 9), 5, 1),  # odd sizes: the last tile row and column are partial
    ((1, 4, 6, 6), 2, 0),
    ((2, 2, 5, 8), 3, 2),
    ((1, 1, 3, 3), 1, 1),
    ((3, 16, 12, 11), 20, 1),
]


@pytest.fixture
def winograd(monkeypatch):
    """Every eligible convolution through F(2x2, 3x3), however small (the rule's size limits off)."""
    monkeypatch.setattr(conv, "_direct_kernels", lambda *args: None)
    monkeypatch.setattr(conv, "_winograd", lambda x, weight, window, groups: True)


def _close(ours, theirs, dtype):
    """Equal up to rounding: F(2x2, 3x3) adds the products in another order (and scales by 1/2)."""
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,out_channels,padding", CASES)
def test_matches_torch(winograd, rng, dtype, x_shape, out_channels, padding):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((out_channels, x_shape[1], 3, 3)).astype(dtype)
    b = rng.standard_normal(out_channels).astype(dtype)
    d = [distml.tensor(a, requires_grad=True) for a in (x, w, b)]
    t = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    d_out, t_out = F.conv2d(*d, padding=padding), torch.nn.functional.conv2d(*t, padding=padding)
    upstream = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    d_out.backward(distml.tensor(upstream))
    t_out.backward(torch.from_numpy(upstream))
    assert d_out.shape == t_out.shape and d_out.dtype == d[0].dtype
    _close(d_out.detach().numpy(), t_out.detach().numpy(), dtype)
    for ours, theirs in zip(d, t):
        assert ours.grad.dtype == ours.dtype
        _close(ours.grad.numpy(), theirs.grad.numpy(), dtype)


@pytest.mark.parametrize("frozen", ["input", "weight"])
def test_one_gradient_only_and_no_bias(winograd, rng, frozen):
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 3))
    dx, tx = distml.tensor(x, requires_grad=frozen != "input"), torch.tensor(x, requires_grad=frozen != "input")
    dw, tw = distml.tensor(w, requires_grad=frozen != "weight"), torch.tensor(w, requires_grad=frozen != "weight")
    F.conv2d(dx, dw, padding=1).pow(2).sum().backward()
    torch.nn.functional.conv2d(tx, tw, padding=1).pow(2).sum().backward()
    for ours, theirs in ((dx, tx), (dw, tw)):
        assert (ours.grad is None) == (theirs.grad is None)
        if theirs.grad is not None:
            _close(ours.grad.numpy(), theirs.grad.numpy(), np.float64)


def test_at_real_size_matches_torch(rng):
    """ResNet-18's first stage at 224 x 224 input (batch 1), through conv.py's own rule."""
    x = rng.standard_normal((1, 64, 56, 56)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    assert conv._winograd(x, w, _window(x.shape, w.shape, 1, 1), 1)
    dx, dw = distml.tensor(x, requires_grad=True), distml.tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    d_out, t_out = F.conv2d(dx, dw, padding=1), torch.nn.functional.conv2d(tx, tw, padding=1)
    d_out.sum().backward()
    t_out.sum().backward()
    for ours, theirs in ((d_out.detach(), t_out.detach()), (dx.grad, tx.grad), (dw.grad, tw.grad)):
        _close(ours.numpy(), theirs.numpy(), np.float32)


def _window(x_shape, w_shape, stride=1, padding=1, dilation=1):
    size, kernel = x_shape[2:], w_shape[2:]
    out = tuple((s + 2 * padding - dilation * (k - 1) - 1) // stride + 1 for s, k in zip(size, kernel))
    return conv.Window(x_shape[0], x_shape[1], size, kernel, (stride,) * 2, (padding,) * 2, (dilation,) * 2, out)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation,groups,picked", [
    ((4, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1, 1, True),  # ResNet-18 at 224: layer1
    ((4, 256, 14, 14), (256, 256, 3, 3), 1, 1, 1, 1, True),  # layer3
    ((4, 512, 7, 7), (512, 512, 3, 3), 1, 1, 1, 1, False),  # 7 x 7: the tiles cost more than they save
    ((4, 64, 56, 56), (128, 64, 3, 3), 2, 1, 1, 1, False),  # stride 2
    ((4, 64, 56, 56), (64, 64, 3, 3), 1, 2, 2, 1, False),  # dilation
    ((4, 64, 56, 56), (64, 32, 3, 3), 1, 1, 1, 2, False),  # groups
    ((4, 64, 56, 56), (64, 64, 5, 5), 1, 2, 1, 1, False),  # 5x5
    ((4, 8, 56, 56), (64, 8, 3, 3), 1, 1, 1, 1, False),  # few input channels
    ((4, 64, 56, 56), (64, 64, 3, 3), 1, 3, 1, 1, False),  # padding past 2
])
def test_rule(x_shape, w_shape, stride, padding, dilation, groups, picked):
    x, w = np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32)
    assert conv._winograd(x, w, _window(x_shape, w_shape, stride, padding, dilation), groups) == picked


def test_rule_leaves_float16_and_small_planes_to_others():
    x, w = np.zeros((4, 64, 56, 56), np.float16), np.zeros((64, 64, 3, 3), np.float16)
    assert not conv._winograd(x, w, _window(x.shape, w.shape), 1)
    x32, w32 = np.zeros((16, 64, 8, 8), np.float32), np.zeros((64, 64, 3, 3), np.float32)
    assert conv._direct_kernels(x32, w32, _window(x32.shape, w32.shape), 1) is not None  # picked first


def test_kernels_check_sizes():
    from distml._backend import C
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="expected an array of 288 elements"):
        C.winograd_input_tiles(x, np.zeros((16, 2, 8), np.float32), 1, 2, 5, 5, 1, 5, 5)
    with pytest.raises(ValueError, match="expected an array of 50 elements"):
        C.winograd_output_tiles(np.zeros((16, 2, 9), np.float32), np.zeros((1, 2, 5, 4), np.float32), 1, 2, 5, 5)
    with pytest.raises(TypeError):
        C.winograd_input_tiles(x, np.zeros((16, 2, 9), np.float64), 1, 2, 5, 5, 1, 5, 5)
