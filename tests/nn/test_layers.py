"""Each layer against PyTorch: same weights (loaded through state_dict), same inputs;
outputs, input gradients and parameter gradients agree."""
import numpy as np
import pytest
import torch

import distml
from distml import nn


def both(name, *args, **kwargs):
    return getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)


LAYERS = [
    ("Linear", (5, 3), {}, [(4, 5)]),
    ("Linear", (5, 3), {"bias": False}, [(2, 6, 5)]),
    ("Linear", (5, 3), {}, [(5,)]),
    ("Linear", (5, 3), {}, [(0, 5)]),
    ("Linear", (0, 3), {}, [(4, 0)]),
    ("Identity", (), {}, [(3, 4)]),
    ("Flatten", (), {}, [(2, 3, 4, 5)]),
    ("Unflatten", (1, (2, 3)), {}, [(4, 6)]),
    ("Conv2d", (3, 4, 3), {}, [(2, 3, 7, 6)]),
    ("Conv2d", (3, 4, (3, 2)), {"stride": 2, "padding": 1, "dilation": (2, 1)}, [(2, 3, 9, 8)]),
    ("Conv2d", (4, 6, 3), {"groups": 2, "bias": False}, [(2, 4, 5, 5)]),
    ("Conv2d", (2, 3, 4), {"padding": "same"}, [(2, 2, 6, 7)]),
    ("Conv2d", (2, 3, 3), {"padding": "same", "dilation": 2}, [(1, 2, 6, 5)]),
    ("Conv2d", (2, 3, 3), {"padding": "valid", "stride": (1, 2)}, [(2, 2, 6, 7)]),
    ("Conv2d", (3, 4, 3), {}, [(3, 7, 6)]),
    ("Conv1d", (3, 5, 3), {"stride": 2, "padding": 1}, [(2, 3, 11)]),
    ("Conv1d", (4, 4, 3), {"groups": 4, "padding": "same", "dilation": 2}, [(2, 4, 9)]),
    ("ConvTranspose2d", (3, 4, 3), {}, [(2, 3, 5, 4)]),
    ("ConvTranspose2d", (4, 2, 3), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, [(2, 4, 4, 5)]),
    ("ConvTranspose2d", (3, 2, (2, 3)), {"stride": (2, 1), "dilation": 2, "bias": False}, [(1, 3, 3, 3)]),
    ("MaxPool2d", (2,), {}, [(2, 3, 8, 6)]),
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, [(2, 2, 9, 8)]),
    ("MaxPool2d", ((3, 2),), {"stride": (2, 1), "dilation": 2}, [(1, 2, 9, 7)]),
    ("MaxPool2d", (2,), {}, [(3, 6, 6)]),
    ("AvgPool2d", (2,), {}, [(2, 3, 8, 6)]),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "count_include_pad": False}, [(2, 2, 9, 8)]),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, [(2, 2, 8, 8)]),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}, [(2, 2, 8, 8)]),
    ("AdaptiveAvgPool2d", ((3, 2),), {}, [(2, 3, 7, 5)]),
    ("AdaptiveAvgPool2d", (1,), {}, [(2, 3, 4, 4)]),
    ("AdaptiveAvgPool2d", ((None, 2),), {}, [(2, 3, 5, 4)]),
    ("LayerNorm", (6,), {}, [(3, 4, 6)]),
    ("LayerNorm", ((4, 6),), {"elementwise_affine": False}, [(3, 4, 6)]),
    ("GroupNorm", (2, 6), {}, [(3, 6, 4, 2)]),
    ("GroupNorm", (3, 6), {"affine": False}, [(3, 6, 5)]),
    ("ReLU", (), {}, [(4, 5)]),
    ("LeakyReLU", (0.2,), {}, [(4, 5)]),
    ("ELU", (0.7,), {}, [(4, 5)]),
    ("Hardtanh", (), {}, [(4, 5)]),
    ("Hardtanh", (-0.3, 0.8), {}, [(4, 5)]),
    ("ReLU6", (), {}, [(4, 5)]),
    ("GELU", (), {}, [(4, 5)]),
    ("GELU", (), {"approximate": "tanh"}, [(4, 5)]),
    ("SiLU", (), {}, [(4, 5)]),
    ("Sigmoid", (), {}, [(4, 5)]),
    ("Tanh", (), {}, [(4, 5)]),
    ("Softmax", (1,), {}, [(4, 5)]),
    ("LogSoftmax", (-1,), {}, [(3, 4, 5)]),
    ("Softplus", (), {}, [(4, 5)]),
    ("Softplus", (2.0, 1.0), {}, [(4, 5)]),
    ("Threshold", (0.1, 20.0), {}, [(4, 5)]),
    ("SELU", (), {}, [(4, 5)]),
    ("CELU", (0.5,), {}, [(4, 5)]),
    ("Mish", (), {}, [(4, 5)]),
    ("Hardswish", (), {}, [(4, 5)]),
    ("Hardsigmoid", (), {}, [(4, 5)]),
    ("PReLU", (), {}, [(4, 5)]),
    ("PReLU", (3, 0.1), {}, [(2, 3, 4)]),
    ("GLU", (), {}, [(4, 6)]),
    ("GLU", (1,), {}, [(2, 4, 3)]),
    ("LogSigmoid", (), {}, [(4, 5)]),
    ("Softmin", (1,), {}, [(4, 5)]),
    ("Softsign", (), {}, [(4, 5)]),
    ("Softshrink", (0.7,), {}, [(4, 5)]),
    ("Hardshrink", (), {}, [(4, 5)]),
    ("Tanhshrink", (), {}, [(4, 5)]),
    ("Softmax2d", (), {}, [(2, 3, 4, 5)]),
    ("Bilinear", (3, 4, 5), {}, [(6, 3), (6, 4)]),
    ("Bilinear", (3, 4, 2), {"bias": False}, [(2, 6, 3), (2, 6, 4)]),
    ("Bilinear", (3, 4, 5), {}, [(3,), (4,)]),
    ("ConstantPad1d", ((1, 2), 3.5), {}, [(2, 3, 4)]),
    ("ConstantPad2d", (1, -1.0), {}, [(2, 3, 4)]),
    ("ConstantPad3d", ((1, 0, 2, 1, 0, 1), 0.5), {}, [(2, 2, 3, 4)]),
    ("ZeroPad1d", (2,), {}, [(3, 4)]),
    ("ZeroPad2d", ((1, 2, 0, 1),), {}, [(2, 3, 4)]),
    ("ZeroPad3d", (1,), {}, [(1, 2, 3, 2, 2)]),
    ("ReflectionPad1d", ((2, 1),), {}, [(2, 3, 4)]),
    ("ReflectionPad2d", (2,), {}, [(2, 3, 4, 5)]),
    ("ReflectionPad3d", ((1, 2, 0, 1, 1, 1),), {}, [(2, 3, 3, 4)]),
    ("ReplicationPad1d", ((3, 1),), {}, [(3, 4)]),
    ("ReplicationPad2d", ((1, 2, 3, 0),), {}, [(2, 3, 4, 5)]),
    ("ReplicationPad3d", (1,), {}, [(1, 2, 3, 2, 2)]),
    ("CircularPad1d", ((2, 1),), {}, [(2, 3, 4)]),
    ("CircularPad2d", (1,), {}, [(3, 4, 5)]),
    ("CircularPad3d", ((1, 0, 2, 1, 0, 1),), {}, [(1, 2, 3, 3, 4)]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,args,kwargs,shapes", LAYERS, ids=lambda v: str(v))
def test_layer_matches_torch(same, rng, name, args, kwargs, shapes, dtype):
    dm, tm = both(name, *args, **kwargs)
    inputs = [rng.standard_normal(s) * 2 for s in shapes]
    same(dm, tm, inputs, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (8, 4)), ("BatchNorm1d", (6, 4, 5)), ("BatchNorm2d", (4, 4, 3, 5))])
def test_batchnorm_train_then_eval(same, rng, cls, shape, dtype):
    dm, tm = both(cls, 4)
    for _ in range(3):
        same(dm, tm, [rng.standard_normal(shape) * 3 + 1], dtype)
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(dm, key).numpy(), getattr(tm, key).numpy(), rtol=1e-5)
    assert int(dm.num_batches_tracked) == int(tm.num_batches_tracked) == 3
    dm.eval(), tm.eval()
    same(dm, tm, [rng.standard_normal(shape)], dtype)


@pytest.mark.parametrize("kwargs", [{"momentum": None}, {"affine": False}, {"track_running_stats": False}])
def test_batchnorm_options(rng, kwargs):
    dm, tm = both("BatchNorm2d", 3, **kwargs)
    tm.double(), dm.double()
    for step in range(3):
        x = rng.standard_normal((4, 3, 2, 2)) + step
        out_d, out_t = dm(distml.tensor(x)), tm(torch.tensor(x))
        np.testing.assert_allclose(out_d.detach().numpy(), out_t.detach().numpy(), rtol=1e-7, atol=1e-9)
    assert dm.state_dict().keys() == tm.state_dict().keys()
    for key, value in tm.state_dict().items():
        np.testing.assert_allclose(dm.state_dict()[key].numpy(), value.numpy(), rtol=1e-7)
    dm.eval(), tm.eval()
    x = rng.standard_normal((4, 3, 2, 2))
    np.testing.assert_allclose(dm(distml.tensor(x)).detach().numpy(), tm(torch.tensor(x)).detach().numpy(),
                               rtol=1e-7, atol=1e-9)


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input size"):
        nn.BatchNorm1d(3)(distml.randn(1, 3))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input\)"):
        nn.BatchNorm2d(3)(distml.randn(2, 3))


def test_embedding_padding_idx(rng):
    dm, tm = both("Embedding", 7, 3, padding_idx=2)
    assert np.all(dm.weight.detach().numpy()[2] == 0)
    tm.double(), dm.double()
    dm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    idx = np.array([[1, 2, 3], [2, 2, 6]])
    out_d, out_t = dm(distml.tensor(idx)), tm(torch.tensor(idx))
    np.testing.assert_array_equal(out_d.detach().numpy(), out_t.detach().numpy())
    g = rng.standard_normal((2, 3, 3))
    out_d.backward(distml.tensor(g)), out_t.backward(torch.tensor(g))
    np.testing.assert_allclose(dm.weight.grad.numpy(), tm.weight.grad.numpy())
    assert np.all(dm.weight.grad.numpy()[2] == 0)
    with pytest.raises(IndexError, match="index out of range in self"):
        dm(distml.tensor([7]))
    with pytest.raises(RuntimeError, match="Expected tensor for argument #1 'indices'"):
        dm(distml.tensor([1.0]))


def test_dropout(rng):
    distml.manual_seed(0)
    layer = nn.Dropout(0.3)
    x = distml.ones(200, 100, requires_grad=True)
    y = layer(x)
    kept = y.detach().numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7, rtol=1e-6)
    layer.eval()
    assert layer(x) is x
    assert nn.functional.dropout(x, 1.0).detach().numpy().sum() == 0
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


@pytest.mark.parametrize("args", [(3, 2, 1), (2, 2), (3, 1), (2, 1, 0, 2), (3, 2, 0, 1, True)])
def test_max_pool_return_indices(rng, args):
    x = rng.standard_normal((2, 3, 7, 6))
    x[0, 0, 0, :2] = np.nan  # NaN wins (the last one in a window), as in PyTorch
    x[1, 1, 2:5, 2:5] = -np.inf
    out_d, idx_d = nn.functional.max_pool2d(distml.tensor(x), *args, return_indices=True)
    out_t, idx_t = torch.nn.functional.max_pool2d(torch.tensor(x), *args, return_indices=True)
    np.testing.assert_array_equal(out_d.numpy(), out_t.numpy())
    np.testing.assert_array_equal(idx_d.numpy(), idx_t.numpy())
    assert idx_d.dtype == distml.int64


def test_sequential_and_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is seq[0]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and list(seq._modules) == ["0", "1", "2", "3"]
    assert seq(distml.randn(5, 2)).shape == (5, 1)
    with pytest.raises(IndexError):
        seq[4]
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.ReLU())
    assert len(list(layers.parameters())) == 6 and len(layers) == 4
    assert repr(layers) == repr(torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(3)] + [torch.nn.ReLU()]))
    heads = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.Linear(2, 1)})
    assert list(heads.keys()) == ["a", "b"] and "a" in heads
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]


def test_conv_errors():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(RuntimeError, match=r"Given groups=1, weight of size \[4, 3, 3, 3\], expected "
                                           r"input\[2, 5, 8, 8\] to have 3 channels, but got 5 channels instead"):
        conv(distml.randn(2, 5, 8, 8))
    with pytest.raises(RuntimeError, match=r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d"):
        conv(distml.randn(8, 8))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        conv(distml.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(4x5 and 6x3\)"):
        nn.Linear(6, 3)(distml.randn(4, 5))


def transposed_linear(lib):
    """Linear(5, 3) of a transposed (non-contiguous) 3-d view, as MultiheadAttention(batch_first=True) makes."""
    class TransposedLinear(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = lib.nn.Linear(5, 3)

        def forward(self, x):
            return self.inner(x.transpose(0, 1))

    return TransposedLinear()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_of_a_transposed_view(same, rng, dtype):
    same(transposed_linear(distml), transposed_linear(torch), [rng.standard_normal((4, 6, 5))], dtype)


def test_lenet_end_to_end(same, rng):
    def lenet(lib):
        return lib.nn.Sequential(lib.nn.Conv2d(1, 6, 5, padding=2), lib.nn.ReLU(), lib.nn.MaxPool2d(2),
                                 lib.nn.Conv2d(6, 16, 5), lib.nn.ReLU(), lib.nn.MaxPool2d(2), lib.nn.Flatten(),
                                 lib.nn.Linear(400, 120), lib.nn.ReLU(), lib.nn.Linear(120, 84), lib.nn.ReLU(),
                                 lib.nn.Linear(84, 10))
    same(lenet(distml), lenet(torch), [rng.standard_normal((4, 1, 28, 28))], np.float32)


@pytest.mark.parametrize("name", sorted(
    name for name, value in vars(torch.nn).items()
    if isinstance(value, type) and issubclass(value, torch.nn.Module) and value is not torch.nn.Module
    and hasattr(nn, name)))
def test_class_paths_mirror_torch(name):
    """`torch.nn.modules.<file>.<name>` has a twin `distml.nn.modules.<file>.<name>` (pickles name classes so)."""
    import importlib
    path = getattr(torch.nn, name).__module__.replace("torch", "distml", 1)
    assert getattr(importlib.import_module(path), name) is getattr(nn, name)
    assert nn.modules.linear.NonDynamicallyQuantizableLinear.__mro__[1] is nn.Linear
    assert type(nn.MultiheadAttention(4, 2).out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear
