"""Adadelta with weight decay and maximize (torch.optim.Adadelta)."""
from distml._backend import C
from distml.optim.optimizer import Optimizer, _next_steps, _step_tensor, _zeros_like


class Adadelta(Optimizer):
    """Adadelta: `Adadelta(model.parameters(), lr=1.0, rho=0.9, eps=1e-6)`."""

    _capturable_error = ("If capturable=True, params and state_steps must be on supported devices: "
                         "['cuda', 'xpu', 'hpu', 'privateuseone'].")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      capturable=capturable, foreach=foreach, differentiable=differentiable))

    def _update_group(self, group, params):
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = _step_tensor()
                state["square_avg"] = _zeros_like(p)
                state["acc_delta"] = _zeros_like(p)
        _next_steps(states)
        self._fused(self._kernel(group, C.adadelta_step, adadelta_xp), adadelta_xp, params,
                    [[s["square_avg"].array for s in states], [s["acc_delta"].array for s in states]], [],
                    [group["lr"], group["rho"], group["eps"], group["weight_decay"], group["maximize"]])


def adadelta_xp(params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay, maximize):
    """`_C.adadelta_step` on numpy or cupy arrays, in place: same arguments, same arithmetic."""
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if weight_decay != 0:
            d = d + weight_decay * p
        sq, acc = square_avgs[i], acc_deltas[i]
        sq *= rho
        sq += (1 - rho) * d * d
        delta = (acc + eps) ** 0.5 / (sq + eps) ** 0.5 * d
        acc *= rho
        acc += (1 - rho) * delta * delta
        p -= lr * delta
