"""Tensor basics: creation, conversion, repr, random factories, threads, and the _C kernels
in the production dtypes (float32, float16)."""
import numpy as np
import pytest
import torch

import distml


@pytest.mark.parametrize("make", [
    lambda m: m.tensor([[1.0, 2.5], [3.0, -4.0]]),
    lambda m: m.tensor([1, 2, 3]),
    lambda m: m.tensor([True, False]),
    lambda m: m.tensor(3.5),
    lambda m: m.tensor([0.5, 1.0], dtype=m.float64),
    lambda m: m.tensor([1.0, 2.0], requires_grad=True),
    lambda m: m.tensor([1.0, 2.0], requires_grad=True) * 2,
    lambda m: m.zeros(0, 3),
    lambda m: m.zeros(0, dtype=m.int32),
    lambda m: m.tensor([1e-5, 1.0]),
    lambda m: m.tensor([1, 2], dtype=m.uint8),
    lambda m: m.tensor([1.0, 2.0], dtype=m.float16),
])
def test_repr_matches_torch(make):
    assert repr(make(distml)) == repr(make(torch)).replace("torch.", "distml.")


def test_creation_matches_torch():
    for f in [lambda m: m.arange(5), lambda m: m.arange(1, 2, 0.25), lambda m: m.linspace(0, 1, 5),
              lambda m: m.eye(2, 3), lambda m: m.full((2,), 7), lambda m: m.full((2,), 1.5),
              lambda m: m.zeros_like(m.ones(2, dtype=m.int64)), lambda m: m.ones(2, 3).new_zeros(4)]:
        got, expected = f(distml), f(torch)
        assert got.dtype.name == str(expected.dtype)[6:]
        np.testing.assert_allclose(got.numpy(), expected.numpy())
    assert distml.ones(2, 3).shape == (2, 3) and repr(distml.ones(2, 3).size()) == "distml.Size([2, 3])"
    a = np.zeros(3)
    distml.from_numpy(a)[0] = 1.0
    assert a[0] == 1.0


def test_conversions():
    x = distml.tensor([[1.7, -2.2]])
    assert x.long().tolist() == [[1, -2]] and x.long().dtype == distml.int64
    w = distml.tensor([0.5, 2.0], requires_grad=True)
    assert w.tolist() == torch.tensor([0.5, 2.0], requires_grad=True).tolist() == [0.5, 2.0]
    assert x.to(distml.float64).dtype == distml.float64 and x.double().float().dtype == distml.float32
    assert x[0, 0].item() == pytest.approx(1.7) and float(x[0, 1]) == pytest.approx(-2.2)
    assert x.clone().array is not x.array and x.detach().array is x.array
    assert x.numpy() is x.array
    square = distml.ones(2, 2)
    assert square.t().is_contiguous() is False and square.t().contiguous().is_contiguous()
    assert x.type() == "torch.FloatTensor" and x.element_size() == 4 and x.numel() == 2  # PyTorch's string


def test_random_factories_shapes_dtypes_and_seeding():
    distml.manual_seed(3)
    first = [distml.rand(2, 3), distml.randn(4), distml.randint(0, 5, (3,)), distml.randperm(6)]
    distml.manual_seed(3)
    second = [distml.rand(2, 3), distml.randn(4), distml.randint(0, 5, (3,)), distml.randperm(6)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert first[0].dtype == distml.float32 and first[2].dtype == distml.int64
    assert sorted(first[3].tolist()) == list(range(6))
    assert distml.randn(2, dtype=distml.float64).dtype == distml.float64
    assert distml.randint(10, (2, 2)).shape == (2, 2)
    g = distml.Generator().manual_seed(1)
    np.testing.assert_array_equal(distml.rand(3, generator=g).numpy(),
                                  distml.rand(3, generator=distml.Generator().manual_seed(1)).numpy())
    state = distml.get_rng_state()
    a = distml.randn(3)
    distml.set_rng_state(state)
    np.testing.assert_array_equal(a.numpy(), distml.randn(3).numpy())
    big = distml.normal(2.0, 3.0, size=(20000,))
    assert abs(big.mean().item() - 2.0) < 0.1 and abs(big.std().item() - 3.0) < 0.1
    p = distml.bernoulli(distml.full((20000,), 0.25))
    assert p.dtype == distml.float32 and abs(p.mean().item() - 0.25) < 0.02
    with distml.no_grad():
        w = distml.empty(1000).uniform_(-2, 2)
    assert -2 <= w.min().item() and w.max().item() < 2
    assert distml.multinomial(distml.tensor([0.0, 1.0]), 3, replacement=True).tolist() == [1, 1, 1]


def test_set_num_threads_sets_openmp_and_blas():
    from threadpoolctl import threadpool_info
    before = distml.get_num_threads()
    distml.set_num_threads(1)
    try:
        assert distml.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    finally:
        distml.set_num_threads(before)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float16, 2e-3)])
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_kernel_in_production_dtypes(dtype, tol, log, dim, rng):
    data = (rng.standard_normal((5, 7, 3)) * 4).astype(dtype)
    grad = rng.standard_normal((5, 7, 3)).astype(dtype)
    results = []
    for m in (distml, torch):
        x = m.from_numpy(data.copy()).requires_grad_()
        y = m.log_softmax(x, dim) if log else m.softmax(x, dim)
        y.backward(m.from_numpy(grad.copy()))
        assert str(y.dtype).endswith(np.dtype(dtype).name)
        results.append((y.detach().numpy().astype(np.float64), x.grad.numpy().astype(np.float64)))
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def test_softmax_with_infinities():
    x = distml.tensor([[0.0, -float("inf")], [-float("inf"), -float("inf")]])
    t = torch.tensor([[0.0, -float("inf")], [-float("inf"), -float("inf")]])
    np.testing.assert_array_equal(x.softmax(1).numpy()[0], t.softmax(1).numpy()[0])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_index_backward_accumulates_in_every_float_dtype(dtype):
    x = distml.from_numpy(np.zeros(4, dtype=dtype)).requires_grad_()
    index = distml.tensor([1, 1, 3, 1])
    (x[index] * 0.5).sum().backward()
    assert x.grad.dtype.name == np.dtype(dtype).name
    np.testing.assert_array_equal(x.grad.numpy(), np.array([0, 1.5, 0, 0.5], dtype=dtype))
    g = distml.from_numpy(np.zeros((2, 3), dtype=dtype)).requires_grad_()
    g.gather(1, distml.tensor([[2, 2], [0, 2]])).sum().backward()
    np.testing.assert_array_equal(g.grad.numpy(), np.array([[0, 0, 2], [1, 0, 1]], dtype=dtype))
