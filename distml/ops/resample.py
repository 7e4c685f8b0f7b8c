"""Resampling along one axis: each output is a weighted sum of a few input taps (nearest: 1,
linear: 2, cubic: 4), with PyTorch's source-index rules. F.interpolate applies it once per
spatial dim, the last dim first, as PyTorch's separable kernels nest their sums.

    index, weights = taps("linear", 4, 7, scale=None, align_corners=False, dtype=np.float32)
    out = Resample.apply(x, axis=-1, index=index, weights=weights)
"""
import numpy as np

from distml._backend import get_array_module
from distml.autograd.function import Primitive

_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) bicubic convolution parameter


def _scale(in_size, out_size, scale, align_corners, acc):
    """Input positions per output step (PyTorch's area_pixel_compute_scale)."""
    if align_corners:
        return acc(in_size - 1) / acc(out_size - 1) if out_size > 1 else acc(0)
    return acc(1.0 / scale) if scale is not None and scale > 0 else acc(in_size) / acc(out_size)


def _source(scale, dst, align_corners, cubic):
    if align_corners:
        return scale * dst
    real = scale * (dst + dst.dtype.type(0.5)) - dst.dtype.type(0.5)
    return real if cubic else np.maximum(real, 0)


def _floor(real):
    """floorf: PyTorch floors source positions in float32 whatever the compute type."""
    return np.floor(real.astype(np.float32)).astype(np.int64)


def _cubic_weights(t):
    a = _CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)])


def taps(mode, in_size, out_size, scale, align_corners, dtype, nearest_2d=False):
    """(index (T, out) int64, weights (T, out) of dtype, or None for nearest) for one dim.
    `scale` is the user's scale factor (None: in_size / out_size); arithmetic in float32 for
    float32 data, as PyTorch's opmath. `nearest_2d`: PyTorch's 2-D nearest kernel, which
    copies when out == in, halves when out == 2 * in, else scales in float32."""
    acc = np.float64 if dtype == np.float64 and not nearest_2d else np.float32
    if nearest_2d and out_size in (in_size, 2 * in_size):
        return (np.arange(out_size) // (out_size // in_size))[None], None
    dst = np.arange(out_size, dtype=acc)
    step = _scale(in_size, out_size, scale, align_corners and mode in ("linear", "cubic"), acc)
    last = in_size - 1
    if mode == "nearest":
        return np.minimum(_floor(step * dst), last)[None], None
    if mode == "nearest-exact":
        return np.minimum(_floor(_source(step, dst, False, False) + acc(0.5)), last)[None], None
    if mode == "linear":
        if in_size == out_size:
            return np.arange(out_size)[None], np.ones((1, out_size), dtype=dtype)
        real = _source(step, dst, align_corners, cubic=False)
        first = np.minimum(_floor(real), last)
        weight = np.clip(real - first, 0, 1).astype(acc)
        index = np.stack([first, first + (first < last)])
        return index, np.stack([1 - weight, weight]).astype(dtype)
    real = _source(step, dst, align_corners, cubic=True)
    first = _floor(real)
    index = np.clip(first[None] + np.arange(-1, 3)[:, None], 0, last)
    return index, _cubic_weights((real - first).astype(acc)).astype(dtype)


class Resample(Primitive):
    """out[..., o, ...] = sum over taps t of weights[t, o] * x[..., index[t, o], ...] along
    `axis`; its backward is the transposed map as one (out, in) matrix product."""
    saves_inputs = False

    def forward(self, x, axis, index, weights):
        xp = get_array_module(x)
        self.axis, self.size = axis, x.shape[axis]
        self.index = xp.asarray(index)
        self.weights = None if weights is None else xp.asarray(weights, dtype=x.dtype)
        along = [1] * x.ndim
        along[axis] = -1
        out = None
        for t in range(self.index.shape[0]):
            part = xp.take(x, self.index[t], axis=axis)
            if self.weights is not None:
                part *= self.weights[t].reshape(along)
            out = part if out is None else xp.add(out, part, out=out)
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        taps_, out_size = self.index.shape
        matrix = xp.zeros((out_size, self.size), dtype=grad.dtype)
        rows = xp.broadcast_to(xp.arange(out_size), (taps_, out_size))
        values = xp.ones((taps_, out_size), dtype=grad.dtype) if self.weights is None else self.weights
        xp.add.at(matrix, (rows.reshape(-1), self.index.reshape(-1)), values.reshape(-1))
        moved = xp.matmul(xp.moveaxis(grad, self.axis, -1), matrix)
        return xp.ascontiguousarray(xp.moveaxis(moved, -1, self.axis))
