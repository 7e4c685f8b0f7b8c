"""Image transforms with torchvision's names and formulas.

Images come as numpy arrays laid out like PIL images (H x W or H x W x C, usually uint8)
or as distml Tensors laid out (..., C, H, W); PIL images are accepted where Pillow is
installed and are read as numpy arrays. Geometric transforms keep the input's kind.
Random choices are drawn from distml's global RNG, so `distml.manual_seed` (and the
per-worker seeding of DataLoader workers) makes them reproducible.

    transform = Compose([RandomCrop(28, padding=2), ToTensor(), Normalize((0.1307,), (0.3081,))])
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
    BILINEAR = "bilinear"


class Compose:
    """Apply transforms one after another: `Compose([ToTensor(), Normalize(mean, std)])`."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        return type(self).__name__ + "(" + "".join(f"\n    {t}" for t in self.transforms) + "\n)"


class Lambda:
    """A user function as a transform: `Lambda(lambda x: x * 2)`."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return f"{type(self).__name__}()"


def _as_array(pic):
    """numpy array of an image given as a numpy array or (when Pillow is installed) a PIL image."""
    if isinstance(pic, np.ndarray):
        return pic
    if type(pic).__module__.startswith("PIL."):
        return np.asarray(pic)
    raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")


class ToTensor:
    """H x W x C (or H x W) image -> C x H x W float tensor; uint8 values are scaled to [0, 1].

    Other dtypes are only transposed (torchvision's rule), e.g. a float image keeps its values.
    """

    def __call__(self, pic):
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

    def __repr__(self):
        return f"{type(self).__name__}()"


class Normalize:
    """(x - mean[c]) / std[c] for each channel c of a (..., C, H, W) float tensor.

        Normalize((0.1307,), (0.3081,))
    """

    def __init__(self, mean, std, inplace=False):
        self.mean, self.std, self.inplace = mean, std, inplace

    def __call__(self, tensor):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"Input tensor should be a distml tensor. Got {type(tensor)}.")
        if not tensor.is_floating_point():
            raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
        if tensor.ndim < 3:
            raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got tensor.size() = "
                             f"{tuple(tensor.shape)}.")
        xp = get_array_module(tensor.array)
        mean = Tensor(xp.asarray(self.mean, dtype=tensor.array.dtype).reshape(-1, 1, 1))
        std = Tensor(xp.asarray(self.std, dtype=tensor.array.dtype).reshape(-1, 1, 1))
        if (std.array == 0).any():
            raise ValueError(f"std evaluated to zero after conversion to {tensor.dtype}, leading to division by zero.")
        out = (tensor - mean) / std
        return tensor.copy_(out) if self.inplace else out

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


# ---- geometry on either kind of image ----

def _layout(img):
    """(array, height axis, is_tensor) for a (..., H, W) tensor or an H x W (x C) array image."""
    if isinstance(img, Tensor):
        if img.ndim < 2:
            raise ValueError(f"Expected an image tensor of size (..., H, W), got {tuple(img.shape)}")
        return img.array, img.ndim - 2, True
    array = _as_array(img)
    if array.ndim not in (2, 3):
        raise ValueError(f"Expected an H x W or H x W x C image array, got shape {array.shape}")
    return array, 0, False


def _size(img):
    array, h_axis, _ = _layout(img)
    return array.shape[h_axis], array.shape[h_axis + 1]


def _rewrap(array, is_tensor):
    return Tensor(array) if is_tensor else array


def _pair(size, name="size"):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if len(size) == 1:
        return int(size[0]), int(size[0])
    if len(size) != 2:
        raise ValueError(f"Please provide only two dimensions (h, w) for {name}.")
    return int(size[0]), int(size[1])


def crop(img, top, left, height, width):
    """img[top:top + height, left:left + width] in its spatial axes."""
    array, h_axis, is_tensor = _layout(img)
    index = [slice(None)] * array.ndim
    index[h_axis] = slice(top, top + height)
    index[h_axis + 1] = slice(left, left + width)
    return _rewrap(array[tuple(index)], is_tensor)


_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


def pad(img, padding, fill=0, padding_mode="constant"):
    """Pad the spatial axes: padding is an int (all sides), (left/right, top/bottom) or (left, top, right, bottom)."""
    if padding_mode not in _PAD_MODES:
        raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
    if isinstance(padding, numbers.Number):
        left = top = right = bottom = int(padding)
    elif len(padding) == 2:
        left = right = int(padding[0])
        top = bottom = int(padding[1])
    elif len(padding) == 4:
        left, top, right, bottom = (int(p) for p in padding)
    else:
        raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a {len(padding)} element tuple")
    array, h_axis, is_tensor = _layout(img)
    xp = get_array_module(array)
    widths = [(0, 0)] * array.ndim
    widths[h_axis], widths[h_axis + 1] = (top, bottom), (left, right)
    extra = {"constant_values": fill} if padding_mode == "constant" else {}
    return _rewrap(xp.pad(array, widths, mode=_PAD_MODES[padding_mode], **extra), is_tensor)


def hflip(img):
    array, h_axis, is_tensor = _layout(img)
    return _rewrap(get_array_module(array).flip(array, h_axis + 1).copy(), is_tensor)


def center_crop(img, output_size):
    th, tw = _pair(output_size)
    h, w = _size(img)
    if th > h or tw > w:  # too small: pad with zeros first, as torchvision does
        img = pad(img, [(tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
                        (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0])
        h, w = _size(img)
    return crop(img, int(round((h - th) / 2.0)), int(round((w - tw) / 2.0)), th, tw)


def _resize_weights(in_size, out_size, mode, antialias):
    """The (out_size, in_size) matrix that resamples one axis, with PyTorch's interpolate rules
    (align_corners=False); antialias widens the triangle filter by the scale when shrinking."""
    scale = in_size / out_size
    weights = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    if mode is InterpolationMode.NEAREST:
        weights[rows, np.minimum(np.floor(rows * scale).astype(int), in_size - 1)] = 1.0
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


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    """Resample to `size` ((h, w), or an int for the shorter edge keeping the aspect ratio).

    Bilinear follows `torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
    antialias=antialias)`, which is what torchvision uses on tensors; integer images are
    rounded and clamped back to their dtype.
    """
    interpolation = InterpolationMode(interpolation.value if isinstance(interpolation, InterpolationMode)
                                      else interpolation)
    h, w = _size(img)
    oh, ow = _output_size(h, w, size, max_size)
    array, h_axis, is_tensor = _layout(img)
    if (oh, ow) == (h, w):
        return img
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
    return _rewrap(xp.ascontiguousarray(work.astype(array.dtype)), is_tensor)


# ---- the transform classes ----

class RandomHorizontalFlip:
    """Mirror left-right with probability p."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        return hflip(img) if distml.rand(1).item() < self.p else img

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class CenterCrop:
    """The central size (h, w) region (int: square); smaller images are zero-padded first."""

    def __init__(self, size):
        self.size = _pair(size)

    def __call__(self, img):
        return center_crop(img, self.size)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size})"


class RandomCrop:
    """A random size (h, w) region, after optional padding.

        RandomCrop(32, padding=4)                      # CIFAR-style
        RandomCrop(28, pad_if_needed=True, padding_mode="reflect")
    """

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = _pair(size)
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = padding, pad_if_needed, fill, padding_mode

    @staticmethod
    def get_params(img, output_size):
        """(top, left, height, width) of a random crop of output_size."""
        h, w = _size(img)
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size {(h, w)}")
        if (h, w) == (th, tw):
            return 0, 0, h, w
        top = distml.randint(0, h - th + 1, (1,)).item()
        left = distml.randint(0, w - tw + 1, (1,)).item()
        return top, left, th, tw

    def __call__(self, img):
        if self.padding is not None:
            img = pad(img, self.padding, self.fill, self.padding_mode)
        h, w = _size(img)
        th, tw = self.size
        if self.pad_if_needed and w < tw:
            img = pad(img, [tw - w, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and h < th:
            img = pad(img, [0, th - h], self.fill, self.padding_mode)
        return crop(img, *self.get_params(img, self.size))

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class Resize:
    """Resample to size ((h, w), or an int for the shorter edge) with bilinear (default) or nearest.

    On tensors it equals torchvision's Resize (interpolate with align_corners=False and, by
    default, antialias=True when shrinking). On array images torchvision would call PIL, whose
    bilinear filter is the same antialiased triangle filter but computed in 8-bit fixed point,
    so values can differ from PIL's by one grey level.
    """

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
        self.size, self.interpolation, self.max_size, self.antialias = size, interpolation, max_size, antialias

    def __call__(self, img):
        return resize(img, self.size, self.interpolation, self.max_size, self.antialias)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation.value})"
