"""distml.bfloat16 (ml_dtypes' bfloat16) against torch.bfloat16: promotion, creation,
conversion, autograd through the common ops, and reductions accumulated in float32."""
import pickle

import numpy as np
import pytest
import torch

import distml
import distml.nn.functional as DF
import torch.nn.functional as TF

NAMES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


def test_dtype_attributes():
    d = distml.bfloat16
    assert (d.name, d.is_floating_point, d.is_signed, d.itemsize) == ("bfloat16", True, True, 2)
    assert repr(d) == "distml.bfloat16" and d.legacy_name == "BFloat16"
    assert pickle.loads(pickle.dumps(d)) is d
    assert distml.tensor([1.0], dtype=distml.bfloat16).dtype is d


@pytest.mark.parametrize("name", NAMES)
def test_promotion_matches_torch(name):
    def result(m, a_dims, b_dims, other):
        a = m.ones((2,) if a_dims else (), dtype=m.bfloat16)
        b = m.ones((2,) if b_dims else (), dtype=getattr(m, other))
        return str((a + b).dtype).split(".")[1], str((b * a).dtype).split(".")[1]
    for a_dims, b_dims in [(True, True), (True, False), (False, True), (False, False)]:
        assert result(distml, a_dims, b_dims, name) == result(torch, a_dims, b_dims, name)


@pytest.mark.parametrize("scalar", [2, 2.5, True])
def test_python_scalars_keep_bfloat16(scalar):
    x = distml.ones(3, dtype=distml.bfloat16)
    t = torch.ones(3, dtype=torch.bfloat16)
    for op in (lambda v: v + scalar, lambda v: scalar * v, lambda v: v / scalar, lambda v: v ** 2):
        assert op(x).dtype is distml.bfloat16 and op(t).dtype is torch.bfloat16
    assert (distml.tensor([1, 2]) + distml.tensor(1.0, dtype=distml.bfloat16)).dtype is distml.bfloat16


def _same(d, t):
    assert str(d.dtype) == str(t.dtype).replace("torch", "distml")
    np.testing.assert_array_equal(d.to(distml.float32).detach().numpy(), t.float().detach().numpy())


def test_creation_and_conversion_round_like_torch():
    values = [1.1, 2.7, -3.3, 1e10, 1e-3]
    _same(distml.tensor(values, dtype=distml.bfloat16), torch.tensor(values, dtype=torch.bfloat16))
    _same(distml.tensor(values).bfloat16(), torch.tensor(values).bfloat16())
    _same(distml.tensor(values, dtype=distml.float64).to(distml.bfloat16), torch.tensor(values, dtype=torch.float64).to(torch.bfloat16))
    _same(distml.zeros(2, 3, dtype=distml.bfloat16), torch.zeros(2, 3, dtype=torch.bfloat16))
    _same(distml.ones(4, dtype=distml.bfloat16), torch.ones(4, dtype=torch.bfloat16))
    _same(distml.full((2,), 1.1, dtype=distml.bfloat16), torch.full((2,), 1.1, dtype=torch.bfloat16))
    _same(distml.arange(5, dtype=distml.bfloat16), torch.arange(5, dtype=torch.bfloat16))
    _same(distml.tensor([1.5, -2.0], dtype=distml.bfloat16).long(), torch.tensor([1.5, -2.0], dtype=torch.bfloat16).long())
    assert distml.randn(3, dtype=distml.bfloat16).dtype is distml.bfloat16
    x = distml.tensor([1.1, 2.7], dtype=distml.bfloat16)
    assert x.tolist() == torch.tensor([1.1, 2.7], dtype=torch.bfloat16).tolist()
    assert x[0].item() == torch.tensor(1.1, dtype=torch.bfloat16).item()
    assert x.is_floating_point() and x.element_size() == 2


def test_repr_names_the_dtype():
    assert repr(distml.tensor([1.5, 2.25], dtype=distml.bfloat16)).endswith(", dtype=distml.bfloat16)")


def test_requires_grad_allowed():
    x = distml.zeros(2, dtype=distml.bfloat16, requires_grad=True)
    assert x.requires_grad
    y = distml.tensor([1.0, 2.0]).bfloat16().requires_grad_()
    assert y.requires_grad
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        distml.tensor([1, 2]).requires_grad_()


def test_finfo():
    if not hasattr(distml, "finfo"):
        pytest.skip("distml.finfo is not there yet")
    fd, ft = distml.finfo(distml.bfloat16), torch.finfo(torch.bfloat16)
    assert (fd.eps, fd.max, fd.min, fd.tiny, fd.bits) == (ft.eps, ft.max, ft.min, ft.tiny, ft.bits)


_rng = np.random.default_rng(0)
A = _rng.standard_normal((4, 6)).astype(np.float32)
B = _rng.standard_normal((6, 5)).astype(np.float32)
P = (np.abs(A) + 0.5).astype(np.float32)

OPS = {
    "add_mul": lambda m, F, a, b, p: a + a * 3 - 1,
    "div": lambda m, F, a, b, p: a / p,
    "matmul": lambda m, F, a, b, p: a @ b,
    "bmm": lambda m, F, a, b, p: a.reshape(2, 2, 6).bmm(b.reshape(1, 6, 5).expand(2, 6, 5)),
    "einsum": lambda m, F, a, b, p: m.einsum("ij,jk->ik", a, b),
    "linear": lambda m, F, a, b, p: F.linear(a, b.t(), b[0]),
    "sum": lambda m, F, a, b, p: a.sum(),
    "sum_dim": lambda m, F, a, b, p: a.sum(1),
    "mean": lambda m, F, a, b, p: a.mean(0),
    "var": lambda m, F, a, b, p: a.var(1),
    "prod": lambda m, F, a, b, p: p.prod(1),
    "cumsum": lambda m, F, a, b, p: a.cumsum(1),
    "relu": lambda m, F, a, b, p: a.relu(),
    "softmax": lambda m, F, a, b, p: a.softmax(1),
    "log_softmax": lambda m, F, a, b, p: a.log_softmax(-1),
    "exp_log": lambda m, F, a, b, p: a.exp() + p.log(),
    "tanh_sigmoid": lambda m, F, a, b, p: a.tanh() * a.sigmoid(),
    "sqrt_pow": lambda m, F, a, b, p: p.sqrt() + p ** 1.5,
    "silu": lambda m, F, a, b, p: F.silu(a),
    "layer_norm": lambda m, F, a, b, p: F.layer_norm(a, (6,)),
    "mse": lambda m, F, a, b, p: F.mse_loss(a, p),
    "amax": lambda m, F, a, b, p: a.amax(1),
    "clamp": lambda m, F, a, b, p: a.clamp(-0.5, 0.5),
    "where": lambda m, F, a, b, p: m.where(a > 0, a, a * 2),
    "index": lambda m, F, a, b, p: a[m.tensor([0, 0, 2])],
    "gather": lambda m, F, a, b, p: a.gather(1, m.tensor([[0], [1], [2], [2]])),
    "embedding": lambda m, F, a, b, p: F.embedding(m.tensor([0, 3, 3]), a),
    "sort_topk": lambda m, F, a, b, p: a.sort(1)[0] + a.topk(6)[0],
    "logsumexp_norm": lambda m, F, a, b, p: a.logsumexp(1) + a.norm(),
    "cat": lambda m, F, a, b, p: m.cat([a, a * 2]),
    # ops of distml/ops/{math,combine,layout,stats,indexed}.py (computed in float32, rounded back)
    "erf_erfinv": lambda m, F, a, b, p: m.erf(a) + m.erfinv(a.tanh() * 0.9),
    "floor_round": lambda m, F, a, b, p: m.floor(a * 3) + a.round(decimals=1) + a,
    "trig_logs": lambda m, F, a, b, p: m.sinh(a) + m.atan2(a, p) + m.log2(p) + m.expm1(a) + m.sinc(a),
    "lerp_hypot": lambda m, F, a, b, p: m.lerp(a, p, 0.3) + m.hypot(a, p) + m.logaddexp(a, p),
    "cumprod_logcumsumexp": lambda m, F, a, b, p: m.cumprod(p, 1) + m.logcumsumexp(a, 1) + m.cummax(a, 1)[0],
    "median_nansum": lambda m, F, a, b, p: a.median(1)[0] + m.nansum(a, 1) + m.nanmean(a, 1),
    "tensordot_addmm": lambda m, F, a, b, p: m.tensordot(a, b, 1) + m.addmm(b[0], a, b),
    "cross_diag": lambda m, F, a, b, p: m.cross(a[:, :3], p[:, 3:], dim=1).sum() + m.trace(a) + m.diag(a).sum(),
    "index_add_scatter_reduce": lambda m, F, a, b, p: m.index_add(a, 0, m.tensor([0, 0]), p[:2]) + m.scatter_reduce(
        a, 1, m.tensor([[0, 0]] * 4), p[:, :2], "amax"),
    "pad": lambda m, F, a, b, p: F.pad(a, (1, 2), mode="reflect") + F.pad(p, (1, 2, 0, 0), value=0.5),
    "renorm_cov": lambda m, F, a, b, p: m.renorm(a, 2, 0, 1.0).sum() + m.cov(a).sum(),
}


@pytest.mark.parametrize("name", list(OPS))
def test_ops_and_gradients_match_torch(name):
    f = OPS[name]
    dd = [distml.from_numpy(v).bfloat16().requires_grad_() for v in (A, B, P)]
    tt = [torch.from_numpy(v).bfloat16().requires_grad_() for v in (A, B, P)]
    od, ot = f(distml, DF, *dd), f(torch, TF, *tt)
    assert od.dtype is distml.bfloat16 and ot.dtype is torch.bfloat16
    np.testing.assert_allclose(od.detach().float().numpy(), ot.detach().float().numpy(), rtol=2e-2, atol=2e-2)
    seed = _rng.standard_normal(tuple(ot.shape)).astype(np.float32)
    od.backward(distml.from_numpy(seed).bfloat16())
    ot.backward(torch.from_numpy(seed).bfloat16())
    for x, t in zip(dd, tt):
        assert (x.grad is None) == (t.grad is None)
        if t.grad is not None:
            assert x.grad.dtype is distml.bfloat16
            np.testing.assert_allclose(x.grad.float().numpy(), t.grad.float().numpy(), rtol=3e-2, atol=3e-2)


def test_reductions_accumulate_in_float32():
    data = np.random.default_rng(1).random(20000).astype(np.float32)
    x, t = distml.from_numpy(data).bfloat16(), torch.from_numpy(data).bfloat16()
    exact = float(x.float().numpy().astype(np.float64).sum())  # the sum of the values x holds
    for got, want in [(x.sum(), exact), (x.mean(), exact / data.size), (x.cumsum(0)[-1], exact)]:
        assert abs(got.item() - want) <= abs(want) * 2 ** -7
    np.testing.assert_allclose(x.reshape(20, 1000).sum(1).float().numpy(), t.reshape(20, 1000).sum(1).float().numpy(),
                               rtol=2 ** -7)
