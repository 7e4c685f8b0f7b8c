"""Convolutions over 1, 2 or 3 spatial dims, and their transposes, as a few large matrix
products (BLAS through numpy, cuBLAS through cupy) with the batch folded into the products'
column dimension.

The input is unfolded into columns (C*K, N*L): row (c, kernel offset), column (sample, output
position), K the kernel's size and L the number of output positions. Then, per group,

    forward      out (O, N*L)    = weight (O, C*K) @ cols
    input grad   cols_grad       = weight.T @ grad (O, N*L), folded back onto x (col2im)
    weight grad  weight_grad     = grad @ cols.T          (one product over the whole batch)

and (O, N*L) <-> (N, O, L) is one transposed copy each way. A 1x1 kernel without padding
needs no general unfolding: its columns are x, strided and transposed. On the CPU, depthwise
convolutions (one input channel per group) and small ones on small planes skip the columns: `_C`
computes them directly (`_direct_kernels` says which). 3x3 convolutions of stride 1 on larger planes
compute the forward, the input gradient and the weight gradient as Winograd's F(2x2, 3x3)
(`_winograd`): 16 products (16, O, C) @ (16, C, tiles) between `_C`'s transforms, 2.25 times
fewer multiplications.

A `Window` says how the kernel slides over an input: N, C, the input's spatial size, kernel,
stride, padding (before each dim; the padding after is implied by `out`), dilation and the
output's spatial size, each a tuple with one entry per spatial dim.
"""
import itertools
from collections import namedtuple

import numpy as np

from distml import kernels
from distml._backend import C, get_array_module
from distml.autograd.function import Primitive

Window = namedtuple("Window", "N C size kernel stride padding dilation out")


def _geometry(window):
    """csrc/kernels/im2col.h's 3-D geometry: missing leading spatial dims have size 1."""
    fill = 3 - len(window.size)
    spatial = [(1,) * fill + tuple(window.size), (1,) * fill + tuple(window.kernel), (1,) * fill + tuple(window.stride),
               (0,) * fill + tuple(window.padding), (1,) * fill + tuple(window.dilation),
               (1,) * fill + tuple(window.out)]
    return (window.N, window.C) + sum(spatial, ())


def _positions(window):
    return int(np.prod(window.out))


def _rows(window):
    return window.C * int(np.prod(window.kernel))


def im2col(x, window, batch_major=False):
    """Unfold x (N, C, *size) into columns (C*K, N, L), or (N, C*K, L) with batch_major (F.unfold):
    `_C` on the CPU, xp otherwise."""
    shape = (window.N, _rows(window), _positions(window)) if batch_major else \
        (_rows(window), window.N, _positions(window))
    if kernels.compiled("im2col", x) is not None:
        cols = np.empty(shape, dtype=x.dtype)
        C.im2col(np.ascontiguousarray(x), cols, _geometry(window), batch_major)
        return cols
    return _im2col_xp(x, window, batch_major).reshape(shape)


def col2im(cols, window, batch_major=False):
    """im2col's adjoint: columns summed back onto an (N, C, *size) array."""
    if kernels.compiled("col2im", cols) is not None:
        x = np.empty((window.N, window.C) + tuple(window.size), dtype=cols.dtype)
        C.col2im(np.ascontiguousarray(cols), x, _geometry(window), batch_major)
        return x
    return _col2im_xp(cols, window, batch_major)


def _offsets(window):
    """For each kernel offset: its index and the strided slices of the padded input it reads."""
    ranges = [range(k) for k in window.kernel]
    for offset in itertools.product(*ranges):
        yield offset, tuple(slice(o * d, o * d + (n - 1) * s + 1, s) for o, d, n, s in
                            zip(offset, window.dilation, window.out, window.stride))


def _padding_after(window):
    return [max(0, (n - 1) * s + (k - 1) * d + 1 - size - p) for size, k, s, p, d, n in
            zip(window.size, window.kernel, window.stride, window.padding, window.dilation, window.out)]


def _im2col_xp(x, window, batch_major):
    xp = get_array_module(x)
    pads = ((0, 0), (0, 0)) + tuple(zip(window.padding, _padding_after(window)))
    padded = xp.pad(x, pads)
    cols = xp.empty((window.N, window.C) + tuple(window.kernel) + tuple(window.out), dtype=x.dtype)
    for offset, slices in _offsets(window):
        cols[(slice(None), slice(None)) + offset] = padded[(slice(None), slice(None)) + slices]
    cols = cols.reshape(window.N, _rows(window), _positions(window))
    return cols if batch_major else xp.ascontiguousarray(cols.transpose(1, 0, 2))


def _col2im_xp(cols, window, batch_major):
    xp = get_array_module(cols)
    after = _padding_after(window)
    padded = xp.zeros((window.N, window.C) + tuple(p + n + a for p, n, a in zip(window.padding, window.size, after)),
                      dtype=cols.dtype)
    if not batch_major:
        cols = cols.reshape(_rows(window), window.N, -1).transpose(1, 0, 2)
    cols = cols.reshape((window.N, window.C) + tuple(window.kernel) + tuple(window.out))
    for offset, slices in _offsets(window):
        padded[(slice(None), slice(None)) + slices] += cols[(slice(None), slice(None)) + offset]
    inside = tuple(slice(p, p + n) for p, n in zip(window.padding, window.size))
    return xp.ascontiguousarray(padded[(slice(None), slice(None)) + inside])


def _pointwise(window):
    return all(k == 1 for k in window.kernel) and not any(window.padding)


def _columns(x, window):
    """The (C*K, N*L) columns of x; for a 1x1 kernel without padding, x strided and transposed."""
    xp = get_array_module(x)
    if _pointwise(window):
        strided = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in window.stride)]
        return xp.ascontiguousarray(xp.swapaxes(strided, 0, 1)).reshape(window.C, -1)
    return im2col(x, window).reshape(_rows(window), -1)


def _fold(cols, window):
    """_columns' adjoint: (C*K, N*L) columns summed back onto an (N, C, *size) array."""
    xp = get_array_module(cols)
    if _pointwise(window):
        cols = xp.swapaxes(cols.reshape((window.C, window.N) + tuple(window.out)), 0, 1)
        if all(s == 1 for s in window.stride):
            return xp.ascontiguousarray(cols)
        x = xp.zeros((window.N, window.C) + tuple(window.size), dtype=cols.dtype)
        x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in window.stride)] = cols
        return x
    return col2im(cols, window)


def _grouped(a, groups):
    """(G*m, k) -> (G, m, k): the operand of one product per group."""
    return a.reshape(groups, a.shape[0] // groups, a.shape[1])


def _matmul(a, b):
    """a (G, m, k) @ b (G, k, n); with k = 1 (a depthwise input gradient) an outer product,
    which BLAS does poorly."""
    xp = get_array_module(a)
    return a * b if a.shape[-1] == 1 else xp.matmul(a, b)


def _channels_first(a):
    """(N, C, *spatial) -> (C, N*L), one transposed copy."""
    xp = get_array_module(a)
    N, C_ = a.shape[:2]
    a = a.reshape(N, C_, int(np.prod(a.shape[2:])))
    return xp.ascontiguousarray(xp.swapaxes(a, 0, 1)).reshape(C_, -1)


def _batch_first(a, N, spatial, bias=None):
    """(C, N*L) -> (N, C, *spatial) (+ bias per channel), one transposed copy."""
    xp = get_array_module(a)
    view = xp.swapaxes(a.reshape(a.shape[0], N, int(np.prod(spatial))), 0, 1)
    out = xp.empty(view.shape, dtype=a.dtype)
    if bias is None:
        out[...] = view
    else:
        xp.add(view, bias[:, None], out=out)
    return out.reshape((N, a.shape[0]) + tuple(spatial))


def _direct_kernels(x, weight, window, groups):
    """`_C`'s kernels that compute this convolution directly on the CPU, as ((forward, input grad,
    weight grad), their arguments after the geometry), or None for the matrix products. Depthwise
    convolutions (one input channel per group) always: columns would be K times x for a product
    per group too small to pay. Others where the products are small and the columns many times
    x: stride 1, at most 28 x 28 output positions and 2**16 weights per group; beyond those,
    BLAS on the columns was faster (benchmarks/conv_vs_torch.py)."""
    if _pointwise(window) or kernels.compiled("conv_direct", x, kernels.FLOATS) is None:
        return None
    out_channels = weight.shape[0]
    if groups > 1 and weight.shape[1] == 1:
        return _DEPTHWISE, (out_channels // groups,)
    if (all(s == 1 for s in window.stride) and 0 < _positions(window) <= 28 * 28 and window.N > 0
            and weight.size // groups <= 2 ** 16):
        return _DIRECT, (out_channels, groups)
    return None


def _winograd(x, weight, window, groups):
    """Whether Winograd's F(2x2, 3x3) computes this convolution and its gradients on the CPU: 3x3
    kernels of stride 1, no dilation, no groups, 2-D, the same padding before and after each dim
    (at most 2), and planes of at least 14 x 14 outputs with 16 channels or more in and out; on
    smaller ones the transforms cost more than the products save (benchmarks/conv_vs_torch.py).
    `_direct_kernels` is asked first: the small convolutions it takes stay with it."""
    if (kernels.compiled("winograd_input_tiles", x, kernels.FLOATS) is None or len(window.kernel) != 2
            or groups != 1 or window.kernel != (3, 3) or window.stride != (1, 1) or window.dilation != (1, 1)):
        return False
    pad = window.padding[0]
    return (window.padding == (pad, pad) and pad <= 2 and window.N > 0
            and all(o == n + 2 * pad - 2 for o, n in zip(window.out, window.size))
            and window.out[0] * window.out[1] >= 14 * 14 and window.C >= 16 and weight.shape[0] >= 16)


# Winograd's G (4, 3): a kernel g becomes G g G^T, which for the kernel's 9 entries in row-major
# order is kron(G, G) (16, 9) times them.
_WINOGRAD_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
_WINOGRAD_KERNEL_TRANSFORM = np.kron(_WINOGRAD_G, _WINOGRAD_G)


def _winograd_kernels(weight):
    """The kernels of weight (O, C, 3, 3) transformed, G g G^T: (16, O, C)."""
    O, C_ = weight.shape[:2]
    transform = _WINOGRAD_KERNEL_TRANSFORM.astype(weight.dtype)
    return (transform @ weight.reshape(O * C_, 9).T).reshape(16, O, C_)


def _winograd_tiles(x, pad, out_size):
    """The transformed 4x4 tiles of x (N, C, H, W), padded by `pad`, for out_size outputs: (16, C, tiles)."""
    N, C_, H, W = x.shape
    tiles = np.empty((16, C_, N * ((out_size[0] + 1) // 2) * ((out_size[1] + 1) // 2)), dtype=x.dtype)
    C.winograd_input_tiles(np.ascontiguousarray(x), tiles, N, C_, H, W, pad, *out_size)
    return tiles


def _winograd_conv(x, weight, pad, out_size, adjoint=False):
    """x (N, C, H, W) convolved by weight (O, C, 3, 3), padded by `pad`, into (N, O, *out_size)
    through F(2x2, 3x3); `adjoint`: by the input gradient's kernels (each turned 180 degrees, the
    channels swapped), x then (N, O, H, W) and the result (N, C, *out_size)."""
    if adjoint:
        kernel_tiles = _winograd_kernels(weight[:, :, ::-1, ::-1]).transpose(0, 2, 1)
    else:
        kernel_tiles = _winograd_kernels(weight)
    N, O = x.shape[0], kernel_tiles.shape[1]
    out = np.empty((N, O) + tuple(out_size), dtype=x.dtype)
    C.winograd_output_tiles(np.matmul(kernel_tiles, _winograd_tiles(x, pad, out_size)), out, N, O, *out_size)
    return out


def _winograd_weight_grad(grad, x, weight_shape, pad):
    """grad_w (O, C, 3, 3) of _winograd_conv: the output transform's adjoint applied to grad, paired
    with x's tiles in 16 products over the tiles, then the kernels' transform's adjoint."""
    N, O, OH, OW = grad.shape
    grad_products = np.empty((16, O, N * ((OH + 1) // 2) * ((OW + 1) // 2)), dtype=grad.dtype)
    C.winograd_output_tiles_grad(grad, grad_products, N, O, OH, OW)
    grad_kernels = np.matmul(grad_products, _winograd_tiles(x, pad, (OH, OW)).transpose(0, 2, 1))
    transform = _WINOGRAD_KERNEL_TRANSFORM.astype(grad.dtype)
    return (transform.T @ grad_kernels.reshape(16, -1)).T.reshape(weight_shape)


_DEPTHWISE = (C.depthwise_conv, C.depthwise_conv_input_grad, C.depthwise_conv_weight_grad)
_DIRECT = (C.conv_direct, C.conv_direct_input_grad, C.conv_direct_weight_grad)


class Conv(Primitive):
    """y = conv(x, weight) + bias over 1-3 spatial dims: x (N, C, *size), weight (O, C / groups,
    *kernel), `window` the Window over x: `Conv.apply(x, w, b, window=window, groups=1)`."""

    def forward(self, x, weight, bias, window, groups):
        self.window, self.groups, self.weight = window, groups, weight
        self.direct = _direct_kernels(x, weight, window, groups)
        if self.direct is not None:
            (forward, _, _), args = self.direct
            self.x, self.weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
            out = np.empty((window.N, weight.shape[0]) + tuple(window.out), dtype=x.dtype)
            forward(self.x, self.weight, out, _geometry(window), *args)
            if bias is not None:
                out += bias.reshape((-1,) + (1,) * len(window.out))
            return out
        # x, not its columns, is what backward keeps (the columns of a k x k kernel are k*k times
        # x's size): the weight gradient unfolds x again, as PyTorch's CPU convolutions do.
        self.x = x
        self.winograd = _winograd(x, weight, window, groups)
        if self.winograd:
            out = _winograd_conv(x, weight, window.padding[0], window.out)
            if bias is not None:
                out += bias.reshape(-1, 1, 1)
            return out
        cols = _grouped(_columns(x, window), groups)
        out = _matmul(_grouped(weight.reshape(weight.shape[0], -1), groups), cols)
        return _batch_first(out.reshape(weight.shape[0], -1), window.N, window.out, bias)

    def backward(self, grad):
        if self.direct is not None:
            return self._direct_backward(np.ascontiguousarray(grad))
        if self.winograd:
            return self._winograd_backward(np.ascontiguousarray(grad))
        weight, groups, needs, window = self.weight, self.groups, self.needs_input_grad, self.window
        grad = _grouped(_channels_first(grad), groups)
        grad_x = grad_w = grad_b = None
        if needs[0]:
            w = _grouped(weight.reshape(weight.shape[0], -1), groups)
            grad_x = _fold(_matmul(w.transpose(0, 2, 1), grad).reshape(_rows(window), -1), window)
        if needs[1]:
            cols = _grouped(_columns(self.x, window), groups)
            grad_w = _matmul(grad, cols.transpose(0, 2, 1)).reshape(weight.shape)
        if needs[2]:
            grad_b = grad.sum(axis=2).reshape(-1)
        return grad_x, grad_w, grad_b

    def _direct_backward(self, grad):
        (_, input_grad, weight_grad), args = self.direct
        geometry, needs = _geometry(self.window), self.needs_input_grad
        grad_x = grad_w = grad_b = None
        if needs[0]:
            grad_x = np.empty(self.x.shape, dtype=grad.dtype)
            input_grad(grad, self.weight, grad_x, geometry, *args)
        if needs[1]:
            grad_w = np.empty(self.weight.shape, dtype=grad.dtype)
            weight_grad(grad, self.x, grad_w, geometry, *args)
        if needs[2]:
            grad_b = grad.sum(axis=(0,) + tuple(range(2, grad.ndim)))
        return grad_x, grad_w, grad_b

    def _winograd_backward(self, grad):
        window, needs, pad = self.window, self.needs_input_grad, self.window.padding[0]
        grad_x = grad_w = grad_b = None
        if needs[0]:
            grad_x = _winograd_conv(grad, self.weight, 2 - pad, window.size, adjoint=True)
        if needs[1]:
            grad_w = _winograd_weight_grad(grad, self.x, self.weight.shape, pad)
        if needs[2]:
            grad_b = grad.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b


class ConvTranspose(Primitive):
    """The adjoint of Conv in x: y = fold(weight^T @ x) + bias. weight is (C_in, C_out / groups,
    *kernel); `window` is the Window of the convolution that maps y back to x (its N, C and
    size are y's, its out is x's spatial size)."""

    def forward(self, x, weight, bias, window, groups):
        self.window, self.groups, self.weight, self.x = window, groups, weight, x
        w = _grouped(weight.reshape(weight.shape[0], -1), groups)
        out = _fold(_matmul(w.transpose(0, 2, 1), _grouped(_channels_first(x), groups)).reshape(_rows(window), -1),
                    window)
        if bias is not None:
            out += bias.reshape((-1,) + (1,) * len(window.size))
        return out

    def backward(self, grad):
        weight, groups, needs = self.weight, self.groups, self.needs_input_grad
        cols = _grouped(_columns(grad, self.window), groups) if needs[0] or needs[1] else None
        grad_x = grad_w = grad_b = None
        if needs[0]:
            out = _matmul(_grouped(weight.reshape(weight.shape[0], -1), groups), cols)
            grad_x = _batch_first(out.reshape(weight.shape[0], -1), self.window.N, self.window.out)
        if needs[1]:
            grad_w = _matmul(_grouped(_channels_first(self.x), groups), cols.transpose(0, 2, 1)).reshape(weight.shape)
        if needs[2]:
            grad_b = grad.sum(axis=(0,) + tuple(range(2, grad.ndim)))
        return grad_x, grad_w, grad_b


class Unfold(Primitive):
    """F.unfold: x (N, C, *size) -> sliding blocks (N, C*K, L); its gradient folds them back."""
    saves_inputs = False

    def forward(self, x, window):
        self.window = window
        return im2col(x, window, batch_major=True)

    def backward(self, grad):
        return col2im(grad, self.window, batch_major=True)


class Fold(Primitive):
    """F.fold: blocks (N, C*K, L) summed into (N, C, *size); the adjoint of Unfold."""
    saves_inputs = False

    def forward(self, cols, window):
        self.window = window
        return col2im(cols, window, batch_major=True)

    def backward(self, grad):
        return im2col(grad, self.window, batch_major=True)
