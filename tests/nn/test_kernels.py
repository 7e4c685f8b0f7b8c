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

WINDOWS = [conv.Window(g[0], g[1], g[2:4], g[4:6], g[6:8], g[8:10], g[10:12], g[12:14]) for g in GEOMETRIES] + [
    conv.Window(2, 3, (5, 4, 6), (2, 3, 2), (2, 1, 2), (1, 1, 0), (1, 1, 2), (3, 4, 2)),
    conv.Window(3, 2, (9,), (3,), (2,), (2,), (2,), (5,)),
    # output planes over 64 positions: copied row by row rather than through the gather table
    conv.Window(2, 3, (12, 11), (3, 3), (1, 1), (1, 1), (1, 1), (12, 11)),
    conv.Window(2, 2, (20, 17), (3, 2), (2, 1), (1, 0), (2, 1), (9, 16)),
    conv.Window(2, 2, (5, 6, 7), (2, 3, 2), (1, 1, 2), (1, 1, 0), (1, 1, 2), (6, 6, 3)),
    conv.Window(1, 2, (70,), (5,), (1,), (2,), (1,), (70,)),
]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("batch_major", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_col2im_match_xp(rng, window, batch_major, dtype):
    x = rng.standard_normal((window.N, window.C) + window.size).astype(dtype)
    cols = conv.im2col(x, window, batch_major)
    np.testing.assert_array_equal(cols, conv._im2col_xp(x, window, batch_major).reshape(cols.shape))
    np.testing.assert_allclose(conv.col2im(cols, window, batch_major), conv._col2im_xp(cols, window, batch_major),
                               rtol=1e-6)


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


@pytest.mark.parametrize("window,multiplier", [
    (conv.Window(2, 3, (7, 6), (3, 3), (1, 1), (1, 1), (1, 1), (7, 6)), 1),
    (conv.Window(2, 4, (9, 8), (3, 2), (2, 1), (1, 0), (2, 1), (3, 7)), 2),
    (conv.Window(1, 2, (5, 4, 6), (2, 3, 2), (2, 1, 2), (1, 1, 0), (1, 1, 2), (3, 4, 2)), 3),
    (conv.Window(3, 2, (9,), (3,), (2,), (2,), (2,), (5,)), 1),
])
def test_depthwise_kernels_match_gemm_path(rng, monkeypatch, window, multiplier):
    """The direct depthwise kernels against im2col + one product per group."""
    x = rng.standard_normal((window.N, window.C) + window.size)
    w = rng.standard_normal((window.C * multiplier, 1) + window.kernel)
    grad = rng.standard_normal((window.N, window.C * multiplier) + window.out)
    results = []
    for direct in (True, False):
        if not direct:
            monkeypatch.setattr(conv, "_direct_kernels", lambda *args: None)
        node = conv.Conv()
        node.needs_input_grad = (True, True, False)
        out = node.forward(x, w, None, window, window.C)
        results.append((out,) + node.backward(grad)[:2])
    for direct, gemm in zip(*results):
        np.testing.assert_allclose(direct, gemm, rtol=1e-12, atol=1e-12)
