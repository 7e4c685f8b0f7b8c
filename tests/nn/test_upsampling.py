"""F.interpolate, nn.Upsample and its aliases, pixel and channel shuffle against PyTorch:
values and input gradients (float64 and float32), odd sizes, repr and errors."""
import warnings

import numpy as np
import pytest
import torch

import distml
from distml import nn
from distml.nn import functional as F

CASES = [  # (mode, spatial shape, interpolate kwargs)
    ("nearest", (5,), {"size": 9}),
    ("nearest", (4, 5), {"scale_factor": 2}),
    ("nearest", (3, 5), {"scale_factor": (1.2, 2.1)}),  # PyTorch's 2-D copy / halving shortcuts
    ("nearest", (3, 4, 5), {"size": (2, 7, 5)}),
    ("nearest-exact", (7,), {"scale_factor": 0.6}),
    ("nearest-exact", (5, 4), {"size": (8, 3)}),
    ("linear", (5,), {"size": 8}),
    ("linear", (5,), {"scale_factor": 2.1, "align_corners": True}),
    ("linear", (6,), {"scale_factor": 1.7, "recompute_scale_factor": True}),
    ("bilinear", (4, 5), {"scale_factor": 2}),
    ("bilinear", (5, 7), {"size": (3, 10), "align_corners": True}),
    ("bilinear", (6, 6), {"scale_factor": (0.5, 1.5)}),
    ("bicubic", (4, 5), {"size": (9, 7)}),
    ("bicubic", (5, 4), {"scale_factor": 2, "align_corners": True}),
    ("bicubic", (7, 6), {"scale_factor": 0.6}),
    ("trilinear", (3, 4, 5), {"scale_factor": 2}),
    ("trilinear", (3, 4, 2), {"size": (5, 2, 3), "align_corners": True}),
    ("area", (7,), {"size": 3}),
    ("area", (6, 7), {"scale_factor": 0.5}),
    ("area", (4, 5, 6), {"size": (2, 3, 4)}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode,spatial,kwargs", CASES, ids=lambda v: str(v))
def test_interpolate_matches_torch(rng, mode, spatial, kwargs, dtype):
    x = rng.standard_normal((2, 3) + spatial).astype(dtype)
    xd, xt = distml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_d = F.interpolate(xd, mode=mode, **kwargs)
    out_t = torch.nn.functional.interpolate(xt, mode=mode, **kwargs)
    assert out_d.shape == tuple(out_t.shape) and out_d.dtype.name == str(out_t.dtype)[6:]
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(out_d.detach().numpy(), out_t.detach().numpy(), **tol)
    g = rng.standard_normal(out_d.shape).astype(dtype)
    out_d.backward(distml.tensor(g)), out_t.backward(torch.tensor(g))
    np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), **tol)


def test_interpolate_inf_and_empty_batch():
    x = np.array([[[1.0, np.inf, 3.0, -np.inf]]])
    for mode in ("nearest", "nearest-exact"):
        np.testing.assert_array_equal(F.interpolate(distml.tensor(x), scale_factor=3, mode=mode).numpy(),
                                      torch.nn.functional.interpolate(torch.tensor(x), scale_factor=3, mode=mode))
    assert F.interpolate(distml.zeros(0, 2, 4, 4), size=3).shape == (0, 2, 3, 3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,args,kwargs,shape", [
    ("Upsample", (), {"scale_factor": 2}, (2, 3, 4, 5)),
    ("Upsample", (), {"size": (3, 7), "mode": "bilinear"}, (2, 3, 4, 5)),
    ("Upsample", (), {"scale_factor": (2, 1.5, 3), "mode": "trilinear", "align_corners": True}, (1, 2, 3, 4, 2)),
    ("Upsample", (5,), {"mode": "linear"}, (2, 3, 4)),
    ("UpsamplingNearest2d", (), {"scale_factor": 3}, (2, 2, 3, 4)),
    ("UpsamplingNearest2d", ((5, 6),), {}, (2, 2, 3, 4)),
    ("UpsamplingBilinear2d", (), {"scale_factor": 2}, (2, 2, 3, 4)),
    ("PixelShuffle", (2,), {}, (2, 8, 3, 5)),
    ("PixelShuffle", (3,), {}, (9, 2, 4)),
    ("PixelShuffle", (2,), {}, (2, 3, 4, 2, 3)),
    ("PixelUnshuffle", (2,), {}, (2, 3, 4, 6)),
    ("PixelUnshuffle", (3,), {}, (1, 6, 3)),
    ("ChannelShuffle", (2,), {}, (2, 6, 3, 4)),
    ("ChannelShuffle", (3,), {}, (2, 6, 5)),
])
def test_modules_match_torch(same, rng, name, args, kwargs, shape, dtype):
    dm, tm = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(dm) == repr(tm)
    same(dm, tm, [rng.standard_normal(shape)], dtype)


def test_deprecated_aliases(rng):
    x = rng.standard_normal((1, 2, 3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = [(F.upsample(distml.tensor(x), scale_factor=2, mode="bicubic"),
                  torch.nn.functional.upsample(torch.tensor(x), scale_factor=2, mode="bicubic")),
                 (F.upsample_nearest(distml.tensor(x), size=(5, 5)),
                  torch.nn.functional.upsample_nearest(torch.tensor(x), size=(5, 5))),
                 (F.upsample_bilinear(distml.tensor(x), scale_factor=2),
                  torch.nn.functional.upsample_bilinear(torch.tensor(x), scale_factor=2))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    with pytest.warns(UserWarning, match="`nn.functional.upsample_bilinear` is deprecated"):
        F.upsample_bilinear(distml.tensor(x), scale_factor=2)


def test_channel_shuffle_functional_forms():
    x = np.arange(2 * 6 * 2.0).reshape(2, 6, 2)
    expected = torch.nn.functional.channel_shuffle(torch.tensor(x), 3).numpy()
    np.testing.assert_array_equal(F.channel_shuffle(distml.tensor(x), 3).numpy(), expected)
    np.testing.assert_array_equal(F.native_channel_shuffle(distml.tensor(x), 3).numpy(), expected)


def _input(m, *shape):
    return m.randn(*shape)


ERRORS = [
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4), size=2, scale_factor=2), ValueError,
     "only one of size or scale_factor should be defined"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4)), ValueError,
     "either size or scale_factor should be defined"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4), size=(2, 2)), ValueError,
     r"Input and output must have the same number of spatial dimensions, but got input with spatial dimensions of "
     r"\[4\] and output size of \(2, 2\)"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4, 4), scale_factor=(2, 2, 2)), ValueError,
     "Input and scale_factor must have the same number of spatial dimensions"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4), size=(2.5,)), TypeError,
     "expected size to be one of int or Tuple"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4), size=3, mode="nearest", align_corners=True),
     ValueError, "align_corners option can only be set with the interpolating modes"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4), size=3, recompute_scale_factor=True), ValueError,
     "recompute_scale_factor is not meaningful with an explicit size."),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4), scale_factor=2, mode="bicubic"), NotImplementedError,
     r"Input Error: Only 3D, 4D and 5D input Tensors supported \(got 3D\) for the modes: .* \(got bicubic\)"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 4), scale_factor=2), NotImplementedError,
     r"Only 3D, 4D and 5D input Tensors supported \(got 2D\)"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4), scale_factor=2, mode="bilinear"),
     NotImplementedError, "Got 3D input, but bilinear mode needs 4D input"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4, 4), scale_factor=2, mode="trilinear"),
     NotImplementedError, "Got 4D input, but trilinear mode needs 5D input"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4, 4), scale_factor=2, mode="nearest", antialias=True),
     ValueError, "Anti-alias option is restricted to bilinear, bicubic, and lanczos modes"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4, 4), scale_factor=2, mode="lanczos"), ValueError,
     "Lanczos mode requires antialias=True"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 1, 4), scale_factor=0.1), RuntimeError,
     r"Input and output sizes should be greater than 0, but got input \(W: 4\) and output \(W: 0\)"),
    (lambda m: m.nn.functional.interpolate(_input(m, 1, 0, 4, 4), size=3), RuntimeError,
     r"Non-empty 4D data tensor expected but got a tensor with sizes \[1, 0, 4, 4\]"),
    (lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4, dtype=m.int64), size=3, mode="bilinear"),
     NotImplementedError, "not implemented for 'Long'"),
    (lambda m: m.nn.functional.pixel_shuffle(_input(m, 4, 4), 2), RuntimeError,
     r"pixel_shuffle expects input to have at least 3 dimensions, but got input with 2 dimension\(s\)"),
    (lambda m: m.nn.functional.pixel_shuffle(_input(m, 5, 4, 4), 2), RuntimeError,
     r"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of upscale_factor, but "
     r"input.size\(-3\)=5 is not divisible by 4"),
    (lambda m: m.nn.functional.pixel_shuffle(_input(m, 4, 4, 4), 0), RuntimeError,
     "pixel_shuffle expects a positive upscale_factor, but got 0"),
    (lambda m: m.nn.functional.pixel_unshuffle(_input(m, 1, 4, 5), 2), RuntimeError,
     r"pixel_unshuffle expects width to be divisible by downscale_factor, but input.size\(-1\)=5 is not divisible "
     "by 2"),
    (lambda m: m.nn.functional.channel_shuffle(_input(m, 2, 6, 4, 4), 4), RuntimeError,
     "Number of channels must be divisible by groups. Got 6 channels and 4 groups."),
    (lambda m: m.nn.functional.channel_shuffle(_input(m, 2, 6), 3), RuntimeError,
     r"channel_shuffle expects input with > 2 dims, but got input with sizes \[2, 6\]"),
    (lambda m: m.nn.functional.channel_shuffle(_input(m, 2, 6, 4), 0), RuntimeError,
     "Number of groups to divide channels in must be positive. Value of groups:0"),
    (lambda m: m.nn.functional.channel_shuffle(_input(m, 2, 6, 4), 2.0), TypeError,
     r"channel_shuffle\(\): argument 'groups' \(position 2\) must be int, not float"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_match_torch(case):
    fn, error, message = ERRORS[case]
    for m in (torch, distml):
        with pytest.raises(error, match=message):
            fn(m)


def test_antialias_not_implemented():
    with pytest.raises(NotImplementedError, match="antialias=True"):
        F.interpolate(distml.randn(1, 1, 8, 8), scale_factor=0.5, mode="bilinear", antialias=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_matches_torch(rng, dtype, mode, padding_mode, align_corners):
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    grid = (rng.standard_normal((2, 4, 6, 2)) * 1.5).astype(dtype)  # many points outside [-1, 1]
    results = []
    for m in (distml, torch):
        xm, gm = m.tensor(x, requires_grad=True), m.tensor(grid, requires_grad=True)
        out = m.nn.functional.grid_sample(xm, gm, mode, padding_mode, align_corners)
        out.backward(m.tensor(np.linspace(-1, 1, out.numel()).reshape(tuple(out.shape)).astype(dtype)))
        results.append([out.detach().numpy(), xm.grad.numpy(),
                        np.zeros(grid.shape, dtype) if gm.grad is None else gm.grad.numpy()])
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-5}
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size", [(2, 3, 4, 5), (2, 1, 1, 6), (2, 1, 3, 4, 5)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_matches_torch(rng, dtype, size, align_corners):
    theta = rng.standard_normal((2, len(size) - 2, len(size) - 1)).astype(dtype)
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's note on unit-size grids with align_corners
        for m in (distml, torch):
            t = m.tensor(theta, requires_grad=True)
            grid = m.nn.functional.affine_grid(t, list(size), align_corners)
            grid.backward(m.tensor(np.cos(np.arange(grid.numel())).reshape(tuple(grid.shape)).astype(dtype)))
            results.append([grid.detach().numpy(), t.grad.numpy()])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


GRID_ERRORS = [
    (lambda m: m.nn.functional.grid_sample(_input(m, 1, 1, 4, 4), m.zeros(1, 2, 2, 2), "cubic", align_corners=False),
     ValueError, "expected mode to be 'bilinear', 'nearest' or 'bicubic', but got: 'cubic'"),
    (lambda m: m.nn.functional.grid_sample(_input(m, 1, 1, 4, 4), m.zeros(1, 2, 2, 2), padding_mode="wrap",
                                           align_corners=False),
     ValueError, "expected padding_mode to be 'zeros', 'border', or 'reflection', but got: 'wrap'"),
    (lambda m: m.nn.functional.affine_grid(m.zeros(1, 2, 3), [1, 1, 4], align_corners=False), NotImplementedError,
     "affine_grid only supports 4D and 5D sizes"),
    (lambda m: m.nn.functional.affine_grid(m.zeros(1, 3, 4), [1, 1, 4, 4], align_corners=False), ValueError,
     "Expected a batch of 2D affine matrices of shape Nx2x3 for size"),
    (lambda m: m.nn.functional.affine_grid(m.zeros(1, 2, 3, dtype=m.int64), [1, 1, 4, 4], align_corners=False),
     ValueError, "Expected theta to have floating point type"),
    (lambda m: m.nn.functional.affine_grid(m.zeros(1, 2, 3), [1, 1, 0, 4], align_corners=False), ValueError,
     r"Expected non-zero, positive output size. Got \[1, 1, 0, 4\]"),
]


@pytest.mark.parametrize("case", range(len(GRID_ERRORS)))
def test_grid_errors_match_torch(case):
    fn, error, message = GRID_ERRORS[case]
    for m in (torch, distml):
        with pytest.raises(error, match=message):
            fn(m)


def test_grid_sample_left_out_and_default_warning():
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.grid_sample(distml.randn(1, 1, 4, 4), distml.zeros(1, 2, 2, 2), "bicubic", align_corners=False)
    with pytest.raises(NotImplementedError, match="5-D"):
        F.grid_sample(distml.randn(1, 1, 2, 4, 4), distml.zeros(1, 2, 2, 2, 3), align_corners=False)
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        F.grid_sample(distml.randn(1, 1, 4, 4), distml.zeros(1, 2, 2, 2))
