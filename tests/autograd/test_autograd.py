"""Autograd behaviour: backward options, grad modes, hooks, autograd.grad, custom Functions,
gradcheck, in-place rules, long chains and freeing the graph."""
import gc
import weakref

import numpy as np
import pytest
import torch

import distml
from distml.autograd import Function, GradcheckError, gradcheck


def leaf(values):
    return distml.tensor(values, dtype=distml.float64, requires_grad=True)


def test_grads_accumulate_and_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_second_backward_through_freed_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()


def test_backward_of_non_scalar_needs_gradient():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(distml.tensor([1.0, -1.0], dtype=distml.float64))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -2.0])
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (x * 2).backward(distml.ones(3, dtype=distml.float64))


def test_backward_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        distml.ones(2).sum().backward()


def test_grad_modes_as_context_and_decorator():
    x = leaf([1.0])
    with distml.no_grad():
        assert not (x * 2).requires_grad
        with distml.enable_grad():
            assert (x * 2).requires_grad
    with distml.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert distml.is_grad_enabled()

    @distml.no_grad()
    def frozen():
        return x * 2

    @distml.set_grad_enabled(False)
    def frozen_too():
        return x * 2

    assert not frozen().requires_grad and not frozen_too().requires_grad and (x * 2).requires_grad


def test_detach_and_requires_grad_():
    x = leaf([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None
    y = x.detach()
    y.array[0] = 5.0  # shares memory, as in PyTorch
    assert x.array[0] == 5.0
    z = distml.ones(2).requires_grad_()
    assert z.requires_grad and z.is_leaf
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf variables"):
        (z * 2).requires_grad_(False)


def test_retain_grad_on_non_leaf():
    x = leaf([1.0, 2.0])
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [6.0, 12.0])
    assert h.retains_grad


def test_hooks_on_leaf_and_non_leaf():
    x = leaf([1.0, 2.0])
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.numpy().copy()))
    h = x * 2
    h.register_hook(lambda g: g * 10)
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 20.0])
    np.testing.assert_allclose(seen[0], [20.0, 20.0])
    handle.remove()
    (x * 1).sum().backward()
    assert len(seen) == 1
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require gradient"):
        distml.ones(1).register_hook(lambda g: g)


def test_autograd_grad_returns_without_accumulating():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (x * w).sum()
    gx, gw = distml.autograd.grad(y, [x, w])
    np.testing.assert_allclose(gx.numpy(), [3.0, 4.0])
    np.testing.assert_allclose(gw.numpy(), [1.0, 2.0])
    assert x.grad is None and w.grad is None
    unused = leaf([1.0])
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        distml.autograd.grad((x * 2).sum(), [x, unused])
    assert distml.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)[1] is None


class Cube(Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * x * scale

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        assert ctx.needs_input_grad == (True, False)
        return 3 * x * x * ctx.scale * grad, None


class MulAdd(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b + a

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return (grad * (b + 1) if ctx.needs_input_grad[0] else None,
                grad * a if ctx.needs_input_grad[1] else None)


def test_custom_functions_pass_gradcheck():
    x = distml.randn(3, 2, dtype=distml.float64, requires_grad=True)
    y = distml.randn(3, 2, dtype=distml.float64, requires_grad=True)
    assert gradcheck(lambda t: Cube.apply(t, 2.0), (x,))
    assert gradcheck(MulAdd.apply, (x, y))
    out = Cube.apply(x, 2.0)
    assert out.grad_fn.name() == "CubeBackward"
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.detach().numpy() ** 2)


def test_custom_function_in_place_change_of_saved_tensor_raises():
    x = distml.randn(3, dtype=distml.float64, requires_grad=True)
    a = x * 1
    out = Cube.apply(a, 1.0)
    a.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_gradcheck_catches_a_wrong_gradient():
    class Wrong(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad * 3

    x = distml.randn(3, dtype=distml.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match="Jacobian mismatch"):
        gradcheck(Wrong.apply, (x,))
    assert gradcheck(Wrong.apply, (x,), raise_exception=False) is False


@pytest.mark.parametrize("name, f", [
    ("softmax", lambda x: x.softmax(-1)),
    ("log_softmax", lambda x: x.log_softmax(0)),
    ("logsumexp", lambda x: x.logsumexp(1)),
    ("prod", lambda x: x.prod(1)),
    ("gather", lambda x: x.gather(1, distml.tensor([[0, 0, 2], [1, 2, 2]]))),
    ("sort", lambda x: x.sort(1).values),
    ("norm", lambda x: x.norm(3, dim=1)),
    ("std", lambda x: x.std(0)),
    ("einsum", lambda x: distml.einsum("ij,kj->ik", x, x)),
])
def test_ops_pass_gradcheck(name, f):
    x = distml.randn(2, 3, dtype=distml.float64, requires_grad=True)
    assert gradcheck(f, (x,))


def test_in_place_change_of_saved_tensor_raises():
    x = leaf([1.0, 2.0])
    a = x * 1
    y = a * a
    a.add_(1)
    with pytest.raises(RuntimeError, match="one of the variables needed for gradient computation has been modified "
                                           "by an inplace operation"):
        y.sum().backward()


def test_in_place_on_a_leaf_requiring_grad_raises():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        x[0] = 3.0
    with distml.no_grad():
        x.mul_(2)
        x[1] = 7.0
    np.testing.assert_allclose(x.detach().numpy(), [2.0, 7.0])


def test_in_place_ops_match_torch(rng):
    data = rng.standard_normal((3, 4))
    results = []
    for m in (distml, torch):
        x = m.from_numpy(data.copy()).requires_grad_()
        y = x * 1
        y.mul_(2).add_(x, alpha=0.5).sub_(0.1).clamp_(-1.0, 1.5).abs_().sin_().div_(x + 3).pow_(2)
        y[0] = y[1] * 3
        y[:, 1] = y[:, 1] + x[:, 2]
        y.masked_fill_(y > 1.4, 0.0)
        y.exp_()
        z = y.sum() + y.abs().max()
        z.backward()
        results.append((y.detach().numpy().copy(), x.grad.numpy().copy()))
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_in_place_fill_zero_copy():
    x = distml.ones(2, 3)
    assert x.zero_() is x and x.sum().item() == 0
    x.fill_(2.5)
    x.copy_(distml.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(x.numpy(), [[1, 2, 3], [1, 2, 3]])
    v = x._version_number
    x.add_(1)
    assert x._version_number == v + 1


def test_views_share_the_version_counter():
    x = leaf([1.0, 2.0, 3.0])
    a = x * 1
    v = a[1:]
    y = a * a
    with distml.no_grad():
        v.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_repeated_indices_accumulate():
    for m in (distml, torch):
        x = m.zeros(3, dtype=m.float64, requires_grad=True)
        x[m.tensor([0, 0, 2, 0])].sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_leaf_gradients_never_share_memory():
    """The engine hands a leaf its gradient array without a copy only where nothing else holds
    it: leaves fed one array (an add), a retained grad and a user's gradient keep their own."""
    def run(lib):
        x, y = (lib.tensor([1.0, 2.0], dtype=lib.float64, requires_grad=True) for _ in range(2))
        h = x + y
        h.retain_grad()
        c = lib.tensor([3.0, 5.0], dtype=lib.float64)
        for _ in range(2):
            (h * c).sum().backward(retain_graph=True)
        seed = lib.ones(2, dtype=lib.float64)
        z = lib.tensor([1.0, 1.0], dtype=lib.float64, requires_grad=True)
        z.backward(seed)
        seed += 1
        return x.grad, y.grad, h.grad, z.grad

    ours, theirs = run(distml), run(torch)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    arrays = [g.array for g in ours]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])


@pytest.mark.parametrize("kept", [False, True])
def test_first_leaf_gradient_is_the_backward_array_unless_kept(kept):
    made, kept_tensors = [], []

    class Double(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            out = grad * 2
            made.append(id(out.array))
            if kept:
                kept_tensors.append(out)
            return out

    x = leaf([1.0, 2.0])
    Double.apply(x).backward(distml.ones(2, dtype=distml.float64))
    assert (id(x.grad.array) == made[0]) is not kept  # a copy only where the array is still held
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_chain_of_100000_ops():
    x = distml.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_graph_is_freed_after_backward_and_after_delete():
    gc.collect()
    gc.disable()
    try:
        x = distml.randn(4, requires_grad=True)
        y = (x.exp() * x).softmax(0)[1:].sum()
        node = weakref.ref(y.grad_fn)
        y.backward()
        del y
        assert node() is None
        z = (x.sigmoid() * 2).sum()
        node = weakref.ref(z.grad_fn)
        del z
        assert node() is None  # no reference cycle keeps a graph alive
    finally:
        gc.enable()


def test_multi_output_node_hooks_retain_grad_and_grad_per_output():
    def run(lib):
        x = lib.arange(6, dtype=lib.float64).reshape(3, 2).requires_grad_()
        a, b, c = x.unbind(0)
        b.retain_grad()
        c.register_hook(lambda g: None if g is None else g * 10)  # torch passes None where no gradient came
        (a * 2 + b * b).sum().backward(retain_graph=True)
        first = x.grad.clone()
        (c * 3).sum().backward(retain_graph=True)
        (ga,) = lib.autograd.grad((a * b).sum(), [b])
        return first, x.grad, b.grad, ga
    for ours, theirs in zip(run(distml), run(torch)):
        np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())


def test_custom_function_with_two_outputs_matches_torch():
    def make(lib):
        class SinCos(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x.sin(), x.cos()

            @staticmethod
            def backward(ctx, grad_sin, grad_cos):
                (x,) = ctx.saved_tensors
                return grad_sin * x.cos() - grad_cos * x.sin()
        x = lib.linspace(-1, 1, 5, dtype=lib.float64).requires_grad_()
        s, c = SinCos.apply(x)
        (s * 2).sum().backward()  # c gets no gradient: zeros are passed for it
        return s, c, x.grad
    for ours, theirs in zip(make(distml), make(torch)):
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy())


def test_max_pool_indices_are_a_second_output_without_grad():
    x = distml.randn(1, 1, 4, 4, requires_grad=True)
    out, indices = distml.nn.functional.max_pool2d(x, 2, return_indices=True)
    assert out.requires_grad and not indices.requires_grad and indices.dtype == distml.int64
    out.sum().backward()
    assert x.grad.sum().item() == 4
