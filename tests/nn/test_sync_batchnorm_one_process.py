"""SyncBatchNorm in one process (against PyTorch's, which normalises as BatchNorm without a
process group) and convert_sync_batchnorm; tests/mpi/test_sync_batchnorm.py covers several ranks."""
import numpy as np
import pytest
import torch

import distml
from distml import nn


def both(*args, **kwargs):
    return nn.SyncBatchNorm(*args, **kwargs), torch.nn.SyncBatchNorm(*args, **kwargs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,kwargs", [((4, 3), {}), ((3, 3, 5), {"momentum": None}),
                                          ((2, 3, 4, 5), {"affine": False}), ((2, 3, 2, 3, 2), {"bias": False}),
                                          ((5, 3, 4), {"track_running_stats": False})])
def test_training_then_eval_matches_torch(dtype, shape, kwargs):
    dm, tm = both(3, **kwargs)
    tm = tm.to(torch.float64 if dtype == np.float64 else torch.float32)
    dm.to(distml.float64 if dtype == np.float64 else distml.float32)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    rng = np.random.default_rng(0)
    if dm.affine:
        weight = rng.uniform(0.5, 1.5, 3).astype(dtype)
        dm.weight.array[...] = weight
        tm.weight.data = torch.from_numpy(weight.copy())
    for step in range(3):
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        upstream = rng.standard_normal(shape).astype(dtype)
        dx, tx = distml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        d_out, t_out = dm(dx), tm(tx)
        d_out.backward(distml.tensor(upstream))
        t_out.backward(torch.from_numpy(upstream))
        np.testing.assert_allclose(d_out.detach().numpy(), t_out.detach().numpy(), **tol)
        np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), **tol)
    for (name, p), (_, q) in zip(dm.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), err_msg=name, **tol)
    assert list(dm.state_dict()) == list(tm.state_dict())
    for key, value in tm.state_dict().items():
        np.testing.assert_allclose(dm.state_dict()[key].detach().numpy(), value.numpy(), err_msg=key, **tol)
    dm.eval(), tm.eval()
    x = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_allclose(dm(distml.tensor(x)).detach().numpy(), tm(torch.tensor(x)).detach().numpy(), **tol)


def test_repr_and_process_group():
    dm, tm = both(5, eps=1e-3, affine=False)
    assert repr(dm) == repr(tm)
    assert nn.SyncBatchNorm(2, process_group="g").process_group == "g"


@pytest.mark.parametrize("make,error,message", [
    (lambda lib: lib.nn.SyncBatchNorm(3)(lib.zeros(3)), ValueError, r"expected at least 2D input \(got 1D input\)"),
    (lambda lib: lib.nn.SyncBatchNorm(3)(lib.zeros(2, 0, 4)), ValueError,
     "SyncBatchNorm number of input channels should be non-zero"),
    (lambda lib: lib.nn.SyncBatchNorm(3)(lib.zeros(1, 3)), ValueError, "Expected more than 1 value per channel"),
])
def test_errors_as_torch(make, error, message):
    for lib in (distml, torch):
        with pytest.raises(error, match=message):
            make(lib)


def nested(lib):
    block = lib.nn.Sequential(lib.nn.Conv2d(2, 4, 3), lib.nn.BatchNorm2d(4, momentum=0.2), lib.nn.ReLU())
    return lib.nn.Sequential(block, lib.nn.Flatten(), lib.nn.Linear(4, 3), lib.nn.BatchNorm1d(3, affine=False))


def test_convert_sync_batchnorm_keeps_weights_buffers_and_nesting():
    model = nested(distml)
    model[0][1].running_mean.array[...] = [1, 2, 3, 4]
    model[3].eval()
    tensors = {name: t for name, t in list(model.named_parameters()) + list(model.named_buffers())}
    keys = list(model.state_dict())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group="group")
    reference = torch.nn.SyncBatchNorm.convert_sync_batchnorm(nested(torch))
    assert [type(m).__name__ for m in converted.modules()] == [type(m).__name__ for m in reference.modules()]
    assert repr(converted) == repr(reference)
    assert list(converted.state_dict()) == keys
    for name, t in list(converted.named_parameters()) + list(converted.named_buffers()):
        assert t is tensors[name], name
    bn, flat_bn = converted[0][1], converted[3]
    assert bn.process_group == "group" and bn.momentum == 0.2 and bn.training
    assert not flat_bn.training and flat_bn.weight is None
    assert converted[0][0] is model[0][0]


def test_convert_leaves_other_modules_alone():
    linear = nn.Linear(2, 2)
    assert nn.SyncBatchNorm.convert_sync_batchnorm(linear) is linear
