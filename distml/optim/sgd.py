"""SGD with momentum, dampening, Nesterov momentum, weight decay and maximize (torch.optim.SGD)."""
from distml._backend import C
from distml.optim.optimizer import Optimizer, _check_fused, _zeros_like


class SGD(Optimizer):
    """Stochastic gradient descent: `SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)`."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))
        _check_fused(self.defaults)

    def _update_group(self, group, params):
        buffers, fresh = [], []
        if group["momentum"] != 0:
            for p in params:
                state = self.state[p]
                fresh.append("momentum_buffer" not in state)
                if fresh[-1]:
                    state["momentum_buffer"] = _zeros_like(p)
                buffers.append(state["momentum_buffer"].array)
        self._fused(self._kernel(group, C.sgd_step, sgd_xp), sgd_xp, params, [buffers], [fresh],
                    [group["lr"], group["momentum"], group["dampening"], group["weight_decay"], group["nesterov"],
                     group["maximize"]])


def sgd_xp(params, grads, buffers, fresh, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """`_C.sgd_step` on numpy or cupy arrays, in place: same arguments, same arithmetic."""
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if weight_decay != 0:
            d = d + weight_decay * p
        if momentum != 0:
            buf = buffers[i]
            if fresh[i]:
                buf[...] = d
            else:
                buf *= momentum
                buf += (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p -= lr * d
