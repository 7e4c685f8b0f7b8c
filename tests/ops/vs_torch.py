"""The shared runner of the table-driven op tests: each case runs one expression under distml and
torch on the same float64 inputs (contiguous and transposed) and compares values, dtypes, shapes,
requires_grad and the gradients of every differentiable output."""
import warnings

import numpy as np
import pytest
import torch

import distml


def cases(table, arity):
    for name, f, shapes, *domain in table:
        f = f if isinstance(f, tuple) else (f, f)
        for shape in shapes:
            shape_set = shape if arity == 2 else (shape,)
            layouts = ["contiguous"] + (["transposed"] if any(len(s) >= 2 for s in shape_set) else [])
            for layout in layouts:
                yield pytest.param(f, shape_set, domain[0] if domain else None, layout,
                                   id=f"{name}-{'x'.join(map(str, shape_set))}-{layout}")


def _array(rng, shape, domain, transposed):
    data = np.asarray(rng.standard_normal(shape[::-1] if transposed else shape))
    if domain == "positive":
        data = np.asarray(np.abs(data) + 0.5)
    if domain == "unit":
        data = np.asarray(np.tanh(data))
    return data.T if transposed else data


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def check(f, shapes, domain, layout, rng):
    arrays = [_array(rng, s, domain, layout == "transposed" and len(s) >= 2) for s in shapes]
    xd = [distml.from_numpy(a).requires_grad_() for a in arrays]
    xt = [torch.from_numpy(a).requires_grad_() for a in arrays]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outs_d, outs_t = _flat(f[0](distml, *xd)), _flat(f[1](torch, *xt))
    assert len(outs_d) == len(outs_t)
    for od, ot in zip(outs_d, outs_t):
        assert od.dtype.name == str(ot.dtype).replace("torch.", "")
        assert tuple(od.shape) == tuple(ot.shape)
        np.testing.assert_allclose(od.detach().numpy(), ot.detach().numpy(), rtol=1e-7, atol=1e-10)
        assert od.requires_grad == ot.requires_grad
    differentiable = [(od, ot) for od, ot in zip(outs_d, outs_t) if ot.requires_grad]
    if not differentiable:
        return
    seeds = [torch.from_numpy(rng.standard_normal(tuple(ot.shape))) for _, ot in differentiable]
    loss_t = sum((ot * s).sum() for (_, ot), s in zip(differentiable, seeds))
    loss_d = sum((od * distml.from_numpy(s.numpy())).sum() for (od, _), s in zip(differentiable, seeds))
    loss_t.backward()
    loss_d.backward()
    for a, b in zip(xd, xt):
        expected = np.zeros(a.shape) if b.grad is None else b.grad.numpy()
        got = np.zeros(a.shape) if a.grad is None else a.grad.numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10)
