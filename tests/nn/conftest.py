import numpy as np
import pytest
import torch

import distml


def run_both(dm, tm, inputs, dtype=np.float64, grad_inputs=True, rng=None):
    """Copy torch's weights into the distml module (through state_dict, as numpy arrays), run
    both on the same inputs, backprop a random upstream gradient, return what to compare."""
    tm = tm.to(torch.float64 if dtype == np.float64 else torch.float32)
    dm.to(distml.float64 if dtype == np.float64 else distml.float32)
    dm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    d_in, t_in = [], []
    for x in inputs:
        x = np.asarray(x)
        differentiable = grad_inputs and x.dtype.kind == "f"
        x = x.astype(dtype) if x.dtype.kind == "f" else x
        d_in.append(distml.tensor(x, requires_grad=differentiable))
        t_in.append(torch.tensor(x, requires_grad=differentiable))
    d_out, t_out = dm(*d_in), tm(*t_in)
    rng = rng or np.random.default_rng(1)
    upstream = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    d_out.backward(distml.tensor(upstream))
    t_out.backward(torch.from_numpy(upstream))
    return d_in, t_in, d_out, t_out


def assert_same(dm, tm, inputs, dtype=np.float64, rtol=None, atol=None, grad_inputs=True):
    rtol = rtol or (1e-7 if dtype == np.float64 else 1e-4)
    atol = atol or (1e-9 if dtype == np.float64 else 1e-5)
    d_in, t_in, d_out, t_out = run_both(dm, tm, inputs, dtype, grad_inputs)
    np.testing.assert_allclose(d_out.detach().numpy(), t_out.detach().numpy(), rtol=rtol, atol=atol)
    assert d_out.dtype.name == str(t_out.dtype).replace("torch.", "")
    for d, t in zip(d_in, t_in):
        if t.requires_grad:
            np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)
    t_params = dict(tm.named_parameters())
    for name, p in dm.named_parameters():
        t_grad = t_params[name].grad
        if t_grad is None:
            assert p.grad is None or not np.any(p.grad.numpy()), name
        else:
            np.testing.assert_allclose(p.grad.numpy(), t_grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture
def same():
    """`same(distml_module, torch_module, [inputs], dtype=np.float64)`: outputs and all gradients agree."""
    return assert_same
