"""The compression hooks' float32 -> float16/bfloat16 cast and division (C++) bit for bit against
PyTorch's `t.to(dtype).div_(n)` and back, including overflow, subnormals, inf and nan; and
distml's own casts between float32 and the halves, which use the same kernels."""
import numpy as np
import pytest
import torch

import distml
from distml.distributed.algorithms.ddp_comm_hooks import default_hooks

HALVES = [(distml.float16, torch.float16), (distml.bfloat16, torch.bfloat16)]


def values():
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal(1001) * scale for scale in (1e-40, 1e-7, 1e-5, 1e-2, 1, 1e3, 7e4, 1e38)]
    parts.append([np.inf, -np.inf, np.nan, 0.0, -0.0, 65504.0, 65520.0, 6e-8, 3e-8, 3.39e38, 1e-45])
    return np.concatenate(parts).astype(np.float32)


def bits(t):
    """A torch half tensor's bits as numpy uint16 (numpy has no bfloat16)."""
    return t.view(torch.int16).numpy().view(np.uint16)


@pytest.mark.parametrize("divisor", [1, 2, 3, 7])
@pytest.mark.parametrize("dtype,torch_dtype", HALVES)
def test_cast_and_divide_match_torch(divisor, dtype, torch_dtype):
    x = values()
    got = default_hooks._to_half_divided(distml.from_numpy(x), dtype, divisor)
    expected = torch.from_numpy(x).to(torch_dtype).div_(divisor)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.numpy().view(np.uint16), bits(expected))
    back = distml.zeros(x.size)
    default_hooks._copy_from_half(back, got)
    np.testing.assert_array_equal(back.numpy(), expected.to(torch.float32).numpy())


@pytest.mark.parametrize("dtype,torch_dtype", HALVES)
def test_other_dtypes_take_the_general_path(dtype, torch_dtype):
    x = values().astype(np.float64)[1001:1051]
    got = default_hooks._to_half_divided(distml.from_numpy(x), dtype, 3)
    np.testing.assert_array_equal(got.numpy().view(np.uint16), bits(torch.from_numpy(x).to(torch_dtype).div_(3)))


@pytest.mark.parametrize("dtype,torch_dtype", HALVES)
def test_tensor_casts_between_float32_and_halves_match_torch(dtype, torch_dtype):
    x = values().reshape(-1, 3)[:, 1:]  # not contiguous
    mine, theirs = distml.from_numpy(x).requires_grad_(), torch.from_numpy(x).requires_grad_()
    half, torch_half = mine.to(dtype), theirs.to(torch_dtype)
    np.testing.assert_array_equal(half.detach().numpy().view(np.uint16), bits(torch_half.detach()))
    np.testing.assert_array_equal(half.float().detach().numpy(), torch_half.float().detach().numpy())
    finite = np.isfinite(torch_half.detach().float().numpy())
    weights = np.where(finite, np.linspace(-1, 1, finite.size).reshape(finite.shape), 0).astype(np.float32)
    (half.float() * distml.from_numpy(weights)).sum().backward()
    (torch_half.float() * torch.from_numpy(weights)).sum().backward()
    np.testing.assert_array_equal(mine.grad.numpy(), theirs.grad.numpy())
