"""Every op against PyTorch on the same float64 inputs: value, dtype and gradient, over
broadcasting, transposed (non-contiguous) inputs, 0-d and empty tensors.

A case is (name, f, shapes[, domain]) where f(m, *tensors) runs with m = distml or torch,
or (name, (f_distml, f_torch), ...) where the two APIs differ."""
import math

import numpy as np
import pytest
import torch

import distml
from vs_torch import cases, check



def idx(m, values):
    """An int64 index tensor of module m."""
    return m.from_numpy(np.asarray(values, dtype=np.int64))


def mask(m, values):
    return m.from_numpy(np.asarray(values, dtype=bool))


ELEMENT = [(3, 4), (), (0, 3), (2, 3, 4)]
MATRIX = [(3, 4), (2, 3, 4)]
PAIRS = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((), (3,)), ((0, 3), (1, 3))]

UNARY = [
    ("exp", lambda m, x: m.exp(x), ELEMENT),
    ("log", lambda m, x: m.log(x), ELEMENT, "positive"),
    ("log1p", lambda m, x: m.log1p(x), ELEMENT, "positive"),
    ("sqrt", lambda m, x: m.sqrt(x), ELEMENT, "positive"),
    ("rsqrt", lambda m, x: m.rsqrt(x), ELEMENT, "positive"),
    ("abs", lambda m, x: m.abs(x), ELEMENT),
    ("neg", lambda m, x: -x, ELEMENT),
    ("sign", lambda m, x: m.sign(x) * x, ELEMENT),
    ("sin", lambda m, x: m.sin(x), ELEMENT),
    ("cos", lambda m, x: m.cos(x), ELEMENT),
    ("tanh", lambda m, x: m.tanh(x), ELEMENT),
    ("sigmoid", lambda m, x: m.sigmoid(x * 20), ELEMENT),
    ("relu", lambda m, x: m.relu(x), ELEMENT),
    ("square", lambda m, x: m.square(x), ELEMENT),
    ("clamp", lambda m, x: m.clamp(x, -0.5, 0.5), ELEMENT),
    ("clamp_min", lambda m, x: x.clamp(min=0.1), ELEMENT),
    ("clamp_max", lambda m, x: x.clamp(max=0.1), ELEMENT),
    ("pow_scalar", lambda m, x: x ** 3, ELEMENT),
    ("pow_fraction", lambda m, x: x ** 0.5, ELEMENT, "positive"),
    ("rpow", lambda m, x: 2 ** x, ELEMENT),
    ("radd_rsub_rmul_rdiv", lambda m, x: 1 + (3 - x) * 2 / (x + 5), ELEMENT, "positive"),
    ("mul_sub_scalar", lambda m, x: (x * 0.5 - 2) / 3, ELEMENT),
    ("method_chain", lambda m, x: x.exp().sin().mul(2).add(x, alpha=3).sub(1), ELEMENT),
    ("logical_not_where", lambda m, x: m.where(m.logical_not(x > 0), x, x * 2), ELEMENT),
    ("masked_fill", lambda m, x: x.masked_fill(x > 0.2, -1.0), ELEMENT),
    # reductions
    ("sum", lambda m, x: x.sum(), ELEMENT),
    ("sum_dim", lambda m, x: x.sum(1), MATRIX),
    ("sum_dims_keepdim", lambda m, x: m.sum(x, dim=(0, -1), keepdim=True), MATRIX),
    ("sum_empty_dim", lambda m, x: x.sum(0), [(0, 3)]),
    ("mean", lambda m, x: x.mean(), [(3, 4), (), (2, 3, 4)]),
    ("mean_dim", lambda m, x: x.mean(-1, keepdim=True), MATRIX),
    ("prod", lambda m, x: x.prod(), [(3, 4), (), (2, 3)]),
    ("prod_dim", lambda m, x: x.prod(1), MATRIX),
    ("prod_zero", lambda m, x: (x * (x > 0.3)).prod(1), MATRIX),
    ("amax", lambda m, x: m.amax(x), [(3, 4), ()]),
    ("amax_dims", lambda m, x: x.amax((0, 1)), MATRIX),
    ("amin_keepdim", lambda m, x: x.amin(1, keepdim=True), MATRIX),
    ("max_all", lambda m, x: x.max(), [(3, 4), ()]),
    ("min_all", lambda m, x: m.min(x), [(3, 4)]),
    ("max_dim", lambda m, x: x.max(1), MATRIX),
    ("min_dim_keepdim", lambda m, x: m.min(x, dim=0, keepdim=True), MATRIX),
    ("max_ties", lambda m, x: m.round(x * 0, decimals=0).add(x.sum()).max() if m is torch
     else (x * 0 + x.sum()).max(), [(3,)]),
    ("argmax", lambda m, x: x.argmax(), [(3, 4)]),
    ("argmax_dim", lambda m, x: x.argmax(1), MATRIX),
    ("argmin_keepdim", lambda m, x: m.argmin(x, dim=0, keepdim=True), MATRIX),
    ("var", lambda m, x: x.var(), [(3, 4), (2, 3, 4)]),
    ("var_dim", lambda m, x: x.var(1), MATRIX),
    ("var_correction", lambda m, x: m.var(x, dim=(0, 1), correction=0, keepdim=True), MATRIX),
    ("var_unbiased_false", lambda m, x: x.var(0, False), MATRIX),
    ("std", lambda m, x: x.std(), [(3, 4)]),
    ("std_dim", lambda m, x: x.std(-1, keepdim=True), MATRIX),
    ("norm", lambda m, x: x.norm(), [(3, 4), (2, 3, 4)]),
    ("norm_p1_dim", lambda m, x: x.norm(1, dim=1), MATRIX),
    ("norm_p3", lambda m, x: m.norm(x, p=3), [(3, 4)]),
    ("norm_inf", lambda m, x: x.norm(math.inf), [(3, 4)]),
    ("logsumexp", lambda m, x: x.logsumexp(1), MATRIX),
    ("logsumexp_dims", lambda m, x: m.logsumexp(x * 100, dim=(0, 1), keepdim=True), MATRIX),
    ("cumsum", lambda m, x: x.cumsum(1), MATRIX),
    ("cumsum_0d", lambda m, x: x.cumsum(0), [()]),
    ("softmax", lambda m, x: x.softmax(1), MATRIX),
    ("softmax_dim0", lambda m, x: m.softmax(x * 30, dim=0), MATRIX),
    ("log_softmax", lambda m, x: m.log_softmax(x * 30, dim=-1), MATRIX),
    ("log_softmax_mid", lambda m, x: x.log_softmax(1), [(2, 3, 4)]),
    ("softmax_empty", lambda m, x: x.softmax(0), [(0, 3)]),
    # shape
    ("reshape", lambda m, x: x.reshape(-1, 2), [(3, 4), (2, 3, 4)]),
    ("view", lambda m, x: x.contiguous().view(2, -1), [(3, 4)]),
    ("flatten", lambda m, x: x.flatten(), ELEMENT),
    ("flatten_1", lambda m, x: m.flatten(x, 1), MATRIX),
    ("unflatten", lambda m, x: x.unflatten(-1, (2, -1)), MATRIX),
    ("squeeze", lambda m, x: x.unsqueeze(1).squeeze(), [(3, 4), (3,)]),
    ("squeeze_dim", lambda m, x: x.unsqueeze(0).unsqueeze(-1).squeeze(0), MATRIX),
    ("unsqueeze", lambda m, x: m.unsqueeze(x, -1), ELEMENT),
    ("transpose", lambda m, x: x.transpose(0, -1), MATRIX),
    ("permute", lambda m, x: x.permute(2, 0, 1), [(2, 3, 4)]),
    ("T", lambda m, x: x.T * 2, [(3, 4)]),
    ("t", lambda m, x: x.t(), [(3, 4), (3,)]),
    ("movedim", lambda m, x: m.movedim(x, 0, -1), [(2, 3, 4)]),
    ("expand", lambda m, x: x[:1].expand(5, -1), [(3, 4)]),
    ("expand_as", lambda m, x: x.sum(0, keepdim=True).expand_as(x), MATRIX),
    ("repeat", lambda m, x: x.repeat(2, 1, 3), [(3, 4)]),
    ("flip", lambda m, x: x.flip(0, -1), MATRIX),
    ("roll", lambda m, x: x.roll(1, 1), MATRIX),
    ("roll_flat", lambda m, x: m.roll(x, -2), [(3, 4)]),
    ("roll_multi", lambda m, x: x.roll((1, -1), (0, 1)), MATRIX),
    ("tril", lambda m, x: x.tril(), MATRIX),
    ("triu_offset", lambda m, x: m.triu(x, 1), MATRIX),
    ("split", lambda m, x: x.split(3, 1)[1] * 2, [(3, 5)]),
    ("split_sizes", lambda m, x: m.split(x, [1, 2], 0)[1], [(3, 5)]),
    ("chunk", lambda m, x: x.chunk(2, -1)[0] * x.chunk(2, -1)[1][..., :2], [(3, 4)]),
    ("unbind", lambda m, x: x.unbind(1)[2], MATRIX),
    ("unbind_pieces_reused", lambda m, x: m.stack([p * p for p in x.unbind(0)] + [x.unbind(0)[0]]), MATRIX),
    ("split_pieces_combined", lambda m, x: m.cat([p.exp() for p in x.split(2, -1)][::-1], -1), MATRIX),
    ("narrow", lambda m, x: x.narrow(1, 1, 2), MATRIX),
    ("cat_self", lambda m, x: m.cat([x, x * 2, x[:1]], 0), [(3, 4), (0, 3)]),
    ("cat_dim", lambda m, x: m.cat((x, x), dim=-1), MATRIX),
    ("stack", lambda m, x: m.stack([x, -x], 1), [(3, 4), (0, 3), (2, 3, 4)]),
    ("stack_0d", lambda m, x: m.stack([x, -x]), [()]),
    # indexing
    ("index_int", lambda m, x: x[1], MATRIX),
    ("index_slice", lambda m, x: x[1:, ::2], MATRIX),
    ("index_none_ellipsis", lambda m, x: x[None, ..., 1], MATRIX),
    ("index_list_repeat", lambda m, x: x[[0, 2, 0, 0]], [(3, 4), (3, 4, 2)]),
    ("index_tensor_2d", lambda m, x: x[idx(m, [[0, 1], [1, 1]])], MATRIX),
    ("index_pair", lambda m, x: x[idx(m, [0, 2, 2]), idx(m, [1, 1, 3])], [(3, 4)]),
    ("index_slice_array", lambda m, x: x[:, idx(m, [3, 0, 3])], [(3, 4)]),
    ("index_mask", lambda m, x: x[x > 0], ELEMENT),
    ("index_row_mask", lambda m, x: x[mask(m, [True, False, True])], [(3, 4)]),
    ("index_0d", lambda m, x: x[()] * 2, [()]),
    ("gather", lambda m, x: x.gather(1, idx(m, [[0, 0], [3, 1], [2, 2]])), [(3, 4)]),
    ("gather_dim0", lambda m, x: m.gather(x, 0, idx(m, [[2, 0, 1, 1]])), [(3, 4)]),
    ("index_select", lambda m, x: x.index_select(1, idx(m, [3, 0, 3])), [(3, 4), (3, 4, 2)]),
    ("index_select_0", lambda m, x: m.index_select(x, 0, idx(m, [1, 1])), MATRIX),
    ("take_along_dim", lambda m, x: m.take_along_dim(x, x.argsort(1), 1), [(3, 4)]),
    ("masked_select", lambda m, x: x.masked_select(x > 0), [(3, 4)]),
    ("sort", lambda m, x: x.sort(1), MATRIX),
    ("sort_desc", lambda m, x: m.sort(x, dim=0, descending=True), MATRIX),
    ("argsort", lambda m, x: x.argsort(-1, descending=True), MATRIX),
    ("topk", lambda m, x: x.topk(2), MATRIX),
    ("topk_smallest", lambda m, x: m.topk(x, 2, dim=0, largest=False), [(3, 4)]),
]

BINARY = [
    ("add", lambda m, a, b: a + b, PAIRS),
    ("add_alpha", lambda m, a, b: m.add(a, b, alpha=-2), PAIRS),
    ("sub", lambda m, a, b: a - b, PAIRS),
    ("mul", lambda m, a, b: a * b, PAIRS),
    ("div", lambda m, a, b: a / b, PAIRS, "positive"),
    ("pow", lambda m, a, b: a ** b, PAIRS, "positive"),
    ("maximum", lambda m, a, b: m.maximum(a, b), PAIRS),
    ("minimum", lambda m, a, b: m.minimum(a, b), PAIRS),
    ("max_binary", lambda m, a, b: m.max(a, b), PAIRS),
    ("where", lambda m, a, b: m.where(a > b, a, b * 2), PAIRS),
    ("clamp_tensor", lambda m, a, b: a.clamp(min=b), PAIRS),
    ("compare_mix", lambda m, a, b: (a < b) | (a >= b * 2) & ~(a == b), PAIRS),
    ("cat2", lambda m, a, b: m.cat([a, b], 1), [((3, 2), (3, 4))]),
    ("stack2", lambda m, a, b: m.stack((a, b), -1), [((3, 4), (3, 4)), ((), ())]),
    ("matmul", lambda m, a, b: a @ b, [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                        ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((0, 4), (4, 2))]),
    ("mm", lambda m, a, b: m.mm(a, b), [((3, 4), (4, 5))]),
    ("bmm", lambda m, a, b: a.bmm(b), [((2, 3, 4), (2, 4, 5))]),
    ("einsum_bmm", lambda m, a, b: m.einsum("bij,bjk->bik", a, b), [((2, 3, 4), (2, 4, 5))]),
    ("einsum_sum_out", lambda m, a, b: m.einsum("ij,jk", a, b), [((3, 4), (4, 5))]),
    ("einsum_outer", lambda m, a, b: m.einsum("i,j->ij", a, b), [((3,), (4,))]),
    ("einsum_private_index", lambda m, a, b: m.einsum("ij,kl->ik", a, b), [((3, 4), (2, 5))]),
    ("einsum_ellipsis", lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b), [((2, 3, 4), (2, 4, 5))]),
    ("dot", lambda m, a, b: m.dot(a, b), [((4,), (4,))]),
    ("outer", lambda m, a, b: m.outer(a, b), [((4,), (3,))]),
    ("scatter", lambda m, a, b: a.scatter(1, idx(m, [[0, 1], [3, 2], [1, 0]]), b), [((3, 4), (3, 2))]),
    ("scatter_add", lambda m, a, b: m.scatter_add(a, 0, idx(m, [[2, 0, 2, 1], [2, 2, 0, 1]]), b),
     [((3, 4), (2, 4))]),
    ("setitem", lambda m, a, b: _setitem(a, b), [((3, 4), (4,)), ((3, 4), ())]),
    ("setitem_mask", lambda m, a, b: _setitem_mask(a, b), [((3, 4), ())]),
    ("scatter_value", lambda m, a, b: a.scatter(0, idx(m, [[1, 0, 2, 2]]), 2.5) * b, [((3, 4), (3, 4))]),
]


def _setitem(a, b):
    out = a * 1
    out[1] = b
    out[2, 1:] = b * 2 if b.ndim == 0 else b[1:] * 2
    return out


def _setitem_mask(a, b):
    out = a * 1
    out[a > 0] = b
    return out


@pytest.mark.parametrize("fs, shapes, domain, layout", list(cases(UNARY, 1)))
def test_unary(fs, shapes, domain, layout, rng):
    check(fs, shapes, domain, layout, rng)


@pytest.mark.parametrize("fs, shapes, domain, layout", list(cases(BINARY, 2)))
def test_binary(fs, shapes, domain, layout, rng):
    check(fs, shapes, domain, layout, rng)


@pytest.mark.parametrize("name", ["all", "any"])
@pytest.mark.parametrize("values,dtype", [([[1, 0], [2, 3]], "uint8"), ([[1.0, 0.0], [0.5, 2.0]], "float32"),
                                          ([[True, False], [True, True]], "bool"), ([], "float32")])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), ((0, 1), False), (-1, False)])
def test_all_any_match_torch(name, values, dtype, dim, keepdim):
    if not values and dim not in (None, 0, -1):
        return
    ours, theirs = distml.tensor(values, dtype=getattr(distml, dtype)), torch.tensor(values, dtype=getattr(torch, dtype))
    kwargs = {} if dim is None else {"dim": dim, "keepdim": keepdim}
    for result in (getattr(distml, name)(ours, **kwargs), getattr(ours, name)(**kwargs)):
        expected = getattr(torch, name)(theirs, **kwargs)
        assert result.dtype.name == str(expected.dtype).split(".")[1]
        np.testing.assert_array_equal(result.numpy(), expected.numpy())
    with pytest.raises(IndexError, match="Dimension out of range"):
        getattr(distml, name)(ours, 3)


@pytest.mark.parametrize("args,kwargs", [((), {}), ((1,), {"dim": 1}), (("nuc",), {}), ((math.inf,), {}),
                                         ((0,), {}), ((3,), {"dim": 0, "keepdim": True}), (("fro",), {"dim": (0, 1)})])
def test_norm_follows_torch_norm_with_zero_gradient_at_zero(args, kwargs):
    values = [[1.0, -2.0, 0.5], [3.0, 4.0, -1.0]]
    results = []
    for lib in (distml, torch):
        x = lib.tensor(values, dtype=lib.float64, requires_grad=True)
        out = x.norm(*args, **kwargs)
        out.sum().backward()
        zero = lib.zeros(3, dtype=lib.float64, requires_grad=True)
        zero.norm().backward()
        results.append((out, x.grad, zero.grad))
    for ours, theirs in zip(*results):
        if theirs is None:  # the 0-"norm" counts nonzeros: torch sends no gradient
            assert ours is None or not ours.numpy().any()
            continue
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)
    for lib in (distml, torch):
        with pytest.raises(RuntimeError, match="Expected a floating point or complex tensor as input. Got Long"):
            lib.tensor([1, 2]).norm()
