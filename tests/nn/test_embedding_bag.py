"""nn.EmbeddingBag and F.embedding_bag against PyTorch: sum / mean / max bags from offsets
(with include_last_offset and empty bags) or 2-D input, per_sample_weights, padding_idx;
outputs, weight and per_sample_weights gradients (float64 and float32); repr, errors."""
import numpy as np
import pytest
import torch

import distml
from distml import nn
from distml.nn import functional as F

CASES = [  # (input, offsets, kwargs)
    ([1, 2, 4, 5, 4, 3, 2, 9], [0, 4], {}),
    ([1, 2, 4, 5, 4, 3, 2, 9], [0, 2, 2, 7], {"mode": "sum"}),
    ([1, 2, 4, 5, 4, 3, 2, 9], [0, 2, 2, 7], {"mode": "max"}),
    ([1, 2, 4, 5, 4, 3, 2, 9], [0, 3, 5, 8], {"mode": "mean", "include_last_offset": True}),
    ([1, 2, 4, 5, 4, 3, 2, 9], [0, 3, 3, 8], {"mode": "max", "include_last_offset": True}),
    ([1, 2, 2, 2, 4, 3, 2, 9], [0, 3, 4], {"mode": "mean", "padding_idx": 2}),
    ([1, 2, 2, 2, 4, 3, 2, 9], [0, 3, 4], {"mode": "max", "padding_idx": -8}),
    ([[1, 2, 4], [4, 3, 3], [0, 9, 9]], None, {"mode": "sum"}),
    ([[1, 2, 4], [4, 3, 3], [0, 9, 9]], None, {"mode": "max", "padding_idx": 9}),
    ([[1, 2, 4], [4, 3, 3]], None, {}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("indices,offsets,kwargs", CASES, ids=lambda v: str(v))
def test_embedding_bag_matches_torch(same, indices, offsets, kwargs, dtype):
    dm, tm = nn.EmbeddingBag(10, 3, **kwargs), torch.nn.EmbeddingBag(10, 3, **kwargs)
    assert repr(dm) == repr(tm)
    inputs = [np.array(indices)] + ([] if offsets is None else [np.array(offsets)])
    same(dm, tm, inputs, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("two_d", [False, True])
def test_per_sample_weights(rng, dtype, two_d):
    weight = rng.standard_normal((7, 4)).astype(dtype)
    idx = np.array([[0, 3, 3], [6, 1, 2]]) if two_d else np.array([0, 3, 3, 6, 1, 2, 3])
    offsets = None if two_d else np.array([0, 2, 2, 5])
    psw = rng.standard_normal(idx.shape).astype(dtype)
    results = []
    for m in (distml, torch):
        w, p = m.tensor(weight, requires_grad=True), m.tensor(psw, requires_grad=True)
        out = m.nn.functional.embedding_bag(m.tensor(idx), w, None if offsets is None else m.tensor(offsets),
                                            mode="sum", per_sample_weights=p, padding_idx=3)
        out.backward(m.tensor(np.linspace(-1, 1, out.numel()).reshape(tuple(out.shape)).astype(dtype)))
        results.append([out.detach().numpy(), w.grad.numpy(), p.grad.numpy()])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


def test_from_pretrained_and_int32(rng):
    weight = rng.standard_normal((5, 2))
    bag_d = nn.EmbeddingBag.from_pretrained(distml.tensor(weight), mode="max")
    bag_t = torch.nn.EmbeddingBag.from_pretrained(torch.tensor(weight), mode="max")
    assert not bag_d.weight.requires_grad and repr(bag_d) == repr(bag_t)
    idx, offsets = np.array([4, 0, 1, 1], dtype=np.int32), np.array([0, 1], dtype=np.int32)
    np.testing.assert_array_equal(bag_d(distml.tensor(idx), distml.tensor(offsets)).numpy(),
                                  bag_t(torch.tensor(idx), torch.tensor(offsets)).numpy())
    assert list(bag_d.state_dict()) == list(bag_t.state_dict()) == ["weight"]
    assert nn.EmbeddingBag.from_pretrained(distml.tensor(weight), freeze=False).weight.requires_grad
    padded = nn.EmbeddingBag(6, 3, padding_idx=-1)
    assert padded.padding_idx == 5 and not padded.weight.detach().numpy()[5].any()


ERRORS = [
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1, 2]), m.ones(6, 2), m.tensor([1])), RuntimeError,
     "offsets\\[0\\] has to be 0, i.e., the first sequence in the mini-batch has to start from position 0. "
     "However, got 1"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1, 2]), m.ones(6, 2), m.tensor([0, 5])), RuntimeError,
     "offsets\\[-1\\] can not be greater than input's length 2 but got offsets\\[-1\\] of 5"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1, 2]), m.ones(6, 2)), ValueError,
     "offsets has to be a 1D Tensor but got None"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([[1, 2]]), m.ones(6, 2), m.tensor([0])), ValueError,
     "if input is 2D, then offsets has to be None"),
    (lambda m: m.nn.functional.embedding_bag(m.zeros(1, 1, 1, dtype=m.int64), m.ones(6, 2)), ValueError,
     "input has to be 1D or 2D Tensor, but got Tensor of dimension 3"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1, 2]), m.ones(6, 2), m.tensor([0]), mode="foo"),
     ValueError, "mode has to be one of sum, mean or max"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1, 2]), m.ones(6, 2), m.tensor([0]),
                                             per_sample_weights=m.ones(2)), NotImplementedError,
     "per_sample_weights is only supported for mode='sum' \\(got mode='mean'\\)"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1, 2]), m.ones(6, 2), m.tensor([0]), mode="sum",
                                             per_sample_weights=m.ones(3)), ValueError,
     "embedding_bag: If per_sample_weights"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1.0, 2.0]), m.ones(6, 2), m.tensor([0])), RuntimeError,
     "Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1, 2]), m.ones(6), m.tensor([0])), ValueError,
     "weight has to be a 2D Tensor, but got Tensor of dimension 1"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1, 2]), m.ones(6, 2), m.tensor([0]), padding_idx=6),
     RuntimeError, "padding_idx must be within the number of embeddings, -6 through 5, but got 6"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1, 2]), m.ones(6, 2), m.tensor([0]), mode="max",
                                             scale_grad_by_freq=True), ValueError,
     "max mode does not support scaling the gradient by the frequency"),
    (lambda m: m.nn.functional.embedding_bag(m.tensor([1, 9]), m.ones(6, 2), m.tensor([0])), RuntimeError, ""),
    (lambda m: m.nn.EmbeddingBag(6, 2, padding_idx=6), AssertionError, "padding_idx must be within num_embeddings"),
    (lambda m: m.nn.EmbeddingBag(6, 2, _weight=m.zeros(5, 2)), AssertionError,
     "Shape of weight does not match num_embeddings and embedding_dim"),
    (lambda m: m.nn.EmbeddingBag.from_pretrained(m.zeros(5)), AssertionError,
     "Embeddings parameter is expected to be 2-dimensional"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_match_torch(case):
    fn, error, message = ERRORS[case]
    for m in (torch, distml):
        with pytest.raises(error, match=message):
            fn(m)


@pytest.mark.parametrize("option", [{"max_norm": 1.0}, {"scale_grad_by_freq": True}, {"sparse": True}])
def test_unsupported_options_raise(option):
    with pytest.raises(NotImplementedError, match=next(iter(option))):
        nn.EmbeddingBag(5, 2, **option)
    with pytest.raises(NotImplementedError, match=next(iter(option))):
        F.embedding_bag(distml.tensor([1, 2]), distml.ones(5, 2), distml.tensor([0]), mode="sum", **option)
