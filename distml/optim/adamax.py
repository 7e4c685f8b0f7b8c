"""Adamax: Adam with the infinity norm (torch.optim.Adamax)."""
from distml._backend import get_array_module
from distml.optim.optimizer import Optimizer, _lerp_, _next_steps, _step_tensor, _zeros_like, check_hyperparameters


class Adamax(Optimizer):
    """Adamax: `Adamax(model.parameters(), lr=2e-3, betas=(0.9, 0.999))`.

    One implementation: `foreach` has no other to choose.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        check_hyperparameters(lr=lr, eps=eps, betas=betas, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable, capturable=capturable))

    def _update_group(self, group, params):
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = _step_tensor()
                state["exp_avg"] = _zeros_like(p)
                state["exp_inf"] = _zeros_like(p)
        beta1, beta2 = group["betas"]
        self._fused(adamax_xp, adamax_xp, params,
                    [[s["exp_avg"].array for s in states], [s["exp_inf"].array for s in states]],
                    [_next_steps(states)],
                    [group["lr"], beta1, beta2, group["eps"], group["weight_decay"], group["maximize"]])


def adamax_xp(params, grads, exp_avgs, exp_infs, steps, lr, beta1, beta2, eps, weight_decay, maximize):
    """One Adamax step on numpy or cupy arrays, in place; steps[i] counts this step."""
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if weight_decay != 0:
            d = d + weight_decay * p
        m, u = exp_avgs[i], exp_infs[i]
        _lerp_(m, d, 1 - beta1)
        u *= beta2
        get_array_module(p).maximum(u, abs(d) + eps, out=u)
        p += -lr / (1 - beta1 ** steps[i]) * m / u
