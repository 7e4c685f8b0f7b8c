"""Transforms against torchvision's documented formulas (and torch's interpolate for Resize)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import distml
from distml.vision import transforms as T


@pytest.fixture
def image(rng):
    return rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def test_to_tensor_scales_uint8_and_transposes(image):
    out = T.ToTensor()(image)
    assert out.dtype == distml.float32 and out.shape == (3, 5, 7)
    np.testing.assert_allclose(out.numpy(), image.transpose(2, 0, 1).astype(np.float32) / 255, rtol=1e-7)
    gray = T.ToTensor()(image[:, :, 0])
    assert gray.shape == (1, 5, 7)
    floats = np.full((2, 2, 1), 3.0)
    assert T.ToTensor()(floats).numpy().max() == 3.0  # only uint8 is scaled
    with pytest.raises(TypeError, match="pic should be PIL Image or ndarray"):
        T.ToTensor()([1, 2])
    with pytest.raises(ValueError, match="pic should be 2/3 dimensional. Got 1 dimensions."):
        T.ToTensor()(np.zeros(3))


def test_normalize_formula_and_errors(rng):
    x = distml.tensor(rng.random((2, 3, 4, 4)).astype(np.float32))
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out = T.Normalize(mean, std)(x)
    expected = (x.numpy() - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    same = T.Normalize(mean, std, inplace=True)(x)
    assert same is x
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="std evaluated to zero after conversion to distml.float32"):
        T.Normalize((0,), (0,))(distml.zeros(1, 2, 2))
    with pytest.raises(TypeError, match="Input tensor should be a float tensor"):
        T.Normalize((0,), (1,))(distml.zeros(1, 2, 2, dtype=distml.uint8))
    with pytest.raises(ValueError, match=r"Expected tensor to be a tensor image of size \(..., C, H, W\)"):
        T.Normalize((0,), (1,))(distml.zeros(2, 2))


def test_compose_and_lambda(image):
    t = T.Compose([T.ToTensor(), T.Lambda(lambda x: x * 2)])
    np.testing.assert_allclose(t(image).numpy(), image.transpose(2, 0, 1) / 255 * 2, rtol=1e-6)
    with pytest.raises(TypeError, match="Argument lambd should be callable, got 'int'"):
        T.Lambda(3)


def test_horizontal_flip(image):
    assert np.array_equal(T.RandomHorizontalFlip(p=1.0)(image), image[:, ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(image) is image
    x = distml.tensor(image.transpose(2, 0, 1))
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x).numpy(), image.transpose(2, 0, 1)[:, :, ::-1])
    distml.manual_seed(0)
    flips = [T.RandomHorizontalFlip()(image) is not image for _ in range(200)]
    assert 70 < sum(flips) < 130


def test_center_crop(image):
    np.testing.assert_array_equal(T.CenterCrop((3, 4))(image), image[1:4, 2:6])  # round((5-3)/2), round((7-4)/2)
    x = distml.tensor(image.transpose(2, 0, 1))
    np.testing.assert_array_equal(T.CenterCrop(3)(x).numpy(), image.transpose(2, 0, 1)[:, 1:4, 2:5])
    padded = T.CenterCrop((7, 7))(image)  # larger than the image: zero padding, then the crop
    assert padded.shape == (7, 7, 3) and padded[0].sum() == 0 and np.array_equal(padded[1:6], image)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_random_crop_is_a_window_of_the_padded_image(image, mode):
    distml.manual_seed(1)
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)), mode=mode, **({"constant_values": 9} if mode == "constant" else {}))
    seen = set()
    for _ in range(30):
        out = T.RandomCrop((5, 7), padding=2, fill=9, padding_mode=mode)(image)
        assert out.shape == (5, 7, 3)
        matches = [(i, j) for i in range(5) for j in range(5) if np.array_equal(padded[i:i + 5, j:j + 7], out)]
        assert matches
        seen.add(matches[0])
    assert len(seen) > 5


def test_random_crop_options_and_errors(image):
    x = distml.tensor(image.transpose(2, 0, 1))
    assert T.RandomCrop((5, 7))(x).shape == (3, 5, 7)
    out = T.RandomCrop((8, 9), pad_if_needed=True)(image)
    assert out.shape == (8, 9, 3)
    out = T.RandomCrop(4, padding=(1, 2))(image)  # (left/right, top/bottom)
    assert out.shape == (4, 4, 3)
    with pytest.raises(ValueError, match=r"Required crop size \(6, 7\) is larger than input image size \(5, 7\)"):
        T.RandomCrop((6, 7))(image)
    with pytest.raises(ValueError, match="Padding mode should be either constant, edge, reflect or symmetric"):
        T.RandomCrop(3, padding=1, padding_mode="wrap")(image)


@pytest.mark.parametrize("size", [(3, 4), (10, 13), (5, 20), (2, 2), (17, 3)])
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_matches_torch_interpolate(rng, size, antialias):
    x = rng.standard_normal((2, 3, 6, 8))
    ours = T.Resize(size, antialias=antialias)(distml.tensor(x))
    theirs = F.interpolate(torch.from_numpy(x), size=size, mode="bilinear", align_corners=False, antialias=antialias)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
    nearest = T.Resize(size, interpolation=T.InterpolationMode.NEAREST)(distml.tensor(x))
    np.testing.assert_array_equal(nearest.numpy(), F.interpolate(torch.from_numpy(x), size=size, mode="nearest").numpy())


def test_resize_shorter_edge_and_uint8(image):
    assert T.Resize(10)(image).shape == (10, 14, 3)  # shorter edge 5 -> 10, 7 -> 14
    assert T.Resize(10, max_size=12)(image).shape == (8, 12, 3)
    x = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float64))[None]
    expected = F.interpolate(x, size=(3, 4), mode="bilinear", align_corners=False, antialias=True)[0]
    expected = expected.round().clamp(0, 255).numpy().transpose(1, 2, 0).astype(np.uint8)
    out = T.Resize((3, 4))(image)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="max_size = 10 must be strictly greater than the requested size"):
        T.Resize(10, max_size=10)(image)


def test_transforms_reproducible_under_manual_seed(image):
    t = T.Compose([T.RandomCrop(4, padding=1), T.RandomHorizontalFlip(), T.ToTensor()])
    distml.manual_seed(3)
    first = [t(image).numpy() for _ in range(5)]
    distml.manual_seed(3)
    for a in first:
        np.testing.assert_array_equal(t(image).numpy(), a)
