"""The _C kernels behind conv and cross-entropy against their xp twins (the path
cupy arrays take), run here on numpy arrays; and float32 against float64."""
import numpy as np
import pytest

from distml.ops import conv, loss

GEOMETRIES = [
    (2, 3, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 7, 6),
    (2, 2, 9, 8, 3, 2, 2, 1, 1, 0, 2, 1, 3, 7),
    (1, 2, 6, 7, 4, 4, 1, 1, 1, 2, 1, 1, 6, 7),
    (3, 1, 5, 5, 2, 2, 2, 2, 0, 0, 1, 1, 2, 2),
]


@pytest.mark.parametrize("g", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_col2im_match_xp(rng, g, dtype):
    x = rng.standard_normal(g[:4]).astype(dtype)
    cols = conv.im2col(x, g)
    np.testing.assert_array_equal(cols, conv._im2col_xp(x, g))
    np.testing.assert_allclose(conv.col2im(cols, g), conv._col2im_xp(cols, g), rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_matches_xp(rng, weighted, dtype):
    logits = (rng.standard_normal((5, 4, 3)) * 4).astype(dtype)
    target = rng.integers(0, 4, (5, 3))
    target[0, 0] = -1
    weight = (rng.random(4) + 0.5).astype(dtype) if weighted else None
    node = loss.CrossEntropy()
    out = node.forward(logits, target, weight, -1, 0.2, "none", True)
    ref, _, ref_grad = loss._cross_entropy_xp(logits, target, weight, -1, 0.2, True)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(node.dlogits, ref_grad, rtol=tol, atol=tol)
