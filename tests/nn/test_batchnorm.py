"""Batch normalisation (the fused BatchNorm primitive and its `_C` kernels) against PyTorch:
outputs, input / weight / bias gradients and running statistics over training steps and in
eval, BatchNorm1d/2d/3d, float64 (tight) and float32; the kernels against their xp twins; the
statistics-passed-in interface SyncBatchNorm uses; PyTorch's errors."""
import numpy as np
import pytest
import torch

import distml
from distml._backend import C
from distml.ops import norm
from distml.ops.norm import BatchNorm, batch_norm_stats

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}

CASES = [
    ("BatchNorm1d", (6, 4), {}),
    ("BatchNorm1d", (5, 300), {"momentum": None}),  # (N, C) with more channels than one kernel block
    ("BatchNorm1d", (5, 4, 7), {"affine": False}),
    ("BatchNorm2d", (3, 4, 5, 6), {}),
    ("BatchNorm2d", (2, 4, 5, 3), {"bias": False, "eps": 1e-3}),
    ("BatchNorm2d", (4, 4, 1, 1), {"momentum": 0.5}),
    ("BatchNorm2d", (3, 4, 2, 2), {"track_running_stats": False}),
    ("BatchNorm3d", (2, 4, 2, 3, 4), {}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,shape,kwargs", CASES, ids=lambda v: str(v))
def test_training_steps_then_eval_match_torch(same, rng, name, shape, kwargs, dtype):
    dm, tm = getattr(distml.nn, name)(shape[1], **kwargs), getattr(torch.nn, name)(shape[1], **kwargs)
    with torch.no_grad():
        for p in tm.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape))))
    for step in range(3):
        same(dm, tm, [rng.standard_normal(shape) * 3 + 1], dtype, **TOL[dtype])
        t_buffers = dict(tm.named_buffers())
        assert [k for k, _ in dm.named_buffers()] == list(t_buffers)
        for key, b in dm.named_buffers():
            np.testing.assert_allclose(b.numpy(), t_buffers[key].numpy(), err_msg=f"{key} after step {step}",
                                       **TOL[dtype])
    dm.eval()
    tm.eval()
    same(dm, tm, [rng.standard_normal(shape) * 3 + 1], dtype, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_frozen_eval_layer_gives_only_the_input_gradient(rng, dtype):
    x = (rng.standard_normal((3, 5, 4, 4)) * 2).astype(dtype)
    upstream = rng.standard_normal(x.shape).astype(dtype)
    stats = [rng.standard_normal(5).astype(dtype), (rng.random(5) + 0.5).astype(dtype)]
    weight, bias = rng.standard_normal(5).astype(dtype), rng.standard_normal(5).astype(dtype)
    grads = []
    for lib in (distml, torch):
        xt = lib.tensor(x, requires_grad=True)
        out = lib.nn.functional.batch_norm(xt, *map(lib.tensor, stats), lib.tensor(weight), lib.tensor(bias),
                                           training=False)
        out.backward(lib.tensor(upstream))
        grads.append((out.detach().numpy(), xt.grad.numpy()))
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, **TOL[dtype])


@pytest.mark.parametrize("dtype", [distml.float16, distml.bfloat16])
def test_half_input_with_float_parameters_is_computed_in_float(rng, dtype):
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    outs = []
    for lib in (distml, torch):
        layer = lib.nn.BatchNorm1d(3)
        half = getattr(lib, str(dtype).split(".")[-1])
        out = layer(lib.tensor(x).to(half))
        outs.append((str(out.dtype).split(".")[-1], out.float().detach().numpy(), layer.running_var.numpy()))
    assert outs[0][0] == outs[1][0]
    for ours, theirs in zip(outs[0][1:], outs[1][1:]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-2, atol=1e-2)


def test_errors():
    cases = [
        (lambda lib: lib.nn.BatchNorm1d(3)(lib.zeros(1, 3)), ValueError,
         r"Expected more than 1 value per channel when training, got input size"),
        (lambda lib: lib.nn.functional.batch_norm(lib.zeros(5), None, None, training=True), IndexError,
         r"Dimension out of range \(expected to be in range of \[-1, 0\], but got 1\)"),
        (lambda lib: lib.nn.BatchNorm1d(3)(lib.zeros(4, 3, dtype=lib.float64)), RuntimeError,
         "mixed dtype \\(CPU\\): all inputs must share same datatype."),
        (lambda lib: lib.nn.BatchNorm1d(3).double()(lib.zeros(4, 3)), RuntimeError,
         "mixed dtype \\(CPU\\): expect parameter to have scalar type of Float"),
    ]
    for make, error, message in cases:
        for lib in (distml, torch):
            with pytest.raises(error, match=message):
                make(lib)


KERNEL_SHAPES = [(5, 3), (4, 300), (4, 3, 1), (2, 3, 4, 5), (3, 2, 7), (2, 300, 3), (0, 3, 4)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", KERNEL_SHAPES, ids=str)
def test_kernels_match_their_xp_twins(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    N, C_, S = norm._ncs(x)
    x3, g3 = x.reshape(N, C_, S), grad.reshape(N, C_, S)
    tol = TOL[dtype]
    vec = lambda: np.empty(C_, dtype=dtype)  # noqa: E731
    mean, var = vec(), vec()
    C.batch_norm_stats(x, mean, var, N, C_, S)
    if N:
        for ours, theirs in zip((mean, var), norm._stats_xp(x3)):
            np.testing.assert_allclose(ours, theirs, **tol)
    else:  # no values: the kernel's statistics are NaN, as numpy's mean of nothing
        assert np.isnan(mean).all() and np.isnan(var).all()
        mean, var = np.zeros(C_, dtype), np.ones(C_, dtype)
    invstd = (1 / np.sqrt(var + 1e-5)).astype(dtype)
    weight, bias = rng.standard_normal(C_).astype(dtype), rng.standard_normal(C_).astype(dtype)
    for w, b in ((weight, bias), (None, None)):
        out = np.empty_like(x)
        C.batch_norm_elemt(x, mean, invstd, w, b, out, N, C_, S)
        np.testing.assert_allclose(out.reshape(N, C_, S), norm._elemt_xp(x3, mean, invstd, w, b), **tol)
    sum_dy, sum_dy_xmu = vec(), vec()
    C.batch_norm_backward_reduce(grad, x, mean, sum_dy, sum_dy_xmu, N, C_, S)
    for ours, theirs in zip((sum_dy, sum_dy_xmu), norm._backward_reduce_xp(g3, x3, mean)):
        np.testing.assert_allclose(ours, theirs, **tol)
    for sums in ((sum_dy, sum_dy_xmu), (None, None)):
        for w in (weight, None):
            grad_x = np.empty_like(x)
            C.batch_norm_backward_elemt(grad, x, mean, invstd, w, *sums, max(N * S, 1), grad_x, N, C_, S)
            twin = norm._backward_elemt_xp(g3, x3, mean, invstd, w, *sums, max(N * S, 1))
            np.testing.assert_allclose(grad_x.reshape(N, C_, S), twin, **tol)


def test_kernel_bindings_check_their_arrays():
    x, v = np.zeros((2, 3, 4), np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="expected an array of 3 elements, got 4"):
        C.batch_norm_stats(x, v, np.zeros(4, np.float32), 2, 3, 4)
    with pytest.raises(TypeError, match="dtypes differ"):
        C.batch_norm_elemt(x, v, v, np.zeros(3), None, np.empty_like(x), 2, 3, 4)
    with pytest.raises(ValueError, match="C-contiguous"):
        C.batch_norm_stats(np.zeros((4, 3, 2), np.float32).transpose(2, 1, 0), v, v, 2, 3, 4)
    with pytest.raises(ValueError, match="pass both sum_dy and sum_dy_xmu, or neither"):
        C.batch_norm_backward_elemt(x, x, v, v, None, v, None, 8, np.empty_like(x), 2, 3, 4)


def _primitive_grads(x, weight, bias, upstream, **params):
    xt, wt, bt = (distml.tensor(a, requires_grad=True) for a in (x, weight, bias))
    out = BatchNorm.apply(xt, wt, bt, **params)
    out.backward(distml.tensor(upstream))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
def test_primitive_on_non_contiguous_arrays_matches_the_contiguous_ones(rng, dtype):
    x = rng.standard_normal((5, 4, 3)).astype(dtype).transpose(2, 1, 0)  # (3, 4, 5), not contiguous
    upstream = rng.standard_normal((5, 4, 3)).astype(dtype).transpose(2, 1, 0)
    weight, bias = rng.standard_normal(4).astype(dtype), rng.standard_normal(4).astype(dtype)
    mean, var = batch_norm_stats(x)
    params = dict(mean=mean, invstd=(1 / np.sqrt(var + 1e-5)).astype(dtype), training=True, count=15)
    for ours, theirs in zip(_primitive_grads(x, weight, bias, upstream, **params),
                            _primitive_grads(np.ascontiguousarray(x), weight, bias, np.ascontiguousarray(upstream),
                                             **params)):
        np.testing.assert_allclose(ours, theirs, **TOL[dtype])


def test_statistics_from_elsewhere_with_reduce_sums_equal_one_whole_batch(rng):
    """SyncBatchNorm's use: each part of a batch normalised with the whole batch's statistics and
    the whole batch's backward sums (what an all-reduce of every part's sums gives) computes the
    gradients of normalising the whole batch at once; weight and bias gradients stay per part."""
    x = rng.standard_normal((6, 3, 4)) * 2 + 1
    upstream = rng.standard_normal(x.shape)
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    mean, var = batch_norm_stats(x)
    invstd = 1 / np.sqrt(var + 1e-5)
    whole = _primitive_grads(x, weight, bias, upstream, mean=mean, invstd=invstd, training=True, count=24)
    parts, received = (slice(0, 2), slice(2, 6)), []
    total = norm._backward_reduce_xp(upstream.reshape(6, 3, 4), x.reshape(6, 3, 4), mean)

    def reduce_sums(sum_dy, sum_dy_xmu):
        received.append((sum_dy, sum_dy_xmu))
        return total

    results = [_primitive_grads(x[p], weight, bias, upstream[p], mean=mean, invstd=invstd, training=True, count=24,
                                reduce_sums=reduce_sums) for p in parts]
    np.testing.assert_allclose(np.concatenate([r[0] for r in results]), whole[0], rtol=1e-12)
    np.testing.assert_allclose(np.concatenate([r[1] for r in results]), whole[1], rtol=1e-10, atol=1e-12)
    for i in (2, 3):  # weight, bias: the parts' gradients add up to the whole batch's
        np.testing.assert_allclose(results[0][i] + results[1][i], whole[i], rtol=1e-10, atol=1e-12)
    for p, (sum_dy, _) in zip(parts, received):  # reduce_sums got each part's own sums
        np.testing.assert_allclose(sum_dy, upstream[p].sum(axis=(0, 2)), rtol=1e-12)


def test_training_forward_is_one_node_saving_no_output():
    layer = distml.nn.BatchNorm2d(3)
    out = layer(distml.randn(2, 3, 4, 4, requires_grad=True))
    assert out.grad_fn.name() == "BatchNormBackward0"
    assert not BatchNorm.saves_output
