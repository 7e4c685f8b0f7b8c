"""make_grid and save_image against torchvision's algorithm, written out here with torch ops."""
import io
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

import distml
from distml.vision.utils import make_grid, save_image


def torch_make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False, pad_value=0.0):
    """torchvision.utils.make_grid, step by step."""
    if isinstance(tensor, list):
        tensor = torch.stack(tensor, dim=0)
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() == 3:
        if tensor.size(0) == 1:
            tensor = torch.cat((tensor, tensor, tensor), 0)
        tensor = tensor.unsqueeze(0)
    if tensor.dim() == 4 and tensor.size(1) == 1:
        tensor = torch.cat((tensor, tensor, tensor), 1)
    if normalize:
        tensor = tensor.clone()

        def norm_range(t):
            low, high = value_range if value_range is not None else (float(t.min()), float(t.max()))
            t.clamp_(min=low, max=high)
            t.sub_(low).div_(max(high - low, 1e-5))
        if scale_each:
            for t in tensor:
                norm_range(t)
        else:
            norm_range(tensor)
    if tensor.size(0) == 1:
        return tensor.squeeze(0)
    nmaps = tensor.size(0)
    xmaps = min(nrow, nmaps)
    ymaps = int(math.ceil(float(nmaps) / xmaps))
    height, width = int(tensor.size(2) + padding), int(tensor.size(3) + padding)
    grid = tensor.new_full((tensor.size(1), height * ymaps + padding, width * xmaps + padding), pad_value)
    k = 0
    for y in range(ymaps):
        for x in range(xmaps):
            if k >= nmaps:
                break
            grid.narrow(1, y * height + padding, height - padding).narrow(2, x * width + padding,
                                                                          width - padding).copy_(tensor[k])
            k += 1
    return grid


@pytest.mark.parametrize("shape, kwargs", [
    ((5, 3, 4, 6), {}), ((5, 3, 4, 6), {"nrow": 2, "padding": 1, "pad_value": 0.5}),
    ((7, 1, 3, 3), {"nrow": 3, "padding": 0}), ((4, 2, 5, 2), {"nrow": 8, "padding": 3, "pad_value": -1.0}),
    ((1, 3, 4, 4), {"padding": 5}), ((1, 4, 4), {}), ((3, 4, 4), {"nrow": 1}), ((4, 5), {}),
    ((6, 3, 4, 4), {"normalize": True}), ((6, 3, 4, 4), {"normalize": True, "scale_each": True}),
    ((6, 3, 4, 4), {"normalize": True, "value_range": (-0.5, 0.5)}),
    ((3, 3, 4, 4), {"normalize": True, "value_range": (-0.5, 0.5), "scale_each": True, "nrow": 2}),
])
def test_make_grid_matches_torchvision(rng, shape, kwargs):
    x = rng.standard_normal(shape)
    expected = torch_make_grid(torch.from_numpy(x), **kwargs).numpy()
    got = make_grid(distml.tensor(x), **kwargs)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_make_grid_list_dtype_and_gradient(rng):
    images = [rng.standard_normal((3, 2, 3)) for _ in range(3)]
    expected = torch_make_grid([torch.from_numpy(a) for a in images], nrow=2).numpy()
    leaves = [distml.tensor(a, requires_grad=True) for a in images]
    grid = make_grid(leaves, nrow=2)
    np.testing.assert_array_equal(grid.detach().numpy(), expected)
    (grid * grid).sum().backward()
    np.testing.assert_allclose(leaves[1].grad.numpy(), 2 * images[1])  # each pixel appears once in the grid
    pixels = rng.integers(0, 256, (3, 3, 4, 4), dtype=np.uint8)
    out = make_grid(distml.tensor(pixels), pad_value=255)
    assert out.dtype == distml.uint8
    np.testing.assert_array_equal(out.numpy(), torch_make_grid(torch.from_numpy(pixels), pad_value=255).numpy())


def test_make_grid_errors():
    with pytest.raises(TypeError, match="tensor or list of tensors expected, got <class 'numpy.ndarray'>"):
        make_grid(np.zeros((2, 3, 4, 4)))
    with pytest.raises(TypeError, match="tensor or list of tensors expected, got a list containing <class 'int'>"):
        make_grid([distml.zeros(3, 2, 2), 3])
    with pytest.raises(TypeError, match=r"value_range has to be a tuple \(min, max\)"):
        make_grid(distml.zeros(2, 3, 2, 2), normalize=True, value_range=[0, 1])


def torch_pixels(x, **kwargs):
    """What torchvision's save_image writes: round(255 * grid) clamped, as H x W x C uint8."""
    grid = torch_make_grid(torch.from_numpy(x), **kwargs)
    return grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()


def test_save_image_png_exact(tmp_path, rng):
    x = rng.random((5, 3, 4, 6)) * 1.2 - 0.1  # some values outside [0, 1] are clamped
    save_image(distml.tensor(x), tmp_path / "grid.png", nrow=3, padding=1)
    with Image.open(tmp_path / "grid.png") as image:
        assert image.format == "PNG" and image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), torch_pixels(x, nrow=3, padding=1))
    assert os.listdir(tmp_path) == ["grid.png"]  # the temporary file was renamed over the target


def test_save_image_jpeg_format_and_file_objects(tmp_path, rng):
    x = rng.random((2, 3, 8, 8))
    save_image(distml.tensor(x), tmp_path / "grid.jpg")
    reference = io.BytesIO()  # torchvision's pixels through the same JPEG encoder
    Image.fromarray(torch_pixels(x)).save(reference, format="JPEG")
    with Image.open(tmp_path / "grid.jpg") as image, Image.open(reference) as expected:
        assert image.format == "JPEG" and image.size == (8 * 2 + 2 * 3, 8 + 2 * 2)
        np.testing.assert_array_equal(np.asarray(image), np.asarray(expected))
    save_image(distml.tensor(x), tmp_path / "grid.data", format="PNG")
    with Image.open(tmp_path / "grid.data") as image:
        assert image.format == "PNG"
    buffer = io.BytesIO()
    save_image(distml.tensor(x[0]), buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        np.testing.assert_array_equal(np.asarray(image), torch_pixels(x[0]))


def test_save_image_errors_leave_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match="unknown file extension: .nope"):
        save_image(distml.zeros(3, 2, 2), tmp_path / "a.nope")
    (tmp_path / "old.png").write_bytes(b"previous")
    with pytest.raises(KeyError):
        save_image(distml.zeros(3, 2, 2), tmp_path / "old.png", format="NOT-A-FORMAT")
    assert os.listdir(tmp_path) == ["old.png"] and (tmp_path / "old.png").read_bytes() == b"previous"
