"""RMSprop with momentum, centering, weight decay and maximize (torch.optim.RMSprop)."""
from distml._backend import C
from distml.optim.optimizer import Optimizer, _next_steps, _step_tensor, _zeros_like


class RMSprop(Optimizer):
    """RMSprop: `RMSprop(model.parameters(), lr=1e-2, alpha=0.99, momentum=0.9, centered=True)`."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                                      weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable))

    def _update_group(self, group, params):
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = _step_tensor()
                state["square_avg"] = _zeros_like(p)
                if group["momentum"] > 0:
                    state["momentum_buffer"] = _zeros_like(p)
                if group["centered"]:
                    state["grad_avg"] = _zeros_like(p)
        _next_steps(states)
        square_avgs = [s["square_avg"].array for s in states]
        grad_avgs = [s["grad_avg"].array for s in states] if group["centered"] else []
        buffers = [s["momentum_buffer"].array for s in states] if group["momentum"] > 0 else []
        self._fused(self._kernel(group, C.rmsprop_step, rmsprop_xp), rmsprop_xp, params, [square_avgs, grad_avgs, buffers], [],
                    [group["lr"], group["alpha"], group["eps"], group["weight_decay"], group["momentum"],
                     group["centered"], group["maximize"]])


def rmsprop_xp(params, grads, square_avgs, grad_avgs, buffers, lr, alpha, eps, weight_decay, momentum, centered,
               maximize):
    """`_C.rmsprop_step` on numpy or cupy arrays, in place: same arguments, same arithmetic."""
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if weight_decay != 0:
            d = d + weight_decay * p
        sq = square_avgs[i]
        sq *= alpha
        sq += (1 - alpha) * d * d
        if centered:
            grad_avgs[i] += (1 - alpha) * (d - grad_avgs[i])
            avg = (sq - grad_avgs[i] * grad_avgs[i]) ** 0.5 + eps
        else:
            avg = sq ** 0.5 + eps
        if momentum > 0:
            buffers[i] *= momentum
            buffers[i] += d / avg
            p -= lr * buffers[i]
        else:
            p -= lr * d / avg
