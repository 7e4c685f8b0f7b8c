"""softmax / log_softmax (distml/ops/softmax.py) on float32 rows, where the _C kernel takes its
vectorised path (contiguous lines), against torch: ordinary, large, masked (-inf) and NaN rows."""
import numpy as np
import pytest
import torch

import distml


def _rows(seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((40, 77)) * 30).astype(np.float32)
    x[0, :5] = -np.inf          # masked positions: exactly 0 (log: -inf)
    x[1, :] = -np.inf           # a fully masked row: NaN, as torch
    x[2, 3] = np.nan            # a NaN poisons its row
    x[3] = np.linspace(-100, 100, 77)  # exp under- and overflow ranges, shifted by the max
    x[4, 0] = np.inf
    return x


@pytest.mark.parametrize("log", [False, True])
def test_float32_last_dim_matches_torch(log):
    x = _rows()
    mine = distml.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    out = (mine.log_softmax if log else mine.softmax)(-1)
    expected = (theirs.log_softmax if log else theirs.softmax)(-1)
    o, e = out.detach().numpy(), expected.detach().numpy()
    np.testing.assert_array_equal(np.isnan(o), np.isnan(e))
    np.testing.assert_array_equal(o[np.isinf(e)], e[np.isinf(e)])
    finite = np.isfinite(e)
    np.testing.assert_allclose(o[finite], e[finite], rtol=1e-5, atol=1e-6 if not log else 1e-4)
    grad = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    rows = slice(5, None)  # rows without inf or NaN, whose gradients are finite
    out[rows].backward(distml.tensor(grad[rows]))
    expected[rows].backward(torch.tensor(grad[rows]))
    np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n", [1, 3, 8, 9, 64, 1000])
def test_float32_row_lengths(n):
    """Line lengths around the vector widths: the vectorised loops' remainders."""
    x = np.random.default_rng(n).standard_normal((5, n)).astype(np.float32) * 4
    mine, theirs = distml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = mine.softmax(1), theirs.softmax(1)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=2e-6, atol=1e-7)
    (out * distml.tensor(x)).sum().backward()
    (expected * torch.tensor(x)).sum().backward()
    np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-5)
