"""Normalisation to zero mean and unit variance: `Normalize` over some axes (group_norm and
instance_norm; their affine parts are ordinary ops), `LayerNorm` with its affine part fused, and `BatchNorm`, batch
normalisation per channel with its affine part fused (`_C` kernels and their CUDA twins, xp
versions for other dtypes).

Batch normalisation is split as torch's batch_norm_stats / batch_norm_elemt so that statistics
computed elsewhere (reduced across processes) can be passed in:

    mean, var = batch_norm_stats(x.array)                  # per channel (dim 1), biased variance
    out = BatchNorm.apply(x, weight, bias, mean=mean, invstd=1 / np.sqrt(var + eps), training=True, count=n)
"""
import numpy as np

from distml import kernels
from distml._backend import C, get_array_module
from distml.autograd.function import Primitive


class Normalize(Primitive):
    """(x - mean) / sqrt(var + eps) over `axes` (biased variance)."""
    saves_inputs = False
    saves_output = True

    def forward(self, x, axes, eps):
        xp = get_array_module(x)
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)
        self.axes = axes
        self.rstd = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
        self.out = (x - mean) * self.rstd
        return self.out

    def backward(self, grad):
        axes, out = self.axes, self.out
        return self.rstd * (grad - grad.mean(axis=axes, keepdims=True)
                            - out * (grad * out).mean(axis=axes, keepdims=True))


class LayerNorm(Primitive):
    """(x - mean) / sqrt(var + eps) * weight + bias over x's last `dims` dims (biased variance);
    weight and bias have those dims' shape, or are None. One fused `_C` kernel each way on the CPU
    (float32, float64), the xp twins otherwise:

        out = LayerNorm.apply(x, weight, bias, dims=1, eps=1e-5)
    """

    def forward(self, x, weight, bias, dims, eps):
        self.shape = x.shape[x.ndim - dims:]
        N = int(np.prod(self.shape, dtype=np.int64))
        M = x.size // N if N else 0
        self.sizes = M, N
        if kernels.compiled("layer_norm_forward", x, kernels.FLOATS) is not None and all(
                v is None or v.dtype == x.dtype for v in (weight, bias)):
            x, weight, bias = np.ascontiguousarray(x), _contiguous(np, weight), _contiguous(np, bias)
            out, self.mean, self.rstd = np.empty_like(x), np.empty(M, dtype=x.dtype), np.empty(M, dtype=x.dtype)
            C.layer_norm_forward(x, weight, bias, out, self.mean, self.rstd, M, N, float(eps))
        else:
            out, self.mean, self.rstd = _layer_norm_xp(x.reshape(M, N), _row(weight, N), _row(bias, N), eps)
            out = out.reshape(x.shape)
        self.x, self.weight = x, weight
        return out

    def backward(self, grad):
        x, weight, (M, N) = self.x, self.weight, self.sizes
        need_x, need_weight, need_bias = self.needs_input_grad
        if kernels.compiled("layer_norm_backward", x, kernels.FLOATS) is not None and (
                weight is None or weight.dtype == x.dtype):
            grad = np.ascontiguousarray(grad, dtype=x.dtype)
            grad_x = np.empty_like(x) if need_x else None
            grad_w = np.empty(self.shape, dtype=x.dtype) if need_weight else None
            grad_b = np.empty(self.shape, dtype=x.dtype) if need_bias else None
            C.layer_norm_backward(grad, x, self.mean, self.rstd, weight, grad_x, grad_w, grad_b, M, N)
        else:
            grad_x, grad_w, grad_b = _layer_norm_backward_xp(grad.reshape(M, N), x.reshape(M, N), self.mean,
                                                             self.rstd, _row(weight, N))
            grad_x = grad_x.reshape(x.shape) if need_x else None
            grad_w = grad_w.reshape(self.shape) if need_weight else None
            grad_b = grad_b.reshape(self.shape) if need_bias else None
        return grad_x, grad_w, grad_b


def _row(v, N):
    return None if v is None else v.reshape(N)


def _layer_norm_xp(x2, weight, bias, eps):
    """LayerNorm's forward on (M, N) rows: (out, mean, rstd), mean and rstd (M,)."""
    xp = get_array_module(x2)
    mean = x2.mean(axis=1)
    rstd = (1 / xp.sqrt(x2.var(axis=1) + eps)).astype(x2.dtype, copy=False)
    out = (x2 - mean[:, None]) * rstd[:, None]
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out.astype(x2.dtype, copy=False), mean.astype(x2.dtype, copy=False), rstd


def _layer_norm_backward_xp(g2, x2, mean, rstd, weight):
    """LayerNorm's gradients on (M, N) rows: (grad_x, grad_weight, grad_bias)."""
    xhat = (x2 - mean[:, None]) * rstd[:, None]
    gxhat = g2 if weight is None else g2 * weight
    grad_x = rstd[:, None] * (gxhat - gxhat.mean(axis=1, keepdims=True)
                              - xhat * (gxhat * xhat).mean(axis=1, keepdims=True))
    return grad_x.astype(x2.dtype, copy=False), (g2 * xhat).sum(axis=0), g2.sum(axis=0)


def _ncs(x):
    """x's sizes as (N, C, S): batch, channels (dim 1) and the product of the rest."""
    n, c = x.shape[0], x.shape[1]
    return n, c, x.size // (n * c) if n * c else int(np.prod(x.shape[2:], dtype=np.int64))


def _kernel_xp(x, *vectors):
    """x's array module where the `_C` kernels take x and its per-channel vectors (None: absent), else None."""
    xp = kernels.compiled("batch_norm_elemt", x, kernels.FLOATS)
    return xp if xp is not None and all(v is None or v.dtype == x.dtype for v in vectors) else None


def _contiguous(xp, v):
    return None if v is None else xp.ascontiguousarray(v)


def batch_norm_stats(x):
    """Per-channel (dim 1) mean and biased variance of x over its other dims, as (C,) arrays of
    x's dtype: `mean, var = batch_norm_stats(x)`."""
    N, C_, S = _ncs(x)
    xp = _kernel_xp(x)
    if xp is not None:
        mean, var = xp.empty(C_, dtype=x.dtype), xp.empty(C_, dtype=x.dtype)
        C.batch_norm_stats(xp.ascontiguousarray(x), mean, var, N, C_, S)
        return mean, var
    return _stats_xp(x.reshape(N, C_, S))


def _stats_xp(x3):
    return x3.mean(axis=(0, 2)), x3.var(axis=(0, 2))


def _elemt_xp(x3, mean, invstd, weight, bias):
    scale = invstd if weight is None else invstd * weight
    out = (x3 - mean[:, None]) * scale[:, None]
    return (out if bias is None else out + bias[:, None]).astype(x3.dtype, copy=False)


def _backward_reduce_xp(g3, x3, mean):
    return g3.sum(axis=(0, 2)), (g3 * (x3 - mean[:, None])).sum(axis=(0, 2))


def _backward_elemt_xp(g3, x3, mean, invstd, weight, sum_dy, sum_dy_xmu, count):
    scale = invstd if weight is None else invstd * weight
    if sum_dy is None:
        return (g3 * scale[:, None]).astype(g3.dtype, copy=False)
    k = sum_dy_xmu / count * invstd * invstd
    return ((g3 - (sum_dy / count)[:, None] - (x3 - mean[:, None]) * k[:, None]) * scale[:, None]).astype(
        g3.dtype, copy=False)


class BatchNorm(Primitive):
    """out = (x - mean) * invstd * weight + bias per channel (dim 1) of x; weight and bias are
    (C,) inputs or None, mean and invstd (C,) arrays of x's dtype.

    training=True: mean and invstd are the statistics of the batch, taken over `count` values per
    channel, so the gradient flows through them. `reduce_sums(sum_dy, sum_dy_xmu)`, when given,
    returns backward's per-channel sums combined over every process that shares the statistics
    (SyncBatchNorm: an all-reduce, `count` then being the global count); the weight and bias
    gradients stay local. training=False: mean and invstd are constants (running statistics).

        out = BatchNorm.apply(x, weight, bias, mean=mean, invstd=invstd, training=True, count=x.numel() // C)
    """

    def forward(self, x, weight, bias, mean, invstd, training, count=0, reduce_sums=None):
        self.training, self.count, self.reduce_sums = training, count, reduce_sums
        N, C_, S = self.sizes = _ncs(x)
        xp = _kernel_xp(x, weight, bias, mean, invstd)
        if xp is not None:
            x, weight, bias = xp.ascontiguousarray(x), _contiguous(xp, weight), _contiguous(xp, bias)
            mean, invstd = xp.ascontiguousarray(mean), xp.ascontiguousarray(invstd)
            out = xp.empty_like(x)
            C.batch_norm_elemt(x, mean, invstd, weight, bias, out, N, C_, S)
        else:
            out = _elemt_xp(x.reshape(N, C_, S), mean, invstd, weight, bias).reshape(x.shape)
        self.x, self.weight, self.mean, self.invstd = x, weight, mean, invstd
        return out

    def backward(self, grad):
        need_x, need_weight, need_bias = self.needs_input_grad
        x, weight, mean, invstd = self.x, self.weight, self.mean, self.invstd
        N, C_, S = self.sizes
        xp = _kernel_xp(x, weight, mean, invstd)
        kernel = xp is not None and kernels.compiled("batch_norm_elemt", grad) is not None
        if kernel:
            grad = xp.ascontiguousarray(grad, dtype=x.dtype)
        else:
            g3, x3 = grad.reshape(N, C_, S), x.reshape(N, C_, S)
        sum_dy = sum_dy_xmu = None
        if need_weight or need_bias or (need_x and self.training):
            if kernel:
                sum_dy, sum_dy_xmu = xp.empty(C_, dtype=x.dtype), xp.empty(C_, dtype=x.dtype)
                C.batch_norm_backward_reduce(grad, x, mean, sum_dy, sum_dy_xmu, N, C_, S)
            else:
                sum_dy, sum_dy_xmu = _backward_reduce_xp(g3, x3, mean)
        grad_weight = sum_dy_xmu * invstd if need_weight else None
        grad_bias = sum_dy if need_bias else None
        grad_x = None
        if need_x:
            if not self.training:
                sum_dy = sum_dy_xmu = None
            elif self.reduce_sums is not None:  # copies: grad_bias is sum_dy, and a reduction may work in place
                sum_dy, sum_dy_xmu = self.reduce_sums(sum_dy.copy(), sum_dy_xmu.copy())
            if kernel:
                grad_x = xp.empty_like(x)
                C.batch_norm_backward_elemt(grad, x, mean, invstd, weight, sum_dy, sum_dy_xmu, self.count, grad_x,
                                            N, C_, S)
            else:
                grad_x = _backward_elemt_xp(g3, x3, mean, invstd, weight, sum_dy, sum_dy_xmu,
                                            self.count).reshape(x.shape)
        return grad_x, grad_weight, grad_bias
