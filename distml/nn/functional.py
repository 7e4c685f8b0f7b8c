"""nn.functional: the stateless forms of the layers, activations and losses, with PyTorch's
signatures and argument checks. Each calls one primitive from distml/ops or composes ops.

    import distml.nn.functional as F
    loss = F.cross_entropy(F.linear(x, w, b), target)
"""
import math

import numpy as np

from distml import dtypes, ops
from distml._backend import get_array_module
from distml.amp.autocast_mode import autocast_op, float32_kernel
from distml.autograd.grad_mode import is_grad_enabled, no_grad
from distml.creation import ones_like
from distml.ops import activation as _act
from distml.ops import conv as _conv
from distml.ops import linear as _linear
from distml.ops import loss as _loss
from distml.ops import pool as _pool
from distml.ops.norm import Normalize
from distml.tensor import Tensor


def _tuple(value, n, name="value"):
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} values to match the "
                           f"convolution dimensions, but got {name}={list(value)}")
    return value


# ---- linear, embedding, dropout ----

@autocast_op("lower")
def linear(input, weight, bias=None):
    """input @ weight.T + bias: `F.linear(x, w, b)`."""
    x_shape, w_shape = input.array.shape, weight.array.shape
    if not x_shape or x_shape[-1] != w_shape[-1]:
        rows = int(np.prod(x_shape[:-1])) if len(x_shape) > 1 else 1
        cols = x_shape[-1] if x_shape else 0
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{cols} and {w_shape[-1]}x{w_shape[0]})")
    if input.array.dtype != weight.array.dtype:
        raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {_type_name(input)} and "
                           f"{_type_name(weight)}")
    if input.array.dtype == dtypes.bfloat16.np:  # NumPy multiplies bfloat16 in float32 and returns float32
        return linear(input.float(), weight.float(), None if bias is None else bias.float()).to(dtypes.bfloat16)
    return _linear.Linear.apply(input, weight, bias)


def _type_name(t):
    return {"float16": "Half", "float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int",
            "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}[t.array.dtype.name]


def embedding(input, weight, padding_idx=None):
    """Rows of `weight` picked by the integer tensor `input`; row `padding_idx` gets no gradient."""
    if input.array.dtype.kind not in "iu":
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got distml.{_type_name(input)}Tensor instead (while checking arguments "
                           "for embedding)")
    rows = weight.array.shape[0]
    if input.array.size and (int(input.array.min()) < 0 or int(input.array.max()) >= rows):
        raise IndexError("index out of range in self")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += rows
    return _linear.Embedding.apply(weight, input, padding_idx=padding_idx)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (training only)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    from distml.random import rand
    keep = rand(*input.array.shape, dtype=input.dtype, device=input.device).array >= p
    mask = Tensor((keep / (1.0 - p)).astype(input.array.dtype) if p < 1.0 else keep.astype(input.array.dtype))
    return input.mul_(mask) if inplace else input * mask


# ---- padding ----

_PAD_SUPPORT = ("Supported combinations for non-constant padding:\n"
                "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
                "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
                "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")


def pad(input, pad, mode="constant", value=None):
    """Pad (or, with negative sizes, crop) the last len(pad) // 2 dims; pad lists (before, after)
    pairs from the last dim backwards: `F.pad(x, (1, 1, 2, 0), mode="reflect")`. Modes:
    constant (`value`, any number of dims), reflect, replicate and circular (1 to 3 dims)."""
    pad = [int(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    n, ndim, shape = len(pad) // 2, input.array.ndim, input.array.shape
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode == "constant" and n > ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {ndim}")
    if mode != "constant":
        if value is not None and value != 0:
            raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
        if not (1 <= n <= 3 and ndim in (n + 1, n + 2)):
            raise NotImplementedError(f"Padding size {len(pad)} is not supported for {ndim}D input tensor.\n"
                                      + _PAD_SUPPORT)
    xp = get_array_module(input.array)
    sizes = [(ndim - 1 - i, pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    for i, (d, before, after) in enumerate(sizes):
        if shape[d] - max(-before, 0) - max(-after, 0) < 0:  # negative sizes crop before anything is added
            raise RuntimeError("narrow(): length must be non-negative.")
        if mode == "reflect" and (before >= shape[d] or after >= shape[d]):
            raise RuntimeError(f"Argument #{4 + 2 * i}: Padding size should be less than the corresponding input "
                               f"dimension, but got: padding ({before}, {after}) at dimension {d} of input "
                               f"{list(shape)}")
        if mode == "circular" and (before > shape[d] or after > shape[d]):
            raise RuntimeError("Padding value causes wrapping around more than once.")
    if mode == "constant":
        crop, place, out_shape = [slice(None)] * ndim, [slice(None)] * ndim, list(shape)
        for d, before, after in sizes:  # negative sizes crop first
            crop[d] = slice(max(-before, 0), shape[d] - max(-after, 0))
            out_shape[d] = shape[d] + before + after
        kept = input[tuple(crop)] if min(pad, default=0) < 0 else input
        for d, before, after in sizes:
            place[d] = slice(max(before, 0), max(before, 0) + kept.array.shape[d])
        base = Tensor(xp.full(out_shape, 0 if value is None else value, dtype=input.array.dtype))
        return ops.index.IndexPut.apply(base, kept, index=tuple(place))
    out = input
    for d, before, after in sizes:
        source = xp.arange(-before, shape[d] + after)  # the input position each output position reads
        if mode == "reflect":
            source = xp.abs(source)
            source = xp.where(source >= shape[d], 2 * (shape[d] - 1) - source, source)
        elif mode == "replicate":
            source = xp.clip(source, 0, shape[d] - 1)
        else:
            source = source % shape[d]
        out = ops.index.GetItem.apply(out, index=(slice(None),) * d + (source,))
    return out


# ---- convolution ----

def _conv_arguments(nd, stride, padding, dilation):
    """stride, padding (a tuple or 'same' / 'valid') and dilation as nd-tuples, checked as PyTorch does."""
    stride, dilation = _tuple(stride, nd, "stride"), _tuple(dilation, nd, "dilation")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        if padding == "same" and any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
    else:
        padding = _tuple(padding, nd, "padding")
        if any(p < 0 for p in padding):
            raise RuntimeError("negative padding is not supported")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError("non-positive dilation is not supported")
    return stride, padding, dilation


def _check_conv(name, nd, input, weight, bias, groups, transposed):
    """PyTorch's shape, groups and dtype checks of a convolution's operands."""
    if input.array.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {name}, but got input "
                           f"of size: {list(input.array.shape)}")
    w_shape = list(weight.array.shape)
    if weight.array.ndim != nd + 2:
        raise RuntimeError("weight should have at least three dimensions" if weight.array.ndim < 3 else
                           f"expected stride to be a single integer value or a list of {weight.array.ndim - 2} "
                           f"values to match the convolution dimensions, but got stride={[1] * nd}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if w_shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                           f"got weight of size [{w_shape}] instead")
    shape = list(input.array.shape) if input.array.ndim == nd + 2 else [1] + list(input.array.shape)
    expected = w_shape[0] if transposed else w_shape[1] * groups
    if shape[1] != expected:
        given = "transposed=1" if transposed else f"groups={groups}"
        raise RuntimeError(f"Given {given}, weight of size {w_shape}, expected input{shape} to have {expected} "
                           f"channels, but got {shape[1]} channels instead")
    out_channels = w_shape[1] * groups if transposed else w_shape[0]
    if bias is not None and (bias.array.ndim != 1 or bias.array.shape[0] != out_channels):
        given = "transposed=1, " if transposed else ""
        raise RuntimeError(f"Given {given}weight of size {w_shape}, expected bias to be 1-dimensional with "
                           f"{out_channels} elements, but got bias of size {list(bias.array.shape)} instead")
    if input.array.dtype != weight.array.dtype or (bias is not None and bias.array.dtype != input.array.dtype):
        other = weight if input.array.dtype != weight.array.dtype else bias
        raise RuntimeError(f"Input type ({_type_name(input)}) and {'weight' if other is weight else 'bias'} type "
                           f"({_type_name(other)}) should be the same")


def _conv_nd(name, nd, input, weight, bias, stride, padding, dilation, groups):
    """A convolution over the last nd dims of input (N, C, *size) or (C, *size)."""
    _check_conv(name, nd, input, weight, bias, groups, transposed=False)
    stride, padding, dilation = _conv_arguments(nd, stride, padding, dilation)
    kernel = weight.array.shape[2:]
    if isinstance(padding, str):  # 'same' pads the odd extra at the end, as PyTorch does
        totals = [d * (k - 1) if padding == "same" else 0 for k, d in zip(kernel, dilation)]
        before, after = [t // 2 for t in totals], [t - t // 2 for t in totals]
    else:
        before = after = padding
    unbatched = input.array.ndim == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    size = x.array.shape[2:]
    out = [(n + b + a - d * (k - 1) - 1) // s + 1
           for n, b, a, k, s, d in zip(size, before, after, kernel, stride, dilation)]
    if min(out) <= 0:
        padded = " x ".join(str(n + b + a) for n, b, a in zip(size, before, after))
        extent = " x ".join(str(d * (k - 1) + 1) for k, d in zip(kernel, dilation))
        raise RuntimeError(f"Calculated padded input size per channel: ({padded}). Kernel size: ({extent}). "
                           "Kernel size can't be greater than actual input size")
    window = _conv.Window(x.array.shape[0], x.array.shape[1], size, kernel, stride, tuple(before), dilation,
                          tuple(out))
    out = _conv.Conv.apply(x, weight, bias, window=window, groups=groups)
    return out.squeeze(0) if unbatched else out


@autocast_op("lower")
@float32_kernel
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution of (N, C, L) by weight (O, C / groups, K); padding int, 'valid' or 'same':
    `F.conv1d(x, w, b, stride=2)`."""
    return _conv_nd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


@autocast_op("lower")
@float32_kernel
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of (N, C, H, W) by weight (O, C / groups, KH, KW): `F.conv2d(x, w, b, padding=1)`."""
    return _conv_nd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


@autocast_op("lower")
@float32_kernel
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution of (N, C, D, H, W) by weight (O, C / groups, KD, KH, KW): `F.conv3d(x, w, padding='same')`."""
    return _conv_nd("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose_nd(name, nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    """The transpose (the gradient in x) of a convolution over the last nd dims."""
    _check_conv(name, nd, input, weight, bias, groups, transposed=True)
    if isinstance(padding, str):
        raise TypeError(f"{name}(): argument 'padding' must be tuple of ints, not str")
    stride, padding, dilation = _conv_arguments(nd, stride, padding, dilation)
    output_padding = _tuple(output_padding, nd, "output_padding")
    if any(op >= max(s, d) or op < 0 for op, s, d in zip(output_padding, stride, dilation)):
        raise RuntimeError("output padding must be smaller than either stride or dilation, but got output_padding="
                           f"{list(output_padding)}, stride={list(stride)}, dilation={list(dilation)}")
    unbatched = input.array.ndim == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    size, kernel = x.array.shape[2:], weight.array.shape[2:]
    out = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1
           for n, s, p, d, k, op in zip(size, stride, padding, dilation, kernel, output_padding)]
    if min(out) <= 0:
        raise RuntimeError(f"Given input size per channel: ({' x '.join(map(str, size))}). Calculated output size "
                           f"per channel: ({' x '.join(map(str, out))}). Output size is too small")
    window = _conv.Window(x.array.shape[0], weight.array.shape[1] * groups, tuple(out), kernel, stride, padding,
                          dilation, tuple(size))
    out = _conv.ConvTranspose.apply(x, weight, bias, window=window, groups=groups)
    return out.squeeze(0) if unbatched else out


@autocast_op("lower")
@float32_kernel
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transpose of conv1d, weight (C_in, C_out / groups, K): `F.conv_transpose1d(x, w, stride=2)`."""
    return _conv_transpose_nd("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


@autocast_op("lower")
@float32_kernel
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transpose of conv2d, weight (C_in, C_out / groups, KH, KW): `F.conv_transpose2d(x, w, stride=2)`."""
    return _conv_transpose_nd("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


@autocast_op("lower")
@float32_kernel
def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transpose of conv3d, weight (C_in, C_out / groups, KD, KH, KW): `F.conv_transpose3d(x, w, stride=2)`."""
    return _conv_transpose_nd("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


def _block_arguments(kernel_size, dilation, padding, stride):
    """F.unfold / F.fold's 2-tuples, checked as PyTorch does."""
    values = {}
    for name, value in (("kernel_size", kernel_size), ("dilation", dilation), ("padding", padding),
                        ("stride", stride)):
        value = (int(value),) * 2 if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
        if len(value) != 2:
            raise RuntimeError(f"It is expected {name} equals to 2, but got size {len(value)}")
        values[name] = value
    for name, label, least in (("kernel_size", "kernel", 1), ("stride", "stride", 1), ("padding", "pad", 0),
                               ("dilation", "dilation", 1)):
        h, w = values[name]
        if min(h, w) < least:
            what = "non-negative" if least == 0 else "greater than zero"
            noun = "kernel size" if name == "kernel_size" else name
            raise RuntimeError(f"{noun} should be {what}, but got {label}_height: {h} {label}_width: {w}")
    return values["kernel_size"], values["dilation"], values["padding"], values["stride"]


def _blocks(size, kernel, dilation, padding, stride):
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, k, d, p, s in zip(size, kernel, dilation, padding, stride))


@float32_kernel
def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding blocks of (N, C, H, W) as columns (N, C*KH*KW, L) (im2col): `F.unfold(x, 3, padding=1)`."""
    if input.array.ndim not in (3, 4) or 0 in input.array.shape[-3:]:
        raise RuntimeError("Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero "
                           f"dimensions for input, but got: {list(input.array.shape)}")
    kernel, dilation, padding, stride = _block_arguments(kernel_size, dilation, padding, stride)
    unbatched = input.array.ndim == 3
    x = input.unsqueeze(0) if unbatched else input
    size = x.array.shape[2:]
    blocks = _blocks(size, kernel, dilation, padding, stride)
    if min(blocks) < 1:
        raise RuntimeError(f"Given input with spatial size {tuple(size)}, kernel_size={kernel}, dilation={dilation}, "
                           f"padding={padding}, calculated shape of the array of sliding blocks as {blocks}, but its "
                           "components must be at least one.")
    window = _conv.Window(x.array.shape[0], x.array.shape[1], size, kernel, stride, padding, dilation, blocks)
    out = _conv.Unfold.apply(x, window=window)
    return out.squeeze(0) if unbatched else out


@float32_kernel
def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum columns (N, C*KH*KW, L) into (N, C, *output_size), unfold's adjoint (col2im):
    `F.fold(cols, (4, 5), 2)`."""
    if input.array.ndim not in (2, 3) or 0 in input.array.shape[-2:]:
        raise RuntimeError("Expected 2D or 3D (batch mode) tensor for input with possibly 0 batch size and non-zero "
                           f"dimensions for input, but got: {list(input.array.shape)}")
    size = (int(output_size),) * 2 if isinstance(output_size, (int, np.integer)) else tuple(int(v) for v in output_size)
    if len(size) != 2:
        raise RuntimeError(f"It is expected output_size equals to 2, but got size {len(size)}")
    kernel, dilation, padding, stride = _block_arguments(kernel_size, dilation, padding, stride)
    unbatched = input.array.ndim == 2
    cols = input.unsqueeze(0) if unbatched else input
    N, rows, L = cols.array.shape
    if rows % (kernel[0] * kernel[1]):
        raise RuntimeError("Expected size of input's dimension 1 to be divisible by the product of kernel_size, but "
                           f"got input.size(1)={rows} and kernel_size={kernel}.")
    blocks = _blocks(size, kernel, dilation, padding, stride)
    if min(blocks) < 1 or blocks[0] * blocks[1] != L:
        raise RuntimeError(f"Given output_size={size}, kernel_size={kernel}, dilation={dilation}, padding={padding}, "
                           f"stride={stride}, expected size of input's dimension 2 to match the calculated number of "
                           f"sliding blocks {blocks[0]} * {blocks[1]} = {blocks[0] * blocks[1]}, but got "
                           f"input.size(2)={L}.")
    window = _conv.Window(N, rows // (kernel[0] * kernel[1]), size, kernel, stride, padding, dilation, blocks)
    out = _conv.Fold.apply(cols, window=window)
    return out.squeeze(0) if unbatched else out


# ---- pooling ----

def _pool_size(size, k, s, p, d, ceil_mode):
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_geometry(input, kernel_size, stride, padding, dilation, ceil_mode):
    k = _tuple(kernel_size, 2, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _tuple(stride, 2, "stride")
    p, d = _tuple(padding, 2, "padding"), _tuple(dilation, 2, "dilation")
    N, C, H, W = input.array.shape
    OH, OW = _pool_size(H, k[0], s[0], p[0], d[0], ceil_mode), _pool_size(W, k[1], s[1], p[1], d[1], ceil_mode)
    if OH < 1 or OW < 1:
        raise RuntimeError(f"Given input size: ({C}x{H}x{W}). Calculated output size: ({C}x{OH}x{OW}). "
                           "Output size is too small")
    return (N, C, H, W, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], OH, OW)


def _batched_planes(name, input):
    if input.array.ndim not in (3, 4):
        raise RuntimeError(f"{name}: Expected 3D or 4D (batch mode) tensor for input, but got: "
                           f"{list(input.array.shape)}")
    return (input.unsqueeze(0), True) if input.array.ndim == 3 else (input, False)


@float32_kernel
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Window maxima over (N, C, H, W); with return_indices also each maximum's flat H*W index."""
    x, unbatched = _batched_planes("max_pool2d", input)
    geometry = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    k, p, d = geometry[4:6], geometry[8:10], geometry[10:12]
    if any(pad > (dil * (kern - 1) + 1) // 2 for pad, kern, dil in zip(p, k, d)):
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p[0]}, "
                           f"kernel_size={k[0]} and dilation={d[0]}")
    out, indices = _pool.MaxPool2d.apply(x, geometry=geometry)
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out


@float32_kernel
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Window averages over (N, C, H, W), PyTorch's divisor rules."""
    x, unbatched = _batched_planes("avg_pool2d", input)
    geometry = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    k, p = geometry[4:6], geometry[8:10]
    if any(pad > kern // 2 for pad, kern in zip(p, k)):
        raise RuntimeError(f"pad should be at most half of kernel size, but got pad={p[0]} and kernel_size={k[0]}")
    out = _pool.AvgPool2d.apply(x, geometry=geometry, count_include_pad=count_include_pad)
    return out.squeeze(0) if unbatched else out


@float32_kernel
def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size (None keeps that input dim): `F.adaptive_avg_pool2d(x, 1)`."""
    if input.array.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {list(input.array.shape)}")
    sizes = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    sizes = tuple(input.array.shape[-2 + i] if s is None else int(s) for i, s in enumerate(sizes))
    return _pool.AdaptiveAvgPool2d.apply(input, output_size=sizes)


# ---- normalisation ----

def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalise each channel (dim 1) with the batch statistics (training; the running ones
    are updated in place) or with the running statistics (eval)."""
    axes = (0,) + tuple(range(2, input.array.ndim))
    shape = [1] * input.array.ndim
    shape[1] = input.array.shape[1]
    if training:
        count = input.array.size // input.array.shape[1]
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
        mean = input.array.mean(axis=axes, keepdims=True)
        var = input.array.var(axis=axes, keepdims=True)
        if running_mean is not None:
            with no_grad():
                running_mean.array[...] = (1 - momentum) * running_mean.array + momentum * mean.reshape(-1)
                running_mean._version[0] += 1
        if running_var is not None:
            with no_grad():
                unbiased = var.reshape(-1) * (count / (count - 1))
                running_var.array[...] = (1 - momentum) * running_var.array + momentum * unbiased
                running_var._version[0] += 1
        out = Normalize.apply(input, axes=axes, eps=eps, mean=mean, var=var)
    else:
        xp = get_array_module(input.array)
        scale = (1 / xp.sqrt(running_var.array.reshape(shape) + eps)).astype(input.array.dtype, copy=False)
        out = (input - Tensor(running_mean.array.reshape(shape))) * Tensor(scale)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing `normalized_shape` dims, then scale and shift elementwise."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    n = len(normalized_shape)
    if input.array.shape[input.array.ndim - n:] != normalized_shape or input.array.ndim < n:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, normalized_shape))}], but got input of size"
                           f"{list(input.array.shape)}")
    params = [p for p in (weight, bias) if p is not None]
    if any(p.dtype != input.dtype for p in params):
        if input.dtype in (dtypes.float16, dtypes.bfloat16) and all(p.dtype == dtypes.float32 for p in params):
            # PyTorch's CPU "mixed type": half-precision input, float32 parameters, computed in float32
            return layer_norm(input.float(), normalized_shape, weight, bias, eps).to(input.dtype)
        raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of Float"
                           if input.dtype == dtypes.float32 else "mixed dtype (CPU): all inputs must share same datatype.")
    out = Normalize.apply(input, axes=tuple(range(input.array.ndim - n, input.array.ndim)), eps=eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each group of channels of each sample, then scale and shift per channel."""
    N, C = input.array.shape[:2]
    if C % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(input.array.shape)} and num_groups={num_groups}")
    grouped = input.reshape(N, num_groups, -1)
    out = Normalize.apply(grouped, axes=(2,), eps=eps).reshape(input.array.shape)
    shape = [1] * input.array.ndim
    shape[1] = C
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


# ---- activations ----

def _maybe_inplace(activation, input, inplace, **params):
    """activation(input), written into input when inplace (backward then reads the values from before)."""
    if not inplace:
        return activation(input, **params)
    return input._inplace(activation(input._inplace_input(), **params))


def relu(input, inplace=False):
    return _maybe_inplace(ops.relu, input, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _maybe_inplace(_act.LeakyRelu.apply, input, inplace, negative_slope=negative_slope)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _maybe_inplace(_act.Hardtanh.apply, input, inplace, min_val=min_val, max_val=max_val)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def elu(input, alpha=1.0, inplace=False):
    return _maybe_inplace(_act.Elu.apply, input, inplace, alpha=alpha)


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    if input.array.dtype == dtypes.bfloat16.np:  # computed in float32 and rounded, as PyTorch's (no bfloat16 kernel)
        return gelu(input.float(), approximate).to(dtypes.bfloat16)
    return _act.Gelu.apply(input, approximate=approximate)


def silu(input, inplace=False):
    return _maybe_inplace(_act.Silu.apply, input, inplace)


def softplus(input, beta=1.0, threshold=20.0):
    return _act.Softplus.apply(input, beta=beta, threshold=threshold)


def sigmoid(input):
    return ops.sigmoid(input)


def tanh(input):
    return ops.tanh(input)


def _softmax_dim(ndim):
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, dtype=None):
    return ops.softmax(input, _softmax_dim(input.array.ndim) if dim is None else dim, dtype=dtype)


def log_softmax(input, dim=None, dtype=None):
    return ops.log_softmax(input, _softmax_dim(input.array.ndim) if dim is None else dim, dtype=dtype)


# ---- losses ----

def _check_reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _reduce(loss, reduction):
    _check_reduction(reduction)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


@autocast_op("float32")
def mse_loss(input, target, reduction="mean"):
    return _reduce((input - target).square(), reduction)


@autocast_op("float32")
def l1_loss(input, target, reduction="mean"):
    return _reduce((input - target).abs(), reduction)


@autocast_op("float32")
def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (d = input - target)."""
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:
        return l1_loss(input, target, reduction)
    d = (input - target).abs()
    return _reduce(ops.where(d < beta, d.square() * (0.5 / beta), d - 0.5 * beta), reduction)


@autocast_op("float32")
def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere."""
    d = (input - target).abs()
    return _reduce(ops.where(d < delta, d.square() * 0.5, (d - 0.5 * delta) * delta), reduction)


def _class_target_layout(input, target):
    """(input, target) with a batch dim, checked: input (N, C, *), target (N, *) of int64."""
    if input.array.ndim == 1:
        if target.array.ndim != 0:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        input, target = input.reshape(1, -1), target.reshape(1)
    if input.array.ndim < 2:
        raise ValueError(f"Expected 2 or more dimensions (got {input.array.ndim})")
    if target.array.dtype not in (np.int64, np.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {_type_name(target)}")
    if input.array.shape[0] != target.array.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.array.shape[0]}) to match target batch_size "
                         f"({target.array.shape[0]}).")
    if input.array.shape[2:] != target.array.shape[1:]:
        raise RuntimeError(f"Expected target size {[input.array.shape[0]] + list(input.array.shape[2:])}, got "
                           f"{list(target.array.shape)}" if input.array.ndim != 2 else
                           "0D or 1D target tensor expected, multi-target not supported")
    return input, target


def _check_class_weight(weight, input):
    if weight is not None and (weight.array.ndim != 1 or weight.array.shape[0] != input.array.shape[1]):
        raise RuntimeError(f"weight tensor should be defined either for all {input.array.shape[1]} classes or no "
                           f"classes but got weight tensor of shape: {list(weight.array.shape)}")
    return None if weight is None else weight.array


@autocast_op("float32")
def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits (N, C, *) or (C,) against class indices (N, *) or class
    probabilities (input's shape), with class weights, ignore_index and label smoothing."""
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if dtypes.is_float(target.array.dtype) and target.array.shape == input.array.shape:
        return _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing)
    if not dtypes.is_float(input.array.dtype):
        raise RuntimeError(f'"log_softmax_lastdim_kernel_impl" not implemented for \'{_type_name(input)}\'')
    unbatched = input.array.ndim == 1
    logits, target = _class_target_layout(input, target)
    weight = _check_class_weight(weight, logits)
    N, C = logits.array.shape[:2]
    compute_grad = is_grad_enabled() and logits.requires_grad
    out = _loss.CrossEntropy.apply(logits.reshape(N, C, -1), target=target.array.reshape(N, -1), weight=weight,
                                   ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction,
                                   compute_grad=compute_grad)
    if reduction == "none":
        out = out.reshape(()) if unbatched else out.reshape(target.array.shape)
    return out


def _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing):
    class_dim = 0 if input.array.ndim == 1 else 1
    C = input.array.shape[class_dim]
    logp = ops.log_softmax(input, class_dim)
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / C
    terms = logp * target
    if weight is not None:
        _check_class_weight(weight, input if class_dim else input.reshape(1, -1))
        shape = [1] * input.array.ndim
        shape[class_dim] = C
        terms = terms * weight.reshape(shape)
    loss = -terms.sum(class_dim)
    if reduction == "mean":
        return loss.sum() / max(input.array.size // C, 1) if input.array.size else loss.sum() * float("nan")
    return loss.sum() if reduction == "sum" else loss


@autocast_op("float32")
def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """-weight[y] * input[y] on log-probabilities (N, C, *) and class indices (N, *)."""
    _check_reduction(reduction)
    unbatched = input.array.ndim == 1
    logp, target = _class_target_layout(input, target)
    weight = _check_class_weight(weight, logp)
    N, C = logp.array.shape[:2]
    out = _loss.NllLoss.apply(logp.reshape(N, C, -1), target=target.array.reshape(N, -1), weight=weight,
                              ignore_index=ignore_index, reduction=reduction)
    if reduction == "none":
        out = out.reshape(()) if unbatched else out.reshape(target.array.shape)
    return out


@autocast_op("float32")
def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-weight (t log x + (1 - t) log(1 - x)) on probabilities x."""
    _check_reduction(reduction)
    if target.array.shape != input.array.shape:
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input size ({input.shape}) "
                         "is deprecated. Please ensure they have the same size.")
    if input.array.size and (input.array.min() < 0 or input.array.max() > 1):
        raise RuntimeError("all elements of input should be between 0 and 1")
    loss = _loss.BinaryCrossEntropy.apply(input, target, weight=None if weight is None else weight.array)
    return _reduce(loss, reduction)


@autocast_op("float32")
def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """binary_cross_entropy(sigmoid(input), target) computed stably; pos_weight scales the
    positive term per class (broadcast over the last dim)."""
    _check_reduction(reduction)
    if target.array.shape != input.array.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    loss = _loss.BinaryCrossEntropyWithLogits.apply(input, target, weight=None if weight is None else weight.array,
                                                    pos_weight=None if pos_weight is None else pos_weight.array)
    return _reduce(loss, reduction)


@autocast_op("float32")
def kl_div(input, target, reduction="mean", log_target=False):
    """KL(target || exp(input)) pointwise: target * (log target - input), input as log-probabilities;
    reduction "batchmean" divides the sum by the batch size."""
    if reduction not in ("none", "mean", "sum", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if log_target:
        loss = target.exp() * (target - input)
    else:
        positive = target > 0
        loss = target * ops.where(positive, target, 1.0).log() - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.array.shape[0] if input.array.ndim else 1)
    return _reduce(loss, reduction)


@autocast_op("float32")
def poisson_nll_loss(input, target, log_input=True, full=False, *, eps=1e-8, reduction="mean"):
    """Negative log-likelihood of `target` counts under Poisson(rate): exp(input) - target * input
    with log_input (input is the log-rate), else input - target * log(input + eps); `full` adds
    Stirling's approximation of log(target!) where target > 1: `F.poisson_nll_loss(log_rate, counts)`."""
    _check_reduction(reduction)
    loss = input.exp() - target * input if log_input else input - target * (input + eps).log()
    if full:
        stirling = target * target.log() - target + 0.5 * (2 * math.pi * target).log()
        loss = loss + stirling.masked_fill(target <= 1, 0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """0.5 (log var + (input - target)^2 / var) (+ 0.5 log 2 pi with `full`), var clamped to eps
    (the clamp passes gradients through, as PyTorch's): `F.gaussian_nll_loss(mean, y, var)`.
    `var` is a float, input's shape, or input's shape with one dim 1 (or the last dim dropped)."""
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = var * ones_like(input)
    elif bool((var < 0).any()):
        raise ValueError("var has negative entry/entries")
    if var.shape != input.shape:
        if input.shape[:-1] == var.shape:
            var = var.unsqueeze(-1)
        elif not (input.dim() == var.dim() and sum(v for i, v in zip(input.shape, var.shape) if i != v) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = var.clone()
    with no_grad():
        var.clamp_(min=eps)
    loss = 0.5 * (var.log() + (input - target).square() / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


# ---- distances, normalization, one_hot ----

def normalize(input, p=2.0, dim=1, eps=1e-12):
    """input / max(||input||_p, eps) along `dim`: `F.normalize(x, dim=-1)` makes unit rows."""
    from distml.linalg import vector_norm
    return input / vector_norm(input, p, dim, keepdim=True).clamp_min(eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """Sum over `dim` of (x1 / max(||x1||, eps)) * (x2 / max(||x2||, eps)), x1 and x2 broadcast:
    `F.cosine_similarity(a, b, dim=-1)`. As PyTorch's, the clamp passes gradients through."""
    from distml.linalg import vector_norm
    common = dtypes.result_type(x1.array, x2.array)
    if not dtypes.is_float(common):
        raise RuntimeError("expected common dtype to be floating point, yet common dtype is "
                           f"{dtypes.from_numpy(common).legacy_name}")
    x1, x2 = (x if dtypes.is_float(x.array.dtype) else x.to(dtypes.from_numpy(common)) for x in (x1, x2))
    x1, x2 = ops.broadcast_tensors(x1, x2)
    norms = [vector_norm(x, 2, dim, keepdim=True).clone() for x in (x1, x2)]
    with no_grad():
        for norm in norms:
            norm.clamp_(min=eps)
    return ((x1 / norms[0]) * (x2 / norms[1])).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim (x1 and x2 broadcast): `F.pairwise_distance(a, b)`."""
    from distml.linalg import vector_norm
    return vector_norm(x1 - x2 + eps, p, max(x1.dim(), x2.dim()) - 1, keepdim)


def one_hot(tensor, num_classes=-1):
    """int64 tensor of shape (*tensor.shape, num_classes), 1 at each class index of the int64
    `tensor`, 0 elsewhere; num_classes=-1 uses tensor.max() + 1: `F.one_hot(labels, 10)`."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"one_hot(): argument 'input' (position 1) must be Tensor, not {type(tensor).__name__}")
    if not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"one_hot(): argument 'num_classes' (position 2) must be int, not "
                        f"{type(num_classes).__name__}")
    if tensor.array.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    values = tensor.array
    xp = get_array_module(values)
    if values.size == 0:
        if num_classes <= 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
    elif int(values.min()) < 0:
        raise RuntimeError("Class values must be non-negative.")
    elif num_classes == -1:
        num_classes = int(values.max()) + 1
    elif num_classes <= int(values.max()):
        raise RuntimeError("Class values must be smaller than num_classes.")
    return Tensor((values[..., None] == xp.arange(num_classes)).astype(np.int64))


from distml.nn.transformer import scaled_dot_product_attention  # noqa: E402,F401  (defined with attention)
