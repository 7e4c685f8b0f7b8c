"""The CUDA twins in distml._C (csrc/cuda/) against the CPU kernels on the same inputs: softmax and
log_softmax forward/backward, the multi-tensor SGD and Adam/AdamW steps, cross-entropy, scatter-add,
max and average pooling, batch norm and the collectives' reduce_into, through the bindings and through
distml's ops, and against PyTorch (on its CUDA device where it has one). Runs only where a CUDA device
is usable."""
import itertools

import numpy as np
import pytest
import torch

import distml
from distml import _backend, kernels
from distml._backend import C

pytestmark = [
    pytest.mark.skipif(not distml.cuda.is_available(),
                       reason=f"needs a CUDA device: {_backend.cuda_unavailable_reason()}"),
    pytest.mark.skipif(not C.build_info()["cuda"], reason="distml._C was built without CUDA (no nvcc at build time)"),
]

cupy = _backend.cupy


def tolerance(dtype):
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


def layout(shape, dim):
    return int(np.prod(shape[:dim])), shape[dim], int(np.prod(shape[dim + 1:]))


SOFTMAX_CASES = [((7, 300), 1), ((3, 2049), 1), ((4, 33, 5), 1), ((6, 7, 5), 0), ((2, 1), 1), ((0, 4), 1),
                 ((5, 3, 4), 2)]


@pytest.mark.parametrize("shape, dim", SOFTMAX_CASES)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_forward_backward_match_cpu(rng, shape, dim, log, dtype):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    if x.size:
        x.reshape(-1)[::7] = -np.inf
    g = rng.standard_normal(shape).astype(dtype)
    sizes = layout(shape, dim)
    out, grad_x = np.empty_like(x), np.empty_like(x)
    C.softmax_forward(x, out, *sizes, log)
    C.softmax_backward(g, out, grad_x, *sizes, log)
    x_d, g_d = cupy.asarray(x), cupy.asarray(g)
    out_d, grad_d = cupy.empty_like(x_d), cupy.empty_like(x_d)
    C.softmax_forward(x_d, out_d, *sizes, log)
    C.softmax_backward(g_d, out_d, grad_d, *sizes, log)
    np.testing.assert_allclose(out_d.get(), out, **tolerance(dtype))
    np.testing.assert_allclose(grad_d.get(), grad_x, **tolerance(dtype))


def test_softmax_runs_on_the_arrays_stream(rng):
    x = rng.standard_normal((64, 1000)).astype(np.float32)
    expected = np.empty_like(x)
    C.softmax_forward(x, expected, 64, 1000, 1, False)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        x_d = cupy.asarray(x)
        out = cupy.empty_like(x_d)
        C.softmax_forward(x_d, out, 64, 1000, 1, False)
        result = out.get(stream=stream)
    stream.synchronize()
    np.testing.assert_allclose(result, expected, rtol=2e-5, atol=1e-7)


def test_cuda_softmax_errors():
    x = cupy.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        C.softmax_forward(x.T, cupy.zeros((3, 2), np.float32), 3, 2, 1, False)
    with pytest.raises(ValueError, match="softmax_forward: unsupported dtype int32"):
        C.softmax_forward(x.astype(np.int32), cupy.zeros((2, 3), np.int32), 2, 3, 1, False)
    with pytest.raises(RuntimeError, match="gelu: this kernel has no CUDA version"):
        C.gelu(x, cupy.empty_like(x), False)


def test_softmax_op_on_cuda_matches_cpu(rng):
    x = rng.standard_normal((8, 10)).astype(np.float32)
    g = rng.standard_normal((8, 10)).astype(np.float32)
    results = []
    for to_device in (np.asarray, cupy.asarray):
        t = distml.Tensor(to_device(x)).requires_grad_()
        y = t.log_softmax(-1)
        y.backward(distml.Tensor(to_device(g)))
        results.append((_host(y.array), _host(t.grad.array)))
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=2e-5, atol=1e-6)


def _host(array):
    return array.get() if isinstance(array, cupy.ndarray) else array


# 60 tensors: two launches of up to 48; sizes from empty to past one grid's stride (1024 blocks x 256).
SIZES = [0, 1, 5, 255, 256, 257, 4099] * 8 + [300_001, 1, 17, 2]


def state_lists(rng, dtype, count):
    return [[rng.standard_normal(n).astype(dtype) for n in SIZES] for _ in range(count)]


@pytest.mark.parametrize("momentum, weight_decay, nesterov, maximize",
                         [(0.0, 0.0, False, False), (0.9, 0.0, False, False), (0.9, 0.01, True, False),
                          (0.5, 0.1, False, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_step_matches_cpu(rng, momentum, weight_decay, nesterov, maximize, dtype):
    host = state_lists(rng, dtype, 3)
    device = [[cupy.asarray(a) for a in lst] for lst in host]
    for step in range(3):
        fresh = [step == 0] * len(SIZES)
        for lists in (host, device):
            C.sgd_step(*lists, fresh, 0.05, momentum, 0.1, weight_decay, nesterov, maximize)
    for h, d in zip(itertools.chain(*host), itertools.chain(*device)):
        np.testing.assert_allclose(d.get(), h, **tolerance(dtype))


@pytest.mark.parametrize("weight_decay, amsgrad, maximize, decoupled, beta1",
                         [(0.0, False, False, False, 0.9), (0.01, True, False, False, 0.9),
                          (0.01, False, True, True, 0.9), (0.1, True, False, True, 0.3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_step_matches_cpu(rng, weight_decay, amsgrad, maximize, decoupled, beta1, dtype):
    host = state_lists(rng, dtype, 2) + [[np.zeros(n, dtype) for n in SIZES] for _ in range(3)]
    if not amsgrad:
        host[4] = []
    device = [[cupy.asarray(a) for a in lst] for lst in host]
    for step in range(3):
        steps = [step + 1.0 + i % 3 for i in range(len(SIZES))]
        for lists in (host, device):
            C.adam_step(*lists, steps, 1e-2, beta1, 0.99, 1e-8, weight_decay, amsgrad, maximize, decoupled)
    for h, d in zip(itertools.chain(*host), itertools.chain(*device)):
        np.testing.assert_allclose(d.get(), h, **tolerance(dtype))


@pytest.mark.parametrize("name, options", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                           ("Adam", dict(lr=0.01, amsgrad=True)),
                                           ("AdamW", dict(lr=0.01, weight_decay=0.1))])
def test_optimizer_steps_on_cuda_match_cpu(rng, name, options):
    values = [rng.standard_normal(s).astype(np.float32) for s in [(4, 3), (3,), (2, 5, 5)]]
    grads = [[rng.standard_normal(v.shape).astype(np.float32) for v in values] for _ in range(3)]
    finals = []
    for to_device in (np.asarray, cupy.asarray):
        params = [distml.nn.Parameter(distml.Tensor(to_device(v.copy()))) for v in values]
        optimizer = getattr(distml.optim, name)(params, **options)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = distml.Tensor(to_device(g))
            optimizer.step()
        finals.append([_host(p.array) for p in params])
    for cpu, gpu in zip(*finals):
        np.testing.assert_allclose(gpu, cpu, rtol=2e-5, atol=1e-6)


# ---- cross-entropy, scatter-add, pooling, batch norm, reduce_into ----

FLOATS = [np.float32, np.float64]


def uses_twin(name, array, dtypes=kernels.FLOATS):
    """Whether distml's op runs `_C`'s CUDA twin `name` for the cupy `array` (not the xp version)."""
    return kernels.compiled(name, cupy.asarray(array), dtypes) is cupy


def distml_run(to_device, fn, inputs, constants=()):
    """fn(distml.nn.functional, *tensors, *constants) on one device: its output and the gradients of each
    input under a fixed random upstream gradient, as host arrays."""
    tensors = [distml.Tensor(to_device(a)).requires_grad_() for a in inputs]
    out = fn(distml.nn.functional, *tensors, *[distml.Tensor(to_device(c)) for c in constants])
    out.backward(distml.Tensor(to_device(upstream_for(out.shape, inputs[0].dtype))))
    return [_host(out.array)] + [_host(t.grad.array) for t in tensors]


def torch_run(device, fn, inputs, constants=()):
    tensors = [torch.tensor(a, device=device, requires_grad=True) for a in inputs]
    out = fn(torch.nn.functional, *tensors, *[torch.tensor(c, device=device) for c in constants])
    out.backward(torch.tensor(upstream_for(tuple(out.shape), inputs[0].dtype), device=device))
    return [out.detach().cpu().numpy()] + [t.grad.cpu().numpy() for t in tensors]


def upstream_for(shape, dtype):
    return np.random.default_rng(1).standard_normal(shape).astype(dtype)


def assert_matches_cpu_and_torch(torch_device, fn, inputs, constants=(), tol=None):
    """The CUDA run of fn against the CPU run (the host kernels) and PyTorch's: values and gradients."""
    tol = tol or tolerance(inputs[0].dtype)
    gpu = distml_run(cupy.asarray, fn, inputs, constants)
    cpu = distml_run(np.asarray, fn, inputs, constants)
    theirs = torch_run(torch_device, fn, inputs, constants)
    for got, host, reference in zip(gpu, cpu, theirs):
        np.testing.assert_allclose(got, host, **tol)
        np.testing.assert_allclose(got, reference, **tol)


# (N, C, L): one block per row (L == 1, C >= 128; 128 itself, 1000), one thread per position (few classes,
# or L > 1), and no positions.
CE_SHAPES = [(7, 1000, 1), (3, 128, 1), (5, 127, 1), (9, 3, 1), (3, 11, 13), (2, 300, 5), (0, 5, 1)]


@pytest.mark.parametrize("N, C_, L", CE_SHAPES)
@pytest.mark.parametrize("weighted, eps", [(False, 0.0), (True, 0.0), (False, 0.1), (True, 0.2)])
@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_matches_cpu_and_torch(rng, torch_device, N, C_, L, weighted, eps, dtype):
    logits = (rng.standard_normal((N, C_, L)) * 3).astype(dtype)
    target = rng.integers(0, C_, (N, L))
    target.reshape(-1)[::4] = -100
    weight = (rng.random(C_) + 0.5).astype(dtype) if weighted else None
    host = [np.empty((N, L), dtype), np.empty((N, L), dtype), np.empty_like(logits)]
    device = [cupy.asarray(a) for a in host]
    C.cross_entropy(logits, target, weight, *host, N, C_, L, -100, eps)
    C.cross_entropy(cupy.asarray(logits), cupy.asarray(target), None if weight is None else cupy.asarray(weight),
                    *device, N, C_, L, -100, eps)
    for got, want in zip(device, host):
        np.testing.assert_allclose(_host(got), want, **tolerance(dtype))

    def fn(F, x, t, *w):
        return F.cross_entropy(x, t, *w, ignore_index=-100, label_smoothing=eps, reduction="sum")

    if N:
        assert uses_twin("cross_entropy", logits)
        assert_matches_cpu_and_torch(torch_device, fn, [logits], [target] + ([] if weight is None else [weight]))


def test_cuda_cross_entropy_raises_for_targets_out_of_range():
    logits = distml.Tensor(cupy.zeros((2, 3), np.float32))
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        distml.nn.functional.cross_entropy(logits, distml.Tensor(cupy.asarray([0, 3])))


def test_cuda_cross_entropy_kernel_writes_nan_for_targets_out_of_range():
    loss, weight, grad = cupy.empty(2, np.float32), cupy.empty(2, np.float32), cupy.empty((2, 3), np.float32)
    C.cross_entropy(cupy.zeros((2, 3), np.float32), cupy.asarray([1, 7]), None, loss, weight, grad, 2, 3, 1, -100, 0.0)
    assert np.isfinite(_host(loss)[0]) and np.isnan(_host(loss)[1]) and np.isnan(_host(grad)[1]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_scatter_add_matches_cpu_and_torch(rng, torch_device, dtype):
    index = rng.integers(0, 1031, 50_003)  # many repeats: the atomics accumulate
    values = (rng.standard_normal(50_003) * 100).astype(dtype)
    host = np.ones(1031, dtype)
    device = cupy.asarray(host)
    C.scatter_add(host, index, values)
    C.scatter_add(device, cupy.asarray(index), cupy.asarray(values))
    theirs = torch.ones(1031, dtype=torch.from_numpy(values).dtype, device=torch_device)
    theirs.index_add_(0, torch.tensor(index, device=torch_device), torch.tensor(values, device=torch_device))
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(_host(device), host, **tol)
    np.testing.assert_allclose(_host(device), theirs.cpu().numpy(), **tol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_gather_and_embedding_backward_on_cuda_match_cpu_and_torch(rng, torch_device, dtype):
    weight = rng.standard_normal((37, 5)).astype(dtype)
    ids = rng.integers(0, 37, (6, 11))
    assert uses_twin("scatter_add", weight, None)
    assert_matches_cpu_and_torch(torch_device, lambda F, w, i: F.embedding(i, w), [weight], [ids])
    x = rng.standard_normal((4, 9)).astype(dtype)
    index = rng.integers(0, 9, (4, 13))
    assert_matches_cpu_and_torch(torch_device, lambda F, x, i: x.gather(1, i), [x], [index])


# (function, shape, keyword arguments): odd sizes, padding, ceil_mode, dilation, 1-D to 3-D, count_include_pad
# and divisor_override.
POOL_CASES = [
    ("max_pool2d", (2, 3, 17, 13), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool2d", (3, 2, 9, 11), dict(kernel_size=2)),
    ("max_pool2d", (2, 2, 15, 10), dict(kernel_size=(3, 2), stride=(2, 1), dilation=(2, 1), ceil_mode=True)),
    ("max_pool1d", (3, 4, 29), dict(kernel_size=4, stride=3, padding=2)),
    ("max_pool3d", (2, 3, 7, 9, 8), dict(kernel_size=3, stride=2, padding=1, dilation=1)),
    ("avg_pool2d", (2, 3, 17, 13), dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool2d", (2, 3, 17, 13), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False,
                                        ceil_mode=True)),
    ("avg_pool2d", (2, 2, 11, 9), dict(kernel_size=(2, 4), stride=1, divisor_override=5)),
    ("avg_pool1d", (3, 4, 29), dict(kernel_size=5, stride=2, padding=2, ceil_mode=True)),
    ("avg_pool3d", (2, 3, 7, 9, 8), dict(kernel_size=(3, 2, 3), stride=2, padding=1)),
]


@pytest.mark.parametrize("name, shape, options", POOL_CASES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_pooling_matches_cpu_and_torch(rng, torch_device, name, shape, options, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    assert uses_twin(name[:3] + "_pool", x)
    assert_matches_cpu_and_torch(torch_device, lambda F, x: getattr(F, name)(x, **options), [x])


def test_max_pool_indices_on_cuda_match_cpu_and_torch(rng, torch_device):
    x = rng.standard_normal((2, 3, 17, 13)).astype(np.float32)
    x[0, 0, :4, :4] = np.nan
    options = dict(kernel_size=3, stride=2, padding=1, return_indices=True)
    ours = [distml.nn.functional.max_pool2d(distml.Tensor(to_device(x)), **options) for to_device in
            (np.asarray, cupy.asarray)]
    theirs = torch.nn.functional.max_pool2d(torch.tensor(x, device=torch_device), **options)
    np.testing.assert_array_equal(_host(ours[1][1].array), ours[0][1].array)
    np.testing.assert_array_equal(_host(ours[1][1].array), theirs[1].cpu().numpy())
    np.testing.assert_array_equal(_host(ours[1][0].array), theirs[0].cpu().numpy())


# BatchNorm1d (N, C) and (N, C, L), BatchNorm2d, BatchNorm3d: odd channel counts and sizes.
BN_SHAPES = [(7, 5), (300, 33), (4, 3, 9), (5, 7, 6, 11), (2, 3, 3, 5, 4)]


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
def test_batch_norm_matches_cpu_and_torch(rng, torch_device, shape, training, dtype):
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    channels = shape[1]
    weight, bias = rng.standard_normal(channels).astype(dtype), rng.standard_normal(channels).astype(dtype)
    running_mean, running_var = rng.standard_normal(channels).astype(dtype), (rng.random(channels) + 0.5).astype(dtype)
    assert uses_twin("batch_norm_elemt", x)

    def fn(F, x, weight, bias, mean, var):
        return F.batch_norm(x, mean.clone(), var.clone(), weight, bias, training=training)

    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else tolerance(dtype)
    assert_matches_cpu_and_torch(torch_device, fn, [x, weight, bias], [running_mean, running_var], tol)


@pytest.mark.parametrize("shape", BN_SHAPES + [(0, 3, 4)], ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
def test_batch_norm_kernels_match_cpu(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    N, C_, S = shape[0], shape[1], int(np.prod(shape[2:], dtype=np.int64))
    vectors = [(rng.random(C_) + 0.5).astype(dtype) for _ in range(4)]  # mean, invstd, weight, bias
    results = []
    for xp in (np, cupy):
        x_, grad_, (mean, invstd, weight, bias) = xp.asarray(x), xp.asarray(grad), [xp.asarray(v) for v in vectors]
        stats = [xp.empty(C_, dtype) for _ in range(2)]
        C.batch_norm_stats(x_, *stats, N, C_, S)
        outs = [xp.empty_like(x_) for _ in range(2)]
        C.batch_norm_elemt(x_, mean, invstd, weight, bias, outs[0], N, C_, S)
        C.batch_norm_elemt(x_, mean, invstd, None, None, outs[1], N, C_, S)
        sums = [xp.empty(C_, dtype) for _ in range(2)]
        C.batch_norm_backward_reduce(grad_, x_, mean, *sums, N, C_, S)
        grads = [xp.empty_like(x_) for _ in range(2)]
        C.batch_norm_backward_elemt(grad_, x_, mean, invstd, weight, *sums, max(N * S, 1), grads[0], N, C_, S)
        C.batch_norm_backward_elemt(grad_, x_, mean, invstd, None, None, None, 0, grads[1], N, C_, S)
        results.append([_host(a) for a in stats + outs + sums + grads])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, **tolerance(dtype))  # both NaN where N == 0 (the statistics)


REDUCE_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8]
TORCH_REDUCTIONS = {C.ReduceOp.SUM: torch.add, C.ReduceOp.PRODUCT: torch.mul, C.ReduceOp.MAX: torch.maximum,
                    C.ReduceOp.MIN: torch.minimum}


@pytest.mark.parametrize("op", list(TORCH_REDUCTIONS), ids=str)
@pytest.mark.parametrize("dtype", REDUCE_DTYPES)
@pytest.mark.parametrize("count", [1, 1001, 300_007])
def test_reduce_into_matches_cpu_and_torch(rng, torch_device, op, dtype, count):
    def values():
        if np.issubdtype(dtype, np.integer):
            return rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, count, dtype=dtype, endpoint=True)
        return (rng.standard_normal(count) * 100).astype(dtype)

    host, src = values(), values()
    device = cupy.asarray(host)
    theirs = TORCH_REDUCTIONS[op](torch.tensor(host, device=torch_device), torch.tensor(src, device=torch_device))
    C.reduce_into(host, src, op)
    C.reduce_into(device, cupy.asarray(src), op)
    np.testing.assert_array_equal(_host(device), host)  # one rounding of the same operation on both sides
    np.testing.assert_array_equal(_host(device), theirs.cpu().numpy())


@pytest.mark.parametrize("src_device, op, match", [
    ("cuda", C.ReduceOp.AVG, "reduce: avg is a sum divided afterwards"),  # the CUDA launcher's own check
    ("cpu", C.ReduceOp.SUM, "reduce_into: expected all arrays on one device, got CUDA and CPU")])
def test_cuda_reduce_into_errors(src_device, op, match):
    src = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=match):
        C.reduce_into(cupy.zeros(3, np.float32), cupy.asarray(src) if src_device == "cuda" else src, op)
