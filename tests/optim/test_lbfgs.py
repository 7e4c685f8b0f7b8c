"""LBFGS against torch.optim.LBFGS: the same problems from the same start, step for step."""
import io

import numpy as np
import pytest
import torch

import distml
from distml import optim

RNG = np.random.default_rng(0)
X, Y = RNG.standard_normal((20, 5)), RNG.standard_normal((20, 3))
X_MLP, Y_MLP = RNG.standard_normal((16, 4)), RNG.standard_normal((16, 2))
C = RNG.standard_normal(3) + 1j * RNG.standard_normal(3)


def rosenbrock(m, x, y):
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def regression(m, w, b):
    return ((m.tensor(X).to(w.dtype) @ w + b - m.tensor(Y).to(w.dtype)) ** 2).mean()


def mlp(m, w1, b1, w2, b2):
    return ((m.tanh(m.tensor(X_MLP).to(w1.dtype) @ w1 + b1) @ w2 + b2 - m.tensor(Y_MLP).to(w1.dtype)) ** 2).mean()


def complex_fit(m, z):
    return ((z - m.tensor(C)).abs() ** 2).sum() + (z.real * z.imag).sum() ** 2


PROBLEMS = {
    "rosenbrock": (rosenbrock, [np.array(-1.5), np.array(2.0)]),
    "regression": (regression, [RNG.standard_normal((5, 3)), RNG.standard_normal(3)]),
    "mlp": (mlp, [RNG.standard_normal((4, 8)), RNG.standard_normal(8), RNG.standard_normal((8, 2)),
                  RNG.standard_normal(2)]),
    "complex": (complex_fit, [np.array([0.5 - 1j, 2 + 0.5j, -1 + 0j])]),
}


def run(m, problem, options, steps, dtype="float64"):
    """(returned loss, parameters) after each of `steps` calls of step(closure), and the optimizer."""
    fn, start = PROBLEMS[problem]
    params = [m.tensor(a.astype(a.dtype if a.dtype.kind == "c" else dtype), requires_grad=True) for a in start]
    optimizer = m.optim.LBFGS(params, **options)

    def closure():
        optimizer.zero_grad()
        loss = fn(m, *params)
        loss.backward()
        return loss

    history = []
    for _ in range(steps):
        loss = optimizer.step(closure)
        history.append((loss.item(), [p.detach().numpy().copy() for p in params]))
    return history, optimizer, params


def assert_same_run(ours, theirs, rtol, atol):
    for (loss, params), (loss_t, params_t) in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(loss, loss_t, rtol=rtol, atol=atol)
        for p, p_t in zip(params, params_t, strict=True):
            assert p.dtype == p_t.dtype
            np.testing.assert_allclose(p, p_t, rtol=rtol, atol=atol)


# Rounding differs in the last bit (PyTorch's fused multiply-add in `add_(alpha=)`, BLAS's order of
# summation in dot products); the cases are ones that do not amplify it far (a fixed step of 1 on
# Rosenbrock for 20 iterations does, to 1e-7 in three steps).
CASES = [
    ("rosenbrock", dict(max_iter=6), 3),
    ("rosenbrock", dict(lr=0.5, max_iter=10), 3),
    ("rosenbrock", dict(line_search_fn="strong_wolfe"), 4),  # converges: the last step returns at once
    ("rosenbrock", dict(line_search_fn="strong_wolfe", history_size=2, max_iter=7), 3),
    ("rosenbrock", dict(lr=0.1, history_size=1, max_iter=4), 3),
    ("rosenbrock", dict(line_search_fn="strong_wolfe", max_iter=1), 4),  # no evaluation left for the search
    ("rosenbrock", dict(line_search_fn="strong_wolfe", max_eval=8), 3),
    ("regression", dict(), 3),
    ("regression", dict(history_size=3, max_iter=6), 3),
    ("regression", dict(line_search_fn="strong_wolfe", history_size=3), 2),
    ("regression", dict(lr=0.5, line_search_fn="strong_wolfe", tolerance_change=1e-4), 2),
    ("regression", dict(tolerance_grad=1e-2, max_iter=50), 2),  # stops once the gradient is small
    ("regression", dict(line_search_fn="strong_wolfe", tolerance_grad=1e-3, max_iter=50, max_eval=80), 2),
    ("mlp", dict(lr=0.8, max_iter=10), 3),
    ("mlp", dict(history_size=4, max_iter=8), 3),
    ("mlp", dict(line_search_fn="strong_wolfe", history_size=5, max_iter=10), 3),
    ("complex", dict(max_iter=5), 2),
    ("complex", dict(line_search_fn="strong_wolfe", max_iter=5), 2),
]


@pytest.mark.parametrize("problem, options, steps", CASES,
                         ids=[f"{c[0]}-{'-'.join(f'{k}={v}' for k, v in c[1].items())}" for c in CASES])
def test_matches_torch(problem, options, steps):
    ours, optimizer, params = run(distml, problem, options, steps)
    theirs, optimizer_t, _ = run(torch, problem, options, steps)
    assert_same_run(ours, theirs, rtol=1e-10, atol=1e-11)
    state, state_t = optimizer.state[params[0]], optimizer_t.state[optimizer_t.param_groups[0]["params"][0]]
    assert (state["func_evals"], state["n_iter"]) == (state_t["func_evals"], state_t["n_iter"])


def test_matches_torch_float32():
    """In float32 the two libraries' products round differently (OpenBLAS and MKL pick other
    kernels on AVX-512 and AVX2 CPUs), and two steps of L-BFGS grow that to about 0.4 %."""
    ours, _, _ = run(distml, "regression", dict(history_size=3), 2, dtype="float32")
    theirs, _, _ = run(torch, "regression", dict(history_size=3), 2, dtype="float32")
    assert_same_run(ours, theirs, rtol=2e-2, atol=1e-3)


def test_state_like_torch():
    options = dict(line_search_fn="strong_wolfe", history_size=3, max_iter=5)
    _, optimizer, params = run(distml, "mlp", options, 2)
    _, optimizer_t, params_t = run(torch, "mlp", options, 2)
    state, state_t = optimizer.state[params[0]], optimizer_t.state[params_t[0]]
    assert set(state) == set(state_t)
    assert [None if a is None else float(a) for a in state["al"]] == \
        pytest.approx([None if a is None else float(a) for a in state_t["al"]], rel=1e-9)
    for key in ("d", "prev_flat_grad", "H_diag"):
        np.testing.assert_allclose(state[key].numpy(), state_t[key].numpy(), rtol=1e-9, atol=1e-12)
    for key in ("old_dirs", "old_stps", "ro"):
        assert len(state[key]) == len(state_t[key])
        for v, v_t in zip(state[key], state_t[key]):
            np.testing.assert_allclose(v.numpy(), v_t.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose([float(state["t"]), state["prev_loss"]], [float(state_t["t"]), state_t["prev_loss"]],
                               rtol=1e-10)


def test_state_dict_round_trip():
    """Two steps, a save and load into a fresh optimizer, two more: the same as four uninterrupted."""
    options = dict(line_search_fn="strong_wolfe", history_size=4, max_iter=4)
    fn, _ = PROBLEMS["mlp"]
    straight, _, _ = run(distml, "mlp", options, 4)
    first, optimizer, params = run(distml, "mlp", options, 2)
    buffer = io.BytesIO()
    distml.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    params2 = [distml.tensor(p.detach().numpy(), requires_grad=True) for p in params]
    resumed = optim.LBFGS(params2, **options)
    resumed.load_state_dict(distml.load(buffer))

    def closure():
        resumed.zero_grad()
        loss = fn(distml, *params2)
        loss.backward()
        return loss

    second = []
    for _ in range(2):
        loss = resumed.step(closure)
        second.append((loss.item(), [p.detach().numpy().copy() for p in params2]))
    assert_same_run(first + second, straight, rtol=0, atol=0)


def test_updates_parameters_in_place():
    fn, start = PROBLEMS["regression"]
    params = [distml.tensor(a, requires_grad=True) for a in start]
    arrays, versions = [p.array for p in params], [p._version_number for p in params]
    optimizer = optim.LBFGS(params, line_search_fn="strong_wolfe", max_iter=3)

    def closure():
        optimizer.zero_grad()
        loss = fn(distml, *params)
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert isinstance(loss, distml.Tensor) and loss.requires_grad  # the closure's own first loss
    assert all(p.array is a for p, a in zip(params, arrays))
    assert all(p._version_number > v for p, v in zip(params, versions))
    assert not np.allclose(params[0].detach().numpy(), start[0])


def test_parameter_without_gradient_is_left_alone():
    used, unused = distml.tensor([3.0, -1.0], requires_grad=True), distml.tensor([5.0], requires_grad=True)
    optimizer = optim.LBFGS([used, unused], max_iter=3)

    def closure():
        optimizer.zero_grad()
        loss = ((used - 1) ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    assert unused.item() == 5.0
    assert used.detach().numpy().tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("make, error, message", [
    (lambda m, w, b: m.optim.LBFGS([{"params": [w]}, {"params": [b]}]), ValueError,
     "LBFGS doesn't support per-parameter options (parameter groups)"),
    (lambda m, w, b: m.optim.LBFGS([w], lr=-1), ValueError, "Invalid learning rate: -1"),
    (lambda m, w, b: m.optim.LBFGS([w], lr=m.tensor([1.0, 2.0])), ValueError, "Tensor lr must be 1-element"),
    (lambda m, w, b: m.optim.LBFGS([w]).step(), TypeError,
     "LBFGS.step() missing 1 required positional argument: 'closure'"),
    (lambda m, w, b: m.optim.LBFGS([w]).step(None), TypeError, "'NoneType' object is not callable"),
])
def test_errors_like_torch(make, error, message):
    for m in (distml, torch):
        w, b = m.zeros(2, requires_grad=True), m.zeros(1, requires_grad=True)
        with pytest.raises(error) as info:
            make(m, w, b)
        assert str(info.value) == message


def test_unknown_line_search_raises_at_step():
    w = distml.tensor([1.0, 2.0], requires_grad=True)
    optimizer = optim.LBFGS([w], line_search_fn="backtracking")

    def closure():
        optimizer.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        optimizer.step(closure)
