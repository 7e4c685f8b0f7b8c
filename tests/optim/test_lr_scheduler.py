"""Learning-rate schedulers against torch.optim.lr_scheduler: get_last_lr equal at every one of 100 steps."""
import pickle

import pytest
import torch

import distml
from distml import optim
from distml.optim import lr_scheduler


def optimizers(name="SGD", **options):
    """The same two-group optimizer in distml and torch (lr 0.1 and 0.05)."""
    def groups(tensor):
        return [{"params": [tensor([1.0], requires_grad=True)]},
                {"params": [tensor([2.0], requires_grad=True)], "lr": 0.05}]
    return (getattr(optim, name)(groups(distml.tensor), lr=0.1, **options),
            getattr(torch.optim, name)(groups(torch.tensor), lr=0.1, **options))


def build(ours_opt, theirs_opt, make):
    """`make(module, optimizer)` builds the scheduler; run it on both."""
    return make(lr_scheduler, ours_opt), make(torch.optim.lr_scheduler, theirs_opt)


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


SCHEDULERS = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[10, 30, 30, 75], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.97),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=30, eta_min=1e-3),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda epoch: 1 / (1 + epoch)),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 0.9 ** e, lambda e: e % 5 + 1]),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=40),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=101),
    "OneCycleLR-linear-3phase": lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 2.0], epochs=10, steps_per_epoch=11,
                                                          anneal_strategy="linear", three_phase=True, pct_start=0.25),
    "SequentialLR": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=10),
                                                    m.CosineAnnealingLR(o, T_max=40),
                                                    m.StepLR(o, step_size=5, gamma=0.8)], milestones=[10, 60]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda epoch: 0.97),
    "MultiplicativeLR-per-group": lambda m, o: m.MultiplicativeLR(o, [lambda e: 0.9, lambda e: 1.0 + 0.01 * (e % 3)]),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=12),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=40, power=0.9),
    "PolynomialLR-default": lambda m, o: m.PolynomialLR(o),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7),
    "CosineAnnealingWarmRestarts-T_mult": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2,
                                                                                     eta_min=1e-3),
    "CyclicLR": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=6),
    "CyclicLR-triangular2": lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=[0.1, 0.3], step_size_up=4,
                                                    step_size_down=9, mode="triangular2", base_momentum=[0.7, 0.8],
                                                    max_momentum=0.95),
    "CyclicLR-exp_range": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range",
                                                  gamma=0.97),
    "CyclicLR-scale_fn": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3,
                                                 scale_fn=lambda x: 1 / (1 + 0.1 * x), scale_mode="iterations",
                                                 cycle_momentum=False),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.1, total_iters=20),
                                                         m.ExponentialLR(o, gamma=0.95),
                                                         m.MultiStepLR(o, milestones=[30, 50], gamma=0.5)]),
}


@pytest.mark.parametrize("make", SCHEDULERS.values(), ids=SCHEDULERS.keys())
@pytest.mark.parametrize("optimizer", [("SGD", dict(momentum=0.9)), ("Adam", {})], ids=["SGD", "Adam"])
def test_matches_torch_for_100_steps(make, optimizer):
    ours_opt, theirs_opt = optimizers(optimizer[0], **optimizer[1])
    ours, theirs = build(ours_opt, theirs_opt, make)
    assert ours.get_last_lr() == theirs.get_last_lr()
    for step in range(100):
        ours_opt.step()
        theirs_opt.step()
        ours.step()
        theirs.step()
        assert ours.get_last_lr() == theirs.get_last_lr(), f"step {step}"
        assert [g["lr"] for g in ours_opt.param_groups] == [g["lr"] for g in theirs_opt.param_groups]
        assert momenta(ours_opt) == momenta(theirs_opt)


def test_reduce_lr_on_plateau_matches_torch():
    metrics = [1.0, 0.9, 0.9, 0.95, 0.91, 0.9, 0.89999, 0.92, 0.93, 0.8, 0.8, 0.8, 0.8, 0.8, 0.81, 0.79] * 6
    for options in [dict(), dict(mode="max", factor=0.5, patience=2, threshold=0.01, threshold_mode="abs"),
                    dict(patience=1, cooldown=3, min_lr=[0.01, 0.02], eps=1e-3),
                    dict(mode="min", threshold_mode="abs", patience=0, factor=0.9, min_lr=0.004)]:
        ours_opt, theirs_opt = optimizers()
        ours, theirs = build(ours_opt, theirs_opt, lambda m, o: m.ReduceLROnPlateau(o, **options))
        for metric in metrics:
            ours.step(metric)
            theirs.step(metric)
            assert ours.get_last_lr() == theirs.get_last_lr()
            assert (ours.num_bad_epochs, ours.cooldown_counter, ours.best) == \
                (theirs.num_bad_epochs, theirs.cooldown_counter, theirs.best)


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_state_dict_resumes_the_schedule():
    ours_opt, theirs_opt = optimizers()
    ours, theirs = build(ours_opt, theirs_opt, SCHEDULERS["SequentialLR"])
    for _ in range(25):
        ours.step()
        theirs.step()
    saved = pickle.loads(pickle.dumps(ours.state_dict()))
    saved_lrs = [g["lr"] for g in ours_opt.param_groups]
    fresh_opt, _ = optimizers()
    resumed = SCHEDULERS["SequentialLR"](lr_scheduler, fresh_opt)
    resumed.load_state_dict(saved)
    for group, lr in zip(fresh_opt.param_groups, saved_lrs):
        group["lr"] = lr
    for _ in range(50):
        resumed.step()
        theirs.step()
        assert resumed.get_last_lr() == theirs.get_last_lr()


def test_lambda_state_dict_skips_functions_and_keeps_callable_objects():
    class Warmup:
        def __init__(self, steps):
            self.steps = steps

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.steps)

    ours_opt, _ = optimizers()
    scheduler = lr_scheduler.LambdaLR(ours_opt, [lambda e: 1.0, Warmup(5)])
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [None, {"steps": 5}]
    state["lr_lambdas"][1] = {"steps": 10}
    scheduler.load_state_dict(state)
    assert scheduler.lr_lambdas[1].steps == 10


def test_resuming_needs_initial_lr():
    ours_opt, _ = optimizers()
    with pytest.raises(KeyError, match=r"param 'initial_lr' is not specified in param_groups\[0\]"):
        lr_scheduler.StepLR(ours_opt, step_size=3, last_epoch=4)
    lr_scheduler.StepLR(ours_opt, step_size=3)
    assert lr_scheduler.StepLR(ours_opt, step_size=3, last_epoch=4).last_epoch == 5


@pytest.mark.parametrize("make, error, message", [
    (lambda o: lr_scheduler.StepLR(object(), 3), TypeError, "object is not an Optimizer"),
    (lambda o: lr_scheduler.LambdaLR(o, [lambda e: 1.0]), ValueError, "Expected 2 lr_lambdas, but got 1"),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=0), ValueError,
     "Starting multiplicative factor expected to be greater than 0 and less or equal to 1."),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor should be < 1.0."),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="up"), ValueError, "mode up is unknown!"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "expected 2 min_lrs, got 1"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0), ValueError,
     "You must define either total_steps OR (epochs AND steps_per_epoch)"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1), ValueError,
     "Expected float between 0 and 1 pct_start, but got 1"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=[1.0], total_steps=10), ValueError,
     "max_lr must have the same length as optimizer.param_groups. max_lr has 1 values, param_groups has 2."),
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.StepLR(o, 2)], milestones=[3]), ValueError,
     "Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone "
     "points, but got number of schedulers 1 and the number of milestones to be equal to 1"),
])
def test_errors(make, error, message):
    with pytest.raises(error) as raised:
        make(optimizers()[0])
    assert str(raised.value) == message


def test_one_cycle_past_total_steps_and_without_momentum():
    ours_opt, _ = optimizers()
    scheduler = lr_scheduler.OneCycleLR(ours_opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3"):
        scheduler.step()
    adagrad = optim.Adagrad([distml.tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with `cycle_momentum`"):
        lr_scheduler.OneCycleLR(adagrad, max_lr=1.0, total_steps=3)


FRESH = ["MultiplicativeLR-per-group", "ConstantLR", "PolynomialLR", "CosineAnnealingWarmRestarts-T_mult",
         "CyclicLR-triangular2", "ChainedScheduler"]


def without_warning_flag(state):
    state = {k: v for k, v in state.items() if k != "_get_lr_called_within_step"}
    if "_schedulers" in state:
        state["_schedulers"] = [without_warning_flag(s) for s in state["_schedulers"]]
    return state


@pytest.mark.parametrize("name", FRESH)
def test_state_dict_as_torchs_and_loads_both_ways(name):
    """After 17 steps the state dicts agree (torch's has one more key, its get_lr-outside-step warning flag);
    each loads the other's and both continue as an uninterrupted torch run does."""
    make = SCHEDULERS[name]
    ours_opt, theirs_opt = optimizers()
    ours, theirs = build(ours_opt, theirs_opt, make)
    for _ in range(17):
        ours.step()
        theirs.step()
    ours_saved, theirs_saved = ours.state_dict(), without_warning_flag(theirs.state_dict())
    assert list(ours_saved) == list(theirs_saved)
    assert pickle.dumps(ours_saved) == pickle.dumps(theirs_saved)

    for module, saved in ((lr_scheduler, theirs_saved), (torch.optim.lr_scheduler, ours_saved)):
        opt = optimizers()[module is torch.optim.lr_scheduler]
        resumed = make(module, opt)
        resumed.load_state_dict(pickle.loads(pickle.dumps(saved)))
        for group, theirs_group in zip(opt.param_groups, theirs_opt.param_groups):
            group.update({k: v for k, v in theirs_group.items() if k != "params"})
        reference_opt = optimizers()[1]
        reference = make(torch.optim.lr_scheduler, reference_opt)
        for _ in range(17):
            reference.step()
        for step in range(40):
            resumed.step()
            reference.step()
            assert resumed.get_last_lr() == reference.get_last_lr(), f"step {step}"
            assert momenta(opt) == momenta(reference_opt)


@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_warm_restarts_with_fractional_epochs(T_mult):
    ours_opt, theirs_opt = optimizers()
    ours, theirs = build(ours_opt, theirs_opt,
                         lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=T_mult, eta_min=0.001))
    iters = 7
    for epoch in range(12):
        for i in range(iters):
            ours.step(epoch + i / iters)
            theirs.step(epoch + i / iters)
            assert ours.get_last_lr() == theirs.get_last_lr(), (epoch, i)
            assert (ours.T_cur, ours.T_i, ours.last_epoch) == (theirs.T_cur, theirs.T_i, theirs.last_epoch)
    with pytest.raises(ValueError, match="Expected non-negative epoch, but got -1"):
        ours.step(-1)


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ConstantLR", "PolynomialLR", "LinearLR",
                                  "ExponentialLR", "CosineAnnealingLR", "LambdaLR", "CyclicLR"])
def test_step_with_epoch_uses_the_closed_form_and_warns(name):
    ours_opt, theirs_opt = optimizers()
    ours, theirs = build(ours_opt, theirs_opt, SCHEDULERS[name])
    for epoch in [3, 4, 10, 9, 25, 41, 60]:
        with pytest.warns(UserWarning, match="The epoch parameter in `scheduler.step\\(\\)` was not necessary"):
            ours.step(epoch)
        with pytest.warns(UserWarning):
            theirs.step(epoch)
        assert ours.get_last_lr() == theirs.get_last_lr(), epoch
        assert ours.last_epoch == theirs.last_epoch


def test_reduce_lr_on_plateau_step_with_epoch():
    ours_opt, theirs_opt = optimizers()
    ours, theirs = build(ours_opt, theirs_opt, lambda m, o: m.ReduceLROnPlateau(o, patience=1))
    for epoch, metric in enumerate([1.0, 1.0, 1.0, 0.5, 0.6, 0.7]):
        with pytest.warns(UserWarning, match="The epoch parameter"):
            ours.step(metric, epoch * 2)
        with pytest.warns(UserWarning):
            theirs.step(metric, epoch * 2)
        assert (ours.get_last_lr(), ours.last_epoch) == (theirs.get_last_lr(), theirs.last_epoch)


def test_cyclic_scale_fn_object_state_dict():
    class Halving:
        def __init__(self, base):
            self.base = base

        def __call__(self, x):
            return self.base ** x

    ours_opt, _ = optimizers()
    scheduler = lr_scheduler.CyclicLR(ours_opt, 0.01, 0.1, step_size_up=2, scale_fn=Halving(0.5))
    state = scheduler.state_dict()
    assert state["_scale_fn_custom"] == {"base": 0.5}
    state["_scale_fn_custom"] = {"base": 0.25}
    scheduler.load_state_dict(state)
    assert scheduler.scale_fn(2) == 0.0625
    plain = lr_scheduler.CyclicLR(ours_opt, 0.01, 0.1, scale_fn=lambda x: 1.0).state_dict()
    assert plain["_scale_fn_custom"] is None


@pytest.mark.parametrize("make, error, message", [
    (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, "Expected positive integer T_0, but got 0"),
    (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2.5), ValueError, "Expected positive integer T_0, but got 2.5"),
    (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), ValueError,
     "Expected integer T_mult >= 1, but got 0"),
    (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2, eta_min="0"), ValueError,
     "Expected float or int eta_min, but got 0 of type <class 'str'>"),
    (lambda m, o: m.CyclicLR(o, 0.01, 0.1, mode="sine"), ValueError, "mode is invalid and scale_fn is None"),
    (lambda m, o: m.CyclicLR(o, [0.01], 0.1), ValueError,
     "base_lr must have the same length as optimizer.param_groups. base_lr has 1 values, param_groups has 2."),
    (lambda m, o: m.ConstantLR(o, factor=1.5), ValueError,
     "Constant multiplicative factor expected to be between 0 and 1."),
    (lambda m, o: m.MultiplicativeLR(o, [lambda e: 1.0, 0.9]), TypeError,
     "lr_lambda should be a function, but got float"),
    (lambda m, o: m.ChainedScheduler([]), ValueError,
     "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler."),
    (lambda m, o: m.ChainedScheduler([m.ReduceLROnPlateau(o)]), ValueError,
     "ChainedScheduler does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be "
     "specified when calling `step`, but got one at index 0 in the given schedulers sequence."),
])
def test_new_scheduler_errors_as_torch(make, error, message):
    for module, opt in zip((lr_scheduler, torch.optim.lr_scheduler), optimizers()):
        with pytest.raises(error) as raised:
            make(module, opt)
        assert str(raised.value) == message


def test_cyclic_needs_momentum():
    adagrad = optim.Adagrad([distml.tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with `cycle_momentum`"):
        lr_scheduler.CyclicLR(adagrad, 0.01, 0.1)
    scheduler = lr_scheduler.CyclicLR(adagrad, 0.01, 0.1, step_size_up=2, cycle_momentum=False)
    scheduler.step()
    assert scheduler.get_last_lr() == [0.01 + (0.1 - 0.01) * 0.5]


@pytest.mark.parametrize("name", ["StepLR", "ExponentialLR", "CosineAnnealingLR", "PolynomialLR", "ConstantLR",
                                  "ReduceLROnPlateau"])
def test_no_verbose_argument_as_in_torch_2_13(name):
    options = {"StepLR": dict(step_size=3), "ExponentialLR": dict(gamma=0.9), "CosineAnnealingLR": dict(T_max=3)}
    for module, opt in zip((lr_scheduler, torch.optim.lr_scheduler), optimizers()):
        with pytest.raises(TypeError, match="unexpected keyword argument 'verbose'"):
            getattr(module, name)(opt, verbose=True, **options.get(name, {}))
