"""The CUDA twins in distml._C (csrc/cuda/) against the CPU kernels on the same inputs: softmax and
log_softmax forward/backward, the multi-tensor SGD and Adam/AdamW steps, through the bindings and
through distml's ops and optimizers. Runs only where a CUDA device is usable."""
import itertools

import numpy as np
import pytest

import distml
from distml import _backend
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
