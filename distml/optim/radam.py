"""RAdam: Adam with the variance of the adaptive learning rate rectified (torch.optim.RAdam)."""
from distml.optim.optimizer import Optimizer, _lerp_, _next_steps, _step_tensor, _zeros_like, check_hyperparameters


class RAdam(Optimizer):
    """RAdam: `RAdam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))`; plain momentum SGD while the
    variance estimate is unreliable (the first steps), rectified Adam after.

    `decoupled_weight_decay=True` is RAdamW. One implementation: `foreach` has no other to choose.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False):
        check_hyperparameters(lr=lr, eps=eps, betas=betas, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      foreach=foreach, capturable=capturable,
                                      decoupled_weight_decay=decoupled_weight_decay, differentiable=differentiable))

    def _update_group(self, group, params):
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = _step_tensor()
                state["exp_avg"] = _zeros_like(p)
                state["exp_avg_sq"] = _zeros_like(p)
        beta1, beta2 = group["betas"]
        self._fused(radam_xp, radam_xp, params,
                    [[s["exp_avg"].array for s in states], [s["exp_avg_sq"].array for s in states]],
                    [_next_steps(states)],
                    [group["lr"], beta1, beta2, group["eps"], group["weight_decay"], group["decoupled_weight_decay"],
                     group["maximize"]])


def radam_xp(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay,
             decoupled_weight_decay, maximize):
    """One RAdam step on numpy or cupy arrays, in place; steps[i] counts this step."""
    rho_inf = 2 / (1 - beta2) - 1
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if weight_decay != 0:
            if decoupled_weight_decay:
                p *= 1 - lr * weight_decay
            else:
                d = d + weight_decay * p
        m, v, step = exp_avgs[i], exp_avg_sqs[i], steps[i]
        _lerp_(m, d, 1 - beta1)
        v *= beta2
        v += (1 - beta2) * d * d
        bias_correction2 = 1 - beta2 ** step
        corrected = m / (1 - beta1 ** step)
        rho_t = rho_inf - 2 * step * beta2 ** step / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            p -= corrected * lr * (bias_correction2 ** 0.5 / (v ** 0.5 + eps)) * rect
        else:
            p -= corrected * lr
