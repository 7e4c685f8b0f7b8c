"""Pooling layers and their functional forms against PyTorch: values, indices, input gradients
(float64 and float32), unbatched inputs, repr and errors; the _C kernels against their xp twins."""
import numpy as np
import pytest
import torch

import distml
from distml import nn
from distml.nn import functional as F
from distml.ops import pool

LAYERS = [
    ("MaxPool1d", (3,), {"stride": 2, "padding": 1}, (2, 3, 11)),
    ("MaxPool1d", (2,), {"dilation": 2, "ceil_mode": True}, (2, 2, 10)),
    ("MaxPool1d", (3,), {}, (4, 9)),
    ("MaxPool2d", (3, 2, 1), {}, (2, 3, 9, 8)),
    ("MaxPool2d", ((2, 3),), {"stride": (1, 2), "dilation": (2, 1), "ceil_mode": True}, (2, 2, 7, 9)),
    ("MaxPool2d", (2,), {}, (3, 7, 5)),
    ("MaxPool3d", (2,), {}, (2, 2, 4, 6, 5)),
    ("MaxPool3d", ((3, 2, 3),), {"stride": 2, "padding": (1, 0, 1), "ceil_mode": True}, (1, 2, 5, 6, 7)),
    ("MaxPool3d", (2,), {"dilation": (1, 2, 1), "stride": 1}, (2, 5, 6, 4)),
    ("AvgPool1d", (3,), {"stride": 2, "padding": 1}, (2, 3, 11)),
    ("AvgPool1d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}, (2, 3, 10)),
    ("AvgPool1d", (2,), {}, (3, 7)),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "divisor_override": 5}, (2, 2, 9, 8)),
    ("AvgPool2d", ((3, 2),), {"stride": 2, "padding": (1, 0), "ceil_mode": True}, (2, 2, 8, 7)),
    ("AvgPool3d", (2,), {}, (2, 2, 4, 6, 5)),
    ("AvgPool3d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}, (1, 2, 6, 5, 7)),
    ("AvgPool3d", ((1, 2, 3),), {"stride": (1, 2, 2), "divisor_override": 4}, (3, 4, 6, 7)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 11)),
    ("AdaptiveAvgPool1d", (3,), {}, (3, 7)),
    ("AdaptiveAvgPool3d", ((2, 3, None),), {}, (2, 2, 5, 7, 3)),
    ("AdaptiveAvgPool3d", (1,), {}, (2, 4, 3, 5)),
    ("AdaptiveMaxPool1d", (4,), {}, (2, 3, 11)),
    ("AdaptiveMaxPool2d", ((3, 2),), {}, (2, 3, 7, 5)),
    ("AdaptiveMaxPool2d", ((None, 3),), {}, (3, 5, 8)),
    ("AdaptiveMaxPool3d", ((2, 3, 4),), {}, (2, 2, 5, 7, 6)),
    ("AdaptiveMaxPool3d", (2,), {}, (2, 3, 4, 5)),
    ("LPPool1d", (2, 3), {"stride": 2}, (2, 3, 11)),
    ("LPPool2d", (2, 3), {"stride": 2}, (2, 3, 9, 8)),
    ("LPPool2d", (1.5, (2, 3)), {"ceil_mode": True}, (2, 7, 8)),
    ("LPPool3d", (3, 2), {}, (2, 2, 4, 6, 5)),
]


def _both(name, args, kwargs):
    return getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=lambda v: str(v))
def test_layer_matches_torch(same, rng, name, args, kwargs, shape, dtype):
    dm, tm = _both(name, args, kwargs)
    x = rng.standard_normal(shape)
    if name.startswith("LPPool") and args[0] % 1:
        x = np.abs(x) + 0.1  # a fractional power of a negative sum is NaN in both
    same(dm, tm, [x], dtype)
    assert repr(dm) == repr(tm)


@pytest.mark.parametrize("nd,kwargs,shape", [
    (1, {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 10)),
    (2, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, (2, 2, 9, 8)),
    (2, {"kernel_size": 2, "dilation": 2}, (2, 7, 5)),
    (3, {"kernel_size": (2, 3, 2), "stride": (1, 2, 2), "padding": (1, 1, 0)}, (1, 2, 5, 6, 5)),
])
def test_max_pool_indices_and_unpool(rng, nd, kwargs, shape):
    x = rng.standard_normal(shape)
    x.reshape(-1)[:3] = np.nan  # NaN wins (the last one in a window), as in PyTorch
    x.reshape(-1)[-5:] = -np.inf
    for fn in (f"max_pool{nd}d", f"max_pool{nd}d_with_indices"):
        out_d, idx_d = getattr(F, fn)(distml.tensor(x), **kwargs, return_indices=True)
        out_t, idx_t = getattr(torch.nn.functional, fn)(torch.tensor(x), **kwargs, return_indices=True)
        np.testing.assert_array_equal(out_d.numpy(), out_t.numpy())
        np.testing.assert_array_equal(idx_d.numpy(), idx_t.numpy())
        assert idx_d.dtype == distml.int64
    unpool_args = {k: v for k, v in kwargs.items() if k in ("kernel_size", "stride", "padding")}
    y = rng.standard_normal(out_t.shape)
    yd, yt = distml.tensor(y, requires_grad=True), torch.tensor(y, requires_grad=True)
    size = list(shape[-nd:])
    back_d = getattr(F, f"max_unpool{nd}d")(yd, idx_d, **unpool_args, output_size=size)
    back_t = getattr(torch.nn.functional, f"max_unpool{nd}d")(yt, idx_t, **unpool_args, output_size=size)
    np.testing.assert_array_equal(back_d.detach().numpy(), back_t.detach().numpy())
    g = rng.standard_normal(back_t.shape)
    back_d.backward(distml.tensor(g)), back_t.backward(torch.tensor(g))
    np.testing.assert_array_equal(yd.grad.numpy(), yt.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (2, 1, 0), (3, 1, 1), (3, 2, 0)])
@pytest.mark.parametrize("size", [(40, 37), (9, 8)], ids=["long-rows", "short-rows"])
def test_max_pool2d_square_windows_match_torch(rng, dtype, kernel, stride, padding, size):
    """The 2x2 and 3x3 kernels (rows of 16 windows or more vectorised, shorter ones a window at a
    time): values and indices equal torch's, with ties (the first maximum wins), NaNs (the last one
    in a window wins) and -inf."""
    x = np.round(rng.standard_normal((2, 3) + size), 1).astype(dtype)  # rounded: many ties
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, flat.size // 20, replace=False)] = np.nan
    flat[rng.choice(flat.size, flat.size // 20, replace=False)] = -np.inf
    out_d, idx_d = F.max_pool2d(distml.tensor(x), kernel, stride, padding, return_indices=True)
    out_t, idx_t = torch.nn.functional.max_pool2d(torch.tensor(x), kernel, stride, padding, return_indices=True)
    np.testing.assert_array_equal(out_d.numpy(), out_t.numpy())
    np.testing.assert_array_equal(idx_d.numpy(), idx_t.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nd,args", [(1, (2,)), (2, ((2, 3), (2, 1), (0, 1))), (3, (3, 2, 1))])
def test_max_unpool_module(same, rng, nd, args, dtype):
    dm, tm = _both(f"MaxUnpool{nd}d", args, {})
    assert repr(dm) == repr(tm)
    shape = (2, 3) + {1: (6,), 2: (6, 7), 3: (5, 7, 5)}[nd]  # sizes the default output size gives back
    pooled, indices = getattr(torch.nn.functional, f"max_pool{nd}d")(torch.randn(shape, dtype=torch.float64),
                                                                      *args, return_indices=True)
    same(dm, tm, [rng.standard_normal(pooled.shape), indices.numpy()], dtype)


def test_adaptive_max_indices(rng):
    x = rng.standard_normal((2, 3, 7, 9))
    x[0, 0, :2, :2] = np.nan
    x[1, 1] = 1.0  # ties: the first maximum wins
    for size in [(3, 4), (7, 9), (1, 1), (5, 2)]:
        out_d, idx_d = F.adaptive_max_pool2d(distml.tensor(x), size, return_indices=True)
        out_t, idx_t = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), size, return_indices=True)
        np.testing.assert_array_equal(out_d.numpy(), out_t.numpy())
        np.testing.assert_array_equal(idx_d.numpy(), idx_t.numpy())
    out, idx = nn.AdaptiveMaxPool1d(3, return_indices=True)(distml.tensor(x[0, 0]))
    np.testing.assert_array_equal(idx.numpy(), torch.nn.functional.adaptive_max_pool1d(
        torch.tensor(x[0, 0]), 3, return_indices=True)[1].numpy())


@pytest.mark.parametrize("size", [(1, 1), (3, 4), (7, 3)])
def test_adaptive_avg_keeps_inf_and_nan_in_their_windows(rng, size):
    x = rng.standard_normal((2, 3, 7, 9))
    x[0, 0, 1, 1], x[1, 2, 5, 5] = np.inf, np.nan
    np.testing.assert_allclose(F.adaptive_avg_pool2d(distml.tensor(x), size).numpy(),
                               torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), size).numpy(), rtol=1e-12)


def test_functional_forms_match_torch(rng):
    x = rng.standard_normal((2, 3, 6, 7))
    xt, xd = torch.tensor(x), distml.tensor(x)
    tf = torch.nn.functional
    pairs = [
        (F.avg_pool2d(xd, 3, 2, 1, True, False, None), tf.avg_pool2d(xt, 3, 2, 1, True, False, None)),
        (F.avg_pool1d(xd[0], 3, 2, 1), tf.avg_pool1d(xt[0], 3, 2, 1)),
        (F.adaptive_avg_pool2d(xd, (4, None)), tf.adaptive_avg_pool2d(xt, (4, None))),
        (F.adaptive_max_pool3d(xd, 2), tf.adaptive_max_pool3d(xt, 2)),
        (F.lp_pool2d(xd, float("inf"), 2), tf.lp_pool2d(xt, float("inf"), 2)),
        (F.max_pool1d(xd[0], 2, ceil_mode=True), tf.max_pool1d(xt[0], 2, ceil_mode=True)),
        (F.max_pool2d(xd, 3, [], 1), tf.max_pool2d(xt, 3, [], 1)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn,args", [("max_pool1d", (2,)), ("max_pool2d", (2,)), ("avg_pool3d", (2,)),
                                     ("adaptive_max_pool2d", (2,)), ("adaptive_avg_pool2d", (3,))])
def test_empty_batch(fn, args):
    shapes = []
    for m in (distml, torch):
        x = m.zeros(*{"1": (0, 3, 4), "2": (0, 3, 4, 4), "3": (0, 2, 4, 4, 4)}[fn[-2]], requires_grad=True)
        y = getattr(m.nn.functional, fn)(x, *args)
        y.sum().backward()
        shapes.append((tuple(y.shape), tuple(x.grad.shape)))
    assert shapes[0] == shapes[1]


def test_float16_pooling_computes_in_float32(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float16)
    for fn, args, rank in [("max_pool3d", (2,), 4), ("avg_pool1d", (3,), 3), ("adaptive_avg_pool2d", (4,), 4)]:
        x = x.reshape((-1,) + x.shape[-rank + 1:])
        ours = getattr(F, fn)(distml.tensor(x), *args)
        theirs = getattr(torch.nn.functional, fn)(torch.tensor(x), *args)
        assert ours.dtype == distml.float16
        np.testing.assert_allclose(ours.numpy().astype(np.float64), theirs.numpy().astype(np.float64), rtol=1e-3)


ERRORS = [
    (lambda m: m.nn.functional.max_pool1d(m.randn(1, 1, 4, 4), 2), RuntimeError,
     r"max_pool1d: Expected 2D or 3D \(batch mode\) tensor with optional 0 dim batch size for input, but got:\[1, 1, 4, 4\]"),
    (lambda m: m.nn.functional.avg_pool1d(m.randn(1, 1, 4, 4), 2), RuntimeError,
     r"Expected 2 to 3 dimensions, but got 4-dimensional tensor for argument #1 'self' \(while checking arguments for "
     r"avg_pool1d\)"),
    (lambda m: m.nn.functional.max_pool2d(m.randn(2, 3), 2), RuntimeError,
     r"non-empty 3D or 4D \(batch mode\) tensor expected for input"),
    (lambda m: m.nn.functional.max_pool3d(m.randn(2, 3, 4), 2), RuntimeError,
     r"non-empty 4D or 5D \(batch mode\) tensor expected for input"),
    (lambda m: m.nn.functional.max_pool2d(m.randn(1, 1, 4, 4), 5), RuntimeError,
     r"Given input size: \(1x4x4\). Calculated output size: \(1x0x0\). Output size is too small"),
    (lambda m: m.nn.functional.avg_pool3d(m.randn(1, 1, 2, 4, 4), 2, padding=2), RuntimeError,
     "pad should be at most half of effective kernel size, but got pad=2, kernel_size=2 and dilation=1"),
    (lambda m: m.nn.functional.max_pool2d(m.randn(1, 1, 4, 4), (2, 2, 2)), RuntimeError,
     "max_pool2d: kernel_size must either be a single int, or a tuple of two ints"),
    (lambda m: m.nn.functional.max_pool2d(m.randn(1, 1, 4, 4), 2, stride=0), RuntimeError,
     "stride should not be zero"),
    (lambda m: m.nn.functional.max_pool2d(m.randn(1, 1, 4, 4), 2, padding=-1), RuntimeError,
     "pad must be non-negative, but got pad: -1"),
    (lambda m: m.nn.functional.avg_pool2d(m.randn(1, 1, 4, 4), 2, divisor_override=0), RuntimeError,
     "divisor must be not zero"),
    (lambda m: m.nn.functional.avg_pool2d(m.randn(1, 1, 4, 4), 2, divisor_override=1.5), TypeError,
     "argument 'divisor_override' must be int, not float"),
    (lambda m: m.nn.functional.adaptive_max_pool2d(m.randn(2, 3), 2), RuntimeError,
     r"adaptive_max_pool2d\(\): Expected 3D or 4D tensor, but got: \[2, 3\]"),
    (lambda m: m.nn.functional.adaptive_avg_pool3d(m.randn(2, 3, 4), 2), RuntimeError,
     r"adaptive_avg_pool3d\(\): Expected 4D or 5D tensor, but got \[2, 3, 4\]"),
    (lambda m: m.nn.functional.adaptive_avg_pool2d(m.randn(1, 2, 4, 4), (2, 2, 2)), RuntimeError,
     "adaptive_avg_pool2d: output_size must be 2"),
    (lambda m: m.nn.functional.adaptive_avg_pool1d(m.randn(1, 2, 4), (2, 2)), RuntimeError,
     r"adaptive_avg_pool1d\(\) argument 'output_size' should contain one int \(got 2\)"),
    (lambda m: m.nn.functional.adaptive_max_pool2d(m.randn(1, 2, 0, 4), 2), RuntimeError,
     r"Expected input to have non-zero size for non-batch dimensions, but input has sizes \[1, 2, 0, 4\] with "
     "dimension 2 being empty"),
    (lambda m: m.nn.functional.max_unpool2d(m.randn(1, 1, 2, 2), m.zeros(1, 1, 2, 2, dtype=m.int64) + 100, 2),
     RuntimeError, r"Found an invalid max index: 100 \(output volumes are of size 4x4\)"),
    (lambda m: m.nn.functional.max_unpool2d(m.randn(1, 1, 4, 4), m.zeros(1, 1, 4, 4, dtype=m.int64), 2,
                                            output_size=(3, 3)), ValueError,
     r'invalid output_size "\(3, 3\)" \(dim 0 must be between 6 and 10\)'),
    (lambda m: m.nn.functional.max_unpool2d(m.randn(1, 1, 4, 4), m.zeros(1, 1, 4, 4), 2), RuntimeError,
     "elements in indices should be type int64 but got: Float"),
    (lambda m: m.nn.functional.max_unpool2d(m.randn(1, 1, 4, 4), m.zeros(1, 1, 3, 4, dtype=m.int64), 2),
     RuntimeError, r"Expected shape of indices to be same as that of the input tensor \(\[1, 1, 4, 4\]\)"),
    (lambda m: m.nn.functional.max_unpool3d(m.randn(2, 2, 2), m.zeros(2, 2, 2, dtype=m.int64), 2), RuntimeError,
     "Input to max_unpooling3d should be a 4d or 5d Tensor, but got a tensor with 3 dimensions."),
    (lambda m: m.nn.functional.max_unpool1d(m.randn(1, 2, 2), m.zeros(1, 2, 2, dtype=m.int64), 2,
                                            output_size=[1, 2, 3, 4]), ValueError,
     "output_size should be a sequence containing 1 or 3 elements, but it has a length of '4'"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_match_torch(case):
    fn, error, message = ERRORS[case]
    for m in (torch, distml):
        with pytest.raises(error, match=message):
            fn(m)


GEOMETRIES = [  # (shape, kernel, stride, padding, dilation, ceil_mode)
    ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1), (1, 1), False),
    ((2, 2, 9, 8), (3, 2), (2, 1), (1, 0), (2, 1), True),
    ((2, 4, 16, 16), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((3, 5, 5), (2, 2), (2, 2), (0, 0), (1, 1), True),
    ((2, 3, 11), (4,), (3,), (2,), (1,), True),
    ((1, 2, 5, 6, 7), (3, 2, 3), (2, 1, 2), (1, 1, 1), (1, 2, 1), False),
]


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation,ceil_mode", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_match_xp(rng, shape, kernel, stride, padding, dilation, ceil_mode, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::13] = np.nan  # the xp twin's NaN rule (the last NaN of a window wins) as the kernel's
    out_size = tuple(F._pool_size(n, k, s, p, d, ceil_mode)
                     for n, k, s, p, d in zip(shape[-len(kernel):], kernel, stride, padding, dilation))
    g = pool.pool_geometry(shape, kernel, stride, padding, dilation, out_size)
    node = pool.MaxPool()
    out, indices = node.forward(x, g, len(kernel))
    out_xp, idx_xp = pool._max_pool_xp(x, g)
    np.testing.assert_array_equal(out.reshape(-1), out_xp.reshape(-1))
    np.testing.assert_array_equal(indices.reshape(-1), idx_xp.reshape(-1))
    grad = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(node.backward(grad, None),
                               pool._max_pool_backward_xp(grad, indices, x.shape, g[0]), rtol=1e-6)
    if dilation != (1,) * len(kernel):
        return  # average pooling has no dilation
    for include in (True, False):
        for override in (0, 3):
            node = pool.AvgPool()
            out = node.forward(x, g, len(kernel), include, override)
            windows = pool._windows_xp(x, g, 0)
            np.testing.assert_allclose(out.reshape(-1), (windows.sum(axis=0) / node._divisor_xp(x)).reshape(-1),
                                       rtol=1e-6)
            np.testing.assert_allclose(node.backward(grad), node._backward_xp(grad), rtol=1e-6, atol=1e-6)
