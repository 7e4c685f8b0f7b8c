"""Convolutions as im2col + one matrix product over the whole batch (BLAS through numpy,
cuBLAS through cupy); the backward pass is the same product transposed and col2im.

`geometry` is the tuple (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW) of
csrc/kernels/im2col.h: PH/PW pad the top/left, OH/OW fix the bottom/right.
"""
import numpy as np

from distml._backend import C, get_array_module
from distml.autograd.function import Primitive


def im2col(x, geometry):
    """Unfold x (N, C, H, W) into columns (C*KH*KW, N*OH*OW): `_C` on the CPU, xp otherwise."""
    N, C_, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = geometry
    if isinstance(x, np.ndarray):
        cols = np.empty((C_ * KH * KW, N * OH * OW), dtype=x.dtype)
        C.im2col(np.ascontiguousarray(x), cols, geometry)
        return cols
    return _im2col_xp(x, geometry)


def col2im(cols, geometry):
    """im2col's adjoint: columns summed back onto an (N, C, H, W) array."""
    N, C_, H, W = geometry[:4]
    if isinstance(cols, np.ndarray):
        x = np.empty((N, C_, H, W), dtype=cols.dtype)
        C.col2im(np.ascontiguousarray(cols), x, geometry)
        return x
    return _col2im_xp(cols, geometry)


def _padded_windows(geometry):
    """Bottom/right padding that makes every window fit, and each kernel offset's slices."""
    N, C_, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = geometry
    bottom = max(0, (OH - 1) * SH + (KH - 1) * DH + 1 - H - PH)
    right = max(0, (OW - 1) * SW + (KW - 1) * DW + 1 - W - PW)
    slices = [(i, j, slice(i * DH, i * DH + (OH - 1) * SH + 1, SH), slice(j * DW, j * DW + (OW - 1) * SW + 1, SW))
              for i in range(KH) for j in range(KW)]
    return bottom, right, slices


def _im2col_xp(x, geometry):
    xp = get_array_module(x)
    N, C_, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = geometry
    bottom, right, slices = _padded_windows(geometry)
    padded = xp.pad(x, ((0, 0), (0, 0), (PH, bottom), (PW, right)))
    cols = xp.empty((C_, KH, KW, N, OH, OW), dtype=x.dtype)
    for i, j, rows, columns in slices:
        cols[:, i, j] = padded[:, :, rows, columns].transpose(1, 0, 2, 3)
    return cols.reshape(C_ * KH * KW, N * OH * OW)


def _col2im_xp(cols, geometry):
    xp = get_array_module(cols)
    N, C_, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = geometry
    bottom, right, slices = _padded_windows(geometry)
    padded = xp.zeros((N, C_, PH + H + bottom, PW + W + right), dtype=cols.dtype)
    cols = cols.reshape(C_, KH, KW, N, OH, OW)
    for i, j, rows, columns in slices:
        padded[:, :, rows, columns] += cols[:, i, j].transpose(1, 0, 2, 3)
    return xp.ascontiguousarray(padded[:, :, PH:PH + H, PW:PW + W])


def _grouped_matmul(xp, a, b, groups, transpose_a=False, transpose_b=False):
    """a @ b per group: a is (G*m, k) (or (k, G*m) with transpose_a), b is (G*k, n) ..."""
    a = a.reshape(groups, -1, a.shape[-1])
    b = b.reshape(groups, -1, b.shape[-1])
    if transpose_a:
        a = a.transpose(0, 2, 1)
    if transpose_b:
        b = b.transpose(0, 2, 1)
    out = xp.matmul(a, b)
    return out.reshape(-1, out.shape[-1])


def _matmul(xp, a, b, groups, transpose_a=False, transpose_b=False):
    if groups == 1:
        return (a.T if transpose_a else a) @ (b.T if transpose_b else b)
    return _grouped_matmul(xp, a, b, groups, transpose_a, transpose_b)


def _to_channels_first(array, channels, N, L):
    """(C, N*L) -> (N, C, L) as a contiguous array."""
    return get_array_module(array).ascontiguousarray(array.reshape(channels, N, L).transpose(1, 0, 2))


def _to_channels_rows(array):
    """(N, C, *spatial) -> (C, N*L): what the GEMMs multiply."""
    N, C_ = array.shape[:2]
    return array.reshape(N, C_, -1).transpose(1, 0, 2).reshape(C_, -1)


class Conv2d(Primitive):
    """y = conv2d(x, weight) + bias, with `geometry` fixing stride, padding and dilation."""

    def forward(self, x, weight, bias, geometry, groups):
        xp = get_array_module(x)
        N, O, OH, OW = geometry[0], weight.shape[0], geometry[12], geometry[13]
        self.geometry, self.groups, self.weight = geometry, groups, weight
        self.cols = im2col(x, geometry)
        out = _matmul(xp, weight.reshape(O, -1), self.cols, groups)
        if bias is not None:
            out += bias[:, None]
        return _to_channels_first(out, O, N, OH * OW).reshape(N, O, OH, OW)

    def backward(self, grad):
        xp = get_array_module(grad)
        weight, groups = self.weight, self.groups
        grad_rows = _to_channels_rows(grad)
        grad_x = grad_w = grad_b = None
        if self.needs_input_grad[0]:
            grad_x = col2im(_matmul(xp, weight.reshape(weight.shape[0], -1), grad_rows, groups, transpose_a=True),
                            self.geometry)
        if self.needs_input_grad[1]:
            grad_w = _matmul(xp, grad_rows, self.cols, groups, transpose_b=True).reshape(weight.shape)
        if self.needs_input_grad[2]:
            grad_b = grad_rows.sum(axis=1)
        return grad_x, grad_w, grad_b


class ConvTranspose2d(Primitive):
    """The adjoint of Conv2d in x: y = col2im(weight^T @ x) + bias. weight is (C_in, C_out/groups, KH, KW);
    `geometry` describes the convolution that maps y back to x (its N, C, H, W are y's)."""

    def forward(self, x, weight, bias, geometry, groups):
        xp = get_array_module(x)
        self.geometry, self.groups, self.weight = geometry, groups, weight
        self.rows = _to_channels_rows(x)
        out = col2im(_matmul(xp, weight.reshape(weight.shape[0], -1), self.rows, groups, transpose_a=True), geometry)
        if bias is not None:
            out += bias[:, None, None]
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        weight, groups = self.weight, self.groups
        N, C_in = grad.shape[0], weight.shape[0]
        cols = im2col(grad, self.geometry)
        grad_x = grad_w = grad_b = None
        if self.needs_input_grad[0]:
            out = _matmul(xp, weight.reshape(C_in, -1), cols, groups)
            grad_x = _to_channels_first(out, C_in, N, self.geometry[12] * self.geometry[13])
            grad_x = grad_x.reshape(N, C_in, self.geometry[12], self.geometry[13])
        if self.needs_input_grad[1]:
            grad_w = _matmul(xp, self.rows, cols, groups, transpose_b=True).reshape(weight.shape)
        if self.needs_input_grad[2]:
            grad_b = grad.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b
