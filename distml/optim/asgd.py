"""ASGD: averaged stochastic gradient descent (torch.optim.ASGD)."""
from distml.optim.optimizer import Optimizer, _next_steps, _step_tensor, _zeros_like


class ASGD(Optimizer):
    """Averaged SGD: `ASGD(model.parameters(), lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6)`; the running
    average of the parameters (from step `t0` on) is `optimizer.state[p]["ax"]`.

    One implementation: `foreach` has no other to choose.
    """

    _capturable_error = ("If capturable=True, params, mus, etas, and state_steps must be on supported devices: "
                         "['cuda', 'xpu', 'hpu', 'privateuseone', 'xla'].")

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize, differentiable=differentiable,
                                      capturable=capturable))

    def _update_group(self, group, params):
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = _step_tensor()
                state["eta"] = _step_tensor(group["lr"])
                state["mu"] = _step_tensor(1.0)
                state["ax"] = _zeros_like(p)
        steps = _next_steps(states)
        # eta and mu are read as Python numbers (their tensors' precision), as PyTorch does.
        self._fused(asgd_xp, asgd_xp, params, [[s["ax"].array for s in states]],
                    [[float(s["eta"].array) for s in states], [float(s["mu"].array) for s in states]],
                    [group["lambd"], group["weight_decay"], group["maximize"]])
        lr, lambd = group["lr"], group["lambd"]
        for state, step in zip(states, steps):
            # Rounded to the default scalar dtype even where a loaded state holds float64, as PyTorch.
            state["eta"].array[...] = _step_tensor(lr / ((1 + lambd * lr * step) ** group["alpha"])).array
            state["mu"].array[...] = _step_tensor(1 / max(1, step - group["t0"])).array


def asgd_xp(params, grads, axs, etas, mus, lambd, weight_decay, maximize):
    """One ASGD step on numpy or cupy arrays, in place, with this step's eta and mu per parameter."""
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if weight_decay != 0:
            d = d + weight_decay * p
        p *= 1 - lambd * etas[i]
        p -= etas[i] * d
        if mus[i] != 1:
            axs[i] += (p - axs[i]) * mus[i]
        else:
            axs[i][...] = p
