"""Adagrad with learning-rate decay, weight decay and maximize (torch.optim.Adagrad)."""
from distml._backend import C
from distml.optim.optimizer import Optimizer, _check_fused, _next_steps, _step_tensor, _zeros_like


class Adagrad(Optimizer):
    """Adagrad: `Adagrad(model.parameters(), lr=1e-2, lr_decay=0, initial_accumulator_value=0)`."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable, fused=fused))
        _check_fused(self.defaults)
        # Like PyTorch, the state exists from construction on.
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"] = _step_tensor()
                self.state[p]["sum"] = _zeros_like(p, group["initial_accumulator_value"])

    def _update_group(self, group, params):
        states = [self.state[p] for p in params]
        self._fused(self._kernel(group, C.adagrad_step, adagrad_xp), adagrad_xp, params, [[s["sum"].array for s in states]], [_next_steps(states)],
                    [group["lr"], group["lr_decay"], group["weight_decay"], group["eps"], group["maximize"]])


def adagrad_xp(params, grads, sums, steps, lr, lr_decay, weight_decay, eps, maximize):
    """`_C.adagrad_step` on numpy or cupy arrays, in place: same arguments, same arithmetic."""
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if weight_decay != 0:
            d = d + weight_decay * p
        sums[i] += d * d
        p -= lr / (1 + (steps[i] - 1) * lr_decay) * d / (sums[i] ** 0.5 + eps)
