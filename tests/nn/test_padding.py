"""F.pad's four modes and the padding layers against PyTorch: values, gradients, errors, repr."""
import numpy as np
import pytest
import torch

import distml
from distml import nn

PADS = [(1, 1), (2, 0), (0, 1, 1, 0), (-1, 1), (1, -1, 0, 2), (1, 2, 0, 1, 2, 0), (-1, 2, 1, -1, 0, 1), (-1, -1)]


def run(lib, x, pad, mode, dtype):
    t = lib.tensor(x.astype(dtype), requires_grad=True)
    out = lib.nn.functional.pad(t, pad, mode)
    upstream = np.arange(out.numel(), dtype=dtype).reshape(tuple(out.shape))
    out.backward(lib.tensor(upstream))
    return out.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad", PADS, ids=str)
def test_pad_matches_torch(rng, mode, pad, dtype):
    n = len(pad) // 2
    for ndim in (n + 1, n + 2) if mode != "constant" else range(n, n + 3):
        x = rng.standard_normal(tuple(rng.integers(3, 5, size=ndim)))
        for ours, theirs in zip(run(distml, x, pad, mode, dtype), run(torch, x, pad, mode, dtype)):
            np.testing.assert_array_equal(ours, theirs)


def test_constant_pad_value_and_cropping():
    x = np.arange(12.0).reshape(3, 4)
    for pad, value in [((1, 2), 3.5), ((1, 1, -1, 2), -2.0), ((0, 0, 1, 1), 7.0)]:
        np.testing.assert_array_equal(nn.functional.pad(distml.tensor(x), pad, value=value).numpy(),
                                      torch.nn.functional.pad(torch.tensor(x), pad, value=value).numpy())


@pytest.mark.parametrize("shape,pad,mode,message", [
    ((4,), (1, 1, 1, 1), "reflect", "Padding length should be less than or equal to two times the input dimension but "
                                    "got padding length 4 and input of dimension 1"),
    ((2, 3), (1, 1, 1, 1, 1, 1), "constant", "Padding length should be less than or equal to two times the input"),
    ((2, 3), (1, 1, 1), "constant", "Padding length must be divisible by 2"),
    ((2, 3), (3, 0), "reflect", r"Argument #4: Padding size should be less than the corresponding input dimension, "
                                r"but got: padding \(3, 0\) at dimension 1 of input \[2, 3\]"),
    ((2, 3), (4, 0), "circular", "Padding value causes wrapping around more than once."),
    ((2, 3, 3), (-2, -2), "circular", "Negative padding value is resulting in an empty dimension"),
    ((2, 3), (-2, -2), "constant", r"narrow\(\): length must be non-negative."),
    ((1, 3), (-1, -2), "reflect", r"input \(W: 3\) is too small. Calculated output W: 0"),
    ((1, 3, 3), (-1, -2, -1, -2), "replicate", r"input \(H: 3, W: 3 \) is too small. Calculated output H: 0 W: 0"),
    ((1, 3, 3), (-1, -2, -1, -2), "reflect", r"input \(H: 3, W: 3\) is too small. Calculated output H: 0 W: 0"),
    ((1, 2, 3, 3), (-1, -2, -1, -2, -1, -1), "replicate",
     r"input \(D: 2 H: 3, W: 3\) is too small. Calculated output D: 0 H: 0 W: 0"),
])
def test_pad_errors_match_torch(shape, pad, mode, message):
    for lib in (distml, torch):
        with pytest.raises(RuntimeError, match=message):
            lib.nn.functional.pad(lib.zeros(*shape), pad, mode)


def test_pad_unsupported_shapes_and_modes():
    for lib in (distml, torch):
        with pytest.raises(NotImplementedError, match="Padding size 2 is not supported for 4D input tensor"):
            lib.nn.functional.pad(lib.zeros(1, 2, 3, 4), (1, 1), "reflect")
        with pytest.raises(NotImplementedError):
            lib.nn.functional.pad(lib.zeros(2, 3), (1, 1), "wrap")
        with pytest.raises(RuntimeError, match='Padding mode "reflect" doesn\'t take in value argument'):
            lib.nn.functional.pad(lib.zeros(2, 3), (1, 1), "reflect", 2.0)


LAYERS = [("ConstantPad1d", (2, 3.5)), ("ConstantPad1d", ((1, 2), -1)), ("ConstantPad2d", (1, 0.5)),
          ("ConstantPad3d", ((1, 0, 2, 1, 0, 1), 2.0)), ("ZeroPad1d", (2,)), ("ZeroPad2d", ((1, 2, 3, 4),)),
          ("ZeroPad3d", (1,)), ("ReflectionPad1d", (2,)), ("ReflectionPad2d", ((1, 0, 2, 1),)),
          ("ReflectionPad3d", (1,)), ("ReplicationPad1d", ((3, 1),)), ("ReplicationPad2d", (2,)),
          ("ReplicationPad3d", ((1, 2, 0, 1, 1, 0),)), ("CircularPad1d", (1,)), ("CircularPad2d", ((1, 0, 2, 1),)),
          ("CircularPad3d", (1,))]


@pytest.mark.parametrize("name,args", LAYERS, ids=str)
def test_layer_repr_attributes_and_values(rng, name, args):
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(ours) == repr(theirs)
    assert ours.padding == theirs.padding and getattr(ours, "value", None) == getattr(theirs, "value", None)
    dims = int(name[-2])
    x = rng.standard_normal((2, 3, 4, 5, 6)[-dims - 2:])
    np.testing.assert_array_equal(ours(distml.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy())
    np.testing.assert_array_equal(ours(distml.tensor(x[0])).numpy(), theirs(torch.tensor(x[0])).numpy())


def test_zero_pad_is_a_constant_pad_and_circular_checks_the_rank():
    assert isinstance(nn.ZeroPad2d(1), nn.ConstantPad2d) and nn.ZeroPad2d(1).value == 0.0
    for lib in (distml, torch):
        with pytest.raises(ValueError, match=r"expected 3D or 4D input \(got 2D input\)"):
            lib.nn.CircularPad2d(1)(lib.zeros(3, 4))
        with pytest.raises(ValueError, match=r"expected 4D or 5D input \(got 3D input\)"):
            lib.nn.CircularPad3d(1)(lib.zeros(3, 4, 5))
