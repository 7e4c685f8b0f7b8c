"""distml.kernels (which version of a fused kernel runs), the bindings' buffers (csrc/buffer.h), and
the arithmetic the CPU kernels share with their CUDA twins (csrc/kernels/*_math.h), compiled for the
host here, against the NumPy forms and PyTorch. (The pooling and batch-norm kernels are checked against
their xp versions in tests/nn/test_pooling.py and tests/nn/test_batchnorm.py.)"""
import importlib
import itertools
import re

import numpy as np
import pytest
import torch

import distml
from distml import _backend, kernels
from distml._backend import C
from distml.optim import adam, sgd

softmax = importlib.import_module("distml.ops.softmax")  # the module, which distml.ops.softmax (the function) hides
loss_ops = importlib.import_module("distml.ops.loss")

TWINS = {"softmax_forward", "softmax_backward", "sgd_step", "adam_step", "cross_entropy", "scatter_add", "max_pool",
         "max_pool_backward", "avg_pool", "avg_pool_backward", "batch_norm_stats", "batch_norm_elemt",
         "batch_norm_backward_reduce", "batch_norm_backward_elemt", "reduce_into"}
needs_no_device = pytest.mark.skipif(distml.cuda.is_available(),
                                     reason="fake CUDA pointers are only safe without a CUDA device")


class HostArray:
    """A host array that is not a numpy array: only __array_interface__ (as other libraries export)."""

    def __init__(self, array):
        self.array = array
        self.__array_interface__ = array.__array_interface__


class FakeCudaArray:
    """__cuda_array_interface__ over a pointer no device holds: what reaches the bindings from cupy."""

    def __init__(self, shape, typestr="<f4", stream=1):
        self.__cuda_array_interface__ = dict(shape=shape, typestr=typestr, data=(0x10000, False), version=3,
                                             strides=None, stream=stream)


# ---- build_info and the dispatch ----

def test_build_info_says_what_was_compiled():
    info = C.build_info()
    assert isinstance(info["cuda"], bool)
    if info["cuda"]:
        assert re.fullmatch(r"\d+\.\d", info["cuda_version"])
        assert info["cuda_archs"] == ["sm_80", "sm_90"]
        assert set(info["cuda_kernels"]) == TWINS
    else:
        assert info["cuda_kernels"] == []
    assert kernels.CUDA_KERNELS == set(info["cuda_kernels"])


def test_numpy_arrays_run_the_c_kernel_in_its_dtypes():
    x = np.zeros((2, 3), np.float32)
    assert kernels.compiled("softmax_forward", x, kernels.FLOATS) is np
    assert kernels.compiled("softmax_forward", x.astype(np.float16), kernels.FLOATS) is None
    assert kernels.compiled("gelu", x) is np
    assert kernels.choose(C.sgd_step, sgd.sgd_xp, x) is C.sgd_step


def test_device_arrays_run_the_cuda_twin_or_the_xp_version(monkeypatch):
    class FakeCupy:
        class ndarray:
            dtype = np.dtype(np.float32)

    monkeypatch.setattr(kernels, "cupy", FakeCupy)
    monkeypatch.setattr(kernels, "CUDA_KERNELS", frozenset(TWINS))
    x = FakeCupy.ndarray()
    assert kernels.compiled("softmax_forward", x, kernels.FLOATS) is FakeCupy
    assert kernels.compiled("gelu", x) is None  # no CUDA twin: the xp version
    assert kernels.choose(C.adam_step, adam.adam_xp, x) is C.adam_step
    assert kernels.choose(C.rmsprop_step, "xp", x) == "xp"
    monkeypatch.setattr(kernels, "CUDA_KERNELS", frozenset())  # _C built without CUDA
    assert kernels.compiled("softmax_forward", x, kernels.FLOATS) is None


# ---- buffers ----

def test_objects_with_array_interface_are_host_buffers(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    out = np.empty_like(x)
    C.softmax_forward(HostArray(x), HostArray(out), 3, 5, 1, False)
    np.testing.assert_allclose(out, softmax._softmax_xp(x, 1, False), rtol=1e-6)


def test_buffer_errors_keep_their_messages(rng):
    x = rng.standard_normal((4, 6))
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        C.softmax_forward(x.T, np.empty((6, 4)), 6, 4, 1, False)
    with pytest.raises(TypeError, match="softmax_forward: x and out dtypes differ"):
        C.softmax_forward(x, np.empty((4, 6), np.float32), 4, 6, 1, False)
    with pytest.raises(ValueError, match="softmax_forward: unsupported dtype int32"):
        C.softmax_forward(x.astype(np.int32), np.empty((4, 6), np.int32), 4, 6, 1, False)
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        C.gelu(x.astype(np.complex128), np.empty((4, 6), np.complex128), False)
    readonly = np.empty_like(x)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="array is not writeable"):
        C.softmax_forward(x, readonly, 4, 6, 1, False)
    with pytest.raises(TypeError, match=r"params\[1\]: expected dtype float64, got float32"):
        C.sgd_step([x, x.astype(np.float32)], [x, x], [], [], 0.1, 0.0, 0.0, 0.0, False, False)
    with pytest.raises(TypeError, match="unsupported dtype object"):  # numpy.asarray's 0-d object array
        C.softmax_forward(object(), np.empty(1, object), 1, 1, 1, False)


def test_lists_convert_as_before():
    out = np.empty(3)
    C.softmax_forward([1.0, 2.0, 3.0], out, 1, 3, 1, False)
    np.testing.assert_allclose(out, softmax._softmax_xp(np.array([1.0, 2.0, 3.0]), 0, False))


def test_cuda_and_host_buffers_do_not_mix():
    with pytest.raises(ValueError, match="softmax_forward: expected all arrays on one device, got CUDA and CPU"):
        C.softmax_forward(FakeCudaArray((2, 3)), np.empty((2, 3), np.float32), 2, 3, 1, False)
    with pytest.raises(ValueError, match="params: expected all arrays on one device, got CPU and CUDA"):
        C.sgd_step([np.empty(3, np.float32), FakeCudaArray((3,))], [np.empty(3, np.float32)] * 2, [], [], 0.1, 0.0,
                   0.0, 0.0, False, False)


@needs_no_device
def test_cuda_buffers_without_a_device_raise():
    x, out = FakeCudaArray((2, 3)), FakeCudaArray((2, 3))
    if C.build_info()["cuda"]:
        # the launch wrapper runs and reports the CUDA runtime's error (no driver or no device here)
        with pytest.raises(RuntimeError, match="softmax_forward: CUDA error: "):
            C.softmax_forward(x, out, 2, 3, 1, False)
        with pytest.raises(RuntimeError, match="gelu: this kernel has no CUDA version in distml._C"):
            C.gelu(x, out, False)
    else:
        with pytest.raises(RuntimeError, match="softmax_forward: distml._C was built without CUDA"):
            C.softmax_forward(x, out, 2, 3, 1, False)
    assert _backend.cuda_unavailable_reason() is not None


def fake(*shape, typestr="<f4"):
    return FakeCudaArray(shape, typestr)


POOL_GEOMETRY = [1, 1, 1, 8, 1, 1, 4, 1, 1, 4, 0, 0, 0, 1, 1, 1, 1, 1, 2]  # x (1, 1, 1, 8), a window of 4, stride 4
TWIN_CALLS = {
    "cross_entropy": lambda: C.cross_entropy(fake(2, 3), fake(2, typestr="<i8"), None, fake(2), fake(2), None, 2, 3, 1,
                                             -100, 0.0),
    "scatter_add": lambda: C.scatter_add(fake(4), fake(3, typestr="<i8"), fake(3)),
    "max_pool": lambda: C.max_pool(fake(8), fake(2), fake(2, typestr="<i8"), POOL_GEOMETRY),
    "max_pool_backward": lambda: C.max_pool_backward(fake(2), fake(2, typestr="<i8"), fake(8), 1),
    "avg_pool": lambda: C.avg_pool(fake(8), fake(2), POOL_GEOMETRY, False, 0),
    "avg_pool_backward": lambda: C.avg_pool_backward(fake(2), fake(8), POOL_GEOMETRY, True, 0),
    "batch_norm_stats": lambda: C.batch_norm_stats(fake(2, 3), fake(3), fake(3), 2, 3, 1),
    "batch_norm_elemt": lambda: C.batch_norm_elemt(fake(2, 3), fake(3), fake(3), None, None, fake(2, 3), 2, 3, 1),
    "batch_norm_backward_reduce": lambda: C.batch_norm_backward_reduce(fake(2, 3), fake(2, 3), fake(3), fake(3),
                                                                       fake(3), 2, 3, 1),
    "batch_norm_backward_elemt": lambda: C.batch_norm_backward_elemt(fake(2, 3), fake(2, 3), fake(3), fake(3), None,
                                                                     None, None, 0, fake(2, 3), 2, 3, 1),
    "reduce_into": lambda: C.reduce_into(fake(4), fake(4), C.ReduceOp.SUM),
}


@needs_no_device
@pytest.mark.parametrize("name", sorted(TWIN_CALLS))
def test_cuda_buffers_reach_each_twin(name):
    """Each binding hands CUDA buffers to its CUDA launcher, which reports the runtime's error here."""
    assert name in TWINS
    expected = "CUDA error: " if C.build_info()["cuda"] else "distml._C was built without CUDA"
    with pytest.raises(RuntimeError, match=f"^{name}: {expected}"):
        TWIN_CALLS[name]()


def test_cuda_index_arrays_must_be_int64_on_the_arrays_device():
    with pytest.raises(TypeError, match="scatter_add index: expected int64 indices, got int32"):
        C.scatter_add(fake(4), fake(3, typestr="<i4"), fake(3))
    with pytest.raises(ValueError, match="scatter_add index: expected all arrays on one device, got CUDA and CPU"):
        C.scatter_add(fake(4), np.zeros(3, np.int64), fake(3))


# ---- the shared arithmetic, host-compiled ----

def softmax_inputs(rng, dtype):
    x = rng.standard_normal((6, 7, 5)) * 3
    x[0, :, 0] = -np.inf           # a whole line of -inf
    x[1, 2, 1] = np.inf            # one +inf
    x[2, :, 2] = 1e4               # large, equal
    x[3, 4, 3] = -np.inf           # one -inf
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_softmax_kernel_matches_numpy_and_torch(rng, dtype, log, dim):
    x = softmax_inputs(rng, dtype)
    outer, n, inner = softmax._layout(x.shape, dim)
    out = np.empty_like(x)
    C.softmax_forward(x, out, outer, n, inner, log)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out, softmax._softmax_xp(x, dim, log), **tol)
    t = torch.from_numpy(x).requires_grad_()
    y = (torch.log_softmax if log else torch.softmax)(t, dim)
    np.testing.assert_allclose(out, y.detach().numpy(), **tol)

    finite = np.isfinite(out).all(axis=dim, keepdims=True) & np.isfinite(x).all(axis=dim, keepdims=True)
    g = rng.standard_normal(x.shape).astype(dtype) * finite
    grad_x = np.empty_like(x)
    C.softmax_backward(g, out, grad_x, outer, n, inner, log)
    total = g.sum(axis=dim, keepdims=True) if log else (g * out).sum(axis=dim, keepdims=True)
    numpy_form = g - np.exp(out) * total if log else out * (g - total)
    keep = np.broadcast_to(finite, x.shape)
    np.testing.assert_allclose(grad_x[keep], numpy_form[keep], **tol)
    y.backward(torch.from_numpy(g))
    np.testing.assert_allclose(grad_x[keep], t.grad.numpy()[keep], **tol)


SGD_FLAGS = list(itertools.product([0.0, 0.9], [0.0, 0.1], [False, True], [False, True]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum, weight_decay, nesterov, maximize", SGD_FLAGS)
def test_sgd_element_matches_numpy_form(rng, dtype, momentum, weight_decay, nesterov, maximize):
    if nesterov and momentum == 0:
        pytest.skip("nesterov needs momentum")
    shapes = [(5,), (3, 4), (0,)]
    arrays = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    expected = [[a.copy() for a in lst] for lst in arrays]
    for step in range(3):
        fresh = [step == 0] * len(shapes)
        C.sgd_step(*arrays, fresh, 0.05, momentum, 0.0, weight_decay, nesterov, maximize)
        sgd.sgd_xp(*expected, fresh, 0.05, momentum, 0.0, weight_decay, nesterov, maximize)
    tol = dict(rtol=1e-6) if dtype == np.float32 else dict(rtol=1e-14)
    for got, want in zip(arrays[0] + arrays[2], expected[0] + expected[2]):
        np.testing.assert_allclose(got, want, **tol)


# Each option on and off, and every pair of the flags together at least once.
ADAM_FLAGS = [(0.0, False, False, False, 0.9), (0.1, False, False, False, 0.9), (0.1, True, False, False, 0.9),
              (0.1, False, True, False, 0.3), (0.1, False, False, True, 0.9), (0.1, True, True, True, 0.3),
              (0.0, False, True, True, 0.9), (0.1, True, True, False, 0.9), (0.1, True, False, True, 0.3),
              (0.1, False, True, True, 0.3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay, decoupled, amsgrad, maximize, beta1", ADAM_FLAGS)
def test_adam_element_matches_numpy_form_and_torch(rng, dtype, weight_decay, decoupled, amsgrad, maximize, beta1):
    shapes = [(6,), (2, 3)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    state = [[np.zeros(s, dtype) for s in shapes] for _ in range(3)]
    mine, numpy_form = [p.copy() for p in params], [p.copy() for p in params]
    state_np = [[a.copy() for a in lst] for lst in state]
    ours = [torch.from_numpy(p.copy()).requires_grad_() for p in params]
    options = dict(lr=0.01, betas=(beta1, 0.99), eps=1e-8, weight_decay=weight_decay, amsgrad=amsgrad,
                   maximize=maximize)
    reference = (torch.optim.AdamW if decoupled else torch.optim.Adam)(ours, foreach=False, **options)
    for step in range(3):
        args = (0.01, beta1, 0.99, 1e-8, weight_decay, amsgrad, maximize, decoupled)
        C.adam_step(mine, grads[step], *(state if amsgrad else state[:2] + [[]]), [step + 1.0] * 2, *args)
        adam.adam_xp(numpy_form, grads[step], *state_np, [step + 1.0] * 2, *args)
        for p, g in zip(ours, grads[step]):
            p.grad = torch.from_numpy(g)
        reference.step()
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for got, want, theirs in zip(mine, numpy_form, ours):
        np.testing.assert_allclose(got, want, **tol)
        np.testing.assert_allclose(got, theirs.detach().numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted, eps", [(False, 0.0), (True, 0.0), (False, 0.1), (True, 0.2)])
@pytest.mark.parametrize("N, C_, L", [(6, 5, 1), (3, 130, 1), (2, 7, 9)])
def test_cross_entropy_line_matches_numpy_form_and_torch(rng, N, C_, L, weighted, eps, dtype):
    logits = (rng.standard_normal((N, C_, L)) * 3).astype(dtype)
    target = rng.integers(0, C_, (N, L))
    target[0, 0] = -100  # ignored
    if eps == 0:  # a masked class: its probability is 0, and without smoothing the loss stays finite
        logits[1, (target[1, 0] + 1) % C_, 0] = -np.inf
    weight = (rng.random(C_) + 0.5).astype(dtype) if weighted else None
    loss, target_weight, grad = np.empty((N, L), dtype), np.empty((N, L), dtype), np.empty_like(logits)
    C.cross_entropy(logits, target, weight, loss, target_weight, grad, N, C_, L, -100, eps)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    numpy_form = loss_ops._cross_entropy_xp(logits, target, weight, -100, eps, True)
    for got, want in zip((loss, target_weight, grad), numpy_form):
        np.testing.assert_allclose(got, want, **tol)
    t = torch.from_numpy(logits).requires_grad_()
    theirs = torch.nn.functional.cross_entropy(t, torch.from_numpy(target), None if weight is None else
                                               torch.from_numpy(weight), ignore_index=-100, reduction="none",
                                               label_smoothing=eps)
    theirs.sum().backward()
    np.testing.assert_allclose(loss, theirs.detach().numpy(), **tol)
    np.testing.assert_allclose(grad, t.grad.numpy(), **tol)


def test_cross_entropy_kernel_checks_its_targets():
    logits, out = np.zeros((2, 3, 1), np.float32), np.empty((2, 1), np.float32)
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        C.cross_entropy(logits, np.array([[0], [3]]), None, out, out.copy(), None, 2, 3, 1, -100, 0.0)
    with pytest.raises(TypeError, match="cross_entropy target: expected int64 indices, got int32"):
        C.cross_entropy(logits, np.zeros((2, 1), np.int32), None, out, out.copy(), None, 2, 3, 1, -100, 0.0)
    with pytest.raises(ValueError, match="cross_entropy target: expected 2 indices, got 3"):
        C.cross_entropy(logits, np.zeros(3, np.int64), None, out, out.copy(), None, 2, 3, 1, -100, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_scatter_add_matches_numpy(rng, dtype):
    index = rng.integers(0, 37, 500)
    values = (rng.standard_normal(500) * 10).astype(dtype)
    target, expected = np.ones(37, dtype), np.ones(37, dtype)
    C.scatter_add(target, index, values)
    np.add.at(expected, index, values)
    np.testing.assert_allclose(target, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_scatter_add_errors():
    target = np.zeros(4, np.float32)
    with pytest.raises(IndexError, match="index 4 is out of bounds for size 4"):
        C.scatter_add(target, np.array([1, 4]), np.ones(2, np.float32))
    with pytest.raises(TypeError, match="scatter_add index: expected int64 indices, got int32"):
        C.scatter_add(target, np.array([1, 2], np.int32), np.ones(2, np.float32))
    with pytest.raises(TypeError, match="scatter_add: dtypes differ"):
        C.scatter_add(target, np.array([1, 2]), np.ones(2))


REDUCE_DTYPES = [np.float16, distml.bfloat16.np, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                 np.uint8]
NUMPY_REDUCTIONS = {C.ReduceOp.SUM: np.add, C.ReduceOp.PRODUCT: np.multiply,
                    C.ReduceOp.MAX: lambda a, b: np.where(a > b, a, b), C.ReduceOp.MIN: lambda a, b: np.where(a < b, a, b)}


@pytest.mark.parametrize("op", list(NUMPY_REDUCTIONS), ids=str)
@pytest.mark.parametrize("dtype", REDUCE_DTYPES)
def test_reduce_into_matches_numpy(rng, op, dtype):
    def values():  # odd length: past the 8-wide float16 loop; integers over their whole range (sums wrap)
        if np.issubdtype(dtype, np.integer):
            return rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, 1001, dtype=dtype, endpoint=True)
        a = (rng.standard_normal(1001) * 100).astype(dtype)
        a[::97] = np.nan
        return a

    dst, src = values(), values()
    with np.errstate(all="ignore"):
        expected = NUMPY_REDUCTIONS[op](dst, src).astype(dtype)
    C.reduce_into(dst, src, op)
    np.testing.assert_array_equal(dst, expected)


def test_reduce_into_errors():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="reduce: avg is a sum divided afterwards"):
        C.reduce_into(x, x.copy(), C.ReduceOp.AVG)
    with pytest.raises(ValueError, match="reduce_into: expected an array of 3 elements, got 2"):
        C.reduce_into(x, np.zeros(2, np.float32), C.ReduceOp.SUM)
    with pytest.raises(ValueError, match="reduce: unsupported dtype bool"):
        C.reduce_into(np.zeros(3, bool), np.zeros(3, bool), C.ReduceOp.SUM)
