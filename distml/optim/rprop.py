"""Rprop: resilient backpropagation, steps from the gradient's sign alone (torch.optim.Rprop)."""
from distml._backend import get_array_module
from distml.optim.optimizer import Optimizer, _next_steps, _step_tensor, _zeros_like


class Rprop(Optimizer):
    """Rprop: `Rprop(model.parameters(), lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50))`; each element's
    step grows by etas[1] while its gradient keeps its sign and shrinks by etas[0] when it flips.

    One implementation: `foreach` has no other to choose.
    """

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False,
                 foreach=None, maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        super().__init__(params, dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, capturable=capturable))

    def _update_group(self, group, params):
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = _step_tensor()
                state["prev"] = _zeros_like(p)
                state["step_size"] = _zeros_like(p, group["lr"])
        _next_steps(states)
        etaminus, etaplus = group["etas"]
        step_size_min, step_size_max = group["step_sizes"]
        self._fused(rprop_xp, rprop_xp, params,
                    [[s["prev"].array for s in states], [s["step_size"].array for s in states]], [],
                    [etaminus, etaplus, step_size_min, step_size_max, group["maximize"]])


def rprop_xp(params, grads, prevs, step_sizes, etaminus, etaplus, step_size_min, step_size_max, maximize):
    """One Rprop step on numpy or cupy arrays, in place."""
    for i, (p, g) in enumerate(zip(params, grads)):
        xp = get_array_module(p)
        d = -g if maximize else g
        sign = xp.sign(d * prevs[i])
        flipped = sign < 0
        factor = xp.where(sign > 0, etaplus, xp.where(flipped, etaminus, xp.where(sign == 0, 1, sign)))
        step_size = step_sizes[i]
        step_size *= factor.astype(p.dtype)  # the factors rounded to the parameter's precision, as PyTorch
        xp.clip(step_size, step_size_min, step_size_max, out=step_size)
        d = xp.where(flipped, 0, d).astype(p.dtype)  # no step, and no sign to compare next time, after a flip
        p -= xp.sign(d) * step_size
        prevs[i][...] = d
