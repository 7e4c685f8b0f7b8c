import math

from distml._backend import get_array_module
from distml.tensor import Tensor


def _grads(parameters):
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale the gradients in place so that their joint norm is at most max_norm; returns the
    norm before clipping: `nn.utils.clip_grad_norm_(model.parameters(), 1.0)`."""
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        from distml.creation import tensor
        return tensor(0.0)
    xp = get_array_module(grads[0].array)
    if math.isinf(norm_type):
        norms = [xp.abs(g.array).max() for g in grads]
        total = max(norms) if norm_type > 0 else min(norms)
    else:
        total = sum(float((xp.abs(g.array.astype(xp.float64)) ** norm_type).sum()) for g in grads) ** (1.0 / norm_type)
    total = float(total)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    coefficient = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g.array *= g.array.dtype.type(coefficient)
        g._version[0] += 1
    return Tensor(xp.asarray(total, dtype=grads[0].array.dtype))


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element into [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        xp = get_array_module(g.array)
        xp.clip(g.array, -clip_value, clip_value, out=g.array)
        g._version[0] += 1
