"""NAdam: Adam with Nesterov momentum and a momentum schedule (torch.optim.NAdam)."""
from distml.optim.optimizer import Optimizer, _lerp_, _next_steps, _step_tensor, _zeros_like, check_hyperparameters


class NAdam(Optimizer):
    """NAdam: `NAdam(model.parameters(), lr=2e-3, betas=(0.9, 0.999), momentum_decay=4e-3)`.

    `decoupled_weight_decay=True` is NAdamW (weight decay applied to the parameter, not the gradient).
    One implementation: `foreach` has no other to choose.
    """

    _capturable_error = ("If capturable=True, params, mu_products and state_steps must be on supported devices: "
                         "['cuda', 'xpu', 'hpu', 'privateuseone', 'xla'].")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        check_hyperparameters(lr=lr, eps=eps, betas=betas, weight_decay=weight_decay, momentum_decay=momentum_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable))

    def _update_group(self, group, params):
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = _step_tensor()
                state["mu_product"] = _step_tensor(1.0)
                state["exp_avg"] = _zeros_like(p)
                state["exp_avg_sq"] = _zeros_like(p)
        steps = _next_steps(states)
        beta1, beta2 = group["betas"]
        mus, mu_nexts, mu_products = [], [], []
        for state, step in zip(states, steps):
            mus.append(beta1 * (1.0 - 0.5 * 0.96 ** (step * group["momentum_decay"])))
            mu_nexts.append(beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * group["momentum_decay"])))
            state["mu_product"].array *= mus[-1]  # in the state's precision, as PyTorch
            mu_products.append(float(state["mu_product"].array))
        self._fused(nadam_xp, nadam_xp, params,
                    [[s["exp_avg"].array for s in states], [s["exp_avg_sq"].array for s in states]],
                    [steps, mus, mu_nexts, mu_products],
                    [group["lr"], beta1, beta2, group["eps"], group["weight_decay"], group["decoupled_weight_decay"],
                     group["maximize"]])


def nadam_xp(params, grads, exp_avgs, exp_avg_sqs, steps, mus, mu_nexts, mu_products, lr, beta1, beta2, eps,
             weight_decay, decoupled_weight_decay, maximize):
    """One NAdam step on numpy or cupy arrays, in place; `mu_products` already include this step's mu."""
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if weight_decay != 0:
            if decoupled_weight_decay:
                p *= 1 - lr * weight_decay
            else:
                d = d + weight_decay * p
        m, v = exp_avgs[i], exp_avg_sqs[i]
        _lerp_(m, d, 1 - beta1)
        v *= beta2
        v += (1 - beta2) * d * d
        denom = (v / (1 - beta2 ** steps[i])) ** 0.5 + eps
        p += -lr * (1.0 - mus[i]) / (1.0 - mu_products[i]) * d / denom
        p += -lr * mu_nexts[i] / (1.0 - mu_products[i] * mu_nexts[i]) * m / denom
