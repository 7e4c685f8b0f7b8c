"""_C's direct convolutions (csrc/kernels/conv_direct.cpp) against PyTorch: output, input, weight
and bias gradients in float32 and float64 over 1-3 spatial dims, with stride, padding, dilation,
groups, odd sizes and batch 1; and which convolutions conv.py gives them."""
import numpy as np
import pytest
import torch

import distml
from distml.nn import functional as F
from distml.ops import conv

FUNCTIONS = {1: (F.conv1d, torch.nn.functional.conv1d), 2: (F.conv2d, torch.nn.functional.conv2d),
             3: (F.conv3d, torch.nn.functional.conv3d)}

# (x shape, weight shape, stride, padding, dilation, groups)
CASES = [
    ((64, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1, 1),  # LeNet-5's second convolution
    ((5, 1, 28, 28), (6, 1, 5, 5), 1, 2, 1, 1),  # its first: few outputs on long lines
    ((1, 3, 7, 9), (5, 3, 3, 3), 2, 1, 1, 1),
    ((3, 4, 11, 8), (6, 2, 3, 3), 1, 2, 2, 2),
    ((2, 6, 13, 13), (33, 2, 3, 3), 3, 0, 1, 3),
    ((2, 17, 5, 19), (18, 17, 2, 4), (1, 2), (1, 3), (2, 1), 1),
    ((1, 2, 1, 1), (3, 2, 3, 3), 1, 1, 1, 1),
    ((3, 20, 6, 6), (40, 20, 3, 3), 1, 1, 1, 1),  # more than one vector of outputs and of rows
    ((2, 3, 17), (4, 3, 4), 1, 1, 3, 1),
    ((2, 4, 9), (6, 2, 3), 2, 0, 1, 2),
    ((2, 3, 5, 6, 4), (4, 3, 3, 2, 3), 1, (1, 0, 1), 1, 1),
    ((1, 4, 6, 5, 7), (6, 2, 3, 1, 2), (2, 1, 2), (1, 0, 1), (1, 2, 1), 2),
]


@pytest.fixture
def direct(monkeypatch):
    """Every convolution through conv_direct, whatever conv.py's rule would pick."""
    monkeypatch.setattr(conv, "_direct_kernels",
                        lambda x, weight, window, groups: (conv._DIRECT, (weight.shape[0], groups)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation,groups", CASES)
def test_matches_torch(direct, rng, dtype, x_shape, w_shape, stride, padding, dilation, groups):
    dims = len(x_shape) - 2
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    ours, theirs = FUNCTIONS[dims]
    d = [distml.tensor(a, requires_grad=True) for a in (x, w, b)]
    t = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    d_out, t_out = ours(*d, **kwargs), theirs(*t, **kwargs)
    upstream = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    d_out.backward(distml.tensor(upstream))
    t_out.backward(torch.from_numpy(upstream))
    _close(d_out.detach().numpy(), t_out.detach().numpy(), dtype)
    assert d_out.dtype == d[0].dtype
    for ours_grad, their_grad in zip(d, t):
        _close(ours_grad.grad.numpy(), their_grad.grad.numpy(), dtype)


def _close(ours, theirs, dtype):
    """Equal up to rounding: sums of many float32 products differ by their order."""
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max()))


def test_weight_grad_only_and_no_bias(direct, rng):
    """A frozen input (no input gradient computed) and no bias, as in a first layer."""
    x = rng.standard_normal((4, 1, 12, 12))
    w = rng.standard_normal((6, 1, 5, 5))
    dw, tw = distml.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    dx = distml.tensor(x)
    F.conv2d(dx, dw, padding=2).pow(2).sum().backward()
    torch.nn.functional.conv2d(torch.tensor(x), tw, padding=2).pow(2).sum().backward()
    assert dx.grad is None
    np.testing.assert_allclose(dw.grad.numpy(), tw.grad.numpy(), rtol=1e-10)


def _window(x_shape, w_shape, stride=1):
    size, kernel = x_shape[2:], w_shape[2:]
    out = tuple((s - k) // stride + 1 for s, k in zip(size, kernel))
    return conv.Window(x_shape[0], x_shape[1], size, kernel, (stride,) * len(size), (0,) * len(size),
                       (1,) * len(size), out)


@pytest.mark.parametrize("x_shape,w_shape,stride,groups,kernels", [
    ((64, 6, 14, 14), (16, 6, 5, 5), 1, 1, "direct"),  # LeNet-5's conv2
    ((16, 64, 10, 10), (64, 64, 3, 3), 1, 1, "direct"),  # ResNet-18's layer1 at 32x32 input
    ((16, 64, 10, 10), (64, 64, 3, 3), 2, 1, None),  # stride 2: BLAS on the columns
    ((4, 64, 58, 58), (64, 64, 3, 3), 1, 1, None),  # 56 x 56 output positions
    ((16, 128, 6, 6), (128, 128, 3, 3), 1, 1, None),  # 147456 weights
    ((16, 128, 6, 6), (128, 32, 3, 3), 1, 4, "direct"),  # 36864 weights a group
    ((2, 8, 9, 9), (8, 1, 3, 3), 2, 8, "depthwise"),
    ((2, 8, 9, 9), (4, 8, 1, 1), 1, 1, None),  # 1x1: the strided-transpose product
])
def test_rule(x_shape, w_shape, stride, groups, kernels):
    x, w = np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32)
    picked = conv._direct_kernels(x, w, _window(x_shape, w_shape, stride), groups)
    expected = {"direct": conv._DIRECT, "depthwise": conv._DEPTHWISE, None: None}[kernels]
    assert (picked and picked[0]) == expected


def test_rule_leaves_float16_to_the_products():
    x, w = np.zeros((2, 3, 8, 8), np.float16), np.zeros((4, 3, 3, 3), np.float16)
    assert conv._direct_kernels(x, w, _window(x.shape, w.shape), 1) is None


def test_kernel_checks_sizes_and_groups():
    from distml._backend import C
    x, w = np.zeros((1, 4, 5, 5), np.float32), np.zeros((6, 2, 3, 3), np.float32)
    geometry = conv._geometry(_window(x.shape, (6, 4, 3, 3)))
    with pytest.raises(ValueError, match="groups must divide"):
        C.conv_direct(x, w, np.zeros((1, 6, 3, 3), np.float32), geometry, 6, 3)
    with pytest.raises(ValueError, match="expected an array of 54 elements"):
        C.conv_direct(x, w, np.zeros((1, 6, 3, 2), np.float32), geometry, 6, 2)
