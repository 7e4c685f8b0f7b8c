"""Convolutions as im2col + one batched matrix product (BLAS through numpy, cuBLAS through
cupy); the backward pass is the same product transposed, and col2im.

The columns are laid out (N, C*KH*KW, OH*OW), so the product weight (O, C*KH*KW) @ cols[n]
lands directly in the output's (N, O, OH*OW) layout: no transposed copies either way.
`geometry` is the tuple (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW) of
csrc/kernels/im2col.h: PH/PW pad the top/left, OH/OW fix the bottom/right.
"""
import numpy as np

from distml._backend import C, get_array_module
from distml.autograd.function import Primitive


def im2col(x, geometry):
    """Unfold x (N, C, H, W) into columns (N, C*KH*KW, OH*OW): `_C` on the CPU, xp otherwise."""
    N, C_, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = geometry
    if isinstance(x, np.ndarray):
        cols = np.empty((N, C_ * KH * KW, OH * OW), dtype=x.dtype)
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
    cols = xp.empty((N, C_, KH, KW, OH, OW), dtype=x.dtype)
    for i, j, rows, columns in slices:
        cols[:, :, i, j] = padded[:, :, rows, columns]
    return cols.reshape(N, C_ * KH * KW, OH * OW)


def _col2im_xp(cols, geometry):
    xp = get_array_module(cols)
    N, C_, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = geometry
    bottom, right, slices = _padded_windows(geometry)
    padded = xp.zeros((N, C_, PH + H + bottom, PW + W + right), dtype=cols.dtype)
    cols = cols.reshape(N, C_, KH, KW, OH, OW)
    for i, j, rows, columns in slices:
        padded[:, :, rows, columns] += cols[:, :, i, j]
    return xp.ascontiguousarray(padded[:, :, PH:PH + H, PW:PW + W])


def _grouped(a, groups):
    """(..., G*m, k) -> (..., G, m, k): the operand of a per-group product."""
    return a.reshape(a.shape[:-2] + (groups, a.shape[-2] // groups, a.shape[-1]))


def _product(xp, w, cols, groups):
    """w (O, CKK) @ cols[n] (CKK, L) -> (N, O, L), per group when groups > 1."""
    if groups == 1:
        return xp.matmul(w, cols)
    out = xp.matmul(_grouped(w, groups), _grouped(cols, groups))
    return out.reshape(out.shape[0], -1, out.shape[-1])


def _weight_grad(xp, grad, cols, groups):
    """sum over n of grad[n] (O, L) @ cols[n].T (L, CKK), per group."""
    if groups == 1:
        return xp.matmul(grad, cols.transpose(0, 2, 1)).sum(axis=0)
    out = xp.matmul(_grouped(grad, groups), _grouped(cols, groups).transpose(0, 1, 3, 2)).sum(axis=0)
    return out.reshape(-1, out.shape[-1])


ROW_UNFOLD_MIN = 16


def _taps(weight, geometry):
    """How a convolution splits into products: the geometry to unfold x with, and one
    (kernel row or None, column slice) per product.

    With a height stride of 1, unfolding only along the width (a 1 x KW kernel over every
    padded row) writes KH times fewer columns; kernel row i then multiplies the contiguous
    column range of rows i*DH .. i*DH + OH - 1. That pays once C*KW is wide enough for an
    efficient GEMM (ROW_UNFOLD_MIN); otherwise one full im2col and one product."""
    N, C_, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = geometry
    if SH == 1 and KH > 1 and weight.shape[1] * KW >= ROW_UNFOLD_MIN:
        unfold = (N, C_, H, W, 1, KW, 1, SW, PH, PW, 1, DW, OH + (KH - 1) * DH, OW)
        return unfold, [(i, slice(i * DH * OW, (i * DH + OH) * OW)) for i in range(KH)]
    return geometry, [(None, slice(None))]


def _tap_weight(weight, row):
    return weight.reshape(weight.shape[0], -1) if row is None else weight[:, :, row, :].reshape(weight.shape[0], -1)


class Conv2d(Primitive):
    """y = conv2d(x, weight) + bias, with `geometry` fixing stride, padding and dilation."""

    def forward(self, x, weight, bias, geometry, groups):
        xp = get_array_module(x)
        N, O, OH, OW = geometry[0], weight.shape[0], geometry[12], geometry[13]
        self.unfold, self.taps = _taps(weight, geometry)
        self.groups, self.weight = groups, weight
        self.cols = im2col(x, self.unfold)
        out = None
        for row, columns in self.taps:
            product = _product(xp, _tap_weight(weight, row), self.cols[:, :, columns], groups)
            if out is None:
                out = product
            else:
                out += product
        if bias is not None:
            out += bias[:, None]
        return out.reshape(N, O, OH, OW)

    def backward(self, grad):
        xp = get_array_module(grad)
        weight, groups, cols = self.weight, self.groups, self.cols
        grad = grad.reshape(grad.shape[0], grad.shape[1], -1)
        needs = self.needs_input_grad
        grad_cols = (xp.zeros(cols.shape, dtype=cols.dtype) if len(self.taps) > 1 else None) if needs[0] else None
        grad_w = xp.empty(weight.shape, dtype=weight.dtype) if needs[1] else None
        for row, columns in self.taps:
            if needs[0]:
                w = _tap_weight(weight, row)
                w_t = _grouped(w, groups).transpose(0, 2, 1) if groups > 1 else w.T
                part = _transposed_product(xp, w_t, grad, groups)
                if grad_cols is None:
                    grad_cols = part
                else:
                    grad_cols[:, :, columns] += part
            if needs[1]:
                part = _weight_grad(xp, grad, cols[:, :, columns], groups)
                if row is None:
                    grad_w = part.reshape(weight.shape)
                else:
                    grad_w[:, :, row, :] = part.reshape(weight.shape[0], weight.shape[1], -1)
        grad_x = col2im(grad_cols, self.unfold) if needs[0] else None
        grad_b = grad.sum(axis=(0, 2)) if needs[2] else None
        return grad_x, grad_w, grad_b


def _transposed_product(xp, w_t, x, groups):
    """w_t (CKK, O) (or per group (G, CgKK, Og)) @ x[n] (O, L) -> (N, CKK, L)."""
    if groups == 1:
        return xp.matmul(w_t, x)
    out = xp.matmul(w_t, _grouped(x, groups))
    return out.reshape(out.shape[0], -1, out.shape[-1])


class ConvTranspose2d(Primitive):
    """The adjoint of Conv2d in x: y = col2im(weight^T @ x) + bias. weight is (C_in, C_out/groups, KH, KW);
    `geometry` describes the convolution that maps y back to x (its N, C, H, W are y's)."""

    def forward(self, x, weight, bias, geometry, groups):
        xp = get_array_module(x)
        self.geometry, self.groups, self.weight = geometry, groups, weight
        self.x = x.reshape(x.shape[0], x.shape[1], -1)
        w = weight.reshape(weight.shape[0], -1)
        w_t = _grouped(w, groups).transpose(0, 2, 1) if groups > 1 else w.T
        out = col2im(_transposed_product(xp, w_t, self.x, groups), geometry)
        if bias is not None:
            out += bias[:, None, None]
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        weight, groups = self.weight, self.groups
        cols = im2col(grad, self.geometry)
        grad_x = grad_w = grad_b = None
        if self.needs_input_grad[0]:
            out = _product(xp, weight.reshape(weight.shape[0], -1), cols, groups)
            grad_x = out.reshape(grad.shape[0], weight.shape[0], self.geometry[12], self.geometry[13])
        if self.needs_input_grad[1]:
            grad_w = _weight_grad(xp, self.x, cols, groups).reshape(weight.shape)
        if self.needs_input_grad[2]:
            grad_b = grad.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b
