"""2-D pooling over the planes of an (N, C, H, W) array: max (with argmax indices) and
average in `_C` on the CPU with an xp twin for cupy, and adaptive average in xp.

`geometry` is csrc/kernels/im2col.h's tuple with N = the number of planes and C = 1.
"""
import numpy as np

from distml._backend import C, get_array_module
from distml.autograd.function import Primitive
from distml.ops.conv import _padded_windows


class MaxPool2d(Primitive):
    """Window maxima and their int64 argmax indices (flat over each H*W plane, as PyTorch's
    return_indices): `out, indices = MaxPool2d.apply(x, geometry=g)`."""
    saves_inputs = False

    def forward(self, x, geometry):
        N, C_, H, W = x.shape
        g = self.geometry = (N * C_,) + tuple(geometry[1:])
        OH, OW = g[12], g[13]
        if isinstance(x, np.ndarray):
            out = np.empty((N, C_, OH, OW), dtype=x.dtype)
            self.indices = np.empty((N, C_, OH, OW), dtype=np.int64)
            C.max_pool2d(np.ascontiguousarray(x), out, self.indices, g)
        else:
            out, self.indices = _max_pool_xp(x, g)
        self.shape = x.shape
        return out, self.indices

    def backward(self, grad, grad_indices):
        if isinstance(grad, np.ndarray):
            grad_x = np.empty(self.shape, dtype=grad.dtype)
            C.max_pool2d_backward(np.ascontiguousarray(grad), self.indices, grad_x, self.geometry)
            return grad_x
        return _max_pool_backward_xp(grad, self.indices, self.shape)


def _max_pool_xp(x, g):
    xp = get_array_module(x)
    P, _, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = g
    bottom, right, slices = _padded_windows(g)
    padded = xp.pad(x.reshape(P, H, W), ((0, 0), (PH, bottom), (PW, right)), constant_values=-xp.inf)
    windows = xp.stack([padded[:, rows, columns] for _, _, rows, columns in slices])  # (KH*KW, P, OH, OW)
    best = windows.argmax(axis=0)
    out = xp.take_along_axis(windows, best[None], axis=0)[0]
    i, j = best // KW, best % KW
    h = xp.arange(OH)[:, None] * SH - PH + i * DH
    w = xp.arange(OW)[None, :] * SW - PW + j * DW
    return out.reshape(x.shape[:2] + (OH, OW)), (h * W + w).reshape(x.shape[:2] + (OH, OW)).astype(np.int64)


def _max_pool_backward_xp(grad, indices, shape):
    xp = get_array_module(grad)
    planes = shape[0] * shape[1]
    grad_x = xp.zeros((planes, shape[2] * shape[3]), dtype=grad.dtype)
    positions = indices.reshape(planes, -1) + (xp.arange(planes) * shape[2] * shape[3])[:, None]
    xp.add.at(grad_x.reshape(-1), positions.reshape(-1), grad.reshape(-1))
    return grad_x.reshape(shape)


class AvgPool2d(Primitive):
    """Window averages with PyTorch's divisor (count_include_pad or not; ceil_mode windows
    clipped to the padded input)."""
    saves_inputs = False

    def forward(self, x, geometry, count_include_pad):
        N, C_, H, W = x.shape
        g = self.geometry = (N * C_,) + tuple(geometry[1:])
        self.shape, self.count_include_pad = x.shape, count_include_pad
        if isinstance(x, np.ndarray):
            out = np.empty((N, C_, g[12], g[13]), dtype=x.dtype)
            C.avg_pool2d(np.ascontiguousarray(x), out, g, count_include_pad)
            return out
        windows, divisor = _avg_windows_xp(x, g, count_include_pad)
        return (windows.sum(axis=0) / divisor).reshape(N, C_, g[12], g[13])

    def backward(self, grad):
        if isinstance(grad, np.ndarray):
            grad_x = np.empty(self.shape, dtype=grad.dtype)
            C.avg_pool2d_backward(np.ascontiguousarray(grad), grad_x, self.geometry, self.count_include_pad)
            return grad_x
        return _avg_pool_backward_xp(grad, self.geometry, self.shape, self.count_include_pad)


def _divisor_xp(xp, g, count_include_pad):
    """Per-output divisor (OH, OW) under PyTorch's rules (never 0: empty windows sum to 0)."""
    _, _, H, W, KH, KW, SH, SW, PH, PW = g[:10]
    OH, OW = g[12], g[13]

    def extent(n_out, size, k, s, p):
        start = xp.arange(n_out) * s - p
        end = xp.minimum(start + k, size + p)
        padded = end - start
        clipped = xp.minimum(end, size) - xp.maximum(start, 0)
        return padded if count_include_pad else clipped

    divisor = extent(OH, H, KH, SH, PH)[:, None] * extent(OW, W, KW, SW, PW)[None, :]
    return xp.maximum(divisor, 1)


def _avg_windows_xp(x, g, count_include_pad):
    xp = get_array_module(x)
    P, _, H, W, KH, KW, SH, SW, PH, PW = g[:10]
    bottom, right, slices = _padded_windows(g)
    padded = xp.pad(x.reshape(P, H, W), ((0, 0), (PH, bottom), (PW, right)))
    windows = xp.stack([padded[:, rows, columns] for _, _, rows, columns in slices])
    return windows, _divisor_xp(xp, g, count_include_pad).astype(x.dtype)


def _avg_pool_backward_xp(grad, g, shape, count_include_pad):
    xp = get_array_module(grad)
    P, _, H, W, KH, KW, SH, SW, PH, PW = g[:10]
    bottom, right, slices = _padded_windows(g)
    share = grad.reshape(P, g[12], g[13]) / _divisor_xp(xp, g, count_include_pad).astype(grad.dtype)
    padded = xp.zeros((P, PH + H + bottom, PW + W + right), dtype=grad.dtype)
    for _, _, rows, columns in slices:
        padded[:, rows, columns] += share
    return xp.ascontiguousarray(padded[:, PH:PH + H, PW:PW + W]).reshape(shape)


def _adaptive_ranges(size, out_size):
    return [((i * size) // out_size, -((-(i + 1) * size) // out_size)) for i in range(out_size)]


class AdaptiveAvgPool2d(Primitive):
    """Averages over PyTorch's adaptive windows: output row i covers input rows
    floor(i*H/OH) to ceil((i+1)*H/OH)."""
    saves_inputs = False

    def forward(self, x, output_size):
        xp = get_array_module(x)
        H, W = x.shape[-2:]
        self.shape = x.shape
        self.rows, self.columns = _adaptive_ranges(H, output_size[0]), _adaptive_ranges(W, output_size[1])
        out = xp.empty(x.shape[:-2] + tuple(output_size), dtype=x.dtype)
        for i, (h0, h1) in enumerate(self.rows):
            for j, (w0, w1) in enumerate(self.columns):
                out[..., i, j] = x[..., h0:h1, w0:w1].mean(axis=(-2, -1))
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        grad_x = xp.zeros(self.shape, dtype=grad.dtype)
        for i, (h0, h1) in enumerate(self.rows):
            for j, (w0, w1) in enumerate(self.columns):
                grad_x[..., h0:h1, w0:w1] += (grad[..., i, j] / ((h1 - h0) * (w1 - w0)))[..., None, None]
        return grad_x
