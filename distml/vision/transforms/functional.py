"""The functions behind the transforms, with torchvision.transforms.functional's names and formulas.

Images come as PIL images (where Pillow is installed), as distml Tensors laid out
(..., C, H, W), or as numpy arrays laid out like PIL images (H x W or H x W x C, usually
uint8). Each function keeps the input's kind: PIL images go through the PIL calls torchvision
makes, tensors through torchvision's tensor formulas (on their arrays: transforms prepare data
and record no gradient).

    import distml.vision.transforms.functional as TF
    TF.rotate(TF.pad(img, 4, padding_mode="reflect"), 30.0)
"""
import enum
import math
import numbers

import numpy as np

import distml
from distml._backend import get_array_module
from distml.tensor import Tensor

class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _as_array(pic):
    """numpy array of an image given as a numpy array or (when Pillow is installed) a PIL image."""
    if isinstance(pic, np.ndarray):
        return pic
    if type(pic).__module__.startswith("PIL."):
        return np.asarray(pic)
    raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")

def to_tensor(pic):
    """H x W x C (or H x W) image -> C x H x W float tensor; uint8 values are scaled to [0, 1].

    Other dtypes are only transposed (torchvision's rule), e.g. a float image keeps its values.
    """
    array = _as_array(pic)
    if array.ndim not in (2, 3):
        raise ValueError(f"pic should be 2/3 dimensional. Got {array.ndim} dimensions.")
    if array.ndim == 2:
        array = array[:, :, None]
    chw = np.ascontiguousarray(array.transpose(2, 0, 1))
    if chw.dtype == np.uint8:
        dtype = distml.get_default_dtype().np
        return Tensor(chw.astype(dtype) / dtype.type(255))
    return Tensor(chw)


def normalize(tensor, mean, std, inplace=False):
    """(x - mean[c]) / std[c] for each channel c of a (..., C, H, W) float tensor."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"Input tensor should be a distml tensor. Got {type(tensor)}.")
    if not tensor.is_floating_point():
        raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
    if tensor.ndim < 3:
        raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got tensor.size() = "
                         f"{tuple(tensor.shape)}.")
    xp = get_array_module(tensor.array)
    mean = Tensor(xp.asarray(mean, dtype=tensor.array.dtype).reshape(-1, 1, 1))
    std = Tensor(xp.asarray(std, dtype=tensor.array.dtype).reshape(-1, 1, 1))
    if (std.array == 0).any():
        raise ValueError(f"std evaluated to zero after conversion to {tensor.dtype}, leading to division by zero.")
    out = (tensor - mean) / std
    return tensor.copy_(out) if inplace else out


# ---- the three kinds of image: PIL images, H x W (x C) arrays laid out like them, (..., C, H, W) tensors ----

def _is_pil(img):
    return type(img).__module__.startswith("PIL.")


def _layout(img):
    """(array, height axis, kind) of an image; kind is "tensor", "pil" or "array"."""
    if isinstance(img, Tensor):
        if img.ndim < 2:
            raise ValueError(f"Expected an image tensor of size (..., H, W), got {tuple(img.shape)}")
        return img.array, img.ndim - 2, "tensor"
    kind = "pil" if _is_pil(img) else "array"
    array = _as_array(img)
    if array.ndim not in (2, 3):
        raise ValueError(f"Expected an H x W or H x W x C image array, got shape {array.shape}")
    return array, 0, kind


def _from_array(array, like):
    """A PIL image of `like`'s mode holding array (H x W (x C)), or array itself for the other kinds."""
    from PIL import Image

    array = np.ascontiguousarray(array)
    if array.dtype == np.uint8 and like.mode not in ("1",):
        out = Image.frombytes(like.mode, (array.shape[1], array.shape[0]), array.tobytes())
        if like.mode == "P":
            out.putpalette(like.getpalette())
        return out
    return Image.fromarray(array)


def _rewrap(array, kind, like=None):
    if kind == "tensor":
        return Tensor(array)
    return _from_array(array, like) if kind == "pil" else array


def get_dimensions(img):
    """[channels, height, width] of an image."""
    if _is_pil(img):
        return [len(img.getbands()), img.height, img.width]
    array, h_axis, kind = _layout(img)
    if kind == "tensor":
        channels = array.shape[-3] if array.ndim > 2 else 1
    else:
        channels = array.shape[2] if array.ndim == 3 else 1
    return [channels, array.shape[h_axis], array.shape[h_axis + 1]]


def _size(img):
    return tuple(get_dimensions(img)[1:])


def _pair(size, name="size"):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if len(size) == 1:
        return int(size[0]), int(size[0])
    if len(size) != 2:
        raise ValueError(f"Please provide only two dimensions (h, w) for {name}.")
    return int(size[0]), int(size[1])


# ---- geometry ----

def _ltrb(padding):
    if isinstance(padding, numbers.Number):
        return (int(padding),) * 4
    if len(padding) == 1:
        return (int(padding[0]),) * 4
    if len(padding) == 2:
        return int(padding[0]), int(padding[1]), int(padding[0]), int(padding[1])
    if len(padding) == 4:
        return tuple(int(p) for p in padding)
    raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a {len(padding)} element tuple")


def pad(img, padding, fill=0, padding_mode="constant"):
    """Pad the spatial axes: padding is an int (all sides), (left/right, top/bottom) or (left, top, right, bottom).

    padding_mode: constant (with `fill`, a number or, for PIL and array images, one value per
    channel), edge, reflect (without repeating the edge) or symmetric (repeating it).
    """
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
    left, top, right, bottom = _ltrb(padding)
    array, h_axis, kind = _layout(img)
    if kind == "tensor" and not isinstance(fill, numbers.Number):
        raise TypeError("Got inappropriate fill arg")
    xp = get_array_module(array)
    widths = [(0, 0)] * array.ndim
    widths[h_axis], widths[h_axis + 1] = (top, bottom), (left, right)
    if padding_mode != "constant":
        return _rewrap(xp.pad(array, widths, mode=padding_mode), kind, img)
    shape = list(array.shape)
    shape[h_axis] += top + bottom
    shape[h_axis + 1] += left + right
    out = xp.empty(shape, dtype=array.dtype)
    out[...] = xp.asarray(0 if fill is None else fill, dtype=array.dtype)  # a tuple fills channel by channel
    index = [slice(None)] * array.ndim
    index[h_axis] = slice(top, top + array.shape[h_axis])
    index[h_axis + 1] = slice(left, left + array.shape[h_axis + 1])
    out[tuple(index)] = array
    return _rewrap(out, kind, img)


def crop(img, top, left, height, width):
    """The height x width region whose top-left pixel is (top, left); parts outside the image are zeros."""
    if _is_pil(img):
        return img.crop((left, top, left + width, top + height))
    array, h_axis, kind = _layout(img)
    h, w = array.shape[h_axis], array.shape[h_axis + 1]
    right, bottom = left + width, top + height
    index = [slice(None)] * array.ndim
    index[h_axis] = slice(max(top, 0), max(bottom, 0))
    index[h_axis + 1] = slice(max(left, 0), max(right, 0))
    out = _rewrap(array[tuple(index)], kind)
    outside = [max(-left + min(0, right), 0), max(-top + min(0, bottom), 0), max(right - max(w, left), 0),
               max(bottom - max(h, top), 0)]
    return pad(out, outside, fill=0) if any(outside) else out


def hflip(img):
    """Mirror left-right."""
    if _is_pil(img):
        from PIL import Image
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    array, h_axis, kind = _layout(img)
    return _rewrap(get_array_module(array).flip(array, h_axis + 1).copy(), kind)


def vflip(img):
    """Mirror top-bottom."""
    if _is_pil(img):
        from PIL import Image
        return img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    array, h_axis, kind = _layout(img)
    return _rewrap(get_array_module(array).flip(array, h_axis).copy(), kind)


def center_crop(img, output_size):
    """The central output_size region; an image smaller than it is zero-padded first, as torchvision does."""
    th, tw = _pair(output_size)
    h, w = _size(img)
    if th > h or tw > w:
        img = pad(img, [(tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
                        (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0])
        h, w = _size(img)
        if (h, w) == (th, tw):
            return img
    return crop(img, int(round((h - th) / 2.0)), int(round((w - tw) / 2.0)), th, tw)


def _resize_weights(in_size, out_size, mode, antialias):
    """The (out_size, in_size) matrix that resamples one axis, with PyTorch's interpolate rules
    (align_corners=False); antialias widens the triangle filter by the scale when shrinking."""
    scale = in_size / out_size
    weights = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    if mode is InterpolationMode.NEAREST:
        weights[rows, np.minimum(np.floor(rows * scale).astype(int), in_size - 1)] = 1.0
    elif mode is InterpolationMode.NEAREST_EXACT:
        weights[rows, np.minimum(np.floor((rows + 0.5) * scale).astype(int), in_size - 1)] = 1.0
    elif antialias and scale > 1:
        center = (rows + 0.5) * scale
        j = np.arange(in_size)
        w = np.maximum(0.0, 1.0 - np.abs((j[None, :] - center[:, None] + 0.5) / scale))
        lo = np.maximum((center - scale + 0.5).astype(int), 0)
        hi = np.minimum((center + scale + 0.5).astype(int), in_size)
        w[(j[None, :] < lo[:, None]) | (j[None, :] >= hi[:, None])] = 0.0
        weights = w / w.sum(axis=1, keepdims=True)
    else:
        source = np.maximum((rows + 0.5) * scale - 0.5, 0.0)
        i0 = np.minimum(np.floor(source).astype(int), in_size - 1)
        i1 = np.minimum(i0 + 1, in_size - 1)
        frac = source - i0
        np.add.at(weights, (rows, i0), 1.0 - frac)
        np.add.at(weights, (rows, i1), frac)
    return weights


def _output_size(h, w, size, max_size):
    if isinstance(size, numbers.Number) or len(size) == 1:
        requested = int(size if isinstance(size, numbers.Number) else size[0])
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = requested, int(requested * long / short)
        if max_size is not None:
            if max_size <= requested:
                raise ValueError(f"max_size = {max_size} must be strictly greater than the requested size for the "
                                 f"smaller edge size = {size}")
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_long, new_short) if w <= h else (new_short, new_long)
    if max_size is not None:
        raise ValueError("max_size should only be passed if size specifies the length of the smaller edge, i.e. "
                         "size should be an int or a sequence of length 1 in torchscript mode.")
    return int(size[0]), int(size[1])


def _mode(interpolation):
    return InterpolationMode(interpolation.value if isinstance(interpolation, InterpolationMode) else interpolation)


def _pil_filter(mode):
    from PIL import Image

    if mode is InterpolationMode.NEAREST_EXACT:
        raise ValueError("InterpolationMode.NEAREST_EXACT is only supported for tensor images, not PIL images")
    return getattr(Image.Resampling, mode.name)


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    """Resample to `size` ((h, w), or an int for the shorter edge keeping the aspect ratio).

    PIL images go through PIL's resize, as torchvision does. On tensors and arrays, nearest,
    nearest-exact and bilinear follow `torch.nn.functional.interpolate(align_corners=False,
    antialias=antialias)`, which is what torchvision uses on tensors; integer images are rounded
    and clamped back to their dtype.
    """
    interpolation = _mode(interpolation)
    h, w = _size(img)
    oh, ow = _output_size(h, w, size, max_size)
    if (oh, ow) == (h, w):
        return img
    if _is_pil(img):
        return img.resize((ow, oh), _pil_filter(interpolation))
    if interpolation not in (InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT, InterpolationMode.BILINEAR):
        raise NotImplementedError(f"resize of tensor and array images with {interpolation}: only NEAREST, "
                                  f"NEAREST_EXACT and BILINEAR are implemented (PIL images support every mode)")
    array, h_axis, kind = _layout(img)
    xp = get_array_module(array)
    wh = xp.asarray(_resize_weights(h, oh, interpolation, antialias))
    ww = xp.asarray(_resize_weights(w, ow, interpolation, antialias))
    work = array.astype(np.float64) if array.dtype.kind != "f" else array
    work = xp.moveaxis(xp.tensordot(wh.astype(work.dtype), work, axes=([1], [h_axis])), 0, h_axis)
    work = xp.moveaxis(xp.tensordot(ww.astype(work.dtype), work, axes=([1], [h_axis + 1])), 0, h_axis + 1)
    if array.dtype.kind in "iub":
        info = np.iinfo(array.dtype) if array.dtype.kind != "b" else None
        work = xp.round(work)
        if info is not None:
            work = xp.clip(work, info.min, info.max)
    return _rewrap(xp.ascontiguousarray(work.astype(array.dtype)), kind)


def resized_crop(img, top, left, height, width, size, interpolation=InterpolationMode.BILINEAR, antialias=True):
    """crop, then resize to size."""
    return resize(crop(img, top, left, height, width), size, interpolation, antialias=antialias)


def _inverse_rotation(center, angle):
    """torchvision's inverse affine matrix (6 numbers) of a rotation by `angle` degrees about center (pixels,
    relative to the image centre), mapping output to input coordinates."""
    rot = math.radians(angle)
    a, b, c, d = math.cos(rot), -math.sin(rot), math.sin(rot), math.cos(rot)
    cx, cy = center
    matrix = [d, -b, 0.0, -c, a, 0.0]
    matrix[2] += matrix[0] * -cx + matrix[1] * -cy + cx
    matrix[5] += matrix[3] * -cx + matrix[4] * -cy + cy
    return matrix


def _expanded_size(matrix, w, h):
    """(w, h) of the canvas holding the whole rotated image, with torchvision's rounding."""
    points = np.array([[-0.5 * w, -0.5 * h, 1.0], [-0.5 * w, 0.5 * h, 1.0], [0.5 * w, 0.5 * h, 1.0],
                       [0.5 * w, -0.5 * h, 1.0]], dtype=np.float32)
    moved = points @ np.array(matrix, dtype=np.float32).reshape(2, 3).T
    low, high = moved.min(0) + np.float32([w * 0.5, h * 0.5]), moved.max(0) + np.float32([w * 0.5, h * 0.5])
    tol = np.float32(1e-4)  # so that 1e-15 above an integer does not round up
    size = np.ceil(np.trunc(high / tol) * tol) - np.floor(np.trunc(low / tol) * tol)
    return int(size[0]), int(size[1])


def _sample(array, ix, iy, mode):
    """array (..., C, H, W) sampled at pixel coordinates ix, iy (oh x ow), zero outside; plus the in-image mask
    sampled the same way."""
    xp = get_array_module(array)
    h, w = array.shape[-2:]
    ones = xp.ones((h, w), dtype=array.dtype)
    if mode is InterpolationMode.NEAREST:
        x, y = xp.rint(ix).astype(np.int64), xp.rint(iy).astype(np.int64)
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        xc, yc = xp.clip(x, 0, w - 1), xp.clip(y, 0, h - 1)
        return array[..., yc, xc] * inside, ones[yc, xc] * inside
    x0, y0 = xp.floor(ix).astype(np.int64), xp.floor(iy).astype(np.int64)
    fx, fy = (ix - x0).astype(array.dtype), (iy - y0).astype(array.dtype)
    out, mask = 0, 0
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                           (1, 1, fx * fy)):
        x, y = x0 + dx, y0 + dy
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        xc, yc = xp.clip(x, 0, w - 1), xp.clip(y, 0, h - 1)
        out = out + array[..., yc, xc] * (weight * inside)
        mask = mask + ones[yc, xc] * (weight * inside)
    return out, mask


def _parse_fill(fill, img):
    """A PIL image's fill colour: one value per band (a number is repeated), ints unless the mode is "F"."""
    bands = len(img.getbands())
    fill = 0 if fill is None else fill
    if isinstance(fill, numbers.Number) and bands > 1:
        fill = (fill,) * bands
    if isinstance(fill, (list, tuple)):
        if len(fill) == 1:
            fill = tuple(fill) * bands
        elif len(fill) != bands:
            raise ValueError(f"The number of elements in 'fill' does not match the number of bands of the image "
                             f"({len(fill)} != {bands})")
        fill = tuple(fill)
    if img.mode != "F":
        fill = tuple(int(x) for x in fill) if isinstance(fill, tuple) else int(fill)
    return fill


def rotate(img, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=None):
    """Rotate by `angle` degrees counter-clockwise about `center` ((x, y) pixels; default the image centre).

    PIL images go through PIL's rotate, as torchvision does. Tensors follow torchvision's tensor
    path (an inverse affine grid sampled with grid_sample's align_corners=False rules, nearest
    or bilinear); pixels from outside the image take `fill` (default 0).
    """
    interpolation = _mode(interpolation)
    if _is_pil(img):
        return img.rotate(angle, resample=_pil_filter(interpolation), expand=expand, center=center,
                          fillcolor=_parse_fill(fill, img))
    if interpolation not in (InterpolationMode.NEAREST, InterpolationMode.BILINEAR):
        raise NotImplementedError(f"rotate of tensor images with {interpolation}: only NEAREST and BILINEAR are "
                                  f"implemented (PIL images support every mode)")
    if not isinstance(img, Tensor):
        raise TypeError(f"img should be PIL Image or Tensor. Got {type(img)}")
    array = img.array
    xp = get_array_module(array)
    h, w = array.shape[-2:]
    center_f = [0.0, 0.0] if center is None else [1.0 * (c - s * 0.5) for c, s in zip(center, [w, h])]
    matrix = _inverse_rotation(center_f, -angle)  # torchvision negates: its affine and rotate disagree on direction
    ow, oh = _expanded_size(matrix, w, h) if expand else (w, h)
    work_dtype = array.dtype if array.dtype.kind == "f" else np.dtype(np.float32)
    theta = xp.asarray(matrix, dtype=work_dtype).reshape(2, 3)
    # output pixel centres relative to the output's centre, mapped through theta, then to input pixel indices
    xs = xp.linspace(-ow * 0.5 + 0.5, ow * 0.5 - 0.5, ow, dtype=work_dtype)
    ys = xp.linspace(-oh * 0.5 + 0.5, oh * 0.5 - 0.5, oh, dtype=work_dtype)[:, None]
    half = xp.asarray([0.5 * w, 0.5 * h], dtype=work_dtype)
    gx = (xs * theta[0, 0] + ys * theta[0, 1] + theta[0, 2]) / half[0]
    gy = (xs * theta[1, 0] + ys * theta[1, 1] + theta[1, 2]) / half[1]
    ix, iy = ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2
    out, mask = _sample(array.astype(work_dtype), ix, iy, interpolation)
    if fill is not None:
        fill_values = xp.asarray(fill if isinstance(fill, (list, tuple)) else [fill], dtype=work_dtype)
        fill_image = fill_values.reshape(-1, 1, 1) if array.ndim > 2 else fill_values.reshape(1, 1)
        if interpolation is InterpolationMode.NEAREST:
            out = xp.where(mask < 0.5, fill_image, out)
        else:
            out = out * mask + (1.0 - mask) * fill_image
    if array.dtype.kind != "f":
        out = xp.round(out)
    return Tensor(xp.ascontiguousarray(out.astype(array.dtype)))


# ---- colour ----

def _tensor_only(img):
    if not isinstance(img, Tensor):
        raise TypeError(f"img should be PIL Image or Tensor. Got {type(img)}")
    if img.ndim < 3:
        raise TypeError(f"Input image tensor should have at least 3 dimensions, but found {img.ndim}")
    return img.array


def _channels(array, permitted):
    c = array.shape[-3]
    if c not in permitted:
        raise TypeError(f"Input image tensor permitted channel values are {permitted}, but found {c}")
    return c


def _work_dtype(array):
    """The dtype torch computes `uint8 tensor * python float` in: the tensor's own when floating, else float32."""
    return array.dtype if array.dtype.kind == "f" else np.dtype(np.float32)


def _grayscale_array(array):
    r, g, b = (array[..., i, :, :].astype(_work_dtype(array)) for i in range(3))
    dt = _work_dtype(array).type
    return (dt(0.2989) * r + dt(0.587) * g + dt(0.114) * b).astype(array.dtype)[..., None, :, :]


def rgb_to_grayscale(img, num_output_channels=1):
    """Luma 0.2989 R + 0.587 G + 0.114 B (PIL's "L" conversion for PIL images), in 1 or 3 channels."""
    if num_output_channels not in (1, 3):
        raise ValueError("num_output_channels should be either 1 or 3")
    if _is_pil(img):
        gray = img.convert("L")
        if num_output_channels == 3:
            from PIL import Image
            gray = Image.merge("RGB", (gray, gray, gray))
        return gray
    array = _tensor_only(img)
    gray = _grayscale_array(array) if _channels(array, [1, 3]) == 3 else array.copy()
    if num_output_channels == 3:  # to the input's shape: a one-channel image stays one channel, as in torchvision
        gray = get_array_module(array).broadcast_to(gray, array.shape).copy()
    return Tensor(gray)


to_grayscale = rgb_to_grayscale


def _blend(image, other, ratio):
    """ratio * image + (1 - ratio) * other, clamped to the image's range and cast back (truncating) to its dtype."""
    xp = get_array_module(image)
    dt = _work_dtype(image).type
    bound = 1.0 if image.dtype.kind == "f" else 255.0
    out = dt(ratio) * image.astype(dt) + dt(1.0 - ratio) * xp.asarray(other).astype(dt)
    return xp.clip(out, 0, bound).astype(image.dtype)


def adjust_brightness(img, brightness_factor):
    """Blend with black: 0 gives black, 1 the image, 2 twice as bright."""
    if brightness_factor < 0:
        raise ValueError(f"brightness_factor ({brightness_factor}) is not non-negative.")
    if _is_pil(img):
        from PIL import ImageEnhance
        return ImageEnhance.Brightness(img).enhance(brightness_factor)
    array = _tensor_only(img)
    _channels(array, [1, 3])
    return Tensor(_blend(array, get_array_module(array).zeros_like(array), brightness_factor))


def adjust_contrast(img, contrast_factor):
    """Blend with the mean grey level: 0 gives solid grey, 1 the image."""
    if contrast_factor < 0:
        raise ValueError(f"contrast_factor ({contrast_factor}) is not non-negative.")
    if _is_pil(img):
        from PIL import ImageEnhance
        return ImageEnhance.Contrast(img).enhance(contrast_factor)
    array = _tensor_only(img)
    source = _grayscale_array(array) if _channels(array, [3, 1]) == 3 else array
    mean = source.astype(_work_dtype(array)).mean(axis=(-3, -2, -1), keepdims=True)
    return Tensor(_blend(array, mean, contrast_factor))


def adjust_saturation(img, saturation_factor):
    """Blend with the greyscale image: 0 gives grey, 1 the image, 2 twice as saturated."""
    if saturation_factor < 0:
        raise ValueError(f"saturation_factor ({saturation_factor}) is not non-negative.")
    if _is_pil(img):
        from PIL import ImageEnhance
        return ImageEnhance.Color(img).enhance(saturation_factor)
    array = _tensor_only(img)
    if _channels(array, [1, 3]) == 1:
        return img
    return Tensor(_blend(array, _grayscale_array(array), saturation_factor))


def _rgb2hsv(img):
    xp = get_array_module(img)
    r, g, b = img[..., 0, :, :], img[..., 1, :, :], img[..., 2, :, :]
    maxc, minc = img.max(axis=-3), img.min(axis=-3)
    eqc = maxc == minc
    cr = maxc - minc
    ones = xp.ones_like(maxc)
    s = cr / xp.where(eqc, ones, maxc)
    divisor = xp.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = xp.fmod(((hr + hg + hb) / 6.0 + 1.0), 1.0).astype(img.dtype)
    return h, s, maxc


def _hsv2rgb(h, s, v):
    xp = get_array_module(h)
    i = xp.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int32) % 6
    p = xp.clip(v * (1.0 - s), 0.0, 1.0)
    q = xp.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = xp.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]  # (r, g, b) for each sector
    channels = [sum(xp.where(i == k, rgb[c], 0) for k, rgb in enumerate(choices)) for c in range(3)]
    return xp.stack(channels, axis=-3).astype(h.dtype)


def adjust_hue(img, hue_factor):
    """Shift every pixel's hue by hue_factor turns (in [-0.5, 0.5]) in HSV space."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"hue_factor ({hue_factor}) is not in [-0.5, 0.5].")
    if _is_pil(img):
        from PIL import Image
        if img.mode in ("L", "1", "I", "F"):
            return img
        h, s, v = img.convert("HSV").split()
        np_h = np.array(h, dtype=np.uint8) + np.uint8(int(hue_factor * 255) % 256)  # wraps around, as a hue does
        return Image.merge("HSV", (Image.fromarray(np_h), s, v)).convert(img.mode)
    array = _tensor_only(img)
    if _channels(array, [1, 3]) == 1:
        return img
    work = convert_image_dtype(img, distml.float32).array  # float64 images too, as torchvision does
    h, s, v = _rgb2hsv(work)
    shifted = Tensor(_hsv2rgb(((h + hue_factor) % 1.0).astype(work.dtype), s, v))
    return convert_image_dtype(shifted, img.dtype)


# ---- conversions ----

def _max_value(np_dtype):
    return 1.0 if np_dtype.kind == "f" else np.iinfo(np_dtype).max


def convert_image_dtype(image, dtype=distml.float32):
    """A tensor image in another dtype, rescaling values: floats span [0, 1], integers [0, their max]."""
    if not isinstance(image, Tensor):
        raise TypeError("Input img should be Tensor Image")
    if image.dtype == dtype:
        return image
    source, target = image.array.dtype, dtype.np
    if source.kind == "f":
        if target.kind == "f":
            return image.to(dtype)
        if (source == np.float32 and target in (np.int32, np.int64)) or (source == np.float64 and target == np.int64):
            raise RuntimeError(f"The cast from {image.dtype} to {dtype} cannot be performed safely.")
        return image.mul(_max_value(target) + 1.0 - 1e-3).to(dtype)
    input_max = float(_max_value(source))
    if target.kind == "f":
        return image.to(dtype) / input_max
    output_max = float(_max_value(target))
    if input_max > output_max:
        return distml.div(image, int((input_max + 1) // (output_max + 1)), rounding_mode="floor").to(dtype)
    return image.to(dtype) * int((output_max + 1) // (input_max + 1))


def pil_to_tensor(pic):
    """A PIL image as a (C, H, W) tensor of its own dtype (no scaling)."""
    if not _is_pil(pic):
        raise TypeError(f"pic should be PIL Image. Got {type(pic)}")
    array = np.array(pic, copy=True)
    return Tensor(np.ascontiguousarray(array.reshape(pic.height, pic.width, -1).transpose(2, 0, 1)))


_MODES_BY_CHANNELS = {2: ["LA"], 3: ["RGB", "YCbCr", "HSV"], 4: ["RGBA", "CMYK", "RGBX"]}
_SINGLE_CHANNEL_MODES = {np.uint8: "L", np.int16: "I;16", np.int32: "I", np.float32: "F"}


def to_pil_image(pic, mode=None):
    """A (C, H, W) tensor or H x W x C array as a PIL image; float tensors are scaled by 255 to uint8 first
    (unless mode="F"). The mode follows from the channels and dtype, as in torchvision."""
    from PIL import Image

    if isinstance(pic, Tensor):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        if pic.ndim == 2:
            pic = pic.unsqueeze(0)
        if pic.shape[-3] > 4:
            raise ValueError(f"pic should not have > 4 channels. Got {pic.shape[-3]} channels.")
        if pic.is_floating_point() and mode != "F":
            pic = pic.mul(255).byte()
        npimg = np.transpose(pic.cpu().numpy(), (1, 2, 0))
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        npimg = pic[:, :, None] if pic.ndim == 2 else pic
        if npimg.shape[-1] > 4:
            raise ValueError(f"pic should not have > 4 channels. Got {npimg.shape[-1]} channels.")
    else:
        raise TypeError(f"pic should be Tensor or ndarray. Got {type(pic)}.")
    channels = npimg.shape[2]
    if channels == 1:
        npimg = npimg[:, :, 0]
        expected = _SINGLE_CHANNEL_MODES.get(npimg.dtype.type)
        if mode is not None and mode != expected:
            raise ValueError(f"Incorrect mode ({mode}) supplied for input type {npimg.dtype}. Should be {expected}")
        if expected is None:
            raise TypeError(f"Input type {npimg.dtype} is not supported")
        return Image.fromarray(np.ascontiguousarray(npimg))
    permitted = _MODES_BY_CHANNELS[channels]
    if mode is not None and mode not in permitted:
        raise ValueError(f"Only modes {permitted} are supported for {channels}D inputs")
    if npimg.dtype != np.uint8:
        raise TypeError(f"Input type {npimg.dtype} is not supported")
    mode = mode or permitted[0]
    return Image.frombytes(mode, (npimg.shape[1], npimg.shape[0]), np.ascontiguousarray(npimg).tobytes())
