"""The fp16 hook's float32 -> float16 cast (C++) bit for bit against PyTorch's
`t.to(torch.float16).div_(n)` and back, including overflow, subnormals, inf and nan."""
import numpy as np
import pytest
import torch

import distml
from distml.distributed.algorithms.ddp_comm_hooks import default_hooks


def values():
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal(1001) * scale for scale in (1e-7, 1e-5, 1e-2, 1, 1e3, 7e4)]
    parts.append([np.inf, -np.inf, np.nan, 0.0, -0.0, 65504.0, 65520.0, 6e-8, 3e-8])
    return np.concatenate(parts).astype(np.float32)


@pytest.mark.parametrize("divisor", [1, 2, 3, 7])
def test_cast_and_divide_match_torch(divisor):
    x = values()
    got = default_hooks._to_float16_divided(distml.from_numpy(x), divisor).numpy()
    expected = torch.from_numpy(x).to(torch.float16).div_(divisor).numpy()
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))
    back = distml.zeros(x.size)
    default_hooks._copy_from_float16(back, distml.from_numpy(got))
    np.testing.assert_array_equal(back.numpy(), torch.from_numpy(expected).to(torch.float32).numpy())


def test_other_dtypes_take_the_general_path():
    x = values().astype(np.float64)[:50]
    got = default_hooks._to_float16_divided(distml.from_numpy(x), 3).numpy()
    np.testing.assert_array_equal(got, torch.from_numpy(x).to(torch.float16).div_(3).numpy())
