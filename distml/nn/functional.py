"""nn.functional: the stateless forms of the layers, activations and losses, with PyTorch's
signatures and argument checks. Each calls one primitive from distml/ops or composes ops.

    import distml.nn.functional as F
    loss = F.cross_entropy(F.linear(x, w, b), target)
"""
import math
import warnings

import numpy as np

from distml import dtypes, ops
from distml._backend import get_array_module
from distml.amp.autocast_mode import autocast_op, float32_kernel
from distml.autograd.grad_mode import is_grad_enabled, no_grad
from distml.creation import ones_like, zeros_like
from distml.ops import activation as _act
from distml.ops import conv as _conv
from distml.ops import embedding_bag as _embedding_bag
from distml.ops import linear as _linear
from distml.ops import loss as _loss
from distml.ops import pool as _pool
from distml.ops import resample as _resample
from distml.ops.norm import BatchNorm, LayerNorm, Normalize, batch_norm_stats
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

@autocast_op(cpu="lower", cuda="lower")
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


@autocast_op(cuda="promote")
def bilinear(input1, input2, weight, bias=None):
    """out[..., o] = input1[..., i] weight[o, i, j] input2[..., j] + bias[o]: `F.bilinear(x1, x2, w, b)`."""
    s1, s2, w = input1.array.shape, input2.array.shape, weight.array.shape
    if len(s1) != len(s2):
        raise RuntimeError(f"bilinear(): input dimensions do not match: got {len(s1)} and {len(s2)}")
    for d, (a, b) in enumerate(zip(s1[:-1], s2[:-1])):
        if a != b:
            raise RuntimeError(f"bilinear(): input batch dimensions do not match: got {a} and {b}")
    if len(w) != 3:
        raise RuntimeError(f"bilinear(): weight must be three-dimensional, but got {len(w)}")
    if s1[-1] != w[1]:
        raise RuntimeError(f"bilinear(): input1 size does not match weight size: got {s1[-1]} but expected {w[1]}")
    if s2[-1] != w[2]:
        raise RuntimeError(f"bilinear(): input2 size does not match weight size: got {s2[-1]} but expected {w[2]}")
    if bias is not None and bias.array.shape != (w[0],):
        raise RuntimeError(f"bilinear(): bias size does not match weight size: got {bias.array.shape[-1]} but "
                           f"expected {w[0]}")
    out_features, in1, in2 = w
    # (..., i) @ (i, o * j) -> (..., o, j), then the dot product with input2 over j
    left = ops.matmul(input1, weight.permute(1, 0, 2).reshape(in1, out_features * in2))
    out = (left.reshape(*s1[:-1], out_features, in2) * input2.unsqueeze(-2)).sum(-1)
    return out if bias is None else out + bias


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


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Sums, means or maxima of bags of embedding rows, without materialising the picked rows
    as a tensor: `F.embedding_bag(idx, weight, offsets, mode="sum")` with bag b =
    idx[offsets[b]:offsets[b + 1]]; a 2-D input is one bag per row. Rows at padding_idx are
    left out of their bags (and of a mean's count)."""
    if per_sample_weights is not None and input.array.shape != per_sample_weights.array.shape:
        raise ValueError(f"embedding_bag: If per_sample_weights ({per_sample_weights.shape}) is not None, then it "
                         f"must have the same shape as the input ({input.shape})")
    if weight.array.ndim != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {weight.array.ndim}")
    indices = input.array
    psw = per_sample_weights
    if indices.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch of "
                             f"fixed length sequences. However, found offsets of type {type(offsets)}")
        starts = np.arange(indices.shape[0]) * indices.shape[1]
        include_last_offset = False
        indices = indices.reshape(-1)
        psw = None if psw is None else psw.reshape(-1)
    elif indices.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        if offsets.array.ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor")
        starts = offsets.array
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {indices.ndim}")
    if mode not in ("sum", "mean", "max"):
        raise ValueError("mode has to be one of sum, mean or max")
    if mode == "max" and scale_grad_by_freq:
        raise ValueError("max mode does not support scaling the gradient by the frequency")
    if mode == "max" and sparse:
        raise ValueError("max mode does not support sparse weights")
    for name, unsupported in (("max_norm", max_norm is not None), ("scale_grad_by_freq", scale_grad_by_freq),
                              ("sparse", sparse)):
        if unsupported:
            raise NotImplementedError(f"embedding_bag: {name} is not implemented in distml")
    if psw is not None and mode != "sum":
        raise NotImplementedError("embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                  f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on "
                                  "GitHub.")
    for name, t in (("indices", input), ("offsets", offsets)):
        if t is not None and t.array.dtype.kind not in "iu":
            raise RuntimeError(f"Expected tensor for argument #1 '{name}' to have one of the following scalar types: "
                               f"Long, Int; but got distml.{_type_name(t)}Tensor instead (while checking arguments "
                               "for embedding_bag)")
    if psw is not None and psw.array.dtype != weight.array.dtype:
        raise RuntimeError("Expected tensor for argument #1 'weight' to have the same type as tensor for argument #1 "
                           f"'per_sample_weights'; but type distml.{_type_name(weight)}Tensor does not equal "
                           f"distml.{_type_name(psw)}Tensor (while checking arguments for embedding_bag)")
    rows = weight.array.shape[0]
    if padding_idx is not None:
        if not -rows <= padding_idx < rows:
            raise RuntimeError(f"padding_idx must be within the number of embeddings, -{rows} through {rows - 1}, "
                               f"but got {padding_idx}")
        padding_idx %= rows
    xp = get_array_module(indices)
    starts = xp.asarray(starts, dtype=np.int64)
    if starts.size:
        if int(starts[0]) != 0:
            raise RuntimeError("offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from "
                               f"position 0. However, got {int(starts[0])}")
        if int(starts[-1]) > indices.size:
            raise RuntimeError(f"offsets[-1] can not be greater than input's length {indices.size} but got "
                               f"offsets[-1] of {int(starts[-1])}")
        if starts.size > 1 and int(xp.diff(starts).min()) < 0:
            raise RuntimeError(f"embedding_bag: offsets must be non-decreasing, but got {starts.tolist()}")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= rows):
        bad = int(indices.max()) if int(indices.max()) >= rows else int(indices.min())
        raise RuntimeError(f"embedding_bag: index {bad} is out of range for a weight of {rows} rows")
    ends = indices.size
    if include_last_offset:
        starts, ends = starts[:-1], int(starts[-1]) if starts.size else 0
    n_bags = int(starts.size)
    bags = xp.searchsorted(starts, xp.arange(ends), side="right") - 1  # each index's bag
    keep = xp.arange(ends) if padding_idx is None else xp.nonzero(indices[:ends] != padding_idx)[0]
    if psw is not None:
        psw = psw[Tensor(keep)]
    return _embedding_bag.EmbeddingBag.apply(weight, psw, indices=indices[keep].astype(np.int64), bags=bags[keep],
                                             n_bags=n_bags, mode=mode)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (training only)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    from distml.random import rand
    keep = rand(*input.array.shape, dtype=input.dtype, device=input.device).array >= p
    mask = keep.astype(input.array.dtype)
    if p < 1.0:
        mask *= mask.dtype.type(1.0 / (1.0 - p))  # in the input's dtype: keep / (1 - p) would make a float64 array
    mask = Tensor(mask)
    return input.mul_(mask) if inplace else input * mask


_SELU_NEGATIVE = -1.7580993408473766  # selu's limit at -inf: what alpha dropout sets dropped values to


def _masked_dropout(input, p, training, inplace, channels=0, alpha=False):
    """Dropout with one mask entry per element, or per channel when `channels` (the number of
    leading batch/channel dims) is set; `alpha`: dropped values go to selu's negative limit and
    the result is rescaled to keep zero mean and unit variance (PyTorch's _dropout_impl)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 0.0 or not training or input.array.size == 0:
        return input
    if p == 1.0:
        return input.mul_(0) if inplace else input * 0
    shape = input.array.shape
    if channels:
        if input.array.ndim + 2 - channels < 2:  # channels=1: an unbatched input, as if unsqueezed
            raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
        shape = shape[:channels] + (1,) * (len(shape) - channels)
    from distml.random import rand
    keep = (rand(*shape, dtype=input.dtype, device=input.device).array >= p).astype(input.array.dtype)
    if not alpha:
        mask = Tensor(keep / (1.0 - p))
        return input.mul_(mask) if inplace else input * mask
    a = 1.0 / math.sqrt((_SELU_NEGATIVE ** 2 * p + 1) * (1 - p))
    scale, shift = Tensor(keep * a), Tensor((keep - 1) * (-_SELU_NEGATIVE * a) - _SELU_NEGATIVE * a * p)
    return input.mul_(scale).add_(shift) if inplace else input * scale + shift


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) input with probability p, scale the rest by
    1 / (1 - p): `F.dropout1d(x, 0.2)`."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.array.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.array.ndim}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                           "channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    return _masked_dropout(input, p, training, inplace, channels=2 if input.array.ndim == 3 else 1)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels (dim 1) of (N, C, H, W) input with probability p: `F.dropout2d(x, 0.2)`.
    As PyTorch's, dims 0 and 1 are always the batch and channel dims (a 3-D input is (N, C, L))."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    ndim = input.array.ndim
    if ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {ndim}-D input to dropout2d, which is deprecated and will result in an "
                      "error in a future release. To retain the behavior and silence this warning, please use dropout "
                      "instead. Note that dropout2d exists to provide channel-wise dropout on inputs with 2 spatial "
                      "dimensions, a channel dimension, and an optional batch dimension (i.e. 3D or 4D inputs).",
                      stacklevel=2)
    if ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior "
                      "is desired - input is interpreted as shape (N, C, L), where C is the channel dim. This behavior "
                      "will change in a future release to interpret the input as one without a batch dimension, i.e. "
                      "shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please switch to using "
                      "dropout1d instead.", stacklevel=2)
    return _masked_dropout(input, p, training, inplace, channels=2)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input with probability p: `F.dropout3d(x)`."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    ndim = input.array.ndim
    if ndim not in (4, 5):
        warnings.warn(f"dropout3d: Received a {ndim}-D input to dropout3d, which is deprecated and will result in an "
                      "error in a future release. To retain the behavior and silence this warning, please use dropout "
                      "instead. Note that dropout3d exists to provide channel-wise dropout on inputs with 3 spatial "
                      "dimensions, a channel dimension, and an optional batch dimension (i.e. 4D or 5D inputs).",
                      stacklevel=2)
    return _masked_dropout(input, p, training, inplace, channels=2 if ndim == 5 else 1)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout for SELU networks: dropped elements take selu's negative limit, then an affine map
    keeps the mean and variance: `F.alpha_dropout(x, 0.1, training=True)`."""
    return _masked_dropout(input, p, training, inplace, alpha=True)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """alpha_dropout of whole channels (dim 1): `F.feature_alpha_dropout(x, 0.1, training=True)`."""
    return _masked_dropout(input, p, training, inplace, channels=2, alpha=True)


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
    if n > ndim:
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
        if mode == "reflect" and (before >= shape[d] or after >= shape[d]):
            raise RuntimeError(f"Argument #{4 + 2 * i}: Padding size should be less than the corresponding input "
                               f"dimension, but got: padding ({before}, {after}) at dimension {d} of input "
                               f"{list(shape)}")
        kept = shape[d] - max(-before, 0) - max(-after, 0)  # negative sizes crop before anything is added
        if mode == "circular":
            if max(before, after) > shape[d]:
                raise RuntimeError("Padding value causes wrapping around more than once.")
            if kept < 0:
                raise RuntimeError("Negative padding value is resulting in an empty dimension")
            if max(before, after) > kept:  # PyTorch reads out of bounds here; distml refuses
                raise RuntimeError("Padding value causes wrapping around more than once.")
        if kept < 0 and mode == "constant":
            raise RuntimeError("narrow(): length must be non-negative.")
    out_sizes = [shape[d] + before + after for d, before, after in sizes]
    if mode in ("reflect", "replicate") and (max(out_sizes) < 1 or min(out_sizes) < 0):
        _pad_too_small(mode, shape, sizes)  # PyTorch's kernels allow an empty dim only beside a non-empty one
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
        else:  # circular: negative sizes crop first, then the kept part wraps around
            start, kept = max(-before, 0), shape[d] - max(-before, 0) - max(-after, 0)
            source = start + xp.arange(-max(before, 0), kept + max(after, 0)) % max(kept, 1)
        out = ops.index.GetItem.apply(out, index=(slice(None),) * d + (source,))
    return out


def _pad_too_small(mode, shape, sizes):
    """PyTorch's error for reflect / replicate padding that leaves an empty dim (its wording per kernel)."""
    names = "WHD"[:len(sizes)]
    given = {n: shape[d] for n, (d, _, _) in zip(names, sizes)}
    out = {n: shape[d] + before + after for n, (d, before, after) in zip(names, sizes)}
    order = names[::-1]
    inputs = ", ".join(f"{n}: {given[n]}" for n in order[-2:])
    if len(sizes) == 3:
        inputs = f"D: {given['D']} " + inputs
    elif len(sizes) == 2 and mode == "replicate":
        inputs += " "
    outputs = " ".join(f"{n}: {out[n]}" for n in order)
    raise RuntimeError(f"input ({inputs}) is too small. Calculated output {outputs}")


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


@autocast_op(cpu="lower", cuda="lower")
@float32_kernel
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution of (N, C, L) by weight (O, C / groups, K); padding int, 'valid' or 'same':
    `F.conv1d(x, w, b, stride=2)`."""
    return _conv_nd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


@autocast_op(cpu="lower", cuda="lower")
@float32_kernel
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of (N, C, H, W) by weight (O, C / groups, KH, KW): `F.conv2d(x, w, b, padding=1)`."""
    return _conv_nd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


@autocast_op(cpu="lower", cuda="lower")
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


@autocast_op(cpu="lower", cuda="lower")
@float32_kernel
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transpose of conv1d, weight (C_in, C_out / groups, K): `F.conv_transpose1d(x, w, stride=2)`."""
    return _conv_transpose_nd("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


@autocast_op(cpu="lower", cuda="lower")
@float32_kernel
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transpose of conv2d, weight (C_in, C_out / groups, KH, KW): `F.conv_transpose2d(x, w, stride=2)`."""
    return _conv_transpose_nd("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


@autocast_op(cpu="lower", cuda="lower")
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

_COUNT = {1: "one", 2: "two", 3: "three"}


def _pool_tuple(name, arg, value, n):
    """An int, or n ints (a single one broadcasts), for a pooling argument."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise RuntimeError(f"{name}: {arg} must either be a single int, or a tuple of {_COUNT[n]} ints")
    return value


def _pool_size(size, k, s, p, d, ceil_mode):
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input or left padding
        out -= 1
    return out


def _check_pool_input(name, nd, input):
    shape = input.array.shape
    if input.array.ndim not in (nd + 1, nd + 2):
        if name == "max_pool1d":
            raise RuntimeError(f"max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size for "
                               f"input, but got:{list(shape)}")
        if nd == 1:
            raise RuntimeError(f"Expected 2 to 3 dimensions, but got {input.array.ndim}-dimensional tensor for "
                               f"argument #1 'self' (while checking arguments for {name})")
        raise RuntimeError(f"non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for input, but got "
                           f"{list(shape)}")
    if 0 in shape[-nd - 1:]:
        raise RuntimeError(f"{name}: Expected input to have non-zero size for non-batch dimensions, but got "
                           f"{list(shape)}")


def _pool_geometry(name, nd, input, kernel_size, stride, padding, dilation, ceil_mode):
    """Checks the arguments of a max / average pooling as PyTorch does; returns the kernel geometry."""
    _check_pool_input(name, nd, input)
    k = _pool_tuple(name, "kernel_size", kernel_size, nd)
    empty = stride is None or (not isinstance(stride, (int, np.integer)) and len(stride) == 0)
    s = k if empty else _pool_tuple(name, "stride", stride, nd)
    p, d = _pool_tuple(name, "padding", padding, nd), _pool_tuple(name, "dilation", dilation, nd)
    if min(s) <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got stride={list(s)}" if min(s) < 0 else
                           "stride should not be zero")
    if min(k) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kernel_size={list(k)}")
    if min(d) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilation={list(d)}")
    if min(p) < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {min(p)}")
    for pad, kern, dil in zip(p, k, d):
        if pad > (dil * (kern - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pad}, "
                               f"kernel_size={kern} and dilation={dil}")
    shape = input.array.shape
    out = tuple(_pool_size(n, *args, ceil_mode) for n, *args in zip(shape[-nd:], k, s, p, d))
    if min(out) < 1:
        channels = shape[-nd - 1]
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, shape[-nd - 1:]))}). Calculated output size: "
                           f"({'x'.join(map(str, (channels,) + out))}). Output size is too small")
    return _pool.pool_geometry(shape, k, s, p, d, out)


def _max_pool(name, nd, input, kernel_size, stride, padding, dilation, ceil_mode):
    geometry = _pool_geometry(name, nd, input, kernel_size, stride, padding, dilation, ceil_mode)
    return _pool.MaxPool.apply(input, geometry=geometry, dims=nd)


@float32_kernel
def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    """Window maxima over (N, C, L) and each maximum's index along L: `out, idx = F.max_pool1d_with_indices(x, 2)`."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode)


@float32_kernel
def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    """Window maxima over (N, C, H, W) and each maximum's flat index in its H*W plane."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode)


@float32_kernel
def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    """Window maxima over (N, C, D, H, W) and each maximum's flat index in its D*H*W volume."""
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Window maxima over (N, C, L) or (C, L): `F.max_pool1d(x, 3, stride=2, padding=1)`."""
    out = max_pool1d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return out if return_indices else out[0]


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Window maxima over (N, C, H, W) or (C, H, W); with return_indices also each maximum's flat H*W index."""
    out = max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return out if return_indices else out[0]


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Window maxima over (N, C, D, H, W) or (C, D, H, W): `F.max_pool3d(x, 2)`."""
    out = max_pool3d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return out if return_indices else out[0]


def _avg_pool(name, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    if divisor_override is not None and not isinstance(divisor_override, (int, np.integer)):
        raise TypeError(f"{name}(): argument 'divisor_override' must be int, not {type(divisor_override).__name__}")
    if divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    geometry = _pool_geometry(name, nd, input, kernel_size, stride, padding, 1, ceil_mode)
    return _pool.AvgPool.apply(input, geometry=geometry, dims=nd, count_include_pad=bool(count_include_pad),
                               divisor_override=int(divisor_override or 0))


@float32_kernel
def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Window averages over (N, C, L) or (C, L): `F.avg_pool1d(x, 3, stride=2)`."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


@float32_kernel
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Window averages over (N, C, H, W) or (C, H, W), PyTorch's divisor rules: `F.avg_pool2d(x, 2)`."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


@float32_kernel
def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Window averages over (N, C, D, H, W) or (C, D, H, W): `F.avg_pool3d(x, (1, 2, 2))`."""
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _adaptive_sizes(name, nd, input, output_size, kind):
    """output_size as nd ints (None keeps that input dim), after PyTorch's checks."""
    shape = input.array.shape
    if input.array.ndim not in (nd + 1, nd + 2):
        if nd == 1:
            raise RuntimeError(f"Expected 2 to 3 dimensions, but got {input.array.ndim}-dimensional tensor for "
                               f"argument #1 'self' (while checking arguments for {name})")
        raise RuntimeError(f"{name}(): Expected {nd + 1}D or {nd + 2}D tensor, but got{':' if kind == 'max' else ''} "
                           f"{list(shape)}")
    sizes = (output_size,) * nd if isinstance(output_size, (int, np.integer)) or output_size is None else tuple(output_size)
    if len(sizes) != nd:
        if nd == 1:
            raise RuntimeError(f"{name}() argument 'output_size' should contain one int (got {len(sizes)})")
        raise RuntimeError(f"{name}: output_size must be {nd}")
    sizes = tuple(shape[-nd + i] if s is None else int(s) for i, s in enumerate(sizes))
    if min(sizes) < 0:
        raise RuntimeError(f"{name}: elements of output_size must be greater than or equal to 0 but received "
                           f"{{{', '.join(map(str, sizes))}}}")
    for d in range(input.array.ndim - nd - 1, input.array.ndim):
        if shape[d] == 0:
            raise RuntimeError(f"{name}(): Expected input to have non-zero size for non-batch dimensions, but input "
                               f"has sizes {list(shape)} with dimension {d} being empty")
    return sizes


@float32_kernel
def adaptive_avg_pool1d(input, output_size):
    """Average pooling of (N, C, L) to a fixed length: `F.adaptive_avg_pool1d(x, 4)`."""
    return _pool.AdaptiveAvgPool.apply(input, output_size=_adaptive_sizes("adaptive_avg_pool1d", 1, input,
                                                                         output_size, "avg"))


@float32_kernel
def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size (None keeps that input dim): `F.adaptive_avg_pool2d(x, 1)`."""
    return _pool.AdaptiveAvgPool.apply(input, output_size=_adaptive_sizes("adaptive_avg_pool2d", 2, input,
                                                                         output_size, "avg"))


@float32_kernel
def adaptive_avg_pool3d(input, output_size):
    """Average pooling of (N, C, D, H, W) to a fixed size: `F.adaptive_avg_pool3d(x, (1, 2, 2))`."""
    return _pool.AdaptiveAvgPool.apply(input, output_size=_adaptive_sizes("adaptive_avg_pool3d", 3, input,
                                                                         output_size, "avg"))


@float32_kernel
def adaptive_max_pool1d_with_indices(input, output_size, return_indices=False):
    """Maxima over PyTorch's adaptive windows of (N, C, L) and their indices along L."""
    return _pool.AdaptiveMaxPool.apply(input, output_size=_adaptive_sizes("adaptive_max_pool1d", 1, input,
                                                                         output_size, "max"))


@float32_kernel
def adaptive_max_pool2d_with_indices(input, output_size, return_indices=False):
    """Maxima over PyTorch's adaptive windows of (N, C, H, W) and their flat H*W indices."""
    return _pool.AdaptiveMaxPool.apply(input, output_size=_adaptive_sizes("adaptive_max_pool2d", 2, input,
                                                                         output_size, "max"))


@float32_kernel
def adaptive_max_pool3d_with_indices(input, output_size, return_indices=False):
    """Maxima over PyTorch's adaptive windows of (N, C, D, H, W) and their flat D*H*W indices."""
    return _pool.AdaptiveMaxPool.apply(input, output_size=_adaptive_sizes("adaptive_max_pool3d", 3, input,
                                                                         output_size, "max"))


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max pooling of (N, C, L) to a fixed length: `F.adaptive_max_pool1d(x, 4)`."""
    out = adaptive_max_pool1d_with_indices(input, output_size)
    return out if return_indices else out[0]


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to a fixed output size (None keeps that input dim): `F.adaptive_max_pool2d(x, (2, 2))`."""
    out = adaptive_max_pool2d_with_indices(input, output_size)
    return out if return_indices else out[0]


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """Max pooling of (N, C, D, H, W) to a fixed size: `F.adaptive_max_pool3d(x, 2)`."""
    out = adaptive_max_pool3d_with_indices(input, output_size)
    return out if return_indices else out[0]


def _unpool_output_size(input, kernel_size, stride, padding, output_size):
    n = len(kernel_size)
    default = [(input.array.shape[-n + d] - 1) * stride[d] + kernel_size[d] - 2 * padding[d] for d in range(n)]
    if output_size is None:
        return default
    if len(output_size) == n + 2:
        output_size = output_size[2:]
    if len(output_size) != n:
        raise ValueError(f"output_size should be a sequence containing {n} or {n + 2} elements, but it has a "
                         f"length of '{len(output_size)}'")
    for d in range(n):
        low, high = default[d] - stride[d], default[d] + stride[d]
        if not low < int(output_size[d]) < high:
            raise ValueError(f'invalid output_size "{output_size}" (dim {d} must be between {low} and {high})')
    return [int(s) for s in output_size]


def _max_unpool(nd, input, indices, kernel_size, stride, padding, output_size):
    name = f"max_unpooling{nd}d"
    if input.array.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Input to {name} should be a {nd + 1}d or {nd + 2}d Tensor, but got a tensor with "
                           f"{input.array.ndim} dimensions.")
    if indices.array.dtype != np.int64:
        raise RuntimeError(f"elements in indices should be type int64 but got: {indices.dtype.legacy_name}")
    if indices.array.shape != input.array.shape:
        raise RuntimeError(f"Expected shape of indices to be same as that of the input tensor "
                           f"({list(input.array.shape)}) but got indices tensor with shape: "
                           f"{list(indices.array.shape)}")
    k = _pool_tuple(name, "kernel_size", kernel_size, nd)
    s = k if stride is None else _pool_tuple(name, "stride", stride, nd)
    size = _unpool_output_size(input, k, s, _pool_tuple(name, "padding", padding, nd), output_size)
    for d, value in enumerate(size):
        if value < 0:
            raise ValueError(f"max_unpooling: output_size must contain non-negative spatial dimensions, but got "
                             f"output_size[{d}]={value}")
    volume = int(np.prod(size))
    if indices.array.size and (int(indices.array.min()) < 0 or int(indices.array.max()) >= volume):
        bad = int(indices.array.max()) if int(indices.array.max()) >= volume else int(indices.array.min())
        shown = size + [1] if nd == 1 else size  # PyTorch unpools 1-d as 2-d with a trailing 1
        raise RuntimeError(f"Found an invalid max index: {bad} (output volumes are of size "
                           f"{'x'.join(map(str, shown))})")
    return _pool.MaxUnpool.apply(input, indices, output_size=tuple(size))


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max_pool1d: values written back at their indices, zeros elsewhere."""
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max_pool2d: `F.max_unpool2d(*F.max_pool2d(x, 2, return_indices=True), 2)`."""
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max_pool3d: values written back at their indices, zeros elsewhere."""
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)


def _lp_pool(nd, input, norm_type, kernel_size, stride, ceil_mode):
    max_pool, avg_pool = {1: (max_pool1d, avg_pool1d), 2: (max_pool2d, avg_pool2d), 3: (max_pool3d, avg_pool3d)}[nd]
    if norm_type == math.inf:
        return max_pool(input.abs(), kernel_size, stride, 0, 1, ceil_mode)
    if norm_type == -math.inf:
        return -max_pool(-input.abs(), kernel_size, stride, 0, 1, ceil_mode)
    out = avg_pool(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    window = int(np.prod(_pool_tuple(f"lp_pool{nd}d", "kernel_size", kernel_size, nd)))
    return (out.sign() * relu(out.abs())).mul(window).pow(1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """(sum over each window of x^p)^(1/p) over (N, C, L): `F.lp_pool1d(x, 2, 3)`."""
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """(sum over each window of x^p)^(1/p) over (N, C, H, W): `F.lp_pool2d(x, 2, 3, stride=2)`."""
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """(sum over each window of x^p)^(1/p) over (N, C, D, H, W): `F.lp_pool3d(x, 2, 2)`."""
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)


# ---- upsampling, pixel and channel shuffle ----

_INTERPOLATE_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_INTERPOLATE_TAPS = {"nearest": "nearest", "nearest-exact": "nearest-exact", "linear": "linear",
                     "bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}


@autocast_op(cuda="float32")
@float32_kernel
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dims of (N, C, *spatial) to `size` or by `scale_factor`:
    `F.interpolate(x, scale_factor=2, mode="bilinear")`. Modes nearest, nearest-exact,
    linear / bilinear / trilinear, bicubic and area; antialias=True is not implemented."""
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                             "bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    ndim = input.array.ndim
    dim = ndim - 2
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    scales = None
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input "
                                 f"with spatial dimensions of {list(input.array.shape[2:])} and output size of {size}. "
                                 "Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                                 "(o1, o2, ...,oK) format.")
            if not all(isinstance(s, (int, np.integer)) for s in size):
                raise TypeError("expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                                f"Tuple[int, int, int], but got size with types {[type(s) for s in size]}")
            out_size = [int(s) for s in size]
        else:
            out_size = [int(size)] * dim
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != dim:
                raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got "
                                 f"input with spatial dimensions of {list(input.array.shape[2:])} and scale_factor of "
                                 f"shape {scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                                 "and scale_factor in (s1, s2, ...,sK) format.")
            scales = [float(s) for s in scale_factor]
        else:
            scales = [float(scale_factor)] * dim
        out_size = [int(n * s) for n, s in zip(input.array.shape[2:], scales)]
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if recompute_scale_factor or mode == "area":
        scales = None  # the kernels use in / out, from the integer output size
    if antialias:
        if not (mode in ("bilinear", "bicubic", "lanczos") and ndim == 4):
            raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and requires a "
                             "4-D tensor as input")
        raise NotImplementedError(f"interpolate: antialias=True (mode '{mode}') is not implemented in distml")
    if mode == "lanczos" and ndim == 4:
        raise ValueError("Lanczos mode does not support align_corners=True" if align_corners else
                         "Lanczos mode requires antialias=True")
    if ndim not in (3, 4, 5) or mode not in _INTERPOLATE_TAPS and mode != "area" or mode == "bicubic" and dim != 2:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {ndim}D) for the "
                                  "modes: nearest | linear | bilinear | bicubic | trilinear | lanczos | area | "
                                  f"nearest-exact (got {mode})")
    needed = _INTERPOLATE_DIMS.get(mode)
    if needed is not None and needed != dim:
        raise NotImplementedError(f"Got {ndim}D input, but {mode} mode needs {needed + 2}D input")
    if not dtypes.is_float(input.array.dtype):
        raise NotImplementedError(f'"upsample_{mode}{dim}d" not implemented for \'{_type_name(input)}\'')
    if mode == "area":
        return {1: adaptive_avg_pool1d, 2: adaptive_avg_pool2d, 3: adaptive_avg_pool3d}[dim](input, out_size)
    in_size = input.array.shape[2:]
    if input.array.shape[1] == 0:
        raise RuntimeError(f"Non-empty {ndim}D data tensor expected but got a tensor with sizes "
                           f"{list(input.array.shape)}")
    if min(in_size) <= 0 or min(out_size) <= 0:
        names = "DHW"[3 - dim:]
        shown = ", ".join(f"{n}: {s}" for n, s in zip(names, in_size))
        wanted = ", ".join(f"{n}: {s}" for n, s in zip(names, out_size))
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input ({shown}) and output "
                           f"({wanted})")
    out = input
    for d in reversed(range(dim)):
        index, weights = _resample.taps(_INTERPOLATE_TAPS[mode], in_size[d], out_size[d],
                                        None if scales is None else scales[d], align_corners, input.array.dtype,
                                        nearest_2d=mode == "nearest" and dim == 2)
        out = _resample.Resample.apply(out, axis=2 + d, index=index, weights=weights)
    return out


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of interpolate, kept as PyTorch keeps it."""
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: interpolate(input, size, scale_factor, mode="nearest")."""
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)."""
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def _check_factor(name, what, factor):
    if not isinstance(factor, (int, np.integer)) or isinstance(factor, bool):
        raise TypeError(f"{name}(): argument '{what}' (position 2) must be int, not {type(factor).__name__}")
    if factor <= 0:
        raise RuntimeError(f"{name} expects a positive {what}, but got {factor}")


def pixel_shuffle(input, upscale_factor):
    """(*, C*r*r, H, W) -> (*, C, H*r, W*r): `F.pixel_shuffle(x, 2)`."""
    _check_factor("pixel_shuffle", "upscale_factor", upscale_factor)
    shape = input.array.shape
    if len(shape) < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but got input with "
                           f"{len(shape)} dimension(s)")
    r = int(upscale_factor)
    if shape[-3] % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={shape[-3]} is not divisible by {r * r}")
    lead, (c, h, w) = shape[:-3], shape[-3:]
    n = len(lead)
    x = input.reshape(lead + (c // (r * r), r, r, h, w))
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return x.reshape(lead + (c // (r * r), h * r, w * r))


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H*r, W*r) -> (*, C*r*r, H, W), pixel_shuffle's inverse: `F.pixel_unshuffle(x, 2)`."""
    _check_factor("pixel_unshuffle", "downscale_factor", downscale_factor)
    shape = input.array.shape
    if len(shape) < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
                           f"{len(shape)} dimension(s)")
    r = int(downscale_factor)
    for d, what in ((-2, "height"), (-1, "width")):
        if shape[d] % r:
            raise RuntimeError(f"pixel_unshuffle expects {what} to be divisible by downscale_factor, but "
                               f"input.size({d})={shape[d]} is not divisible by {r}")
    lead, (c, h, w) = shape[:-3], shape[-3:]
    n = len(lead)
    x = input.reshape(lead + (c, h // r, r, w // r, r))
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(lead + (c * r * r, h // r, w // r))


def channel_shuffle(input, groups):
    """(N, g*k, *) -> (N, k*g, *): channel c*g + i of the output is channel i*k + c of the input
    (ShuffleNet): `F.channel_shuffle(x, 2)`."""
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool):
        raise TypeError(f"channel_shuffle(): argument 'groups' (position 2) must be int, not {type(groups).__name__}")
    shape = input.array.shape
    if len(shape) <= 2:
        raise RuntimeError(f"channel_shuffle expects input with > 2 dims, but got input with sizes {list(shape)}")
    if groups <= 0:
        raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of groups:{groups}")
    if shape[1] % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {shape[1]} channels and {groups} "
                           "groups.")
    x = input.reshape((shape[0], int(groups), shape[1] // groups) + shape[2:])
    return x.transpose(1, 2).reshape(shape)


native_channel_shuffle = channel_shuffle


# ---- grid sampling ----

_GRID_WARNING = ("Default grid_sample and affine_grid behavior has changed to align_corners=False since 1.3.0. Please "
                 "specify align_corners=True if the old behavior is desired. See the documentation of grid_sample for "
                 "details.")


def affine_grid(theta, size, align_corners=None):
    """The sampling grid (N, H, W, 2) (or (N, D, H, W, 3)) of the affine maps theta (N, 2, 3)
    (or (N, 3, 4)) over [-1, 1] output coordinates, for grid_sample: `F.affine_grid(theta, x.size())`."""
    if align_corners is None:
        warnings.warn(_GRID_WARNING, stacklevel=2)
        align_corners = False
    if not dtypes.is_float(theta.array.dtype):
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype}")
    size = [int(s) for s in size]
    if len(size) in (4, 5):
        rows = len(size) - 2
        if theta.array.ndim != 3 or theta.array.shape[-2:] != (rows, rows + 1):
            kind = "2D affine matrices of shape Nx2x3" if rows == 2 else "3D affine matrices of shape Nx3x4"
            raise ValueError(f"Expected a batch of {kind} for size {size}. Got {theta.shape}.")
    else:
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
                                  f"respectively. Got size {size}.")
    spatial = size[2:]
    if align_corners and min(spatial) == 1:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size grids when "
                      "align_corners=True. This is not an intended use case of affine_grid. See the documentation of "
                      "affine_grid for details.", stacklevel=2)
    elif min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {size}")
    if theta.array.shape[0] != size[0]:
        raise RuntimeError(f"affine_grid: expected {size[0]} affine matrices for size {size}, but theta has "
                           f"{theta.array.shape[0]}")
    xp = get_array_module(theta.array)
    axes = []
    for n in reversed(spatial):  # x runs along the last dim, then y, then z
        line = np.linspace(-1, 1, n) if n > 1 else np.zeros(1)
        axes.append(line if align_corners else line * (n - 1) / n)
    coords = list(np.meshgrid(*axes[::-1], indexing="ij"))[::-1] + [np.ones(spatial)]
    base = xp.asarray(np.stack(coords, axis=-1).reshape(1, -1, len(spatial) + 1), dtype=theta.array.dtype)
    grid = ops.matmul(Tensor(base), theta.transpose(1, 2))
    return grid.reshape([size[0]] + spatial + [len(spatial)])


def _grid_source(coord, size, padding_mode, align_corners):
    """Input positions of normalised grid coordinates, after PyTorch's border / reflection rules."""
    coord = (coord + 1) / 2 * (size - 1) if align_corners else ((coord + 1) * size - 1) / 2
    if padding_mode == "border":
        return coord.clamp(0, size - 1)
    if padding_mode == "reflection":
        low, high = (0, 2 * (size - 1)) if align_corners else (-1, 2 * size - 1)
        if low == high:
            return coord * 0
        start, span = low / 2, (high - low) / 2
        distance = (coord - start).abs()
        flips = np.floor(distance.array / span)
        extra = distance - Tensor((flips * span).astype(distance.array.dtype))
        coord = ops.where(Tensor(flips % 2 == 0), extra + start, span - extra + start)
        return coord.clamp(0, size - 1)
    return coord


@autocast_op(cuda="promote")
def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """Sample input (N, C, H, W) at grid (N, Ho, Wo, 2) (x, y in [-1, 1]): (N, C, Ho, Wo);
    modes bilinear and nearest, padding zeros, border or reflection: `F.grid_sample(x, grid, align_corners=False)`.
    Gradients flow to input and (bilinear) grid."""
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', but "
                         f"got: '{mode}'")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError("nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or "
                         f"'reflection', but got: '{padding_mode}'")
    if align_corners is None:
        warnings.warn(_GRID_WARNING, stacklevel=2)
        align_corners = False
    if mode == "bicubic":
        raise NotImplementedError("grid_sample: mode='bicubic' is not implemented in distml")
    if input.array.ndim == 5:
        raise NotImplementedError("grid_sample: 5-D (volumetric) input is not implemented in distml")
    if input.array.ndim != 4 or grid.array.ndim != 4:
        raise RuntimeError(f"grid_sampler(): expected 4D or 5D input and grid with same number of dimensions, but got "
                           f"input with sizes {list(input.array.shape)} and grid with sizes {list(grid.array.shape)}")
    N, C, H, W = input.array.shape
    if grid.array.shape[0] != N or grid.array.shape[-1] != 2:
        raise RuntimeError(f"grid_sampler(): expected grid to have size 2 in last dimension and the same batch size "
                           f"as input, but got input with sizes {list(input.array.shape)} and grid with sizes "
                           f"{list(grid.array.shape)}")
    if input.array.dtype != grid.array.dtype:
        raise RuntimeError(f"grid_sampler(): expected input and grid to have same dtype, but input has "
                           f"{input.dtype} and grid has {grid.dtype}")
    xp = get_array_module(input.array)
    x = _grid_source(grid[..., 0], W, padding_mode, align_corners)
    y = _grid_source(grid[..., 1], H, padding_mode, align_corners)
    batch = xp.arange(N).reshape(N, 1, 1)

    def tap(rows, columns):
        """input at integer (rows, columns) per grid point, 0 outside: (N, Ho, Wo, C)."""
        inside = (rows >= 0) & (rows < H) & (columns >= 0) & (columns < W)
        values = input[batch, :, xp.clip(rows, 0, H - 1), xp.clip(columns, 0, W - 1)]
        return ops.where(Tensor(inside[..., None]), values, 0.0)

    if mode == "nearest":  # rint rounds halves to even, as PyTorch's nearbyint
        out = tap(xp.rint(y.array).astype(np.int64), xp.rint(x.array).astype(np.int64))
    else:
        x0, y0 = xp.floor(x.array), xp.floor(y.array)
        dx, dy = x - Tensor(x0), y - Tensor(y0)
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        out = None
        for rows, columns, weight in ((y0, x0, (1 - dx) * (1 - dy)), (y0, x0 + 1, dx * (1 - dy)),
                                      (y0 + 1, x0, (1 - dx) * dy), (y0 + 1, x0 + 1, dx * dy)):
            term = tap(rows, columns) * weight.unsqueeze(-1)
            out = term if out is None else out + term
    return out.permute(0, 3, 1, 2)


# ---- normalisation ----

def _check_channel_vectors(channels, repeat=1, **vectors):
    """PyTorch's check of per-channel vectors (instance_norm's counts repeat over the batch)."""
    for name, v in vectors.items():
        if v is not None and v.numel() != channels:
            raise RuntimeError(f"{name} should contain {channels * repeat} elements not {v.numel() * repeat}")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalise each channel (dim 1) with the batch statistics (training; the running ones
    are updated in place) or with the running statistics (eval): one fused primitive,
    `F.batch_norm(x, running_mean, running_var, weight, bias, training=True)`."""
    if not training and (running_mean is None or running_var is None):
        raise RuntimeError(f"running_{'mean' if running_mean is None else 'var'} must be defined in evaluation mode")
    x = input.array
    if x.ndim < 2:
        raise IndexError(f"Dimension out of range (expected to be in range of [-{max(x.ndim, 1)}, "
                         f"{max(x.ndim, 1) - 1}], but got 1)")
    _check_channel_vectors(x.shape[1], running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    vectors = [v for v in (weight, bias, running_mean, running_var) if v is not None]
    if any(v.dtype != input.dtype for v in vectors):
        if input.dtype in (dtypes.float16, dtypes.bfloat16) and all(v.dtype == dtypes.float32 for v in vectors):
            # PyTorch's CPU "mixed type": half-precision input, float32 parameters, computed in float32
            return batch_norm(input.float(), running_mean, running_var, weight, bias, training, momentum,
                              eps).to(input.dtype)
        raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of Float"
                           if input.dtype == dtypes.float32 else "mixed dtype (CPU): all inputs must share same datatype.")
    xp = get_array_module(x)
    if not training:
        invstd = (1 / xp.sqrt(running_var.array + eps)).astype(x.dtype, copy=False)
        return BatchNorm.apply(input, weight, bias, mean=running_mean.array.copy(), invstd=invstd, training=False)
    count = x.size // x.shape[1]
    if count <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
    mean, var = batch_norm_stats(x)
    for running, stat in ((running_mean, mean), (running_var, var * (count / (count - 1)))):
        if running is not None:
            running.array *= 1 - momentum
            running.array += momentum * stat
            running._version[0] += 1
    invstd = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
    return BatchNorm.apply(input, weight, bias, mean=mean, invstd=invstd, training=True, count=count)


@autocast_op(cuda="float32")
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
    return LayerNorm.apply(input, weight, bias, dims=n, eps=eps)


@autocast_op(cuda="float32")
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each group of channels of each sample, then scale and shift per channel."""
    if input.array.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.array.ndim}")
    N, C = input.array.shape[:2]
    if C % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(input.array.shape)} and num_groups={num_groups}")
    for name, v in (("weight", weight), ("bias", bias)):
        if v is not None and (v.array.ndim != 1 or v.array.shape[0] != C):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of channels in input, but "
                               f"got {name} of shape {list(v.array.shape)} and input of shape "
                               f"{list(input.array.shape)}")
    if N * C // num_groups * math.prod(input.array.shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{[N * C // num_groups, num_groups] + list(input.array.shape[2:])}")
    grouped = input.reshape(N, num_groups, -1)
    out = Normalize.apply(grouped, axes=(2,), eps=eps).reshape(input.array.shape)
    shape = [1] * input.array.ndim
    shape[1] = C
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalise each channel of each sample over its spatial dims (use_input_stats; the running
    statistics, when given, move towards the batch's average of them) or with the running
    statistics: `F.instance_norm(images)` on (N, C, H, W)."""
    shape = list(input.array.shape)
    if use_input_stats and math.prod(shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {input.shape}")
    if not use_input_stats and (running_mean is None or running_var is None):
        raise RuntimeError("Expected running_mean and running_var to be defined when use_input_stats is false")
    N, C = shape[0], shape[1]
    _check_channel_vectors(C, N, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    axes = tuple(range(2, len(shape)))
    if running_mean is not None or running_var is not None:
        with no_grad():
            count = math.prod(shape[2:])
            for running, stat in ((running_mean, input.array.mean(axis=axes)),
                                  (running_var, input.array.var(axis=axes) * (count / (count - 1)))):
                if running is not None:
                    running.array[...] = (1 - momentum) * running.array + momentum * stat.mean(axis=0)
                    running._version[0] += 1
    out = Normalize.apply(input, axes=axes, eps=eps)
    channel = [1, C] + [1] * len(axes)
    if weight is not None:
        out = out * weight.reshape(channel)
    if bias is not None:
        out = out + bias.reshape(channel)
    return out


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) over the trailing `normalized_shape` dims, times weight; eps
    None is the machine epsilon of the computing dtype (float32 for half precisions):
    `F.rms_norm(x, (512,), weight)`."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    n = len(normalized_shape)
    if input.array.ndim < n:
        raise ValueError(f"Input tensor must have at least {n} dimensions, but got {input.array.ndim}")
    if input.array.shape[input.array.ndim - n:] != normalized_shape:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*{', '.join(map(str, normalized_shape))}], but got input of size"
                           f"{list(input.array.shape)}")
    if weight is not None and tuple(weight.array.shape) != normalized_shape:
        raise RuntimeError(f"Expected weight to be of same shape as normalized_shape, but got weight of shape "
                           f"{list(weight.array.shape)} and normalized_shape = {list(normalized_shape)}")
    x = input.float() if input.dtype in (dtypes.float16, dtypes.bfloat16) else input
    if eps is None:
        eps = float(np.finfo(x.array.dtype).eps)
    dims = tuple(range(input.array.ndim - n, input.array.ndim))
    out = (x * (x.square().mean(dims, keepdim=True) + eps).rsqrt()).to(input.dtype)
    return out if weight is None else out * weight


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha / size * sum of x^2 over `size` neighbouring channels)^beta (the window
    centred, zero-padded at the edges): `F.local_response_norm(x, 5)` on (N, C, *)."""
    dim = input.dim()
    if dim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality                          input (got {dim} dimensions)")
    if size <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got "
                           f"{'kH' if dim == 3 else 'kT'}: {size} {'kW: 1' if dim == 3 else 'kH: 1 kW: 1'}")
    if input.numel() == 0:
        return input
    C = input.shape[1]
    padded = pad(input.square(), [0, 0] * (dim - 2) + [size // 2, (size - 1) // 2])
    window = padded[:, 0:C]
    for i in range(1, size):
        window = window + padded[:, i:i + C]
    return input / (window * (alpha / size) + k).pow(beta)


# ---- activations ----

def _maybe_inplace(activation, input, inplace, **params):
    """activation(input), written into input when inplace (backward then reads the values from before)."""
    if not inplace:
        return activation(input, **params)
    return input._inplace(activation(input._inplace_input(), **params))


def relu(input, inplace=False):
    return ops.relu_(input) if inplace else ops.relu(input)


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


@autocast_op(cuda="float32")
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


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """softmax(-input, dim): `F.softmin(x, dim=1)`."""
    if dim is None:
        warnings.warn("Implicit dimension choice for softmin has been deprecated. Change the call to include dim=X "
                      "as an argument.", stacklevel=_stacklevel)
        dim = _softmax_dim(input.array.ndim)
    return ops.softmax(-input, dim, dtype=dtype)


def relu_(input):
    """relu written into input: `F.relu_(x)`."""
    return relu(input, inplace=True)


def leaky_relu_(input, negative_slope=0.01):
    return leaky_relu(input, negative_slope, inplace=True)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, inplace=True)


def elu_(input, alpha=1.0):
    return elu(input, alpha, inplace=True)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    """scale * elu(x, alpha) with the self-normalising constants: `F.selu(x)`."""
    return _maybe_inplace(_act.Elu.apply, input, inplace, alpha=_SELU_ALPHA, scale=_SELU_SCALE)


def selu_(input):
    return selu(input, inplace=True)


def celu(input, alpha=1.0, inplace=False):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1)): `F.celu(x, alpha=0.5)`."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _maybe_inplace(_act.Elu.apply, input, inplace, alpha=alpha, input_scale=1.0 / alpha)


def celu_(input, alpha=1.0):
    return celu(input, alpha, inplace=True)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Leaky ReLU with a random slope: in training each element <= 0 is multiplied by its own
    slope drawn uniformly from [lower, upper] (the gradient is that slope), in eval by the fixed
    slope (lower + upper) / 2: `F.rrelu(x, training=True)`."""
    if lower > upper:
        raise RuntimeError("Lower bound should be less than or equal to the upper bound")
    if not training:
        return leaky_relu(input, (lower + upper) / 2, inplace)
    from distml.random import rand
    x = input.array
    slopes = lower + (upper - lower) * rand(*x.shape, dtype=input.dtype, device=input.device).array
    noise = Tensor(get_array_module(x).where(x <= 0, slopes, 1).astype(x.dtype, copy=False))
    return input.mul_(noise) if inplace else input * noise


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return rrelu(input, lower, upper, training, inplace=True)


def threshold(input, threshold, value, inplace=False):
    """input where input > threshold, else value: `F.threshold(x, 0.1, 20.0)`."""
    return _maybe_inplace(_act.Threshold.apply, input, inplace, threshold=threshold, value=value)


def threshold_(input, threshold, value):
    return _maybe_inplace(_act.Threshold.apply, input, True, threshold=threshold, value=value)


@autocast_op(cpu="lower", cuda="lower")
def prelu(input, weight):
    """max(0, x) + weight * min(0, x) with one learnt slope, or one per channel (dim 1): `F.prelu(x, w)`."""
    if weight.array.ndim > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {weight.array.ndim}")
    count, ndim = weight.array.size, input.array.ndim
    if count != 1:
        if ndim == 0:
            raise RuntimeError("Not allow zero-dim input tensor.")
        channels = input.array.shape[1] if ndim >= 2 else 1
        if count != channels:
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                               f"{count} and channel size = {channels}.")
    slope = weight.reshape(()) if count == 1 else weight.reshape([count] + [1] * (ndim - 2))
    return ops.where(input > 0, input, slope * input)


def glu(input, dim=-1):
    """a * sigmoid(b) for the halves a, b of input along dim: `F.glu(x, dim=1)`."""
    if input.array.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    from distml.ops._util import wrap_dim
    dim = wrap_dim(dim, input.array.ndim)
    if input.array.shape[dim] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim} is size {input.array.shape[dim]}")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def mish(input, inplace=False):
    """x * tanh(softplus(x)): `F.mish(x)`."""
    return _maybe_inplace(_act.Mish.apply, input, inplace)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6: `F.hardswish(x)`."""
    return _maybe_inplace(_act.Hardswish.apply, input, inplace)


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6: `F.hardsigmoid(x)`."""
    return _maybe_inplace(_act.Hardsigmoid.apply, input, inplace)


def logsigmoid(input):
    """log(sigmoid(x)), computed without overflow: `F.logsigmoid(x)`."""
    return _act.LogSigmoid.apply(input)


def softsign(input):
    """x / (1 + |x|): `F.softsign(x)`."""
    return input / (input.abs() + 1)


def tanhshrink(input):
    """x - tanh(x): `F.tanhshrink(x)`."""
    return input - input.tanh()


def softshrink(input, lambd=0.5):
    """x - lambd above lambd, x + lambd below -lambd, 0 between: `F.softshrink(x, 0.5)`."""
    largest = float(np.finfo(input.array.dtype).max) if dtypes.is_float(input.array.dtype) else math.inf
    if not 0 <= lambd <= largest:
        raise RuntimeError(f"lambda must be in range [0, {largest:g}] for input dtype {_type_name(input)}, but "
                           f"found {lambd:g}")
    return _act.Softshrink.apply(input, lambd=lambd)


def hardshrink(input, lambd=0.5):
    """x outside [-lambd, lambd], 0 inside: `F.hardshrink(x, 0.5)`."""
    return _act.Hardshrink.apply(input, lambd=lambd)


# ---- losses ----

def _check_reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _reduce(loss, reduction):
    _check_reduction(reduction)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


@autocast_op(cpu="float32", cuda="float32")
def mse_loss(input, target, reduction="mean"):
    return _reduce((input - target).square(), reduction)


@autocast_op(cpu="float32", cuda="float32")
def l1_loss(input, target, reduction="mean"):
    return _reduce((input - target).abs(), reduction)


@autocast_op(cpu="float32", cuda="float32")
def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (d = input - target)."""
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:
        return l1_loss(input, target, reduction)
    d = (input - target).abs()
    return _reduce(ops.where(d < beta, d.square() * (0.5 / beta), d - 0.5 * beta), reduction)


@autocast_op(cpu="float32", cuda="float32")
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


@autocast_op(cpu="float32", cuda="float32")
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


@autocast_op(cpu="float32", cuda="float32")
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


@autocast_op(cpu="float32", cuda="banned")
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


@autocast_op(cpu="float32", cuda="float32")
def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """binary_cross_entropy(sigmoid(input), target) computed stably; pos_weight scales the
    positive term per class (broadcast over the last dim)."""
    _check_reduction(reduction)
    if target.array.shape != input.array.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    loss = _loss.BinaryCrossEntropyWithLogits.apply(input, target, weight=None if weight is None else weight.array,
                                                    pos_weight=None if pos_weight is None else pos_weight.array)
    return _reduce(loss, reduction)


@autocast_op(cpu="float32", cuda="float32")
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


@autocast_op(cpu="float32", cuda="float32")
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


@autocast_op(cpu="float32", cuda="float32")
def margin_ranking_loss(input1, input2, target, margin=0, reduction="mean"):
    """max(0, -target (input1 - input2) + margin), target +1 or -1: `F.margin_ranking_loss(s1, s2, y)`."""
    _check_reduction(reduction)
    if not input1.dim() == input2.dim() == target.dim():
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {input1.shape}, input2: {input2.shape}, target: {target.shape} ")
    return _reduce((-target * (input1 - input2) + margin).clamp_min(0), reduction)


@autocast_op(cpu="float32", cuda="float32")
def hinge_embedding_loss(input, target, margin=1.0, reduction="mean"):
    """input where target is 1, max(0, margin - input) where target is -1 (a value neither 1 nor
    -1 adds both terms, as PyTorch's): `F.hinge_embedding_loss(distances, y)`."""
    _check_reduction(reduction)
    loss = ops.where(target != 1, (margin - input).clamp_min(0), 0.0) + ops.where(target != -1, input, 0.0)
    return _reduce(loss, reduction)


@autocast_op(cpu="float32", cuda="float32")
def soft_margin_loss(input, target, reduction="mean"):
    """log(1 + exp(-target input)), target +1 or -1: `F.soft_margin_loss(scores, y)`."""
    _check_reduction(reduction)
    z = -target * input
    return _reduce(ops.logaddexp(z, zeros_like(z)), reduction)


def multilabel_soft_margin_loss(input, target, weight=None, reduction="mean"):
    """Binary cross-entropy on logits of each class, averaged over the last (class) dim:
    `F.multilabel_soft_margin_loss(logits, multi_hot)`."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    loss = ops.logaddexp(input, zeros_like(input)) - target * input  # -(t logsig(x) + (1 - t) logsig(-x))
    if weight is not None:
        loss = loss * weight
    loss = loss.sum(input.dim() - 1) / input.shape[-1]
    return _reduce(loss, reduction)


@autocast_op(cpu="float32", cuda="float32")
def cosine_embedding_loss(input1, input2, target, margin=0, reduction="mean"):
    """1 - cos(input1, input2) where target is 1, max(0, cos - margin) where it is -1; rows of
    (N, D) inputs with target (N,), or (D,) inputs with a 0-d target: `F.cosine_embedding_loss(a, b, y)`."""
    _check_reduction(reduction)
    dim = target.dim()
    if dim > 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if input1.dim() != dim + 1 or input2.dim() != dim + 1:
        raise RuntimeError(f"{dim}D target tensor expects {dim + 1}D input tensors, but found inputs with sizes "
                           f"{list(input1.shape)} and {list(input2.shape)}.")
    eps = 1e-12  # PyTorch's, added to each squared magnitude
    cos = (input1 * input2).sum(dim) / (((input1 * input1).sum(dim) + eps) * ((input2 * input2).sum(dim) + eps)).sqrt()
    loss = ops.where(target == 1, 1 - cos, 0.0) + ops.where(target == -1, (cos - margin).clamp_min(0), 0.0)
    return _reduce(loss, reduction)


def _check_triplet_dims(anchor, positive, negative):
    if not anchor.dim() == positive.dim() == negative.dim():
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {anchor.dim()}D, positive {positive.dim()}D, and negative "
                           f"{negative.dim()}D inputs")


@autocast_op(cpu="float32", cuda="float32")
def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, reduction="mean"):
    """max(0, margin + d(a, p) - d(a, n)) with d the p-norm pairwise distance; `swap` uses
    min(d(a, n), d(p, n)) as the negative distance: `F.triplet_margin_loss(a, p, n, margin=0.5)`."""
    _check_reduction(reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    _check_triplet_dims(anchor, positive, negative)
    return triplet_margin_with_distance_loss(
        anchor, positive, negative, distance_function=lambda x1, x2: pairwise_distance(x1, x2, p, eps),
        margin=margin, swap=swap, reduction=reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False,
                                      reduction="mean"):
    """triplet_margin_loss with any distance (default pairwise_distance):
    `F.triplet_margin_with_distance_loss(a, p, n, distance_function=lambda x, y: 1 - F.cosine_similarity(x, y))`."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    _check_triplet_dims(anchor, positive, negative)
    distance = distance_function or pairwise_distance
    dist_pos, dist_neg = distance(anchor, positive), distance(anchor, negative)
    if swap:
        dist_neg = ops.minimum(dist_neg, distance(positive, negative))
    return _reduce((margin + dist_pos - dist_neg).clamp_min(0), reduction)


def _margin_layout(name, input, target):
    """(input as (N, C), N, C), after PyTorch's checks of multi_margin_loss and multilabel_margin_loss."""
    shape = list(input.shape)
    if not (input.dim() == 0 or (input.dim() in (1, 2) and shape[-1] != 0)):
        raise RuntimeError(f"Expected non-empty vector or matrix with optional 0-dim batch size, but got: {shape}")
    if target.array.dtype != np.int64:
        raise RuntimeError(f"expected scalar type Long but found {_type_name(target)}")
    N, C = (shape[0], shape[1]) if input.dim() == 2 else (1, max(input.numel(), 1))
    if name == "multi_margin_loss" and not (target.dim() <= 1 and target.numel() == N):
        raise RuntimeError(f"multi_margin_loss: target tensor should be 1-D with size equal to the number of input "
                           f"samples (batch size). Expected target size [{N}], but got {list(target.shape)}. Input "
                           f"has shape {shape}.")
    if name == "multilabel_margin_loss" and (list(target.shape) != shape if input.dim() == 2 else
                                             not (target.dim() <= 1 and target.numel() == C)):
        raise RuntimeError(f"inconsistent target size: {list(target.shape)} for input of size: {shape}")
    return input.reshape(N, C), N, C


@autocast_op(cpu="float32", cuda="float32")
def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, reduction="mean"):
    """Multi-class hinge loss: per sample sum over classes i != y of max(0, margin - x[y] + x[i])^p,
    times weight[y], divided by the number of classes: `F.multi_margin_loss(scores, labels)`."""
    _check_reduction(reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.dim() != 1:
        raise ValueError("weight must be one-dimensional")
    x, N, C = _margin_layout("multi_margin_loss", input, target)
    if weight is not None and weight.numel() != C:
        raise RuntimeError(f"inconsistent weight size, expected {C} but got {list(weight.shape)}")
    y = target.array.reshape(N)
    if y.size and (y.min() < 0 or y.max() >= C):
        raise RuntimeError("target out of range")
    xp = get_array_module(y)
    others = Tensor((xp.arange(C)[None, :] != y[:, None]).astype(x.array.dtype))
    z = (margin - x.gather(1, Tensor(y[:, None])) + x).clamp_min(0)
    z = z if p == 1 else z.square()
    if weight is not None:
        z = z * weight[Tensor(y)].reshape(N, 1)
    return _reduce(((z * others).sum(1) / C).reshape(target.shape), reduction)


@autocast_op(cpu="float32", cuda="float32")
def multilabel_margin_loss(input, target, reduction="mean"):
    """Multi-label hinge loss: per sample sum over target classes j and non-target classes i of
    max(0, 1 - (x[j] - x[i])), divided by the number of classes. Each target row lists class
    indices and ends at the first -1: `F.multilabel_margin_loss(scores, torch.tensor([[3, 0, -1, 1]]))`."""
    _check_reduction(reduction)
    x, N, C = _margin_layout("multilabel_margin_loss", input, target)
    y = target.array.reshape(N, C)
    xp = get_array_module(y)
    if bool(((y < -1) | (y >= C)).any()):
        raise RuntimeError("argument #2 'target' is out of range")
    listed = xp.cumprod(y != -1, axis=1).astype(bool)  # the entries before the first -1
    safe = xp.where(listed, y, 0)
    is_target = ((xp.arange(C)[None, None, :] == safe[:, :, None]) & listed[:, :, None]).any(axis=1)
    pairs = Tensor((listed[:, :, None] & ~is_target[:, None, :]).astype(x.array.dtype))
    z = (1 - x.gather(1, Tensor(safe)).unsqueeze(2) + x.unsqueeze(1)).clamp_min(0)
    loss = (z * pairs).sum((1, 2)) / C
    return _reduce(loss if input.dim() == 2 else loss.reshape(()), reduction)


def _lengths(name, lengths, xp):
    values = lengths.array if isinstance(lengths, Tensor) else xp.asarray(lengths)
    values = xp.atleast_1d(values).astype(np.int64)
    if values.ndim != 1:
        raise RuntimeError(f"{name} must be of size batch_size")
    return values


@autocast_op(cpu="float32")
def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """Connectionist temporal classification loss of log_probs (T, N, C) (or (T, C) unbatched)
    against targets padded (N, S) or concatenated (sum(target_lengths),); 'mean' divides each
    sample's loss by its target length, then averages:
    `F.ctc_loss(logits.log_softmax(2), targets, input_lengths, target_lengths)`."""
    _check_reduction(reduction)
    if not dtypes.is_float(log_probs.array.dtype):
        raise NotImplementedError(f"\"ctc_loss_cpu\" not implemented for '{_type_name(log_probs)}'")
    xp = get_array_module(log_probs.array)
    unbatched = log_probs.dim() == 2
    lp = log_probs.unsqueeze(1) if unbatched else log_probs
    T, N, C = lp.shape
    target_array = targets.array.astype(np.int64)
    if unbatched:
        target_array = target_array.reshape(1, -1)
    input_lengths, target_lengths = _lengths("input_lengths", input_lengths, xp), _lengths("target_lengths",
                                                                                            target_lengths, xp)
    if not 0 <= blank < C:
        raise RuntimeError("blank must be in label range")
    for name, lengths in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if lengths.shape[0] != N:
            raise RuntimeError(f"{name} must be of size batch_size")
        if lengths.size and lengths.min() < 0:
            raise RuntimeError(f"Expected {name} to have value at least 0, but got value {int(lengths.min())} (while "
                               "checking arguments for ctc_loss_allocate_outputs)")
    where = " for argument #2 'targets' (while checking arguments for ctc_loss_allocate_outputs)"
    if target_array.ndim == 1:  # concatenated: split into padded rows
        total = int(target_lengths.sum())
        if target_array.shape[0] != total:
            raise RuntimeError(f"Expected tensor to have size {total} at dimension 0, but got size "
                               f"{target_array.shape[0]}{where}")
        width = int(target_lengths.max(initial=0))
        starts = xp.cumsum(target_lengths) - target_lengths
        position = starts[:, None] + xp.arange(width)[None, :]
        inside = xp.arange(width)[None, :] < target_lengths[:, None]
        target_array = xp.where(inside, target_array[xp.where(inside, position, 0)] if total else 0, 0)
    else:
        if target_array.shape[0] != N:
            raise RuntimeError(f"Expected tensor to have size {N} at dimension 0, but got size "
                               f"{target_array.shape[0]}{where}")
        longest = int(target_lengths.max(initial=0))
        if target_array.shape[1] < longest:
            raise RuntimeError(f"Expected tensor to have size at least {longest} at dimension 1, but got size "
                               f"{target_array.shape[1]}{where}")
    if input_lengths.size and input_lengths.max() > T:
        raise RuntimeError(f"Expected input_lengths to have value at most {T}, but got value "
                           f"{int(input_lengths.max())} (while checking arguments for ctc_loss_allocate_outputs)")
    inside = xp.arange(target_array.shape[1])[None, :] < target_lengths[:, None]
    if bool((inside & ((target_array < 0) | (target_array >= C))).any()):
        raise IndexError(f"ctc_loss: target index out of range [0, {C})")  # PyTorch's CPU kernel does not check
    loss = _loss.CTCLoss.apply(lp, target_array, input_lengths, target_lengths, blank=blank,
                               zero_infinity=zero_infinity)
    if reduction == "mean":
        return (loss / Tensor(xp.maximum(target_lengths, 1).astype(loss.array.dtype))).mean()
    if reduction == "sum":
        return loss.sum()
    return loss.reshape(()) if unbatched else loss


# ---- distances, normalization, one_hot ----

def normalize(input, p=2.0, dim=1, eps=1e-12):
    """input / max(||input||_p, eps) along `dim`: `F.normalize(x, dim=-1)` makes unit rows."""
    from distml.linalg import vector_norm
    return input / vector_norm(input, p, dim, keepdim=True).clamp_min(eps)


@autocast_op(cuda="float32")
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


from distml.nn.modules.transformer import scaled_dot_product_attention  # noqa: E402,F401  (defined with attention)
