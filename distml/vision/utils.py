"""make_grid and save_image, with torchvision's rules.

    grid = make_grid(images, nrow=4, padding=2, normalize=True)   # (C, H', W')
    save_image(images, "samples.png", nrow=4)
"""
import math
import os

import distml
from distml.nn import functional as F
from distml.serialization import write_atomically
from distml.tensor import Tensor


def _normalized(t, value_range):
    low, high = value_range if value_range is not None else (float(t.min()), float(t.max()))
    return (t.clamp(min=low, max=high) - low) / max(high - low, 1e-5)


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False, pad_value=0.0):
    """Tile a (B, C, H, W) batch (or a list of (C, H, W) images) into one (C, H', W') image.

    `nrow` images per row, `padding` pixels of `pad_value` around and between them. One-channel
    images become three-channel. `normalize` maps `value_range` (default: the min and max, of the
    whole batch or, with `scale_each`, of each image) to [0, 1] after clamping to it. A single
    image comes back unpadded. Built from differentiable ops, so gradients flow to the images.
    """
    if not isinstance(tensor, Tensor):
        if not isinstance(tensor, list):
            raise TypeError(f"tensor or list of tensors expected, got {type(tensor)}")
        for t in tensor:
            if not isinstance(t, Tensor):
                raise TypeError(f"tensor or list of tensors expected, got a list containing {type(t)}")
        tensor = distml.stack(tensor, dim=0)
    if tensor.dim() == 2:  # one H x W image
        tensor = tensor.unsqueeze(0)
    if tensor.dim() == 3:  # one image
        if tensor.size(0) == 1:
            tensor = distml.cat((tensor, tensor, tensor), 0)
        tensor = tensor.unsqueeze(0)
    if tensor.dim() == 4 and tensor.size(1) == 1:
        tensor = distml.cat((tensor, tensor, tensor), 1)
    if tensor.dim() != 4:
        raise ValueError(f"Expected a (B, C, H, W) batch of images, got a tensor of shape {tuple(tensor.shape)}")
    if normalize:
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError("value_range has to be a tuple (min, max) if specified. min and max are numbers")
        if scale_each:
            tensor = distml.stack([_normalized(t, value_range) for t in tensor], dim=0)
        else:
            tensor = _normalized(tensor, value_range)
    if tensor.size(0) == 1:
        return tensor.squeeze(0)

    nmaps, channels, h, w = tensor.shape
    xmaps = min(nrow, nmaps)
    ymaps = int(math.ceil(nmaps / xmaps))
    if ymaps * xmaps > nmaps:  # blank cells fill the last row
        blank = distml.full((ymaps * xmaps - nmaps, channels, h, w), pad_value, dtype=tensor.dtype)
        tensor = distml.cat((tensor, blank), 0)
    # each cell gets `padding` above and to its left; the grid then gets it below and to its right
    cells = F.pad(tensor, (padding, 0, padding, 0), value=pad_value)
    grid = cells.reshape(ymaps, xmaps, channels, h + padding, w + padding).permute(2, 0, 3, 1, 4)
    grid = grid.reshape(channels, ymaps * (h + padding), xmaps * (w + padding))
    return F.pad(grid, (0, padding, 0, padding), value=pad_value)


def save_image(tensor, fp, format=None, **kwargs):
    """Write make_grid(tensor, **kwargs) as an 8-bit image file (PNG, JPEG, ... through Pillow).

    Values in [0, 1] map to 0..255 (rounded, clamped). `fp` is a path, whose extension picks the
    format unless `format` is given, or a writable binary file (then `format` is required, as in
    Pillow). A path is written atomically: to a temporary file beside it, then renamed over it.
    """
    from PIL import Image

    grid = make_grid(tensor, **kwargs).detach()
    array = (grid * 255 + 0.5).clamp(0, 255).permute(1, 2, 0).to(distml.uint8).cpu().numpy()
    image = Image.fromarray(array)
    if not isinstance(fp, (str, os.PathLike)):
        image.save(fp, format=format)
        return
    path = os.fspath(fp)
    extension = os.path.splitext(path)[1].lower()
    if format is None:
        Image.init()
        if extension not in Image.registered_extensions():
            raise ValueError(f"unknown file extension: {extension}")
        format = Image.registered_extensions()[extension]
    write_atomically(path, lambda out: image.save(out, format=format))
