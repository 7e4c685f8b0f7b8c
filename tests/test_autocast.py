"""distml.autocast and distml.amp against PyTorch's CPU autocast and torch.amp.GradScaler("cpu"): the
dtype each op runs in inside a region (lower-precision list, float32 list, the rest), values and
gradients, the region state, errors and warnings, and the GradScaler's scale, skipped steps and state."""
import pickle
import warnings

import numpy as np
import pytest
import torch

import distml
from distml.amp import grad_scaler

no_gpu = pytest.mark.skipif(distml.cuda.is_available(), reason="checks behaviour without a usable CUDA device")

RNG = np.random.default_rng(0)
A = RNG.standard_normal((4, 4)).astype(np.float32)
SPD = (A @ A.T + 4 * np.eye(4)).astype(np.float32)
IMG = RNG.standard_normal((2, 2, 6, 6)).astype(np.float32)
KERNEL = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)


def batch(a):
    return a.expand(2, 4, 4)


def image(m, a):
    return m.tensor(IMG).to(a.dtype)


def kernel(m, a):
    return m.tensor(KERNEL).to(a.dtype)


# name -> (m, F, a) -> tensor, where a is a 4 x 4 tensor (an SPD matrix for the linear algebra).
LOWER = {
    "matmul": lambda m, F, a: a @ a,
    "Tensor.matmul": lambda m, F, a: a.matmul(a),
    "mm": lambda m, F, a: m.mm(a, a),
    "Tensor.mm": lambda m, F, a: a.mm(a),
    "bmm": lambda m, F, a: m.bmm(batch(a), batch(a)),
    "addmm": lambda m, F, a: m.addmm(a, a, a),
    "Tensor.addmm": lambda m, F, a: a.addmm(a, a, beta=0.5),
    "baddbmm": lambda m, F, a: m.baddbmm(batch(a), batch(a), batch(a)),
    "addbmm": lambda m, F, a: m.addbmm(a, batch(a), batch(a)),
    "linear": lambda m, F, a: F.linear(a, a, a[0]),
    "einsum": lambda m, F, a: m.einsum("ij,jk->ik", a, a),
    "tensordot": lambda m, F, a: m.tensordot(a, a, 1),
    "inner": lambda m, F, a: m.inner(a, a),
    "multi_dot": lambda m, F, a: m.linalg.multi_dot([a, a, a]),
    "matrix_power": lambda m, F, a: m.linalg.matrix_power(a, 3),
    "vecdot": lambda m, F, a: m.linalg.vecdot(a, a),
    "cov": lambda m, F, a: m.cov(a),
    "conv1d": lambda m, F, a: F.conv1d(a[None], a[:, :, None], a[0], padding=1),
    "conv2d": lambda m, F, a: F.conv2d(image(m, a), kernel(m, a), kernel(m, a)[:, 0, 0, 0], padding=1),
    "conv2d_groups": lambda m, F, a: F.conv2d(image(m, a), kernel(m, a)[:2, :1], groups=2, stride=2),
    "conv_transpose2d": lambda m, F, a: F.conv_transpose2d(image(m, a), kernel(m, a).transpose(0, 1), stride=2),
    "sdpa": lambda m, F, a: F.scaled_dot_product_attention(a[None], a[None], a[None]),
    "sdpa_float_mask": lambda m, F, a: F.scaled_dot_product_attention(a[None], a[None], a[None], attn_mask=a),
    "sdpa_causal": lambda m, F, a: F.scaled_dot_product_attention(a[None], a[None], a[None], is_causal=True),
}
FLOAT32 = {
    "mse_loss": lambda m, F, a: F.mse_loss(a, a * 0.5),
    "l1_loss": lambda m, F, a: F.l1_loss(a, a * 0.5, reduction="none"),
    "smooth_l1_loss": lambda m, F, a: F.smooth_l1_loss(a, a * 0.5),
    "huber_loss": lambda m, F, a: F.huber_loss(a, a * 0.5),
    "cross_entropy": lambda m, F, a: F.cross_entropy(a, m.tensor([0, 1, 2, 3])),
    "cross_entropy_probs": lambda m, F, a: F.cross_entropy(a, a.softmax(-1), label_smoothing=0.1),
    "nll_loss": lambda m, F, a: F.nll_loss(a, m.tensor([0, 1, 2, 3])),
    "binary_cross_entropy": lambda m, F, a: F.binary_cross_entropy(a.sigmoid(), a.sigmoid() * 0.5),
    "bce_with_logits": lambda m, F, a: F.binary_cross_entropy_with_logits(a, a.sigmoid()),
    "kl_div": lambda m, F, a: F.kl_div(a, a.exp(), reduction="batchmean"),
    "poisson_nll_loss": lambda m, F, a: F.poisson_nll_loss(a, a.abs()),
    "prod": lambda m, F, a: a.prod(1),
    "trace": lambda m, F, a: m.trace(a),
    "cdist": lambda m, F, a: m.cdist(a, a * 0.5),
    "quantile": lambda m, F, a: a.quantile(0.3),
    "inv": lambda m, F, a: m.linalg.inv(a),
    "inverse": lambda m, F, a: m.inverse(a),
    "solve": lambda m, F, a: m.linalg.solve(a, a[0]),
    "cholesky": lambda m, F, a: m.linalg.cholesky(a),
    "cholesky_solve": lambda m, F, a: m.cholesky_solve(a, m.linalg.cholesky(a)),
    "cholesky_inverse": lambda m, F, a: m.cholesky_inverse(m.linalg.cholesky(a)),
    "qr": lambda m, F, a: m.linalg.qr(a)[1].abs(),
    "svdvals": lambda m, F, a: m.linalg.svdvals(a),
    "eigvalsh": lambda m, F, a: m.linalg.eigvalsh(a),
    "lstsq": lambda m, F, a: m.linalg.lstsq(a, a).solution,
    "matrix_rank": lambda m, F, a: m.linalg.matrix_rank(a).float(),
    "pinverse": lambda m, F, a: m.pinverse(a),
    "fft": lambda m, F, a: m.fft.fft(a).real,
    "rfft2": lambda m, F, a: m.fft.rfft2(a).imag,
    "irfft": lambda m, F, a: m.fft.irfft(a),
}
# Not on a list: they run in their inputs' dtypes (dot and addmv are one kernel in PyTorch, so the
# product inside is not cast either).
UNLISTED = {
    "dot": lambda m, F, a: m.dot(a[0], a[1]),
    "addmv": lambda m, F, a: m.addmv(a[0], a, a[1]),
    "add": lambda m, F, a: a + a,
    "relu": lambda m, F, a: F.relu(a),
    "gelu": lambda m, F, a: F.gelu(a) if a.dtype != m.float16 else a,
    "softmax": lambda m, F, a: a.softmax(-1),
    "log_softmax": lambda m, F, a: F.log_softmax(a, -1),
    "layer_norm": lambda m, F, a: F.layer_norm(a, (4,)),
    "sum": lambda m, F, a: a.sum(0),
    "exp": lambda m, F, a: a.exp(),
    "cumsum": lambda m, F, a: a.cumsum(0),
    "kron": lambda m, F, a: m.kron(a, a),
    "max_pool2d": lambda m, F, a: F.max_pool2d(image(m, a), 2),
    "avg_pool2d": lambda m, F, a: F.avg_pool2d(image(m, a), 3, stride=2, padding=1),
    "adaptive_avg_pool2d": lambda m, F, a: F.adaptive_avg_pool2d(image(m, a), 2),
    "gaussian_nll_loss": lambda m, F, a: F.gaussian_nll_loss(a, a * 0.5, a.abs() + 1),
    "cosine_similarity": lambda m, F, a: F.cosine_similarity(a, a * 0.5),
    "det": lambda m, F, a: m.linalg.det(a) if a.dtype == m.float32 else a,
}
OPS = {**LOWER, **FLOAT32, **UNLISTED}
LINALG = ("inv", "inverse", "solve", "cholesky", "cholesky_solve", "cholesky_inverse", "qr", "svdvals", "eigvalsh",
          "lstsq", "matrix_rank", "pinverse", "det")


def run_op(m, name, input_dtype, autocast_dtype):
    a = m.tensor(SPD if name in LINALG else A).to(getattr(m, input_dtype))
    with m.autocast("cpu", dtype=getattr(m, autocast_dtype)):
        return OPS[name](m, m.nn.functional, a)


def dtype_name(t):
    return str(t.dtype).split(".")[1]


def assert_close(ours, theirs, rel=2e-2):
    """Values within the rounding of a lower-precision dtype, relative to the largest."""
    ours, theirs = np.asarray(ours.detach().float().numpy()), theirs.detach().float().numpy()
    assert ours.shape == theirs.shape
    scale = max(np.abs(theirs).max(), 1e-3)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=rel * scale)


@pytest.mark.parametrize("autocast_dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("input_dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", list(OPS))
def test_op_runs_in_the_dtype_torch_autocast_picks(name, input_dtype, autocast_dtype):
    theirs = run_op(torch, name, input_dtype, autocast_dtype)
    ours = run_op(distml, name, input_dtype, autocast_dtype)
    assert dtype_name(ours) == dtype_name(theirs)
    assert_close(ours, theirs)


@pytest.mark.parametrize("name", ["matmul", "linear", "conv2d", "mse_loss", "cross_entropy", "addmv"])
def test_float64_is_never_cast(name):
    theirs = run_op(torch, name, "float64", "bfloat16")
    ours = run_op(distml, name, "float64", "bfloat16")
    assert dtype_name(ours) == dtype_name(theirs) == "float64"
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_float64_meets_lower_precision_as_in_torch():
    for m in (torch, distml):
        a, b = m.ones(2, 2, dtype=m.float64), m.ones(2, 2)
        with m.autocast("cpu"), pytest.raises(RuntimeError, match="same dtype"):
            m.mm(a, b)


def test_integer_tensors_are_left_alone():
    for m in (torch, distml):
        with m.autocast("cpu"):
            out = m.ones(2, 2, dtype=m.int64) @ m.ones(2, 2, dtype=m.int64)
        assert dtype_name(out) == "int64" and out.tolist() == [[2, 2], [2, 2]]


def test_outside_the_region_nothing_changes():
    a = distml.tensor(A)
    with distml.autocast("cpu"):
        assert (a @ a).dtype == distml.bfloat16
    assert (a @ a).dtype == distml.float32
    np.testing.assert_allclose((a @ a).numpy(), A @ A, rtol=1e-6)


def _states(m):
    """The region state and the dtype of one product at each point of nested regions."""
    a, seen = m.tensor(A), []

    def record():
        seen.append((m.is_autocast_enabled("cpu"), str(m.get_autocast_dtype("cpu")).split(".")[1],
                     dtype_name(m.mm(a, a)), m.is_autocast_enabled("cuda"), m.is_autocast_enabled()))

    record()
    with m.autocast("cpu"):
        record()
        with m.autocast("cpu", enabled=False):
            record()
            with m.amp.autocast("cpu", dtype=m.float16):
                record()
            record()
        record()
    record()
    return seen


def test_nested_and_disabled_regions_match_torch():
    assert _states(distml) == _states(torch)


def test_decorator_form_matches_torch():
    results = []
    for m in (torch, distml):
        @m.autocast("cpu")
        def product(x):
            """doc"""
            return x @ x, m.is_autocast_enabled("cpu")
        out, inside = product(m.tensor(A))
        results.append((dtype_name(out), inside, m.is_autocast_enabled("cpu"), product.__doc__))
    assert results[0] == results[1] == ("bfloat16", True, False, "doc")


def test_decorated_function_may_recurse():
    @distml.autocast("cpu", dtype=distml.float16)
    def depth(n):
        return depth(n - 1) if n else distml.get_autocast_dtype("cpu")

    assert depth(3) == distml.float16
    assert distml.get_autocast_dtype("cpu") == distml.bfloat16 and not distml.is_autocast_enabled("cpu")


def test_aliases():
    assert distml.amp.autocast is distml.autocast
    assert distml.amp.autocast_mode.autocast is distml.autocast
    with pytest.warns(FutureWarning, match=r"distml\.cpu\.amp\.autocast\(args\.\.\.\)` is deprecated"):
        region = distml.cpu.amp.autocast()
    with region:
        assert distml.get_autocast_dtype("cpu") == distml.bfloat16
        assert (distml.tensor(A) @ distml.tensor(A)).dtype == distml.bfloat16
    with pytest.warns(FutureWarning), distml.cpu.amp.autocast(dtype=distml.float16):
        assert (distml.tensor(A) @ distml.tensor(A)).dtype == distml.float16


def test_defaults_and_availability_match_torch():
    for name in ("get_autocast_dtype('cpu')", "get_autocast_dtype('cuda')", "is_autocast_enabled('cpu')",
                 "is_autocast_enabled()", "is_autocast_cache_enabled()", "amp.is_autocast_available('cpu')",
                 "amp.is_autocast_available('cuda')", "amp.is_autocast_available('meta')"):
        ours, theirs = eval("m." + name, {"m": distml}), eval("m." + name, {"m": torch})
        assert str(ours).replace("distml", "torch") == str(theirs), name


def outcome(fn):
    try:
        fn()
    except Exception as error:  # noqa: BLE001 - the exception is what is compared
        return type(error), str(error).replace("distml", "torch")
    return None


@pytest.mark.parametrize("call", [
    "m.autocast(3)", "m.autocast('foo')", "m.autocast('CPU')", "m.autocast('cpu')(3)",
    "m.amp.is_autocast_available('foo')", "m.get_autocast_dtype('foo')", "m.is_autocast_enabled('foo')",
    "m.set_autocast_enabled('cpu', 1)", "m.autocast()",
])
def test_errors_match_torch(call):
    theirs = outcome(lambda: eval(call, {"m": torch}))
    ours = outcome(lambda: eval(call, {"m": distml}))
    assert theirs is not None and ours[0] is theirs[0]
    if call != "m.autocast()":  # the missing-argument TypeError names the class differently
        assert ours[1] == theirs[1]


def test_device_types_distml_cannot_hold_raise():
    assert distml.amp.is_autocast_available("xpu") is False
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'xpu'"):
        distml.autocast("xpu")


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_unsupported_cpu_dtype_warns_and_disables_as_torch(dtype):
    seen = []
    for m in (torch, distml):
        with pytest.warns(UserWarning, match="CPU Autocast only supports dtypes of .*bfloat16, .*float16"):
            region = m.autocast("cpu", dtype=getattr(m, dtype))
        with region:
            seen.append((m.is_autocast_enabled("cpu"), str(m.get_autocast_dtype("cpu")).split(".")[1],
                         dtype_name(m.tensor(A) @ m.tensor(A))))
    assert seen[0] == seen[1] == (False, dtype, "float32")


@no_gpu
def test_cuda_autocast_without_cuda_warns_and_disables():
    for make in (lambda: distml.autocast("cuda"), lambda: distml.cuda.amp.autocast()):
        with pytest.warns(UserWarning, match="CUDA is not available.*Disabling autocast"):
            region = make()
        with region:
            assert not distml.is_autocast_enabled("cuda")
            assert (distml.tensor(A) @ distml.tensor(A)).dtype == distml.float32
    assert isinstance(distml.cuda.amp.autocast(enabled=False), distml.autocast)


# ---- gradients ----

def _cnn_gradients(m, **autocast_kwargs):
    nn = m.nn
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 5))
    for i, p in enumerate(model.parameters()):
        with m.no_grad():
            p.copy_(m.tensor(np.sin(np.arange(p.numel()) * 0.37 + i).reshape(tuple(p.shape)).astype(np.float32)) * 0.3)
    with m.autocast("cpu", **autocast_kwargs):
        out = model(m.tensor(IMG))
        loss = nn.functional.cross_entropy(out, m.tensor([1, 3]))
    loss.backward()
    return out, loss, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_backward_runs_in_the_forward_dtypes_and_float32_leaves_get_float32_grads(dtype):
    out_t, loss_t, grads_t = _cnn_gradients(torch, dtype=getattr(torch, dtype))
    out_d, loss_d, grads_d = _cnn_gradients(distml, dtype=getattr(distml, dtype))
    assert (dtype_name(out_d), dtype_name(loss_d)) == (dtype_name(out_t), dtype_name(loss_t)) == (dtype, "float32")
    assert_close(loss_d, loss_t, 1e-3)
    for ours, theirs in zip(grads_d, grads_t):
        assert dtype_name(ours) == dtype_name(theirs) == "float32"
        assert_close(ours, theirs)


def test_lower_precision_leaf_gets_lower_precision_grad_through_a_float32_op():
    grads = []
    for m in (torch, distml):
        x = m.tensor(A).to(m.bfloat16).requires_grad_()
        with m.autocast("cpu"):
            loss = m.nn.functional.mse_loss(x, m.tensor(A) * 0.5)
        loss.backward()
        grads.append((dtype_name(loss), x.grad))
    assert grads[0][0] == grads[1][0] == "float32"
    assert dtype_name(grads[1][1]) == dtype_name(grads[0][1]) == "bfloat16"
    assert_close(grads[1][1], grads[0][1])


def _recurrent(m, cache_enabled, iterations=2):
    """A weight used several times per forward and several forwards per region, each with a backward."""
    w = m.tensor(A * 0.3, requires_grad=True)
    with m.autocast("cpu", cache_enabled=cache_enabled):
        for _ in range(iterations):
            h = m.tensor(A[:1])
            for _ in range(3):
                h = m.tanh(m.nn.functional.linear(h, w))
            h.float().sum().backward()
    return w.grad


@pytest.mark.parametrize("cache_enabled", [True, False])
def test_weight_used_many_times_in_one_region(cache_enabled):
    ours, theirs = _recurrent(distml, cache_enabled), _recurrent(torch, cache_enabled)
    assert dtype_name(ours) == "float32"
    assert_close(ours, theirs)


def test_cached_cast_follows_in_place_changes():
    # PyTorch keeps the stale cast here; distml recasts a weight changed in place inside the region.
    w, x = distml.tensor(A, requires_grad=True), distml.tensor(A)
    with distml.autocast("cpu"):
        first = x @ w
        with distml.no_grad():
            w.add_(1.0)
        second = x @ w
        assert first.requires_grad and second.requires_grad
    with distml.autocast("cpu", cache_enabled=False):
        expected = x @ w
    np.testing.assert_array_equal(second.detach().float().numpy(), expected.detach().float().numpy())


def test_a_cast_made_without_grad_is_not_reused_with_grad():
    seen = []
    for m in (torch, distml):
        w = m.tensor(A, requires_grad=True)
        with m.autocast("cpu"):
            with m.no_grad():
                m.tensor(A) @ w
            seen.append((m.tensor(A) @ w).requires_grad)
    assert seen == [True, True]


def _custom_function(m, cast_inputs):
    kwargs = {"device_type": "cpu"} if cast_inputs is None else {"device_type": "cpu", "cast_inputs": cast_inputs}

    class Product(m.autograd.Function):
        @staticmethod
        @m.amp.custom_fwd(**kwargs)
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            ctx.forward_saw = (dtype_name(a), m.is_autocast_enabled("cpu"))
            return a.mm(b)

        @staticmethod
        @m.amp.custom_bwd(device_type="cpu")
        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            ctx.backward_saw = (dtype_name(grad), m.is_autocast_enabled("cpu"))
            return grad.mm(b.t()), a.t().mm(grad)

    a, b = m.tensor(A, requires_grad=True), m.tensor(A[::-1].copy(), requires_grad=True)
    with m.autocast("cpu"):
        out = Product.apply(a, b)
    ctx = out.grad_fn if m is torch else out.grad_fn.ctx
    out.float().sum().backward()
    return dtype_name(out), ctx.forward_saw, ctx.backward_saw, a.grad, b.grad


@pytest.mark.parametrize("cast_inputs", [None, "float32", "bfloat16"])
def test_custom_fwd_and_custom_bwd_match_torch(cast_inputs):
    ours = _custom_function(distml, None if cast_inputs is None else getattr(distml, cast_inputs))
    theirs = _custom_function(torch, None if cast_inputs is None else getattr(torch, cast_inputs))
    assert ours[:3] == theirs[:3]
    for g_ours, g_theirs in zip(ours[3:], theirs[3:]):
        assert dtype_name(g_ours) == dtype_name(g_theirs)
        assert_close(g_ours, g_theirs)


def test_custom_fwd_needs_a_string_device_type():
    with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
        distml.amp.custom_fwd(lambda ctx: None, device_type=0)


# ---- ops whose kernels have no lower-precision loop, outside autocast ----

FLOAT32_KERNEL = {
    "conv1d": lambda m, F, x, w: F.conv1d(x[:, :, 0], w[:, :, 0], stride=2),
    "conv2d": lambda m, F, x, w: F.conv2d(x, w, w[:, 0, 0, 0], padding=1),
    "conv_transpose2d": lambda m, F, x, w: F.conv_transpose2d(x, w.transpose(0, 1), stride=2, output_padding=1),
    "max_pool2d": lambda m, F, x, w: F.max_pool2d(x, 3, stride=2, padding=1),
    "max_pool2d_indices": lambda m, F, x, w: F.max_pool2d(x, 2, return_indices=True)[0],
    "avg_pool2d": lambda m, F, x, w: F.avg_pool2d(x, 2, ceil_mode=True),
    "adaptive_avg_pool2d": lambda m, F, x, w: F.adaptive_avg_pool2d(x, (3, 2)),
}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", list(FLOAT32_KERNEL))
def test_lower_precision_convolution_and_pooling_match_torch(name, dtype):
    results = []
    for m in (torch, distml):
        x = m.tensor(IMG).to(getattr(m, dtype)).requires_grad_()
        w = m.tensor(KERNEL).to(getattr(m, dtype)).requires_grad_()
        out = FLOAT32_KERNEL[name](m, m.nn.functional, x, w)
        out.float().square().sum().backward()
        results.append((out, x.grad))
    (out_t, grad_t), (out_d, grad_d) = results
    assert dtype_name(out_d) == dtype_name(out_t) == dtype
    assert dtype_name(grad_d) == dtype_name(grad_t) == dtype
    assert_close(out_d, out_t, 1e-2)
    assert_close(grad_d, grad_t)


def test_mixed_dtypes_still_reach_the_op_checks():
    with pytest.raises(RuntimeError):
        distml.nn.functional.conv2d(distml.tensor(IMG), distml.tensor(KERNEL).to(distml.float64))


# ---- GradScaler ----

def _training(m, iterations=7, bad=(1, 4), **scaler_kwargs):
    """What a scaled training loop shows each iteration: scale, tracker, whether the step ran, weights."""
    model = m.nn.Linear(4, 2)
    with m.no_grad():
        model.weight.copy_(m.tensor(A[:2] * 0.1))
        model.bias.fill_(0.1)
    optimizer = m.optim.SGD(model.parameters(), lr=0.1)
    scaler = m.amp.GradScaler("cpu", **scaler_kwargs)
    record = []
    for i in range(iterations):
        optimizer.zero_grad()
        with m.autocast("cpu"):
            loss = model(m.tensor(A)).float().square().mean()
        if i in bad:
            loss = loss * float("inf")
        scaler.scale(loss).backward()
        returned = scaler.step(optimizer)
        scaler.update()
        record.append((scaler.get_scale(), scaler._get_growth_tracker(), returned,
                       model.weight.detach().numpy().copy(), model.bias.detach().numpy().copy()))
    return record, scaler.state_dict()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("kwargs", [dict(init_scale=2.0 ** 4, growth_interval=2),
                                    dict(init_scale=3.0, growth_factor=1.7, backoff_factor=0.3, growth_interval=1),
                                    dict(init_scale=2.0 ** 127, growth_interval=1)])
def test_grad_scaler_training_matches_torch(kwargs):
    ours, our_state = _training(distml, **kwargs)
    theirs, their_state = _training(torch, **kwargs)
    assert our_state == their_state
    for (s1, g1, r1, w1, b1), (s2, g2, r2, w2, b2) in zip(ours, theirs):
        assert (s1, g1, r1) == (s2, g2, r2)
        np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-6)


def test_grad_scaler_reads_the_device_once_per_step(monkeypatch):
    # The inf/nan checks of all gradients land in one flag per device; step() reads each flag once.
    model = distml.nn.Sequential(distml.nn.Linear(4, 8), distml.nn.ReLU(), distml.nn.Linear(8, 2))
    optimizer = distml.optim.SGD(model.parameters(), lr=0.1)
    scaler = distml.amp.GradScaler("cpu", init_scale=8.0)
    scaler.scale(model(distml.tensor(A)).sum()).backward()
    reads = []
    item = distml.Tensor.item
    monkeypatch.setattr(distml.Tensor, "item", lambda self: reads.append(self.shape) or item(self))
    scaler.step(optimizer)
    scaler.update()
    assert reads == [()] and scaler.get_scale() == 8.0


def _unscale_then_clip(m):
    model = m.nn.Linear(4, 2)
    with m.no_grad():
        model.weight.copy_(m.tensor(A[:2]))
        model.bias.zero_()
    optimizer = m.optim.SGD(model.parameters(), lr=0.5)
    scaler = m.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(model(m.tensor(A)).square().sum()).backward()
    scaled = model.weight.grad.clone()
    scaler.unscale_(optimizer)
    m.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    return scaled.numpy(), model.weight.detach().numpy(), scaler.get_scale()


def test_grad_scaler_unscale_then_clip_matches_torch():
    for ours, theirs in zip(_unscale_then_clip(distml), _unscale_then_clip(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_unscale_kernel_matches_torch(dtype):
    values = np.array([1.5, -3.25, 1e-3, 7e3, 2.0 ** -10], dtype=np.float32)
    for bad in (None, np.inf, np.nan):
        grad_values = values.copy()
        if bad is not None:
            grad_values[2] = bad
        grads_t = [torch.tensor(grad_values).to(getattr(torch, dtype)), torch.tensor(values).to(getattr(torch, dtype))]
        grads_d = [distml.tensor(grad_values).to(getattr(distml, dtype)),
                   distml.tensor(values).to(getattr(distml, dtype))]
        found_t, inv_scale = torch.zeros(()), torch.tensor(1 / 96.0)
        torch._amp_foreach_non_finite_check_and_unscale_(grads_t, found_t, inv_scale)
        found_d = np.zeros((), dtype=np.float32)
        grad_scaler.non_finite_check_and_unscale_([g.array for g in grads_d], found_d, np.array(1 / 96.0, np.float32))
        assert found_d.item() == found_t.item()
        for ours, theirs in zip(grads_d, grads_t):
            np.testing.assert_array_equal(ours.float().numpy(), theirs.float().numpy())


@pytest.mark.parametrize("found_inf", [False, True])
@pytest.mark.parametrize("scale, tracker, growth, backoff, interval", [
    (65536.0, 0, 2.0, 0.5, 1), (3.3, 4, 1.3, 0.7, 5), (3.3, 2, 1.3, 0.7, 5), (3e38, 0, 2.0, 0.5, 1)])
def test_update_scale_kernel_matches_torch(found_inf, scale, tracker, growth, backoff, interval):
    s_t, t_t = torch.tensor(scale), torch.tensor(tracker, dtype=torch.int32)
    torch._amp_update_scale_(s_t, t_t, torch.tensor(float(found_inf)), growth, backoff, interval)
    s_d, t_d = np.array(scale, dtype=np.float32), np.array(tracker, dtype=np.int32)
    grad_scaler.update_scale_(s_d, t_d, np.array(float(found_inf), np.float32), growth, backoff, interval)
    assert (s_d.item(), t_d.item()) == (s_t.item(), t_t.item())


def test_grad_scaler_scales_nested_outputs():
    scaler = distml.amp.GradScaler("cpu", init_scale=4.0)
    a, b = distml.ones(2), distml.ones(()).to(distml.bfloat16)
    scaled = scaler.scale([a, (b, a)])
    assert isinstance(scaled, list) and isinstance(scaled[1], tuple)
    assert scaled[0].tolist() == [4.0, 4.0] and scaled[1][0].item() == 4.0
    assert dtype_name(scaled[1][0]) == dtype_name(torch.ones(()).bfloat16() * torch.tensor(4.0))
    assert [t.tolist() for t in scaler.scale(iter([a]))] == [[4.0, 4.0]]
    with pytest.raises(ValueError, match="outputs must be a Tensor or an iterable of Tensors"):
        scaler.scale(3)


def _misuse(m, what):
    model = m.nn.Linear(2, 1, dtype=m.float16 if what == "fp16 gradients" else m.float32)
    optimizer = m.optim.SGD(model.parameters(), lr=0.1)
    scaler = m.amp.GradScaler("cpu", init_scale=2.0)
    if what == "update before scale":
        return scaler.update()
    if what == "no gradients":
        scaler.scale(m.ones(()))
        return scaler.step(optimizer)
    scaler.scale(model(m.ones(1, 2, dtype=model.weight.dtype)).sum()).backward()
    if what == "unscale twice":
        scaler.unscale_(optimizer)
        return scaler.unscale_(optimizer)
    if what == "unscale after step":
        scaler.step(optimizer)
        return scaler.unscale_(optimizer)
    if what == "step twice":
        scaler.step(optimizer)
        return scaler.step(optimizer)
    if what == "closure":
        return scaler.step(optimizer, closure=lambda: None)
    if what == "fp16 gradients":
        return scaler.step(optimizer)
    if what == "new scale with grad":
        scaler.step(optimizer)
        return scaler.update(m.ones((), requires_grad=True))
    if what == "new scale of two":
        scaler.step(optimizer)
        return scaler.update(m.ones(2))
    if what == "empty state dict":
        return scaler.load_state_dict({})
    if what == "pickle mid-iteration":
        scaler.step(optimizer)
        return pickle.dumps(scaler)
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["update before scale", "no gradients", "unscale twice", "unscale after step",
                                  "step twice", "closure", "fp16 gradients", "new scale with grad",
                                  "new scale of two", "empty state dict", "pickle mid-iteration"])
def test_grad_scaler_misuse_raises_as_torch(what):
    theirs = outcome(lambda: _misuse(torch, what))
    ours = outcome(lambda: _misuse(distml, what))
    assert theirs is not None and ours == theirs


@pytest.mark.parametrize("kwargs", [dict(growth_factor=1.0), dict(backoff_factor=1.0)])
def test_grad_scaler_factor_checks(kwargs):
    theirs = outcome(lambda: torch.amp.GradScaler("cpu", **kwargs))
    assert theirs is not None and outcome(lambda: distml.amp.GradScaler("cpu", **kwargs)) == theirs


def test_grad_scaler_new_scale_and_state_dict_round_trip():
    states = []
    for m in (torch, distml):
        scaler = m.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
        scaler.scale(m.ones(()))
        scaler.update(2.0)
        after_float = scaler.get_scale()
        scaler.update(m.tensor(5.0))
        fresh = m.amp.GradScaler("cpu")
        fresh.load_state_dict(scaler.state_dict())
        used = m.amp.GradScaler("cpu")
        used.scale(m.ones(()))
        used.load_state_dict(scaler.state_dict())
        copied = pickle.loads(pickle.dumps(scaler))
        states.append((after_float, scaler.state_dict(), fresh.state_dict(), used.state_dict(), used.get_scale(),
                       copied.state_dict(), copied.is_enabled()))
    assert states[0] == states[1]
    assert states[1][1] == {"scale": 5.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 3,
                            "_growth_tracker": 0}


def test_disabled_grad_scaler_passes_through():
    scaler = distml.amp.GradScaler("cpu", enabled=False)
    loss = distml.ones(2, requires_grad=True)
    model = distml.nn.Linear(2, 1)
    optimizer = distml.optim.SGD(model.parameters(), lr=0.1)
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    assert scaler.step(optimizer) is None and scaler.update() is None and not scaler.is_enabled()


@no_gpu
def test_cuda_grad_scaler_without_cuda_warns_and_disables_as_torch():
    for m in (torch, distml):
        with pytest.warns(UserWarning, match="GradScaler is enabled, but CUDA is not available"):
            scaler = m.amp.GradScaler()
        assert not scaler.is_enabled()


def test_cpu_amp_grad_scaler_is_deprecated_alias():
    with pytest.warns(FutureWarning, match=r"distml\.cpu\.amp\.GradScaler\(args\.\.\.\)` is deprecated"):
        scaler = distml.cpu.amp.GradScaler(init_scale=4.0)
    assert isinstance(scaler, distml.amp.GradScaler) and scaler.get_scale() == 4.0 and scaler._device == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        distml.amp.GradScaler("cpu")


# ---- CUDA's list, checked without a GPU: PyTorch's CUDA autocast runs on fake cuda tensors (its
# dispatcher's AutocastCUDA kernels decide the dtypes), distml's on host arrays its table takes for
# cuda ones (the `pretend` fixture). On a GPU machine the same probes also run on real cuda tensors.

def _image(a):
    return a.expand(2, 2, 4, 4)


def _weight(a):
    return a.reshape(2, 2, 2, 2)


def _row(a, i):
    return a.narrow(0, i, 1).squeeze(0)


def _zeros(a):
    return (a.narrow(1, 0, 1).squeeze(1) * 0).long()


def _half(m, a):
    return a.to(m.float16)


CUDA_LOWER = {
    "matmul": lambda m, F, a: a @ a,
    "mm": lambda m, F, a: m.mm(a, a),
    "bmm": lambda m, F, a: m.bmm(batch(a), batch(a)),
    "addmm": lambda m, F, a: m.addmm(a, a, a),
    "addmv": lambda m, F, a: m.addmv(_row(a, 0), a, _row(a, 1)),
    "baddbmm": lambda m, F, a: m.baddbmm(batch(a), batch(a), batch(a)),
    "addbmm": lambda m, F, a: m.addbmm(a, batch(a), batch(a)),
    "linear": lambda m, F, a: F.linear(a, a, _row(a, 0)),
    "einsum": lambda m, F, a: m.einsum("ij,jk->ik", a, a),
    "chain_matmul": lambda m, F, a: m.chain_matmul(a, a, a),
    "multi_dot": lambda m, F, a: m.linalg.multi_dot([a, a, a]),
    "vecdot": lambda m, F, a: m.linalg.vecdot(a, a),
    "conv1d": lambda m, F, a: F.conv1d(a.unsqueeze(0), a.unsqueeze(2), _row(a, 0), padding=1),
    "conv2d": lambda m, F, a: F.conv2d(_image(a), _weight(a), _row(a, 0).narrow(0, 0, 2), padding=1),
    "conv_transpose2d": lambda m, F, a: F.conv_transpose2d(_image(a), _weight(a), stride=2),
    "prelu": lambda m, F, a: F.prelu(a, _row(a, 0).narrow(0, 0, 1)),
    "sdpa": lambda m, F, a: F.scaled_dot_product_attention(a.unsqueeze(0), a.unsqueeze(0), a.unsqueeze(0)),
}
CUDA_FLOAT32 = {
    "exp": lambda m, F, a: a.exp(),
    "log": lambda m, F, a: (a.abs() + 1).log(),
    "log1p": lambda m, F, a: a.abs().log1p(),
    "expm1": lambda m, F, a: m.expm1(a),
    "log10": lambda m, F, a: m.log10(a.abs() + 1),
    "log2": lambda m, F, a: m.log2(a.abs() + 1),
    "acos": lambda m, F, a: m.acos(a.tanh()),
    "asin": lambda m, F, a: m.asin(a.tanh()),
    "cosh": lambda m, F, a: m.cosh(a),
    "sinh": lambda m, F, a: m.sinh(a),
    "tan": lambda m, F, a: m.tan(a),
    "erfinv": lambda m, F, a: m.erfinv(a.tanh()),
    "reciprocal": lambda m, F, a: m.reciprocal(a),
    "rsqrt": lambda m, F, a: (a.abs() + 1).rsqrt(),
    "pow": lambda m, F, a: a ** 2,
    "pow_tensor": lambda m, F, a: m.pow(a.abs(), a),
    "softplus": lambda m, F, a: F.softplus(a),
    "layer_norm": lambda m, F, a: F.layer_norm(a, (4,)),
    "group_norm": lambda m, F, a: F.group_norm(_image(a), 2),
    "norm": lambda m, F, a: a.norm(),
    "vector_norm": lambda m, F, a: m.linalg.vector_norm(a),
    "matrix_norm": lambda m, F, a: m.linalg.matrix_norm(a),
    "linalg.norm": lambda m, F, a: m.linalg.norm(a),
    "normalize": lambda m, F, a: F.normalize(a),
    "cosine_similarity": lambda m, F, a: F.cosine_similarity(a, a * 0.5),
    "cdist": lambda m, F, a: m.cdist(a, a * 0.5),
    "renorm": lambda m, F, a: a.renorm(2, 0, 1.0),
    "logsumexp": lambda m, F, a: a.logsumexp(0),
    "interpolate": lambda m, F, a: F.interpolate(_image(a), scale_factor=2, mode="bilinear"),
    "prod": lambda m, F, a: a.prod(1),
    "softmax": lambda m, F, a: a.softmax(-1),
    "log_softmax": lambda m, F, a: F.log_softmax(a, -1),
    "softmin": lambda m, F, a: F.softmin(a, -1),
    "cumprod": lambda m, F, a: a.cumprod(0),
    "cumsum": lambda m, F, a: a.cumsum(0),
    "sum": lambda m, F, a: a.sum(0),
    "mse_loss": lambda m, F, a: F.mse_loss(a, a * 0.5),
    "l1_loss": lambda m, F, a: F.l1_loss(a, a * 0.5),
    "smooth_l1_loss": lambda m, F, a: F.smooth_l1_loss(a, a * 0.5),
    "huber_loss": lambda m, F, a: F.huber_loss(a, a),
    "cross_entropy": lambda m, F, a: F.cross_entropy(a, _zeros(a)),
    "nll_loss": lambda m, F, a: F.nll_loss(a, _zeros(a)),
    "bce_with_logits": lambda m, F, a: F.binary_cross_entropy_with_logits(a, a.sigmoid()),
    "kl_div": lambda m, F, a: F.kl_div(a, a.sigmoid(), reduction="batchmean"),
    "poisson_nll_loss": lambda m, F, a: F.poisson_nll_loss(a, a.abs()),
    "margin_ranking_loss": lambda m, F, a: F.margin_ranking_loss(a, a * 0.5, a.sign()),
    "hinge_embedding_loss": lambda m, F, a: F.hinge_embedding_loss(a, a.sign()),
    "soft_margin_loss": lambda m, F, a: F.soft_margin_loss(a, a.sign()),
    "cosine_embedding_loss": lambda m, F, a: F.cosine_embedding_loss(a, a * 0.5, _row(a, 0).sign()),
    "triplet_margin_loss": lambda m, F, a: F.triplet_margin_loss(a, a * 0.5, a * 2),
    "multi_margin_loss": lambda m, F, a: F.multi_margin_loss(a, _zeros(a)),
    "multilabel_margin_loss": lambda m, F, a: F.multilabel_margin_loss(a, _zeros(a).unsqueeze(0).expand(4, 4)),
}
CUDA_PROMOTE = {
    "dot": lambda m, F, a: m.dot(_row(a, 0), _row(_half(m, a), 1)),
    "cross": lambda m, F, a: m.cross(a.narrow(0, 0, 3), _half(m, a).narrow(0, 0, 3), dim=1),
    "atan2": lambda m, F, a: m.atan2(a, _half(m, a)),
    "tensordot": lambda m, F, a: m.tensordot(a, a, 1),
    "scatter_add": lambda m, F, a: a.scatter_add(0, _zeros(a).unsqueeze(0).expand(4, 4), _half(m, a)),
    "bilinear": lambda m, F, a: F.bilinear(a, a, a.expand(2, 4, 4)),
}
CUDA_UNLISTED = {
    "add": lambda m, F, a: a + _half(m, a),
    "linalg.cross": lambda m, F, a: m.linalg.cross(a.narrow(1, 0, 3), a.narrow(1, 1, 3)),  # unlike cross
    "relu": lambda m, F, a: F.relu(a),
    "cat": lambda m, F, a: m.cat([a, a]),
    "max_pool2d": lambda m, F, a: F.max_pool2d(_image(a), 2),
    "trace": lambda m, F, a: m.trace(a),
    "tanh": lambda m, F, a: a.tanh(),
    "mean": lambda m, F, a: a.mean(0),
    "var": lambda m, F, a: a.var(0),
    "std": lambda m, F, a: a.std(),
    "sqrt": lambda m, F, a: a.abs().sqrt(),
    "sigmoid": lambda m, F, a: a.sigmoid(),
    "gelu": lambda m, F, a: F.gelu(a) if a.dtype != m.float16 else a,
    "silu": lambda m, F, a: F.silu(a),
    "mish": lambda m, F, a: F.mish(a),
    "elu": lambda m, F, a: F.elu(a),
    "leaky_relu": lambda m, F, a: F.leaky_relu(a),
    "hardswish": lambda m, F, a: F.hardswish(a),
    "batch_norm": lambda m, F, a: F.batch_norm(_image(a), None, None, training=True),
    "batch_norm_affine": lambda m, F, a: F.batch_norm(_image(a), None, None, _row(a, 0).narrow(0, 0, 2),
                                                      _row(a, 1).narrow(0, 0, 2), training=True),
    "instance_norm": lambda m, F, a: F.instance_norm(_image(a)),
    "avg_pool2d": lambda m, F, a: F.avg_pool2d(_image(a), 2),
    "adaptive_avg_pool2d": lambda m, F, a: F.adaptive_avg_pool2d(_image(a), 1),
    "embedding": lambda m, F, a: F.embedding(_zeros(a), a),
    "dropout": lambda m, F, a: F.dropout(a, 0.0),
    "clamp": lambda m, F, a: a.clamp(-1, 1),
    "abs": lambda m, F, a: a.abs(),
    "div": lambda m, F, a: a / 3,
    "square": lambda m, F, a: a.square(),
    "amax": lambda m, F, a: a.amax(0),
    "sort": lambda m, F, a: a.sort(0)[0],
    "inv": lambda m, F, a: m.linalg.inv(a.float() + 4 * m.eye(4, device=a.device)).to(a.dtype),
}
CUDA_BANNED = {"binary_cross_entropy": lambda m, F, a: F.binary_cross_entropy(a.sigmoid(), a.sigmoid())}
CUDA_OPS = {**CUDA_LOWER, **CUDA_FLOAT32, **CUDA_PROMOTE, **CUDA_UNLISTED, **CUDA_BANNED}


def _cuda_autocast(m, dtype):
    """PyTorch's CUDA autocast state set directly: its region class disables itself without CUDA."""
    saved = m.is_autocast_enabled("cuda"), m.get_autocast_dtype("cuda")
    m.set_autocast_enabled("cuda", True)
    m.set_autocast_dtype("cuda", getattr(m, dtype))
    return saved


def _probe(m, name, a, autocast_dtype):
    saved = _cuda_autocast(m, autocast_dtype)
    try:
        out = CUDA_OPS[name](m, m.nn.functional, a)
        return "return", dtype_name(out)
    except Exception as error:  # noqa: BLE001 - the exception is what is compared
        return "raise", type(error).__name__, str(error).replace("torch", "distml")
    finally:
        m.set_autocast_enabled("cuda", saved[0])
        m.set_autocast_dtype("cuda", saved[1])


def torch_cuda_autocast(name, input_dtype, autocast_dtype):
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        return _probe(torch, name, torch.empty(4, 4, device="cuda", dtype=getattr(torch, input_dtype)), autocast_dtype)


@pytest.fixture
def pretend_cuda(monkeypatch):
    """PLUMBING ONLY: autocast reads every host tensor as a cuda one, so the CUDA table and the casts run
    here; real cuda tensors take the same path in test_cuda_list_on_the_device."""
    from distml.amp import autocast_mode
    monkeypatch.setattr(autocast_mode, "_kind", lambda tensor: "cuda")


@pytest.mark.parametrize("autocast_dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("input_dtype", ["float32", "float16"])
@pytest.mark.parametrize("name", list(CUDA_OPS))
def test_cuda_list_matches_torch(pretend_cuda, name, input_dtype, autocast_dtype):
    theirs = torch_cuda_autocast(name, input_dtype, autocast_dtype)
    ours = _probe(distml, name, distml.tensor(A).to(getattr(distml, input_dtype)), autocast_dtype)
    assert ours == theirs


@pytest.mark.skipif(not distml.cuda.is_available(), reason="needs a CUDA device: "
                    f"{distml._backend.cuda_unavailable_reason()}")
@pytest.mark.parametrize("autocast_dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", list(CUDA_OPS))
def test_cuda_list_on_the_device(name, autocast_dtype):
    if autocast_dtype == "bfloat16" and not distml.cuda.is_bf16_supported():
        pytest.skip(f"{distml.cuda.get_device_name()} does not compute in bfloat16")
    theirs = torch_cuda_autocast(name, "float32", autocast_dtype)
    assert _probe(distml, name, distml.tensor(A, device="cuda"), autocast_dtype) == theirs


def test_each_device_type_has_its_own_table():
    from distml.amp.autocast_mode import policy
    assert [policy(distml.exp, d) for d in ("cpu", "cuda")] == [None, "float32"]
    assert [policy(distml.Tensor.softmax, d) for d in ("cpu", "cuda")] == [None, "float32"]
    assert [policy(distml.dot, d) for d in ("cpu", "cuda")] == ["off", "promote"]
    assert [policy(distml.linalg.inv, d) for d in ("cpu", "cuda")] == ["float32", None]
    assert [policy(distml.mm, d) for d in ("cpu", "cuda")] == ["lower", "lower"]
    assert policy(distml.nn.functional.binary_cross_entropy, "cuda") == "banned"
    assert policy(distml.nn.functional.grid_sample, "cuda") == "promote"  # not a probe: fake tensors lack it
    assert policy(distml.add, "cuda") is None
    a = distml.tensor(A)
    saved = _cuda_autocast(distml, "float16")
    try:  # CUDA's region leaves host tensors alone
        assert dtype_name(a @ a) == dtype_name(a.exp()) == "float32"
    finally:
        distml.set_autocast_enabled("cuda", saved[0])
        distml.set_autocast_dtype("cuda", saved[1])
