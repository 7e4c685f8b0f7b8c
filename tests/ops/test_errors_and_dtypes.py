"""Type promotion and error cases, each checked against what PyTorch does."""
import numpy as np
import pytest
import torch

import distml


def t(m, data, dtype=None):
    return m.tensor(data, dtype=None if dtype is None else getattr(m, dtype))


PROMOTION = [
    ("int_plus_float_scalar", lambda m: t(m, [1, 2]) + 0.5),
    ("int_times_int_scalar", lambda m: t(m, [1, 2], "int32") * 3),
    ("int_div_int", lambda m: t(m, [1, 2]) / t(m, [2, 2])),
    ("int_floordiv", lambda m: t(m, [7, -7]) // 2),
    ("float_floordiv", lambda m: t(m, [7.5, -7.5]) // 2),
    ("remainder_neg", lambda m: t(m, [7, -7]) % 3),
    ("uint8_plus_int8", lambda m: t(m, [1], "uint8") + t(m, [1], "int8")),
    ("half_plus_float", lambda m: t(m, [1.0], "float16") + t(m, [1.0])),
    ("half_plus_scalar", lambda m: t(m, [1.0], "float16") * 2.5),
    ("double_0d_plus_float", lambda m: t(m, [1.0]) + t(m, 2.0, "float64")),
    ("int_0d_plus_float_tensor", lambda m: t(m, 3) * t(m, [1.5])),
    ("bool_plus_bool_scalar", lambda m: t(m, [True, False]) + True),
    ("bool_plus_int", lambda m: t(m, [True, False]) + 2),
    ("compare_gives_bool", lambda m: t(m, [1, 2]) > 1.5),
    ("sum_int", lambda m: t(m, [1, 2], "int32").sum()),
    ("sum_bool", lambda m: t(m, [True, True]).sum(0)),
    ("prod_int", lambda m: t(m, [[1, 2], [3, 4]], "int8").prod(1)),
    ("cumsum_int", lambda m: t(m, [1, 2], "int16").cumsum(0)),
    ("exp_int", lambda m: t(m, [1, 2]).exp()),
    ("sqrt_bool", lambda m: t(m, [True]).sqrt()),
    ("abs_int", lambda m: t(m, [-1, 2]).abs()),
    ("neg_int", lambda m: -t(m, [1, 2], "int16")),
    ("pow_int", lambda m: t(m, [2, 3]) ** 2),
    ("pow_int_float", lambda m: t(m, [2, 3]) ** 0.5),
    ("rpow_int", lambda m: 2 ** t(m, [2, 3])),
    ("max_int", lambda m: t(m, [[1, 5], [3, 2]]).max(1)),
    ("argmax", lambda m: t(m, [[1.0, 5.0], [3.0, 2.0]]).argmax()),
    ("var_int", lambda m: t(m, [1, 2, 4]).float().var()),
    ("mean_dtype", lambda m: t(m, [1, 2]).mean(dtype=m.float64)),
    ("where_int_float", lambda m: m.where(t(m, [True, False]), t(m, [1, 2]), 0.5)),
    ("maximum_int_float", lambda m: m.maximum(t(m, [1, 5]), t(m, [2.5, 1.0]))),
    ("cat_int_float", lambda m: m.cat([t(m, [1]), t(m, [2.5])])),
    ("clamp_int", lambda m: t(m, [1, 5, 9]).clamp(2, 6)),
    ("clamp_int_float", lambda m: t(m, [1, 5, 9]).clamp(min=2.5)),
    ("bitwise", lambda m: (t(m, [12, 10]) & 6) | t(m, [1, 0]) ^ t(m, [3, 3])),
    ("invert", lambda m: ~t(m, [0, 5], "uint8")),
    ("logical_ops", lambda m: m.logical_xor(t(m, [1, 0]), t(m, [1.0, 1.0])) & ~t(m, [True, False])),
    ("isnan", lambda m: m.isnan(t(m, [1.0, float("nan")]) / t(m, [1.0, 1.0]))),
    ("div_trunc", lambda m: m.div(t(m, [-7, 7]), 2, rounding_mode="trunc")),
    ("div_floor_float", lambda m: t(m, [-7.5, 7.5]).div(2, rounding_mode="floor")),
    ("sort_int", lambda m: t(m, [3, 1, 2], "int32").sort(descending=True)),
    ("to_dtype", lambda m: t(m, [1.7, -1.7]).to(m.int32)),
    ("long_float", lambda m: t(m, [1.7, -1.7]).long().float()),
    ("softmax_int_dtype", lambda m: t(m, [1, 2]).softmax(0, dtype=m.float64)),
    ("arange_float", lambda m: m.arange(0, 1, 0.25)),
    ("full_int", lambda m: m.full((2,), 3)),
    ("norm_int_to_float", lambda m: t(m, [3.0, 4.0], "float16").norm()),
]


@pytest.mark.parametrize("f", [c[1] for c in PROMOTION], ids=[c[0] for c in PROMOTION])
def test_promotion_matches_torch(f):
    expected, got = f(torch), f(distml)
    expected = list(expected) if isinstance(expected, tuple) else [expected]
    got = list(got) if isinstance(got, tuple) else [got]
    for e, g in zip(expected, got):
        assert g.dtype.name == str(e.dtype).replace("torch.", "")
        np.testing.assert_allclose(g.numpy().astype(np.float64), e.numpy().astype(np.float64), rtol=1e-3)


def test_mean_of_ints_raises_like_torch():
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype.*Got: Long"):
        distml.tensor([1, 2]).mean()


ERRORS = [
    ("broadcast", lambda m: m.ones(2, 3) + m.ones(2, 4), "The size of tensor a (3) must match the size of tensor b (4) "
     "at non-singleton dimension 1"),
    ("broadcast_lead", lambda m: m.ones(3) * m.ones(2, 4), "The size of tensor a (3) must match the size of tensor b "
     "(4) at non-singleton dimension 1"),
    ("matmul", lambda m: m.ones(64, 10) @ m.ones(20, 5), "mat1 and mat2 shapes cannot be multiplied (64x10 and 20x5)"),
    ("matmul_0d", lambda m: m.matmul(m.ones(()), m.ones(3)), "both arguments to matmul need to be at least 1D"),
    ("mm_1d", lambda m: m.mm(m.ones(3), m.ones(3, 2)), "self must be a matrix"),
    ("dim_range", lambda m: m.ones(2, 3).sum(2), "Dimension out of range (expected to be in range of [-2, 1], but "
     "got 2)"),
    ("dim_range_softmax", lambda m: m.ones(2, 3).softmax(-3), "Dimension out of range"),
    ("dim_repeated", lambda m: m.ones(2, 3).sum((1, 1)), "appears multiple times in the list of dims"),
    ("index_out_of_bounds", lambda m: m.ones(2, 3)[2], "index 2 is out of bounds for dimension 0 with size 2"),
    ("index_out_of_bounds_dim1", lambda m: m.ones(2, 3)[:, -4], "index -4 is out of bounds for dimension 1 with size 3"),
    ("too_many_indices", lambda m: m.ones(2)[0, 0], "too many indices for tensor of dimension 1"),
    ("negative_step", lambda m: m.ones(4)[::-1], "step must be greater than zero"),
    ("float_index", lambda m: m.ones(4)[m.ones(2)], "tensors used as indices must be long, int, byte or bool tensors"),
    ("gather_dtype", lambda m: m.ones(2, 3).gather(1, m.zeros(2, 1)), "Expected dtype int32/int64 for index"),
    ("gather_bounds", lambda m: m.ones(2, 3).gather(1, m.tensor([[3], [0]])), "out of bounds for dimension 1 with "
     "size 3"),
    ("view_noncontiguous", lambda m: m.ones(2, 3).t().view(6), "view size is not compatible with input tensor's size "
     "and stride"),
    ("reshape_size", lambda m: m.ones(2, 3).reshape(4, 2), "shape '[4, 2]' is invalid for input of size 6"),
    ("expand", lambda m: m.ones(2, 3).expand(4, 3), "The expanded size of the tensor (4) must match the existing "
     "size (2) at non-singleton dimension 0"),
    ("cat_sizes", lambda m: m.cat([m.ones(2, 3), m.ones(3, 2)], 1), "Sizes of tensors must match except in "
     "dimension 1. Expected size 2 but got size 3 for tensor number 1 in the list."),
    ("cat_empty", lambda m: m.cat([]), "expected a non-empty list of Tensors"),
    ("stack_sizes", lambda m: m.stack([m.ones(2), m.ones(3)]), "stack expects each tensor to be equal size, but got "
     "[2] at entry 0 and [3] at entry 1"),
    ("topk_k", lambda m: m.ones(3).topk(4), "selected index k out of range"),
    ("item_many", lambda m: m.ones(2).item(), "a Tensor with 2 elements cannot be converted to Scalar"),
    ("bool_ambiguous", lambda m: bool(m.ones(2)), "Boolean value of Tensor with more than one value is ambiguous"),
    ("neg_bool", lambda m: -m.ones(2, dtype=m.bool), "Negation, the `-` operator, on a bool tensor is not supported"),
    ("sub_bool", lambda m: m.ones(2, dtype=m.bool) - m.ones(2, dtype=m.bool), "Subtraction, the `-` operator, with "
     "two bool tensors is not supported"),
    ("bitwise_float", lambda m: m.ones(2) & m.ones(2), "not implemented for 'Float'"),
    ("bitwise_double_scalar", lambda m: m.ones(2, dtype=m.float64) | 1, "not implemented for 'Double'"),
    ("requires_grad_int", lambda m: m.ones(2, dtype=m.int64).requires_grad_(), "only Tensors of floating point "
     "dtype can require gradients"),
    ("numpy_requires_grad", lambda m: m.ones(2, requires_grad=True).numpy(), "Can't call numpy() on Tensor that "
     "requires grad"),
    ("inplace_cast", lambda m: m.ones(2, dtype=m.int64).add_(0.5), "result type Float can't be cast to the desired "
     "output type Long"),
    ("masked_fill_float_mask", lambda m: m.ones(2).masked_fill(m.ones(2), 0.0), "masked_fill_ only supports boolean "
     "masks"),
    ("clamp_none", lambda m: m.ones(2).clamp(), "At least one of 'min' or 'max' must not be None"),
    ("split_sizes", lambda m: m.ones(5).split([2, 2]), "split_with_sizes expects split_sizes to sum exactly to 5"),
    ("negative_dim_size", lambda m: m.ones(2, -1), "Trying to create tensor with negative dimension -1: [2, -1]"),
    ("amax_empty", lambda m: m.zeros(0, 3).amax(0), "Expected reduction dim 0 to have non-zero size"),
    ("einsum_operands", lambda m: m.einsum("ij,jk->ik", m.ones(2, 2)), "operands"),
    ("div_rounding_mode", lambda m: m.div(m.ones(2), 2, rounding_mode="round"), "div expected rounding_mode to be "
     "one of None, 'trunc', or 'floor'"),
    ("randint_bounds", lambda m: m.randint(5, 5, (2,)), "random_ expects 'from' to be less than 'to'"),
    ("len_0d", lambda m: len(m.tensor(1.0)), "len() of a 0-d tensor"),
]


@pytest.mark.parametrize("f, message", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_error_matches_torch(f, message):
    with pytest.raises(Exception) as expected:
        f(torch)
    assert message in str(expected.value)
    with pytest.raises(expected.type) as got:
        f(distml)
    assert message in str(got.value)
