"""Optimizers against torch.optim: the same parameters and gradient sequence, step for step."""
import types

import numpy as np
import pytest
import torch

import distml
from distml import optim
from distml.optim import adadelta, adagrad, adam, rmsprop, sgd

# One large tensor so the fused kernels take their OpenMP path too.
SHAPES = [(3, 4), (5,), (2, 3, 2), (40000,)]

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True, weight_decay=0.05)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.1, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, maximize=True, eps=1e-6)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)),
    ("Adadelta", dict(maximize=True)),
    # implementation choices: the array loop (foreach=False), the fused kernel as torch's fused one
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, foreach=False)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.1, fused=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1, foreach=False)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, fused=True)),
    ("AdamW", dict(lr=0.01, amsgrad=True, foreach=True)),
    ("AdamW", dict(lr=0.01, maximize=True, fused=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, foreach=False)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, foreach=False)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, fused=True)),
    ("Adadelta", dict(weight_decay=0.1, foreach=False)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.01, betas=(0.3, 0.9), weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01, maximize=True)),
    ("ASGD", dict()),
    ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=5, weight_decay=0.1)),
    ("ASGD", dict(lr=0.05, t0=0, maximize=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.08))),
    ("Rprop", dict(lr=0.05, maximize=True)),
    ("Adafactor", dict()),
    ("Adafactor", dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0, weight_decay=0.1)),
    ("Adafactor", dict(maximize=True)),
]

# The pure-array updates, installed in place of the _C kernels to test the cupy path on numpy arrays.
XP_KERNELS = [(sgd, dict(sgd_step=sgd.sgd_xp)), (adam, dict(adam_step=adam.adam_xp)),
              (rmsprop, dict(rmsprop_step=rmsprop.rmsprop_xp)), (adagrad, dict(adagrad_step=adagrad.adagrad_xp)),
              (adadelta, dict(adadelta_step=adadelta.adadelta_xp))]


def case_id(case):
    return case[0] + "-" + "-".join(f"{k}={v}" for k, v in case[1].items())


def make_params(rng, dtype, shapes=SHAPES):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def gradient(array, t, noise):
    """A gradient that depends on the current parameter (a quadratic) plus fixed per-step noise."""
    return (0.5 * array + noise[t]).astype(array.dtype)


def run_distml(optimizer, params, noises, steps):
    for t in range(steps):
        for p, noise in zip(params, noises):
            p.grad = distml.tensor(gradient(p.array, t, noise))
        optimizer.step()


def run_torch(optimizer, params, noises, steps):
    for t in range(steps):
        for p, noise in zip(params, noises):
            p.grad = torch.from_numpy(gradient(p.detach().numpy(), t, noise))
        optimizer.step()


def tolerance(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)


# The optimizers with a fused _C kernel; the others need no large tensor (their arrays have no threaded path).
KERNEL_OPTIMIZERS = {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"}


def check_against_torch(rng, name, options, dtype, steps=20):
    arrays = make_params(rng, dtype, SHAPES if name in KERNEL_OPTIMIZERS else SHAPES[:3] + [(50,)])
    noises = [rng.standard_normal((steps,) + a.shape) for a in arrays]
    ours = [distml.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours_opt = getattr(optim, name)(ours, **options)
    theirs_opt = getattr(torch.optim, name)(theirs, **options)
    for t in range(steps):
        run_distml(ours_opt, ours, [n[t:] for n in noises], 1)
        run_torch(theirs_opt, theirs, [n[t:] for n in noises], 1)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.array, q.detach().numpy(), **tolerance(dtype), err_msg=f"step {t}")
    return ours_opt, theirs_opt


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch(rng, case, dtype):
    name, options = case
    ours, theirs = check_against_torch(rng, name, options, dtype)
    ours_saved, theirs_saved = ours.state_dict(), theirs.state_dict()
    assert ours_saved["param_groups"] == theirs_saved["param_groups"]  # every key and value, in torch's order
    assert [list(g) for g in ours_saved["param_groups"]] == [list(g) for g in theirs_saved["param_groups"]]
    assert list(ours_saved["state"]) == list(theirs_saved["state"])
    for index, state in theirs_saved["state"].items():
        assert list(ours_saved["state"][index]) == list(state)
        for key, value in state.items():
            mine = ours_saved["state"][index][key]
            assert str(mine.dtype).replace("distml", "torch") == str(value.dtype), key
            # an absolute tolerance on the state's scale: a momentum buffer sums terms of both signs
            scale = max(1.0, float(value.abs().max()))
            np.testing.assert_allclose(mine.array, value.numpy(), rtol=tolerance(dtype)["rtol"],
                                       atol=tolerance(dtype)["atol"] * scale, err_msg=key)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_array_update_matches_torch(rng, monkeypatch, case):
    for module, kernels in XP_KERNELS:
        monkeypatch.setattr(module, "C", types.SimpleNamespace(**kernels))
    check_against_torch(rng, *case, np.float64, steps=8)


def test_param_groups_with_their_own_options(rng):
    arrays = make_params(rng, np.float64)
    noises = [rng.standard_normal((20,) + a.shape) for a in arrays]
    ours = [distml.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]

    def groups(params):
        return [{"params": params[:2]}, {"params": params[2:], "lr": 0.01, "momentum": 0.5, "nesterov": True}]

    ours_opt = optim.SGD(groups(ours), lr=0.1, momentum=0.9)
    theirs_opt = torch.optim.SGD(groups(theirs), lr=0.1, momentum=0.9)
    assert ours_opt.param_groups[1]["dampening"] == 0 and ours_opt.param_groups[0]["nesterov"] is False
    run_distml(ours_opt, ours, noises, 20)
    run_torch(theirs_opt, theirs, noises, 20)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.array, q.detach().numpy(), **tolerance(np.float64))


def test_mixed_dtypes_in_one_group(rng):
    arrays = [rng.standard_normal(4), rng.standard_normal(3).astype(np.float32)]
    ours = [distml.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    noises = [rng.standard_normal((5,) + a.shape) for a in arrays]
    run_distml(optim.Adam(ours, lr=0.1), ours, noises, 5)
    run_torch(torch.optim.Adam(theirs, lr=0.1), theirs, noises, 5)
    for p, q in zip(ours, theirs):
        assert p.dtype == distml.from_numpy(q.detach().numpy()).dtype
        np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=1e-5)


def test_non_contiguous_parameter_is_updated_in_place(rng):
    base = rng.standard_normal((4, 3))
    p = distml.Tensor(base.T)  # a transposed view: not C-contiguous
    p.requires_grad = True
    q = torch.tensor(base.T.copy(), requires_grad=True)
    p.grad = distml.tensor(np.ones((3, 4)))
    q.grad = torch.ones(3, 4, dtype=torch.float64)
    for _ in range(3):
        optim.Adam([p], lr=0.1).step()
        torch.optim.Adam([q], lr=0.1).step()
    np.testing.assert_allclose(base.T, q.detach().numpy(), rtol=1e-12)
    assert p._version_number == 3


def test_parameters_without_grad_are_skipped():
    a = distml.tensor([1.0, 2.0], requires_grad=True)
    b = distml.tensor([3.0], requires_grad=True)
    a.grad = distml.tensor([1.0, 1.0])
    opt = optim.Adam([a, b], lr=0.1)
    opt.step()
    assert b.array.tolist() == [3.0] and a.array.tolist() != [1.0, 2.0]
    assert b not in opt.state and a in opt.state


def test_step_returns_closure_loss_computed_with_grad():
    w = distml.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with distml.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 5.0
    assert w.array.tolist() == [0.5, -1.0]


def test_zero_grad():
    w = distml.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    w.grad = distml.tensor([3.0, 4.0])
    grad = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is grad and grad.array.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert w.grad is None


def trained(name, options, arrays, noises, steps, state=None):
    params = [distml.tensor(a, requires_grad=True) for a in arrays]
    opt = getattr(optim, name)(params, **options)
    if state is not None:
        opt.load_state_dict(state)
    run_distml(opt, params, noises, steps)
    return params, opt


def to_torch_state(state_dict):
    return {"state": {k: {n: torch.from_numpy(v.array.copy()) if isinstance(v, distml.Tensor) else v
                          for n, v in s.items()} for k, s in state_dict["state"].items()},
            "param_groups": state_dict["param_groups"]}


ROUND_TRIP = [CASES[i] for i in (2, 7, 10, 14, 16, 19)] + [case for case in CASES[21:] if "foreach" not in case[1]]


@pytest.mark.parametrize("case", ROUND_TRIP, ids=case_id)
def test_state_dict_round_trip(rng, case):
    name, options = case
    arrays = make_params(rng, np.float64, SHAPES[:3])
    noises = [rng.standard_normal((20,) + a.shape) for a in arrays]
    params, opt = trained(name, options, arrays, noises, 10)
    saved = opt.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2] and saved["param_groups"][0]["params"] == [0, 1, 2]
    middle = [p.array.copy() for p in params]
    torch_state = to_torch_state(saved)  # copies now: `saved` holds the optimizer's live tensors, as in PyTorch

    # A fresh optimizer on copies of the parameters continues exactly where this one is (and as both
    # keep running, this also shows that loading copied the state rather than sharing it).
    resumed, _ = trained(name, options, middle, [n[10:] for n in noises], 10, state=saved)
    run_distml(opt, params, [n[10:] for n in noises], 10)
    for p, q in zip(params, resumed):
        # Not bitwise: loading casts scalar state (NAdam's mu_product, ASGD's eta) to the parameter's dtype, as torch.
        np.testing.assert_allclose(p.array, q.array, **tolerance(np.float64))

    # torch.optim loads our state dict (tensors converted) and continues the same way.
    theirs = [torch.tensor(m, requires_grad=True) for m in middle]
    theirs_opt = getattr(torch.optim, name)(theirs, **options)
    theirs_opt.load_state_dict(torch_state)
    run_torch(theirs_opt, theirs, [n[10:] for n in noises], 10)
    for p, q in zip(params, theirs):
        np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ROUND_TRIP, ids=case_id)
def test_loads_torch_state_dict(rng, case):
    name, options = case
    arrays = make_params(rng, np.float64, SHAPES[:3])
    noises = [rng.standard_normal((20,) + a.shape) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    theirs_opt = getattr(torch.optim, name)(theirs, **options)
    run_torch(theirs_opt, theirs, noises, 10)
    saved = theirs_opt.state_dict()
    state = {"state": {k: {n: distml.tensor(v.numpy()) for n, v in s.items()} for k, s in saved["state"].items()},
             "param_groups": saved["param_groups"]}
    ours, ours_opt = trained(name, options, [p.detach().numpy().copy() for p in theirs], [n[10:] for n in noises],
                             10, state)
    run_torch(theirs_opt, theirs, [n[10:] for n in noises], 10)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert ours_opt.state_dict()["param_groups"] == theirs_opt.state_dict()["param_groups"]


def test_load_state_dict_fills_missing_options_and_converts_number_steps():
    """An older state dict (no foreach/fused keys, "step" a number) loads as in torch's __setstate__."""
    for module, tensor, tensor_type in ((optim, distml.tensor, distml.Tensor), (torch.optim, torch.tensor, torch.Tensor)):
        w = tensor([1.0, 2.0], requires_grad=True)
        opt = module.Adam([w], lr=0.1)
        group = {"lr": 0.5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False, "params": [0]}
        opt.load_state_dict({"state": {0: {"step": 3, "exp_avg": tensor([0.1, 0.2]),
                                           "exp_avg_sq": tensor([0.01, 0.04])}}, "param_groups": [group]})
        loaded = opt.state_dict()
        assert loaded["param_groups"][0] == dict(module.Adam([w], lr=0.5).state_dict()["param_groups"][0])
        assert isinstance(loaded["state"][0]["step"], tensor_type) and loaded["state"][0]["step"].item() == 3.0


def test_load_state_dict_casts_to_parameter_dtype():
    w = distml.tensor([1.0, 2.0], dtype=distml.float32, requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    opt.load_state_dict({"state": {0: {"momentum_buffer": distml.tensor([1.0, 1.0], dtype=distml.float64)}},
                         "param_groups": [dict(opt.state_dict()["param_groups"][0], lr=0.5)]})
    assert opt.state[w]["momentum_buffer"].dtype == distml.float32
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["params"][0] is w


def test_load_state_dict_errors():
    a, b = distml.tensor([1.0], requires_grad=True), distml.tensor([2.0], requires_grad=True)
    saved = optim.SGD([a, b]).state_dict()
    with pytest.raises(ValueError, match="loaded state dict contains a parameter group that doesn't match the size "
                                         "of optimizer's group"):
        optim.SGD([a]).load_state_dict(saved)
    with pytest.raises(ValueError, match="loaded state dict has a different number of parameter groups"):
        optim.SGD([{"params": [a]}, {"params": [b]}]).load_state_dict(saved)


def test_params_as_generator_list_and_named_groups():
    ws = [distml.tensor([1.0], requires_grad=True) for _ in range(3)]
    assert len(optim.SGD(iter(ws)).param_groups[0]["params"]) == 3
    opt = optim.Adam([{"params": ws[0]}, {"params": ws[1:], "lr": 0.5}])
    assert [len(g["params"]) for g in opt.param_groups] == [1, 2]
    assert opt.param_groups[0]["lr"] == 1e-3 and opt.param_groups[1]["lr"] == 0.5


@pytest.mark.parametrize("name, options, message", [
    ("SGD", dict(lr=-1.0), "Invalid learning rate: -1.0"),
    ("SGD", dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    ("SGD", dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    ("SGD", dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", dict(momentum=0.9, dampening=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    ("Adam", dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    ("AdamW", dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    ("Adam", dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    ("RMSprop", dict(alpha=-0.1), "Invalid alpha value: -0.1"),
    ("Adagrad", dict(lr_decay=-1.0), "Invalid lr_decay value: -1.0"),
    ("Adagrad", dict(initial_accumulator_value=-1.0), "Invalid initial_accumulator_value value: -1.0"),
    ("Adadelta", dict(rho=1.5), "Invalid rho value: 1.5"),
    ("NAdam", dict(momentum_decay=-1.0), "Invalid momentum_decay value: -1.0"),
    ("NAdam", dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    ("RAdam", dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    ("Adamax", dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    ("ASGD", dict(lr=-0.1), "Invalid learning rate: -0.1"),
    ("Rprop", dict(etas=(0.5, 0.9)), "Invalid eta values: 0.5, 0.9"),
    ("SparseAdam", dict(lr=0.0), "Invalid learning rate: 0.0"),
    ("SparseAdam", dict(eps=0.0), "Invalid epsilon value: 0.0"),
    ("Adafactor", dict(beta2_decay=0.5), "beta2_decay should be <= 0 but is: 0.5"),
    ("Adafactor", dict(eps=(-1.0, 1e-3)), "epsilon1 should be >= 0 but is: -1.0"),
    ("Adafactor", dict(d=0.5), "Clipping threshold d should be >= 1 but is: 0.5"),
])
def test_invalid_hyper_parameters_raise_torchs_errors(name, options, message):
    for module, tensor in ((optim, distml.tensor), (torch.optim, torch.tensor)):
        with pytest.raises(ValueError) as error:
            getattr(module, name)([tensor([1.0], requires_grad=True)], **options)
        assert str(error.value) == message


def test_invalid_parameter_lists():
    w = distml.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD([])
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}])
    opt = optim.SGD([w])
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": w, "lr": 0.1})
    with pytest.warns(UserWarning, match="optimizer contains a parameter group with duplicate parameters"):
        optim.SGD([w, w])


def test_type_errors():
    w = distml.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="params argument given to the optimizer should be an iterable of Tensors "
                                        "or dicts, but got distml.tensor.Tensor"):
        optim.SGD(w)
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors, but one of the params is builtins.int"):
        optim.SGD([w, 3])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([w * 2])
    with pytest.raises(TypeError, match="optimizer parameters need to be organized in ordered collections"):
        optim.SGD([{"params": {w}}])


def test_unsupported_dtype_and_mismatched_gradient():
    w = distml.tensor([1.0, 2.0], dtype=distml.float16, requires_grad=True)
    w.grad = distml.tensor([1.0, 1.0], dtype=distml.float16)
    with pytest.raises(ValueError, match="sgd_step: unsupported dtype float16"):
        optim.SGD([w], lr=0.1).step()
    v = distml.tensor([1.0, 2.0], dtype=distml.float64, requires_grad=True)
    v.grad = distml.tensor([1.0, 1.0], dtype=distml.float32)
    with pytest.raises(TypeError, match=r"grads\[0\]: expected dtype float64, got float32"):
        optim.SGD([v], lr=0.1).step()
    v.grad = distml.tensor([1.0, 1.0, 1.0], dtype=distml.float64)
    with pytest.raises(RuntimeError, match=r"gradient has shape \[3\] but the parameter has shape \[2\]"):
        optim.SGD([v], lr=0.1).step()


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad"])
def test_fused_option_errors_as_torch(name):
    for module, tensor in ((optim, distml.tensor), (torch.optim, torch.tensor)):
        w = tensor([1.0], requires_grad=True)
        with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together."):
            getattr(module, name)([w], lr=0.1, fused=True, foreach=True)
        with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
            getattr(module, name)([w], lr=0.1, fused=True, differentiable=True)


@pytest.mark.parametrize("name", ["RMSprop", "Adadelta", "NAdam", "RAdam", "Adamax", "ASGD", "Rprop", "Adafactor",
                                  "SparseAdam"])
def test_fused_is_refused_where_torch_has_none(name):
    for module, tensor in ((optim, distml.tensor), (torch.optim, torch.tensor)):
        with pytest.raises(TypeError, match="unexpected keyword argument 'fused'"):
            getattr(module, name)([tensor([1.0], requires_grad=True)], fused=True)


def test_foreach_false_runs_the_array_loop(monkeypatch):
    def refuse(*args):
        raise AssertionError("the fused kernel ran")

    monkeypatch.setattr(sgd, "C", types.SimpleNamespace(sgd_step=refuse))
    w = distml.tensor([1.0, 2.0], requires_grad=True)
    w.grad = distml.tensor([1.0, -1.0])
    optim.SGD([w], lr=0.5, foreach=False).step()
    assert w.array.tolist() == [0.5, 2.5]
    with pytest.raises(AssertionError, match="the fused kernel ran"):
        optim.SGD([w], lr=0.5, fused=True).step()


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop", "Adadelta", "NAdam", "RAdam", "Adamax", "ASGD",
                                  "Rprop"])
def test_capturable_on_cpu_raises_torchs_error(name):
    messages = []
    for module, tensor in ((optim, distml.tensor), (torch.optim, torch.tensor)):
        w = tensor([1.0], requires_grad=True)
        opt = getattr(module, name)([w], capturable=True)
        w.grad = tensor([1.0])
        with pytest.raises(AssertionError) as error:
            opt.step()
        messages.append(str(error.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad", "Adadelta", "NAdam", "RAdam", "Adamax", "ASGD",
                                  "Rprop"])
def test_differentiable_step_is_not_supported(name):
    w = distml.tensor([1.0], requires_grad=True)
    opt = getattr(optim, name)([w], lr=0.1, differentiable=True)
    assert opt.param_groups[0]["differentiable"] is True
    w.grad = distml.tensor([1.0])
    with pytest.raises(NotImplementedError, match="differentiable=True"):
        opt.step()


def test_named_parameters_keep_their_names():
    ours = [("weight", distml.tensor([1.0], requires_grad=True)), ("bias", distml.tensor([2.0], requires_grad=True))]
    theirs = [("weight", torch.tensor([1.0], requires_grad=True)), ("bias", torch.tensor([2.0], requires_grad=True))]
    ours_opt, theirs_opt = optim.Adam(ours, lr=0.1), torch.optim.Adam(theirs, lr=0.1)
    assert ours_opt.param_groups[0]["params"][1] is ours[1][1]
    assert ours_opt.state_dict()["param_groups"] == theirs_opt.state_dict()["param_groups"]
    for module, pairs, tensor in ((optim, ours, distml.tensor), (torch.optim, theirs, torch.tensor)):
        with pytest.raises(ValueError, match="all optimizer params should be with/without names. Some param names "
                                             "are missing"):
            module.SGD([pairs[0], tensor([3.0], requires_grad=True)], lr=0.1)
        opt = module.SGD(pairs, lr=0.1)
        with pytest.raises(ValueError, match="all optimizer param groups should be with/without names. cannot add "
                                             "param group without names to the optimizer"):
            opt.add_param_group({"params": [tensor([3.0], requires_grad=True)]})


def sparse_gradient(module, rows, values, size):
    indices = module.tensor([rows])
    return (distml.sparse_coo_tensor if module is distml else torch.sparse_coo_tensor)(indices, values, size)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [dict(), dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, maximize=True)], ids=str)
def test_sparse_adam_matches_torch(rng, dtype, options):
    table = rng.standard_normal((10, 4)).astype(dtype)
    ours = distml.tensor(table, requires_grad=True)
    theirs = torch.tensor(table, requires_grad=True)
    ours_opt, theirs_opt = optim.SparseAdam([ours], **options), torch.optim.SparseAdam([theirs], **options)
    for step in range(20):
        rows = rng.integers(0, 10, 6).tolist()  # repeated rows are summed (coalesced)
        values = rng.standard_normal((6, 4)).astype(dtype)
        ours.grad = sparse_gradient(distml, rows, distml.tensor(values), (10, 4))
        theirs.grad = sparse_gradient(torch, rows, torch.tensor(values), (10, 4))
        ours_opt.step()
        theirs_opt.step()
        np.testing.assert_allclose(ours.array, theirs.detach().numpy(), **tolerance(dtype), err_msg=f"step {step}")
    ours_saved, theirs_saved = ours_opt.state_dict(), theirs_opt.state_dict()
    assert ours_saved["param_groups"] == theirs_saved["param_groups"]
    assert ours_saved["state"][0]["step"] == theirs_saved["state"][0]["step"] == 20
    np.testing.assert_allclose(ours_saved["state"][0]["exp_avg_sq"].array,
                               theirs_saved["state"][0]["exp_avg_sq"].numpy(), **tolerance(dtype))


def test_sparse_and_dense_gradient_errors():
    for module, tensor in ((distml, distml.tensor), (torch, torch.tensor)):
        w = tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        w.grad = tensor([[1.0, 1.0], [1.0, 1.0]])
        with pytest.raises(RuntimeError, match="SparseAdam does not support dense gradients, please consider Adam "
                                               "instead"):
            module.optim.SparseAdam([w]).step()
        w.grad = sparse_gradient(module, [1], tensor([[1.0, 1.0]]), (2, 2))
        with pytest.raises(RuntimeError, match="Adam does not support sparse gradients, please consider SparseAdam "
                                               "instead"):
            module.optim.Adam([w]).step()
        with pytest.raises(RuntimeError, match="RMSprop does not support sparse gradients"):
            module.optim.RMSprop([w]).step()
        with pytest.raises(ValueError, match=r"Complex params at indices \[\[0, 0\]\]: SparseAdam does not "
                                             "support complex parameters"):
            module.optim.SparseAdam([tensor([1 + 1j], requires_grad=True)])


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "NAdam", "RAdam", "Adamax",
                                  "ASGD", "Rprop", "SparseAdam", "Adafactor", "LBFGS"])
def test_repr_and_defaults_as_torch(name):
    ours = getattr(optim, name)([distml.tensor([1.0], requires_grad=True)], lr=0.1)
    theirs = getattr(torch.optim, name)([torch.tensor([1.0], requires_grad=True)], lr=0.1)
    assert repr(ours) == repr(theirs)
    assert ours.defaults == theirs.defaults
