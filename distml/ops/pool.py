"""Pooling over the last 1 to 3 dims of an array (the planes are all the leading dims): max
(with argmax indices) and average in `_C` (CPU kernels and their CUDA twins), with xp versions
for other dtypes; adaptive average, adaptive max and max-unpooling in xp.

`geometry` is csrc/kernels/pool.h's tuple (P, D, H, W, KD, KH, KW, SD, SH, SW, PD, PH, PW,
DD, DH, DW, OD, OH, OW); `pool_geometry` builds it, filling missing leading dims with 1.
"""
import functools
import itertools

import numpy as np

from distml import kernels
from distml._backend import C, get_array_module
from distml.autograd.function import Primitive


def pool_geometry(shape, kernel, stride, padding, dilation, out):
    """The kernel geometry for x of `shape` pooled over its last len(kernel) dims."""
    n = len(kernel)
    ones, zeros = (1,) * (3 - n), (0,) * (3 - n)
    planes = int(np.prod(shape[:-n], dtype=np.int64))
    return ((planes,) + ones + tuple(shape[-n:]) + ones + tuple(kernel) + ones + tuple(stride) + zeros
            + tuple(padding) + ones + tuple(dilation) + ones + tuple(out))


def _out_shape(shape, geometry, dims):
    return tuple(shape[:-dims]) + tuple(geometry[19 - dims:])


class MaxPool(Primitive):
    """Window maxima over the last `dims` dims and their int64 argmax indices (flat over each
    plane, as PyTorch's return_indices): `out, indices = MaxPool.apply(x, geometry=g, dims=2)`."""
    saves_inputs = False

    def forward(self, x, geometry, dims):
        self.shape, self.planes = x.shape, geometry[0]
        out_shape = _out_shape(x.shape, geometry, dims)
        xp = kernels.compiled("max_pool", x, kernels.FLOATS)
        if xp is not None:
            out = xp.empty(out_shape, dtype=x.dtype)
            self.indices = xp.empty(out_shape, dtype=np.int64)
            C.max_pool(xp.ascontiguousarray(x), out, self.indices, geometry)
        else:
            out, self.indices = _max_pool_xp(x, geometry)
            out, self.indices = out.reshape(out_shape), self.indices.reshape(out_shape)
        return out, self.indices

    def backward(self, grad, grad_indices):
        return max_pool_backward(grad, self.indices, self.shape, self.planes)


def max_pool_backward(grad, indices, shape, planes):
    """grad_x of any max pooling: each output's gradient added at its plane's flat `indices`."""
    if not planes:
        return get_array_module(grad).zeros(shape, dtype=grad.dtype)
    xp = kernels.compiled("max_pool_backward", grad, kernels.FLOATS)
    if xp is not None:
        grad_x = xp.empty(shape, dtype=grad.dtype)
        C.max_pool_backward(xp.ascontiguousarray(grad), xp.ascontiguousarray(indices, dtype=np.int64), grad_x, planes)
        return grad_x
    return _max_pool_backward_xp(grad, indices, shape, planes)


def _max_pool_backward_xp(grad, indices, shape, planes):
    xp = get_array_module(grad)
    grad_x = xp.zeros((planes, int(np.prod(shape, dtype=np.int64)) // planes), dtype=grad.dtype)
    positions = indices.reshape(planes, -1) + (xp.arange(planes) * grad_x.shape[1])[:, None]
    xp.add.at(grad_x.reshape(-1), positions.reshape(-1), grad.reshape(-1))
    return grad_x.reshape(shape)


def _dims(geometry):
    """Per spatial dim (D, H, W): size, kernel, stride, padding, dilation, output size."""
    return list(zip(*(geometry[1 + 3 * i:4 + 3 * i] for i in range(6))))


def _windows_xp(x, geometry, fill):
    """The input under each kernel offset, x padded with `fill`: (K, P, OD, OH, OW)."""
    xp = get_array_module(x)
    dims = _dims(geometry)
    after = [max(0, (o - 1) * s + (k - 1) * d + 1 - n - p) for n, k, s, p, d, o in dims]
    widths = [(0, 0)] + [(p, a) for (_, _, _, p, _, _), a in zip(dims, after)]
    padded = xp.pad(x.reshape((geometry[0],) + geometry[1:4]), widths, constant_values=fill)
    return xp.stack([padded[(slice(None),) + tuple(slice(i * d, i * d + (o - 1) * s + 1, s)
                                                   for i, (_, _, s, _, d, o) in zip(offset, dims))]
                     for offset in itertools.product(*(range(k) for _, k, _, _, _, _ in dims))])


def _max_pool_xp(x, geometry):
    xp = get_array_module(x)
    windows = _windows_xp(x, geometry, -np.inf)
    best = _argmax_last_nan(xp, windows, axis=0)
    out = xp.take_along_axis(windows, best[None], axis=0)[0]
    flat = 0
    kernel_sizes = [k for _, k, _, _, _, _ in _dims(geometry)]
    for axis, (offset, (n, k, s, p, d, o)) in enumerate(zip(xp.unravel_index(best, kernel_sizes), _dims(geometry))):
        start = (xp.arange(o) * s - p).reshape([-1 if a == axis else 1 for a in range(3)])
        flat = flat * n + start + offset * d
    return out, flat.astype(np.int64)


def _argmax_last_nan(xp, values, axis):
    """argmax (the first maximum), except that a NaN wins: the last NaN, as PyTorch's kernels scan."""
    best = values.argmax(axis=axis)
    nan = xp.isnan(values)
    last_nan = values.shape[axis] - 1 - xp.flip(nan, axis=axis).argmax(axis=axis)
    return xp.where(nan.any(axis=axis), last_nan, best)


class AvgPool(Primitive):
    """Window averages over the last `dims` dims with PyTorch's divisor (count_include_pad
    or not, ceil_mode windows clipped to the padded input, divisor_override when not 0)."""
    saves_inputs = False

    def forward(self, x, geometry, dims, count_include_pad, divisor_override):
        self.shape, self.geometry = x.shape, geometry
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override
        out_shape = _out_shape(x.shape, geometry, dims)
        xp = kernels.compiled("avg_pool", x, kernels.FLOATS)
        if xp is not None:
            out = xp.empty(out_shape, dtype=x.dtype)
            C.avg_pool(xp.ascontiguousarray(x), out, geometry, count_include_pad, divisor_override)
            return out
        windows = _windows_xp(x, geometry, 0)
        return (windows.sum(axis=0) / self._divisor_xp(x)).reshape(out_shape)

    def backward(self, grad):
        xp = kernels.compiled("avg_pool_backward", grad, kernels.FLOATS)
        if xp is not None:
            grad_x = xp.empty(self.shape, dtype=grad.dtype)
            C.avg_pool_backward(xp.ascontiguousarray(grad), grad_x, self.geometry, self.count_include_pad,
                                self.divisor_override)
            return grad_x
        return self._backward_xp(grad)

    def _divisor_xp(self, like):
        """Per-output divisor (OD, OH, OW) under PyTorch's rules (never 0: empty windows sum to 0)."""
        xp = get_array_module(like)
        if self.divisor_override:
            return xp.asarray(self.divisor_override, dtype=like.dtype)
        divisor = 1
        for axis, (n, k, s, p, _, o) in enumerate(_dims(self.geometry)):
            start = xp.arange(o) * s - p
            end = xp.minimum(start + k, n + p)
            extent = end - start if self.count_include_pad else xp.minimum(end, n) - xp.maximum(start, 0)
            divisor = divisor * extent.reshape([-1 if a == axis else 1 for a in range(3)])
        return xp.maximum(divisor, 1).astype(like.dtype)

    def _backward_xp(self, grad):
        xp = get_array_module(grad)
        g, dims = self.geometry, _dims(self.geometry)
        share = grad.reshape((g[0],) + g[16:19]) / self._divisor_xp(grad)
        after = [max(0, (o - 1) * s + (k - 1) * d + 1 - n - p) for n, k, s, p, d, o in dims]
        padded = xp.zeros((g[0],) + tuple(p + n + a for (n, _, _, p, _, _), a in zip(dims, after)), dtype=grad.dtype)
        for offset in itertools.product(*(range(k) for _, k, _, _, _, _ in dims)):
            padded[(slice(None),) + tuple(slice(i, i + (o - 1) * s + 1, s)
                                          for i, (_, _, s, _, _, o) in zip(offset, dims))] += share
        inside = padded[(slice(None),) + tuple(slice(p, p + n) for n, _, _, p, _, _ in dims)]
        return xp.ascontiguousarray(inside).reshape(self.shape)


_KRONECKER_LIMIT = 1 << 16  # entries of the one-matrix form of adaptive average pooling


def adaptive_ranges(size, out_size):
    """PyTorch's adaptive windows: output i covers floor(i*size/out) to ceil((i+1)*size/out)."""
    return [((i * size) // out_size, -((-(i + 1) * size) // out_size)) for i in range(out_size)]


class AdaptiveAvgPool(Primitive):
    """Averages over PyTorch's adaptive windows of the last len(output_size) dims. Finite
    inputs with a small window table (global pooling) take one matrix product with the
    Kronecker product of the per-dim averaging matrices (BLAS beats numpy's strided means);
    other inputs a mean per output slab, one dim at a time (a window is a product of
    intervals, so the mean separates, and a NaN or inf stays inside its own windows)."""
    saves_inputs = False

    def forward(self, x, output_size):
        xp = get_array_module(x)
        n = len(output_size)
        self.shape, self.lead, spatial = x.shape, x.shape[:x.ndim - n], x.shape[x.ndim - n:]
        self.ranges = [adaptive_ranges(size, out) for size, out in zip(spatial, output_size)]
        self.kron = None
        if 0 in output_size:
            return xp.zeros(self.lead + tuple(output_size), dtype=x.dtype)
        volume, out_volume = int(np.prod(spatial)), int(np.prod(output_size))
        if volume * out_volume <= _KRONECKER_LIMIT and bool(xp.isfinite(x).all()):
            matrices = []
            for size, ranges in zip(spatial, self.ranges):
                matrix = np.zeros((size, len(ranges)))
                for i, (start, end) in enumerate(ranges):
                    matrix[start:end, i] = 1 / (end - start)
                matrices.append(matrix)
            self.kron = xp.asarray(functools.reduce(np.kron, matrices), dtype=x.dtype)
            return xp.matmul(x.reshape(self.lead + (volume,)), self.kron).reshape(self.lead + tuple(output_size))
        for axis, ranges in enumerate(self.ranges, start=len(self.lead)):
            before = (slice(None),) * axis
            x = xp.stack([x[before + (slice(start, end),)].mean(axis=axis) for start, end in ranges], axis=axis)
        return x

    def backward(self, grad):
        xp = get_array_module(grad)
        if self.kron is not None:
            flat = grad.reshape(self.lead + (self.kron.shape[1],))
            if self.kron.shape[1] == 1:  # global pooling: an outer product, faster broadcast than through BLAS
                return (flat * self.kron[:, 0]).reshape(self.shape)
            return xp.matmul(flat, self.kron.T).reshape(self.shape)
        if not grad.size:
            return xp.zeros(self.shape, dtype=grad.dtype)
        for axis, ranges in enumerate(self.ranges, start=len(self.lead)):
            before = (slice(None),) * axis
            spread = xp.zeros(grad.shape[:axis] + (self.shape[axis],) + grad.shape[axis + 1:], dtype=grad.dtype)
            for i, (start, end) in enumerate(ranges):
                spread[before + (slice(start, end),)] += grad[before + (slice(i, i + 1),)] / (end - start)
            grad = spread
        return grad


class AdaptiveMaxPool(Primitive):
    """Maxima over PyTorch's adaptive windows of the last len(output_size) dims and their flat
    int64 indices within each plane: `out, indices = AdaptiveMaxPool.apply(x, output_size=(2, 2))`."""
    saves_inputs = False

    def forward(self, x, output_size):
        xp = get_array_module(x)
        n = len(output_size)
        lead, spatial = x.shape[:x.ndim - n], x.shape[x.ndim - n:]
        # Per dim an (out, k) table of input positions, short windows repeating their last one
        # (a repeat comes later in scan order, so it never changes which element wins).
        tables = []
        for size, out in zip(spatial, output_size):
            ranges = adaptive_ranges(size, out)
            k = max(end - start for start, end in ranges)
            tables.append(xp.asarray([[min(start + j, end - 1) for j in range(k)] for start, end in ranges]))
        windows = x
        for d, table in enumerate(tables):
            windows = xp.take(windows, table, axis=len(lead) + 2 * d)  # (..., out_d, k_d, ...)
        order = [len(lead) + 2 * d for d in range(n)] + [len(lead) + 2 * d + 1 for d in range(n)]
        window = int(np.prod([t.shape[1] for t in tables], dtype=np.int64))
        windows = windows.transpose(list(range(len(lead))) + order).reshape(lead + tuple(output_size) + (window,))
        best = _argmax_last_nan(xp, windows, axis=-1)
        out = xp.take_along_axis(windows, best[..., None], axis=-1)[..., 0]
        flat = 0
        for d, (offset, table) in enumerate(zip(xp.unravel_index(best, [t.shape[1] for t in tables]), tables)):
            row = xp.arange(output_size[d]).reshape([-1 if a == d else 1 for a in range(n)])
            flat = flat * spatial[d] + table[row, offset]
        self.indices = xp.ascontiguousarray(flat.astype(np.int64))
        self.shape, self.planes = x.shape, int(np.prod(lead, dtype=np.int64))
        return xp.ascontiguousarray(out), self.indices

    def backward(self, grad, grad_indices):
        return max_pool_backward(grad, self.indices, self.shape, self.planes)


class MaxUnpool(Primitive):
    """Zeros of the output size with each input value written at its plane's flat index
    (the inverse of a max pooling where indices came from): `MaxUnpool.apply(x, indices, output_size=(8, 8))`."""
    saves_inputs = False

    def forward(self, x, indices, output_size):
        xp = get_array_module(x)
        n = len(output_size)
        lead = x.shape[:x.ndim - n]
        planes = int(np.prod(lead, dtype=np.int64))
        self.rows, self.columns = xp.arange(planes)[:, None], indices.reshape(planes, -1)
        out = xp.zeros((planes, int(np.prod(output_size, dtype=np.int64))), dtype=x.dtype)
        out[self.rows, self.columns] = x.reshape(planes, -1)
        self.shape, self.out_size = x.shape, out.shape
        return out.reshape(lead + tuple(output_size))

    def backward(self, grad):
        return grad.reshape(self.out_size)[self.rows, self.columns].reshape(self.shape), None
