"""Adam and AdamW, with amsgrad and maximize (torch.optim.Adam / AdamW)."""
from distml._backend import C, get_array_module
from distml.optim.optimizer import (Optimizer, _check_fused, _next_steps, _step_tensor, _zeros_like,
                                     check_hyperparameters)


class Adam(Optimizer):
    """Adam: `Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0, amsgrad=False)`.

    `decoupled_weight_decay=True` is AdamW (weight decay applied to the parameter, not the gradient).
    """

    _sparse_grad_error = "Adam does not support sparse gradients, please consider SparseAdam instead"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        check_hyperparameters(lr=lr, eps=eps, betas=betas, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable, fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay))
        _check_fused(self.defaults)

    def _update_group(self, group, params):
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = _step_tensor()
                state["exp_avg"] = _zeros_like(p)
                state["exp_avg_sq"] = _zeros_like(p)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = _zeros_like(p)
        exp_avgs = [s["exp_avg"].array for s in states]
        exp_avg_sqs = [s["exp_avg_sq"].array for s in states]
        max_exp_avg_sqs = [s["max_exp_avg_sq"].array for s in states] if group["amsgrad"] else []
        beta1, beta2 = group["betas"]
        self._fused(self._kernel(group, C.adam_step, adam_xp), adam_xp, params, [exp_avgs, exp_avg_sqs, max_exp_avg_sqs], [_next_steps(states)],
                    [group["lr"], beta1, beta2, group["eps"], group["weight_decay"], group["amsgrad"],
                     group["maximize"], group["decoupled_weight_decay"]])


class AdamW(Adam):
    """Adam with decoupled weight decay: `AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)`."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)


def adam_xp(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay,
            amsgrad, maximize, decoupled_weight_decay):
    """`_C.adam_step` on numpy or cupy arrays, in place: same arguments, same arithmetic."""
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if weight_decay != 0:
            if decoupled_weight_decay:
                p *= 1 - lr * weight_decay
            else:
                d = d + weight_decay * p
        m, v = exp_avgs[i], exp_avg_sqs[i]
        m += (1 - beta1) * (d - m)
        v *= beta2
        v += (1 - beta2) * d * d
        if amsgrad:
            v = get_array_module(p).maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
        denom = v ** 0.5 / (1 - beta2 ** steps[i]) ** 0.5 + eps
        p -= lr / (1 - beta1 ** steps[i]) * m / denom
