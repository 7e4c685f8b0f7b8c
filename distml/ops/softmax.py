"""softmax and log_softmax along a dim: one fused _C kernel each way on the CPU."""
import numpy as np

from distml import dtypes, kernels
from distml._backend import C, get_array_module
from distml.amp.autocast_mode import autocast_op
from distml.autograd.function import Primitive
from distml.ops._util import wrap_dim
from distml.ops.registry import register


def _layout(shape, dim):
    """(outer, n, inner) sizes that view a C-contiguous array of `shape` around `dim`."""
    outer = int(np.prod(shape[:dim]))
    inner = int(np.prod(shape[dim + 1:]))
    return outer, shape[dim] if shape else 1, inner


class Softmax(Primitive):
    """exp(x) / sum(exp(x)) along dim, or its log (`log=True`) computed as x - logsumexp(x)."""
    saves_inputs = False
    saves_output = True

    def forward(self, x, dim, log):
        self.dim, self.log = dim, log
        xp = kernels.compiled("softmax_forward", x, kernels.FLOATS)
        if xp is not None:
            x = xp.ascontiguousarray(x)
            out = xp.empty_like(x)
            C.softmax_forward(x, out, *_layout(x.shape, dim), log)
        else:
            out = _softmax_xp(x, dim, log)
        self.out = out
        return out

    def backward(self, grad):
        y = self.out
        xp = kernels.compiled("softmax_backward", y, kernels.FLOATS)
        if xp is not None:
            grad = xp.ascontiguousarray(grad, dtype=y.dtype)
            grad_x = xp.empty_like(y)
            C.softmax_backward(grad, y, grad_x, *_layout(y.shape, self.dim), self.log)
            return grad_x
        xp = get_array_module(grad)
        wide = np.float32 if y.dtype in (np.float16, dtypes.bfloat16.np) else y.dtype
        g, y = grad.astype(wide), y.astype(wide)
        if self.log:
            return (g - xp.exp(y) * g.sum(axis=self.dim, keepdims=True)).astype(grad.dtype)
        return (y * (g - (g * y).sum(axis=self.dim, keepdims=True))).astype(grad.dtype)


def _softmax_xp(x, dim, log):
    """The array-module form, for GPU arrays and float16 (computed in float32)."""
    xp = get_array_module(x)
    wide = x.astype(np.float32) if x.dtype in (np.float16, dtypes.bfloat16.np) else x
    shifted = wide - wide.max(axis=dim, keepdims=True)
    shifted = xp.where(xp.isnan(shifted), -xp.inf, shifted) if xp.isinf(wide).any() else shifted
    if log:
        out = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
    else:
        e = xp.exp(shifted)
        out = e / e.sum(axis=dim, keepdims=True)
    return out.astype(x.dtype, copy=False)


def _apply(x, dim, dtype, log):
    from distml.ops.convert import cast
    from distml.ops.elementwise import _float_input
    if dtype is not None:
        x = cast(x, dtype)
    x = _float_input(x)
    if dim is None:
        raise TypeError(f"{'log_softmax' if log else 'softmax'}() missing required argument 'dim'")
    d = wrap_dim(dim, x.array.ndim)
    if x.array.ndim == 0:
        return Softmax.apply(x.reshape(1), dim=0, log=log).reshape(())
    return Softmax.apply(x, dim=d, log=log)


@register(method=True)
@autocast_op(cuda="float32")
def softmax(x, dim=None, dtype=None):
    """exp(x) normalised to sum to 1 along dim: `scores.softmax(-1)`."""
    return _apply(x, dim, dtype, log=False)


@register(method=True)
@autocast_op(cuda="float32")
def log_softmax(x, dim=None, dtype=None):
    """log(softmax(x, dim)), computed stably: `logits.log_softmax(1)`."""
    return _apply(x, dim, dtype, log=True)
