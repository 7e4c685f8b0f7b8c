"""Convolutions (1-3 spatial dims, and their transposes), Unfold and Fold against PyTorch:
outputs, input / weight / bias gradients in float64 and float32; padding modes, output_size,
default initialisation, repr, state_dict keys and errors."""
import math

import numpy as np
import pytest
import torch

import distml
from distml import nn
from distml.nn import functional as F

MODULES = [
    ("Conv1d", (3, 5, 3), {"stride": 2, "padding": 1}, (2, 3, 11)),
    ("Conv1d", (4, 4, 3), {"groups": 4, "padding": "same", "dilation": 2}, (2, 4, 9)),
    ("Conv1d", (2, 6, 1), {"bias": False}, (3, 2, 5)),
    ("Conv1d", (3, 4, 2), {"padding_mode": "circular", "padding": 2}, (2, 3, 6)),
    ("Conv1d", (3, 2, 4), {"padding": "same", "padding_mode": "reflect"}, (3, 7)),
    ("Conv2d", (3, 4, 3), {}, (2, 3, 7, 6)),
    ("Conv2d", (3, 4, (3, 2)), {"stride": 2, "padding": 1, "dilation": (2, 1)}, (2, 3, 9, 8)),
    ("Conv2d", (4, 6, 3), {"groups": 2, "bias": False}, (2, 4, 5, 5)),
    ("Conv2d", (4, 8, 3), {"groups": 4, "padding": 1, "stride": (2, 1)}, (1, 4, 6, 5)),
    ("Conv2d", (5, 5, 3), {"groups": 5, "padding": 1}, (2, 5, 6, 7)),
    ("Conv2d", (5, 10, 5), {"groups": 5, "padding": 2, "stride": 2}, (2, 5, 9, 7)),
    ("Conv2d", (6, 4, 1), {}, (3, 6, 5, 4)),
    ("Conv2d", (6, 4, 1), {"stride": 2}, (2, 6, 7, 5)),
    ("Conv2d", (6, 4, 1), {"stride": (3, 2), "groups": 2}, (2, 6, 7, 5)),
    ("Conv2d", (6, 4, 1), {"padding": 1}, (2, 6, 3, 3)),
    ("Conv2d", (2, 3, 4), {"padding": "same"}, (2, 2, 6, 7)),
    ("Conv2d", (2, 3, 3), {"padding": "same", "dilation": 2}, (1, 2, 6, 5)),
    ("Conv2d", (2, 3, 3), {"padding": "valid", "stride": (1, 2)}, (2, 2, 6, 7)),
    ("Conv2d", (3, 4, 7), {"stride": 2, "padding": 3}, (2, 3, 9, 9)),
    ("Conv2d", (3, 4, 3), {}, (3, 7, 6)),
    ("Conv2d", (3, 4, 3), {"padding": 1}, (2, 3, 12, 11)),
    ("Conv2d", (3, 4, (3, 2)), {"stride": 2, "padding": (1, 0), "dilation": (2, 1)}, (2, 3, 20, 17)),
    ("Conv2d", (3, 3, 3), {"padding": 1, "groups": 3}, (2, 3, 12, 11)),
    ("Conv2d", (3, 4, 3), {"padding": 1}, (1, 3, 1, 1)),
    ("Conv2d", (3, 4, 3), {"padding": (2, 1), "padding_mode": "reflect"}, (2, 3, 5, 4)),
    ("Conv2d", (3, 4, 3), {"padding": 1, "padding_mode": "replicate", "stride": 2}, (2, 3, 5, 6)),
    ("Conv2d", (3, 4, (2, 3)), {"padding": 2, "padding_mode": "circular"}, (2, 3, 4, 4)),
    ("Conv2d", (3, 4, 4), {"padding": "same", "padding_mode": "replicate", "dilation": (1, 2)}, (2, 3, 6, 8)),
    ("Conv3d", (3, 4, 3), {}, (2, 3, 5, 6, 4)),
    ("Conv3d", (4, 6, (3, 1, 2)), {"stride": (2, 1, 2), "padding": (1, 0, 1), "dilation": (1, 2, 1),
                                   "groups": 2}, (2, 4, 6, 5, 7)),
    ("Conv3d", (3, 3, 3), {"groups": 3, "padding": "same"}, (1, 3, 4, 5, 3)),
    ("Conv3d", (4, 2, 1), {"stride": 2, "bias": False}, (2, 4, 5, 4, 3)),
    ("Conv3d", (2, 3, 2), {"padding": 1, "padding_mode": "reflect"}, (2, 3, 3, 4)),
    ("Conv3d", (2, 3, 3), {"padding": 1, "padding_mode": "circular"}, (2, 2, 3, 4, 3)),
    ("ConvTranspose1d", (3, 4, 3), {"stride": 2, "output_padding": 1}, (2, 3, 5)),
    ("ConvTranspose1d", (4, 2, 4), {"groups": 2, "padding": 1, "dilation": 2, "bias": False}, (4, 6)),
    ("ConvTranspose2d", (3, 4, 3), {}, (2, 3, 5, 4)),
    ("ConvTranspose2d", (4, 2, 3), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, (2, 4, 4, 5)),
    ("ConvTranspose2d", (3, 2, (2, 3)), {"stride": (2, 1), "dilation": 2, "bias": False}, (1, 3, 3, 3)),
    ("ConvTranspose2d", (4, 4, 3), {"groups": 4, "stride": 2}, (2, 4, 3, 3)),
    ("ConvTranspose2d", (4, 3, 1), {"stride": 2, "output_padding": 1}, (2, 4, 3, 4)),
    ("ConvTranspose2d", (4, 3, 1), {}, (2, 4, 3, 4)),
    ("ConvTranspose3d", (3, 2, 3), {"stride": 2, "padding": 1, "output_padding": (1, 0, 1)}, (2, 3, 3, 4, 2)),
    ("ConvTranspose3d", (4, 4, (2, 3, 1)), {"groups": 2, "dilation": (2, 1, 1)}, (4, 2, 3, 3)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,args,kwargs,shape", MODULES, ids=lambda v: str(v))
def test_module_matches_torch(same, rng, name, args, kwargs, shape, dtype):
    dm, tm = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    same(dm, tm, [rng.standard_normal(shape)], dtype)
    assert repr(dm) == repr(tm)
    assert list(dm.state_dict()) == list(tm.state_dict())


def grads_match(d_fn, t_fn, arrays, rtol=1e-7, atol=1e-9, transform=None):
    """Run d_fn / t_fn on the same float arrays (all requiring grad), backprop one upstream
    gradient and compare the output and every input's gradient."""
    d_in = [distml.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    d_args, t_args = (transform(d_in), transform(t_in)) if transform else (d_in, t_in)
    d_out, t_out = d_fn(*d_args), t_fn(*t_args)
    np.testing.assert_allclose(d_out.detach().numpy(), t_out.detach().numpy(), rtol=rtol, atol=atol)
    upstream = np.random.default_rng(3).standard_normal(tuple(t_out.shape)).astype(arrays[0].dtype)
    d_out.backward(distml.tensor(upstream))
    t_out.backward(torch.from_numpy(upstream))
    for d, t in zip(d_in, t_in):
        np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,x_shape,w_shape,kwargs", [
    ("conv2d", (2, 4, 6, 7), (6, 4, 3, 3), {"padding": 1}),
    ("conv2d", (1, 4, 8, 6), (4, 1, 3, 3), {"stride": 2, "groups": 4}),
    ("conv2d", (2, 4, 6, 7), (5, 4, 1, 1), {"stride": 2}),
    ("conv1d", (2, 3, 9), (4, 3, 2), {"dilation": 3}),
    ("conv3d", (2, 2, 4, 5, 6), (3, 2, 2, 3, 2), {"padding": (1, 0, 1), "stride": (1, 2, 1)}),
    ("conv_transpose2d", (2, 4, 4, 5), (4, 3, 3, 2), {"stride": 2, "padding": (1, 0)}),
    ("conv_transpose3d", (2, 4, 2, 3, 2), (4, 1, 2, 2, 3), {"groups": 2, "stride": (1, 2, 1)}),
])
def test_non_contiguous_input_and_bias(rng, name, x_shape, w_shape, kwargs, dtype):
    """The input is a transposed view (its strides not C-order); weight and bias get gradients too."""
    x = rng.standard_normal(x_shape[:-2] + x_shape[-2:][::-1]).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    out_channels = w_shape[1] * kwargs.get("groups", 1) if "transpose" in name else w_shape[0]
    b = rng.standard_normal(out_channels).astype(dtype)
    tol = {"rtol": 1e-7, "atol": 1e-9} if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-4}
    grads_match(lambda x, w, b: getattr(F, name)(x, w, b, **kwargs),
                lambda x, w, b: getattr(torch.nn.functional, name)(x, w, b, **kwargs), [x, w, b],
                transform=lambda t: [t[0].transpose(-1, -2), t[1], t[2]], **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,kwargs", [
    ((2, 3, 6, 7), {"kernel_size": 3}),
    ((2, 3, 6, 7), {"kernel_size": (2, 3), "stride": (2, 1), "padding": 1, "dilation": (1, 2)}),
    ((3, 5, 4), {"kernel_size": 2, "stride": 2}),
    ((1, 2, 5, 5), {"kernel_size": 1}),
])
def test_unfold_fold_match_torch(rng, shape, kwargs, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    grads_match(lambda x: F.unfold(x, **kwargs), lambda x: torch.nn.functional.unfold(x, **kwargs), [x])
    cols = torch.nn.functional.unfold(torch.tensor(x), **kwargs).numpy()
    size = shape[-2:]
    grads_match(lambda c: F.fold(c, size, **kwargs), lambda c: torch.nn.functional.fold(c, size, **kwargs), [cols])
    d_layer, t_layer = nn.Unfold(**kwargs), torch.nn.Unfold(**kwargs)
    assert repr(d_layer) == repr(t_layer)
    np.testing.assert_allclose(d_layer(distml.tensor(x)).numpy(), t_layer(torch.tensor(x)).numpy())
    d_layer, t_layer = nn.Fold(size, **kwargs), torch.nn.Fold(size, **kwargs)
    assert repr(d_layer) == repr(t_layer)
    np.testing.assert_allclose(d_layer(distml.tensor(cols)).numpy(), t_layer(torch.tensor(cols)).numpy())


@pytest.mark.parametrize("name,args,kwargs,shape,output_size", [
    ("ConvTranspose2d", (4, 2, 3), {"stride": 2}, (1, 4, 5, 5), (12, 12)),
    ("ConvTranspose2d", (4, 2, 3), {"stride": 3, "padding": 1}, (1, 4, 5, 4), (1, 2, 15, 11)),
    ("ConvTranspose2d", (4, 2, 3), {"stride": 2}, (4, 5, 5), [2, 11, 12]),
    ("ConvTranspose1d", (3, 2, 2), {"stride": 4}, (2, 3, 4), [17]),
    ("ConvTranspose3d", (2, 2, 2), {"stride": 2}, (1, 2, 2, 3, 2), (5, 7, 4)),
])
def test_conv_transpose_output_size(rng, name, args, kwargs, shape, output_size):
    dm, tm = getattr(nn, name)(*args, **kwargs).double(), getattr(torch.nn, name)(*args, **kwargs).double()
    dm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal(shape)
    grads_match(lambda x: dm(x, output_size=output_size), lambda x: tm(x, output_size=output_size), [x])


def test_default_initialisation():
    distml.manual_seed(0)
    for layer in (nn.Conv1d(3, 300, 4), nn.Conv2d(8, 400, 3, groups=2), nn.Conv3d(2, 200, 3),
                  nn.ConvTranspose2d(300, 4, 3), nn.ConvTranspose3d(200, 4, 2, groups=2)):
        fan_in = layer.weight.shape[1] * int(np.prod(layer.kernel_size))
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_ with a = sqrt(5)
        w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound
        assert np.abs(b).max() <= bound


def raises_like_torch(d_fn, t_fn, exact=True):
    """distml raises what torch raises: the same exception type and (with exact) message."""
    with pytest.raises(Exception) as t_error:
        t_fn()
    with pytest.raises(type(t_error.value)) as d_error:
        d_fn()
    if exact:
        assert str(d_error.value) == str(t_error.value)


@pytest.mark.parametrize("fn,x_shape,w_shape,kwargs", [
    ("conv2d", (2, 5, 8, 8), (4, 3, 3, 3), {}),
    ("conv2d", (8, 8), (4, 3, 3, 3), {}),
    ("conv2d", (1, 3, 2, 2), (4, 3, 3, 3), {}),
    ("conv2d", (2, 4, 5, 5), (3, 2, 2, 2), {"groups": 2}),
    ("conv2d", (2, 4, 5, 5), (3, 4, 2, 2), {"groups": 0}),
    ("conv2d", (2, 4, 5, 5), (3, 4, 2, 2), {"stride": 0}),
    ("conv2d", (2, 4, 5, 5), (3, 4, 2, 2), {"padding": -1}),
    ("conv2d", (2, 4, 5, 5), (3, 4, 2, 2), {"dilation": 0}),
    ("conv2d", (2, 4, 5, 5), (3, 4, 2, 2), {"stride": (1, 2, 3)}),
    ("conv2d", (2, 4, 5, 5), (3, 4, 2, 2), {"padding": "foo"}),
    ("conv2d", (2, 4, 5, 5), (3, 4, 2, 2), {"padding": "same", "stride": 2}),
    ("conv1d", (2, 4, 5), (3, 4), {}),
    ("conv1d", (2, 4, 5), (3, 4, 7), {}),
    ("conv3d", (2, 4, 5), (3, 4, 2, 2, 2), {}),
    ("conv3d", (2, 4, 5, 5, 5), (3, 4, 7, 2, 2), {}),
    ("conv3d", (2, 4, 5, 5, 5), (3, 4, 2, 2), {}),
    ("conv_transpose2d", (2, 4, 5, 5), (3, 4, 2, 2), {}),
    ("conv_transpose2d", (2, 4, 5, 5), (4, 2, 2, 2), {"groups": 3}),
    ("conv_transpose1d", (2, 4, 1, 1), (4, 2, 1), {}),
    ("conv_transpose3d", (2, 4, 1, 1, 1), (4, 2, 1, 1, 1), {"stride": 0}),
])
def test_conv_errors_match_torch(fn, x_shape, w_shape, kwargs):
    x, w = np.zeros(x_shape, dtype=np.float32), np.zeros(w_shape, dtype=np.float32)
    raises_like_torch(lambda: getattr(F, fn)(distml.tensor(x), distml.tensor(w), **kwargs),
                      lambda: getattr(torch.nn.functional, fn)(torch.tensor(x), torch.tensor(w), **kwargs))


def test_conv_bias_and_dtype_errors():
    x, w = np.zeros((2, 4, 5, 5)), np.zeros((3, 4, 2, 2))
    raises_like_torch(lambda: F.conv2d(distml.tensor(x), distml.tensor(w), distml.zeros(4, dtype=distml.float64)),
                      lambda: torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.zeros(4).double()))
    wt = np.zeros((4, 2, 2, 2))
    raises_like_torch(lambda: F.conv_transpose2d(distml.tensor(x), distml.tensor(wt), distml.zeros(3).double()),
                      lambda: torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(wt),
                                                                   torch.zeros(3).double()))
    with pytest.raises(RuntimeError, match=r"Input type \(Float\) and weight type \(Double\) should be the same"):
        F.conv2d(distml.zeros(2, 4, 5, 5), distml.tensor(w))
    with pytest.raises(RuntimeError, match="output padding must be smaller than either stride or dilation"):
        F.conv_transpose2d(distml.tensor(x), distml.tensor(wt), stride=2, output_padding=2)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        F.conv_transpose2d(distml.zeros(1, 4, 1, 1).double(), distml.tensor(wt), padding=1)


def test_module_errors_match_torch():
    for kwargs in ({"groups": 3}, {"groups": 0}, {"padding": "foo"}, {"padding": "same", "stride": 2}):
        raises_like_torch(lambda: nn.Conv2d(4, 2, 3, **kwargs), lambda: torch.nn.Conv2d(4, 2, 3, **kwargs),
                          exact=False)
    raises_like_torch(lambda: nn.Conv2d(4, 3, 3, groups=2), lambda: torch.nn.Conv2d(4, 3, 3, groups=2))
    raises_like_torch(lambda: nn.ConvTranspose3d(4, 2, 3, padding_mode="reflect"),
                      lambda: torch.nn.ConvTranspose3d(4, 2, 3, padding_mode="reflect"))
    with pytest.raises(ValueError, match=r"padding_mode must be one of \{'zeros', 'reflect', 'replicate', "
                                         r"'circular'\}, but got padding_mode='foo'"):
        nn.Conv1d(4, 2, 3, padding_mode="foo")
    dm, tm = nn.ConvTranspose2d(4, 2, 3, stride=2), torch.nn.ConvTranspose2d(4, 2, 3, stride=2)
    for size in ([13, 13], [1, 12], [10, 11, 12]):
        with pytest.raises(ValueError) as t_error:
            tm(torch.zeros(1, 4, 5, 5), output_size=size)
        with pytest.raises(ValueError) as d_error:
            dm(distml.zeros(1, 4, 5, 5), output_size=size)
        assert str(d_error.value).split(" (for an input")[0] == str(t_error.value).split(" (for an input")[0]


@pytest.mark.parametrize("call", [
    lambda F, x: F.unfold(x.reshape(1, 2, 3, 8, 8), 2),
    lambda F, x: F.unfold(x, 9),
    lambda F, x: F.unfold(x, 0),
    lambda F, x: F.unfold(x, 2, stride=0),
    lambda F, x: F.unfold(x, 2, padding=-1),
    lambda F, x: F.unfold(x, 2, dilation=0),
    lambda F, x: F.unfold(x, (2, 2, 2)),
    lambda F, x: F.fold(x.reshape(2, 12, 16, 1)[:, :, :15, 0], (5, 5), 2),
    lambda F, x: F.fold(x.reshape(2, 12, 16, 1)[:, :11, :, 0], (5, 5), 2),
    lambda F, x: F.fold(x.reshape(2, 12, 16, 1), (5, 5), 2),
    lambda F, x: F.fold(x.reshape(2, 12, 16), (5, 5, 5), 2),
    lambda F, x: F.fold(x.reshape(2, 12, 16), (5, 5), 2, stride=0),
])
def test_unfold_fold_errors_match_torch(call):
    x = np.zeros((2, 3, 8, 8))
    raises_like_torch(lambda: call(F, distml.tensor(x)), lambda: call(torch.nn.functional, torch.tensor(x)))


@pytest.mark.parametrize("fn,w_shape", [("conv2d", (3, 4, 2, 2)), ("conv2d", (3, 4, 1, 1)),
                                        ("conv_transpose2d", (4, 3, 2, 2))])
def test_empty_batch(rng, fn, w_shape):
    arrays = [np.zeros((0, 4, 5, 5)), rng.standard_normal(w_shape)]
    grads_match(getattr(F, fn), getattr(torch.nn.functional, fn), arrays)
