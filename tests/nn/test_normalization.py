"""Normalisation layers against PyTorch: outputs, input and parameter gradients (float64 and
float32), running statistics in training and their use in eval, state_dict keys, repr, and
PyTorch's errors and warnings."""
import warnings

import numpy as np
import pytest
import torch

import distml
from distml import nn

DTYPES = [np.float64, np.float32]


def both(name, *args, **kwargs):
    return getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)


LAYERS = [
    ("InstanceNorm1d", (3,), {}, (2, 3, 7)),
    ("InstanceNorm1d", (3,), {"affine": True}, (3, 6)),
    ("InstanceNorm2d", (4,), {"affine": True, "eps": 1e-3}, (2, 4, 5, 3)),
    ("InstanceNorm2d", (4,), {"affine": True, "bias": False}, (4, 3, 3)),
    ("InstanceNorm3d", (2,), {}, (2, 2, 3, 4, 2)),
    ("InstanceNorm3d", (2,), {"affine": True}, (2, 3, 2, 4)),
    ("RMSNorm", (6,), {}, (3, 4, 6)),
    ("RMSNorm", ((4, 6),), {"eps": 1e-2}, (3, 4, 6)),
    ("RMSNorm", ([5],), {"elementwise_affine": False}, (2, 5)),
    ("RMSNorm", (5,), {}, (5,)),
    ("LocalResponseNorm", (3,), {}, (2, 6, 5)),
    ("LocalResponseNorm", (2,), {"alpha": 0.5, "beta": 0.6, "k": 2.0}, (2, 5, 4, 3)),
    ("LocalResponseNorm", (4,), {"alpha": 1.0}, (1, 7, 2, 3, 2)),
    ("LocalResponseNorm", (1,), {"alpha": 0.3}, (2, 3, 4)),
    ("GroupNorm", (2, 4), {"eps": 1e-3}, (2, 4, 3, 2, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=lambda v: str(v))
def test_layer_matches_torch(same, rng, name, args, kwargs, shape, dtype):
    dm, tm = both(name, *args, **kwargs)
    with torch.no_grad():  # parameters other than the defaults, so that their gradients are tested too
        for p in tm.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape))))
    same(dm, tm, [rng.standard_normal(shape) * 2 + 0.5], dtype)


def buffers_agree(dm, tm, rtol):
    t_buffers = dict(tm.named_buffers())
    assert [k for k, _ in dm.named_buffers()] == list(t_buffers)
    for name, b in dm.named_buffers():
        np.testing.assert_allclose(b.numpy(), t_buffers[name].numpy(), rtol=rtol, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,shape,unbatched", [("InstanceNorm1d", (4, 3, 6), False),
                                                  ("InstanceNorm2d", (3, 3, 4, 5), False),
                                                  ("InstanceNorm2d", (3, 4, 5), True),
                                                  ("InstanceNorm3d", (2, 3, 2, 3, 2), False)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_instance_norm_running_stats(same, rng, name, shape, unbatched, momentum, dtype):
    dm, tm = both(name, 3, affine=True, track_running_stats=True, momentum=momentum)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    for _ in range(3):
        same(dm, tm, [rng.standard_normal(shape) * 3 + 1], dtype)
        buffers_agree(dm, tm, rtol)
    dm.eval()
    tm.eval()
    same(dm, tm, [rng.standard_normal(shape) * 3 + 1], dtype)
    buffers_agree(dm, tm, rtol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [False, True])
def test_batchnorm3d_train_then_eval(same, rng, affine, dtype):
    dm, tm = both("BatchNorm3d", 3, affine=affine)
    for _ in range(3):
        same(dm, tm, [rng.standard_normal((2, 3, 2, 3, 4)) * 3 + 1], dtype)
    buffers_agree(dm, tm, 1e-10 if dtype == np.float64 else 1e-5)
    dm.eval()
    tm.eval()
    same(dm, tm, [rng.standard_normal((2, 3, 2, 3, 4))], dtype)


def test_functional_forms(rng):
    F, TF = nn.functional, torch.nn.functional
    x = rng.standard_normal((2, 3, 4, 5))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    cases = [
        lambda f, lib, t: f.instance_norm(t(x)),
        lambda f, lib, t: f.instance_norm(t(x), weight=t(w), bias=t(b), eps=1e-2),
        lambda f, lib, t: f.instance_norm(t(x), t(rm), t(rv), t(w), t(b), use_input_stats=False),
        lambda f, lib, t: f.rms_norm(t(x), (4, 5)),
        lambda f, lib, t: f.rms_norm(t(x), [5], weight=t(w[:1].repeat(5)), eps=0.1),
        lambda f, lib, t: f.local_response_norm(t(x), 3, alpha=0.1),
        lambda f, lib, t: f.group_norm(t(x), 3, t(w), t(b)),
    ]
    for case in cases:
        d_in, t_in = distml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        d = case(F, distml, lambda a: d_in if a is x else distml.tensor(a))
        t = case(TF, torch, lambda a: t_in if a is x else torch.tensor(a))
        np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=1e-9, atol=1e-12)
        d.square().sum().backward()
        t.square().sum().backward()
        np.testing.assert_allclose(d_in.grad.numpy(), t_in.grad.numpy(), rtol=1e-8, atol=1e-10)
    running = [distml.tensor(rm), distml.tensor(rv)], [torch.tensor(rm), torch.tensor(rv)]
    F.instance_norm(distml.tensor(x), *running[0], momentum=0.3)
    TF.instance_norm(torch.tensor(x), *running[1], momentum=0.3)
    for d, t in zip(*running):
        np.testing.assert_allclose(d.numpy(), t.numpy(), rtol=1e-12)


def test_rms_norm_default_eps_is_the_dtype_epsilon():
    x = np.full((2, 3), 1e-4)  # mean square 1e-8: eps matters in float32, not in float64
    for dtype in DTYPES:
        d = nn.RMSNorm(3)(distml.tensor(x.astype(dtype)))
        t = torch.nn.RMSNorm(3)(torch.tensor(x.astype(dtype)))
        np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=1e-6)


def test_local_response_norm_empty_input():
    assert nn.functional.local_response_norm(distml.zeros(2, 3, 0), 2).shape == (2, 3, 0)


MODULES = [("InstanceNorm1d", (3,), {}), ("InstanceNorm2d", (3,), {"affine": True}),
           ("InstanceNorm3d", (4,), {"affine": True, "track_running_stats": True}),
           ("InstanceNorm1d", (4,), {"track_running_stats": True, "momentum": None}),
           ("BatchNorm3d", (2,), {}), ("BatchNorm3d", (2,), {"affine": False, "track_running_stats": False}),
           ("RMSNorm", (4,), {}), ("RMSNorm", ((2, 3),), {"eps": 1e-3, "elementwise_affine": False}),
           ("LocalResponseNorm", (3,), {}), ("LocalResponseNorm", (2, 0.1, 0.5, 2)),
           ("GroupNorm", (2, 4), {"affine": False})]


@pytest.mark.parametrize("name,args,kwargs", [m if len(m) == 3 else (m[0], m[1], {}) for m in MODULES],
                         ids=lambda v: str(v))
def test_repr_and_state_dict_keys(name, args, kwargs):
    dm, tm = both(name, *args, **kwargs)
    assert repr(dm) == repr(tm)
    assert list(dm.state_dict()) == list(tm.state_dict())
    for d, t in zip(dm.state_dict().values(), tm.state_dict().values()):
        np.testing.assert_array_equal(d.numpy(), t.numpy())
        assert d.dtype.name == str(t.dtype).replace("torch.", "")


def test_instance_norm_rejects_running_stats_of_old_checkpoints():
    state = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    for lib in (distml, torch):
        with pytest.raises(RuntimeError, match='Unexpected running stats buffer\\(s\\) "running_mean" and '
                                               '"running_var" for InstanceNorm1d with track_running_stats=False'):
            lib.nn.InstanceNorm1d(3).load_state_dict({k: lib.tensor(v) for k, v in state.items()})


def test_instance_norm_warns_when_channels_differ_without_affine():
    for lib in (distml, torch):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lib.nn.InstanceNorm1d(3)(lib.zeros(2, 4, 5))
        assert any("input's size at dim=1 does not match num_features" in str(w.message) for w in caught)


def test_errors():
    cases = [
        (lambda lib: lib.nn.InstanceNorm1d(3)(lib.zeros(2, 3, 4, 5)), ValueError, r"expected 2D or 3D input \(got 4D"),
        (lambda lib: lib.nn.InstanceNorm2d(3)(lib.zeros(3, 4)), ValueError, r"expected 3D or 4D input \(got 2D"),
        (lambda lib: lib.nn.InstanceNorm3d(3)(lib.zeros(3, 4, 5)), ValueError, r"expected 4D or 5D input \(got 3D"),
        (lambda lib: lib.nn.InstanceNorm1d(3, affine=True)(lib.zeros(2, 4, 5)), ValueError,
         r"expected input's size at dim=1 to match num_features \(3\), but got: 4\."),
        (lambda lib: lib.nn.InstanceNorm1d(3, affine=True)(lib.zeros(4, 5)), ValueError,
         r"expected input's size at dim=0 to match num_features \(3\), but got: 4\."),
        (lambda lib: lib.nn.InstanceNorm1d(3)(lib.zeros(2, 3, 1)), ValueError,
         "Expected more than 1 spatial element when training, got input size"),
        (lambda lib: lib.nn.functional.instance_norm(lib.zeros(2, 3, 4), use_input_stats=False), RuntimeError,
         "Expected running_mean and running_var to be defined when use_input_stats is false"),
        (lambda lib: lib.nn.functional.instance_norm(lib.zeros(2, 4, 3), weight=lib.ones(3)), RuntimeError,
         "weight should contain 8 elements not 6"),
        (lambda lib: lib.nn.functional.instance_norm(lib.zeros(2, 4, 3), lib.zeros(3), lib.ones(3)), RuntimeError,
         "running_mean should contain 8 elements not 6"),
        (lambda lib: lib.nn.BatchNorm3d(3)(lib.zeros(2, 3, 4, 5)), ValueError, r"expected 5D input \(got 4D input\)"),
        (lambda lib: lib.nn.BatchNorm2d(3)(lib.zeros(2, 3, 4)), ValueError, r"expected 4D input \(got 3D input\)"),
        (lambda lib: lib.nn.BatchNorm1d(3)(lib.zeros(2, 3, 4, 5)), ValueError,
         r"expected 2D or 3D input \(got 4D input\)"),
        (lambda lib: lib.nn.BatchNorm2d(3)(lib.zeros(2, 4, 3, 3)), RuntimeError,
         "running_mean should contain 4 elements not 3"),
        (lambda lib: lib.nn.functional.batch_norm(lib.zeros(2, 4, 3), lib.zeros(4), lib.ones(4), lib.ones(3),
                                                  training=True), RuntimeError,
         "weight should contain 4 elements not 3"),
        (lambda lib: lib.nn.functional.batch_norm(lib.zeros(2, 4, 3), None, None), RuntimeError,
         "running_mean must be defined in evaluation mode"),
        (lambda lib: lib.nn.functional.rms_norm(lib.zeros(2, 5), [3, 4]), RuntimeError,
         r"Given normalized_shape=\[3, 4\], expected input with shape \[\*3, 4\], but got input of size\[2, 5\]"),
        (lambda lib: lib.nn.functional.rms_norm(lib.zeros(3, 4), [4], weight=lib.ones(3)), RuntimeError,
         r"Expected weight to be of same shape as normalized_shape, but got weight of shape \[3\] and "
         r"normalized_shape = \[4\]"),
        (lambda lib: lib.nn.functional.rms_norm(lib.zeros(4), (3, 4)), ValueError,
         "Input tensor must have at least 2 dimensions, but got 1"),
        (lambda lib: lib.nn.functional.local_response_norm(lib.zeros(2, 3), 2), ValueError,
         r"Expected 3D or higher dimensionality\s+input \(got 2 dimensions\)"),
        (lambda lib: lib.nn.functional.local_response_norm(lib.zeros(2, 3, 4), 0), RuntimeError,
         "kernel size should be greater than zero, but got kH: 0 kW: 1"),
        (lambda lib: lib.nn.GroupNorm(3, 4), ValueError, r"num_channels \(4\) must be divisible by num_groups \(3\)"),
        (lambda lib: lib.nn.GroupNorm(2, 4)(lib.zeros(3, 6, 2)), RuntimeError,
         r"Expected weight to be a vector of size equal to the number of channels in input, but got weight of shape "
         r"\[4\] and input of shape \[3, 6, 2\]"),
        (lambda lib: lib.nn.functional.group_norm(lib.zeros(3, 4, 2), 2, bias=lib.ones(3)), RuntimeError,
         "Expected bias to be a vector of size equal to the number of channels in input, but got bias of shape"),
        (lambda lib: lib.nn.functional.group_norm(lib.zeros(3, 4, 2), 3), RuntimeError,
         r"Expected number of channels in input to be divisible by num_groups, but got input of shape \[3, 4, 2\] and "
         "num_groups=3"),
        (lambda lib: lib.nn.functional.group_norm(lib.zeros(3), 3), RuntimeError,
         "Expected at least 2 dimensions for input tensor but received 1"),
        (lambda lib: lib.nn.functional.group_norm(lib.zeros(1, 4), 4), ValueError,
         r"Expected more than 1 value per channel when training, got input size \[1, 4\]"),
    ]
    for call, error, message in cases:
        for lib in (distml, torch):
            with pytest.raises(error, match=message):
                call(lib)
