"""Adafactor: Adam-like steps with the second moment of a matrix kept as row and column factors
(torch.optim.Adafactor, Shazeer & Stern 2018, without first moment)."""
import math

from distml._backend import get_array_module
from distml.optim.optimizer import Optimizer, _lerp_, _next_steps, _step_tensor, _zeros_like
from distml.tensor import Tensor


class Adafactor(Optimizer):
    """Adafactor: `Adafactor(model.parameters(), lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0)`.

    A parameter of two or more dimensions keeps `row_var` and `col_var` (its last two dimensions
    factored), a vector keeps a full `variance`. One implementation: `foreach` has no other to choose.
    """

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *,
                 foreach=None, maximize=False):
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 >= beta2_decay:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not 0.0 <= eps[0]:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not 0.0 <= eps[1]:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        if not 1.0 <= d:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize))

    def _check_group(self, group, params):
        if any(p.is_complex() for p in params):
            raise RuntimeError("Adafactor does not support complex parameters")
        super()._check_group(group, params)

    def _update_group(self, group, params):
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = _step_tensor()
                if p.array.ndim > 1:
                    xp = get_array_module(p.array)
                    state["row_var"] = Tensor(xp.zeros(p.array.shape[:-1] + (1,), p.array.dtype))
                    state["col_var"] = Tensor(xp.zeros(p.array.shape[:-2] + (1,) + p.array.shape[-1:],
                                                       p.array.dtype))
                else:
                    state["variance"] = _zeros_like(p)
        factored = [p.array.ndim > 1 for p in params]
        row_vars = [s["row_var"].array if f else None for s, f in zip(states, factored)]
        col_vars = [s["col_var"].array if f else None for s, f in zip(states, factored)]
        variances = [None if f else s["variance"].array for s, f in zip(states, factored)]
        eps1, eps2 = group["eps"]
        self._fused(adafactor_xp, adafactor_xp, params, [row_vars, col_vars, variances], [_next_steps(states)],
                    [group["lr"], group["beta2_decay"], eps1, eps2, group["d"], group["weight_decay"],
                     group["maximize"]])


def adafactor_xp(params, grads, row_vars, col_vars, variances, steps, lr, beta2_decay, eps1, eps2, d, weight_decay,
                 maximize):
    """One Adafactor step on numpy or cupy arrays, in place; a vector has `variances[i]`, a matrix (or
    more) `row_vars[i]` and `col_vars[i]`; eps1 None is the parameter dtype's machine epsilon."""
    for i, (p, g) in enumerate(zip(params, grads)):
        xp = get_array_module(p)
        d_ = -g if maximize else g
        tiny = xp.finfo(p.dtype).eps if eps1 is None else eps1
        one_minus_beta2 = steps[i] ** beta2_decay
        rho = min(lr, 1 / steps[i] ** 0.5)
        alpha = max(eps2, float(xp.sqrt((p * p).sum())) / math.sqrt(p.size)) * rho
        if weight_decay != 0:
            p *= 1 - lr * weight_decay
        if p.ndim > 1:
            _lerp_(row_vars[i], (d_ * d_).mean(axis=-1, keepdims=True), one_minus_beta2)
            _lerp_(col_vars[i], (d_ * d_).mean(axis=-2, keepdims=True), one_minus_beta2)
            estimate = row_vars[i] @ col_vars[i]
            estimate /= xp.maximum(row_vars[i].mean(axis=-2, keepdims=True), tiny)
        else:
            _lerp_(variances[i], d_ * d_, one_minus_beta2)
            estimate = variances[i].copy()
        update = xp.maximum(estimate, tiny * tiny) ** -0.5 * d_
        denom = max(1.0, float(xp.sqrt((update * update).sum())) / (math.sqrt(update.size) * d))
        p += -alpha / denom * update
