"""The transforms added for torchvision parity: tensor paths against torchvision's formulas written out with torch
ops, PIL paths against the PIL calls torchvision makes, random transforms for their structure and distribution."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

import distml
import distml.vision.transforms.functional as TF
from distml.vision import transforms as T


@pytest.fixture
def pixels(rng):
    return rng.integers(0, 256, (3, 6, 8), dtype=np.uint8)


@pytest.fixture
def pil(pixels):
    return Image.fromarray(pixels.transpose(1, 2, 0).copy())


# ---- torchvision's tensor formulas, in torch ----

def t_gray(img):
    r, g, b = img.unbind(dim=-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype).unsqueeze(dim=-3)


def t_blend(img1, img2, ratio):
    bound = 1.0 if img1.is_floating_point() else 255.0
    return (ratio * img1 + (1.0 - ratio) * img2).clamp(0, bound).to(img1.dtype)


def t_contrast(img, factor):
    dtype = img.dtype if torch.is_floating_point(img) else torch.float32
    return t_blend(img, torch.mean(t_gray(img).to(dtype), dim=(-3, -2, -1), keepdim=True), factor)


def t_rgb2hsv(img):
    r, g, b = img.unbind(dim=-3)
    maxc, minc = torch.max(img, dim=-3).values, torch.min(img, dim=-3).values
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_divisor, (maxc - g) / cr_divisor, (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod(((hr + hg + hb) / 6.0 + 1.0), 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def t_hsv2rgb(img):
    h, s, v = img.unbind(dim=-3)
    i = torch.floor(h * 6.0)
    f = (h * 6.0) - i
    i = i.to(dtype=torch.int32)
    p = torch.clamp((v * (1.0 - s)), 0.0, 1.0)
    q = torch.clamp((v * (1.0 - s * f)), 0.0, 1.0)
    t = torch.clamp((v * (1.0 - s * (1.0 - f))), 0.0, 1.0)
    i = i % 6
    mask = i.unsqueeze(dim=-3) == torch.arange(6).view(-1, 1, 1)
    a1 = torch.stack((v, q, p, p, t, v), dim=-3)
    a2 = torch.stack((t, v, v, q, p, p), dim=-3)
    a3 = torch.stack((p, p, t, v, v, q), dim=-3)
    return torch.einsum("...ijk, ...xijk -> ...xjk", mask.to(dtype=img.dtype), torch.stack((a1, a2, a3), dim=-4))


def t_convert(image, dtype):
    if image.dtype == dtype:
        return image
    if image.is_floating_point():
        if dtype.is_floating_point:
            return image.to(dtype)
        return image.mul(float(torch.iinfo(dtype).max) + 1.0 - 1e-3).to(dtype)
    input_max = float(torch.iinfo(image.dtype).max)
    if dtype.is_floating_point:
        return image.to(dtype) / input_max
    output_max = float(torch.iinfo(dtype).max)
    if input_max > output_max:
        return torch.div(image, int((input_max + 1) // (output_max + 1)), rounding_mode="floor").to(dtype)
    return image.to(dtype) * int((output_max + 1) // (input_max + 1))


def t_hue(img, factor):
    orig = img.dtype
    hsv = t_rgb2hsv(t_convert(img, torch.float32))
    h, s, v = hsv.unbind(dim=-3)
    return t_convert(t_hsv2rgb(torch.stack(((h + factor) % 1.0, s, v), dim=-3)), orig)


def t_rotate(img, angle, mode="nearest", expand=False, center=None, fill=None):
    """torchvision's F.rotate on tensors: inverse affine matrix, affine grid, grid_sample, fill through a mask."""
    h, w = img.shape[-2:]
    cx, cy = (0.0, 0.0) if center is None else (center[0] - w * 0.5, center[1] - h * 0.5)
    rot = math.radians(-angle)
    a, b, c, d = math.cos(rot), -math.sin(rot), math.sin(rot), math.cos(rot)
    m = [d, -b, 0.0, -c, a, 0.0]
    m[2] += m[0] * -cx + m[1] * -cy + cx
    m[5] += m[3] * -cx + m[4] * -cy + cy
    ow, oh = w, h
    if expand:
        pts = torch.tensor([[-0.5 * w, -0.5 * h, 1.0], [-0.5 * w, 0.5 * h, 1.0], [0.5 * w, 0.5 * h, 1.0],
                            [0.5 * w, -0.5 * h, 1.0]])
        new_pts = torch.matmul(pts, torch.tensor(m, dtype=torch.float).view(2, 3).T)
        lo, hi = new_pts.aminmax(dim=0)
        lo, hi = lo + torch.tensor((w * 0.5, h * 0.5)), hi + torch.tensor((w * 0.5, h * 0.5))
        size = torch.ceil((hi / 1e-4).trunc_() * 1e-4) - torch.floor((lo / 1e-4).trunc_() * 1e-4)
        ow, oh = int(size[0]), int(size[1])
    dtype = img.dtype if img.is_floating_point() else torch.float32
    theta = torch.tensor(m, dtype=dtype).reshape(1, 2, 3)
    base = torch.empty(1, oh, ow, 3, dtype=dtype)
    base[..., 0].copy_(torch.linspace(-ow * 0.5 + 0.5, ow * 0.5 + 0.5 - 1, steps=ow))
    base[..., 1].copy_(torch.linspace(-oh * 0.5 + 0.5, oh * 0.5 + 0.5 - 1, steps=oh).unsqueeze_(-1))
    base[..., 2].fill_(1)
    grid = base.view(1, oh * ow, 3).bmm(theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=dtype))
    x = img.unsqueeze(0).to(dtype)
    if fill is not None:
        x = torch.cat((x, torch.ones((1, 1, h, w), dtype=dtype)), dim=1)
    out = F.grid_sample(x, grid.view(1, oh, ow, 2), mode=mode, padding_mode="zeros", align_corners=False)
    if fill is not None:
        mask, out = out[:, -1:].expand_as(out[:, :-1]), out[:, :-1]
        fill_img = torch.tensor(fill, dtype=dtype).view(1, len(fill), 1, 1).expand_as(out)
        if mode == "nearest":
            out = torch.where(mask < 0.5, fill_img, out)
        else:
            out = out * mask + (1.0 - mask) * fill_img
    out = out[0]
    return out if img.is_floating_point() else torch.round(out).to(img.dtype)


def ours(x):
    return distml.tensor(x.numpy() if isinstance(x, torch.Tensor) else x)


# ---- colour ----

@pytest.mark.parametrize("factor", [0.0, 0.4, 1.0, 1.7])
def test_brightness_contrast_saturation_match_torchvision_on_tensors(pixels, rng, factor):
    floats = torch.from_numpy(rng.random((2, 3, 5, 4)))
    for x in (torch.from_numpy(pixels), floats):
        np.testing.assert_array_equal(TF.adjust_brightness(ours(x), factor).numpy(),
                                      t_blend(x, torch.zeros_like(x), factor).numpy())
        np.testing.assert_allclose(TF.adjust_saturation(ours(x), factor).numpy(),
                                   t_blend(x, t_gray(x), factor).numpy(), rtol=1e-12, atol=1e-12)
        got, expected = TF.adjust_contrast(ours(x), factor).numpy(), t_contrast(x, factor).numpy()
        if x.dtype == torch.uint8:  # the float32 mean can differ in its last bit, then truncate to another level
            assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("factor", [-0.5, -0.23, 0.0, 0.1, 0.5])
def test_hue_matches_torchvision_on_tensors(pixels, rng, factor):
    x = torch.from_numpy(rng.random((3, 5, 4)))
    np.testing.assert_allclose(TF.adjust_hue(ours(x), factor).numpy(), t_hue(x, factor).numpy(), rtol=1e-5, atol=1e-6)
    got = TF.adjust_hue(ours(torch.from_numpy(pixels)), factor).numpy()
    expected = t_hue(torch.from_numpy(pixels), factor).numpy()
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_grayscale_on_tensors_and_pil(pixels, pil):
    x = torch.from_numpy(pixels)
    np.testing.assert_array_equal(T.Grayscale()(ours(x)).numpy(), t_gray(x).numpy())
    three = T.Grayscale(num_output_channels=3)(ours(x)).numpy()
    assert three.shape == (3, 6, 8) and np.array_equal(three[0], three[2])
    gray = T.Grayscale()(pil)
    assert gray.mode == "L" and np.array_equal(np.asarray(gray), np.asarray(pil.convert("L")))
    assert T.Grayscale(3)(pil).mode == "RGB"
    assert TF.rgb_to_grayscale(distml.ones(1, 2, 2), 3).shape == (1, 2, 2)  # torchvision expands to the input's shape
    with pytest.raises(TypeError, match=r"permitted channel values are \[1, 3\], but found 2"):
        TF.rgb_to_grayscale(distml.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="num_output_channels should be either 1 or 3"):
        TF.rgb_to_grayscale(distml.zeros(3, 4, 4), 2)


def test_colour_on_pil_uses_pils_enhancers(pil):
    for ours_fn, enhancer in ((TF.adjust_brightness, ImageEnhance.Brightness),
                              (TF.adjust_contrast, ImageEnhance.Contrast), (TF.adjust_saturation, ImageEnhance.Color)):
        np.testing.assert_array_equal(np.asarray(ours_fn(pil, 1.3)), np.asarray(enhancer(pil).enhance(1.3)))
    shifted = TF.adjust_hue(pil, 0.25)
    h, s, v = pil.convert("HSV").split()
    expected = Image.merge("HSV", (Image.fromarray(np.asarray(h) + np.uint8(63)), s, v)).convert("RGB")
    np.testing.assert_array_equal(np.asarray(shifted), np.asarray(expected))
    assert TF.adjust_hue(pil.convert("L"), 0.3).mode == "L"
    with pytest.raises(ValueError, match=r"hue_factor \(0.6\) is not in \[-0.5, 0.5\]."):
        TF.adjust_hue(pil, 0.6)


def test_color_jitter_ranges_order_and_errors(pixels):
    jitter = T.ColorJitter(brightness=0.5, contrast=(0.2, 0.3), saturation=0, hue=0.1)
    assert jitter.brightness == (0.5, 1.5) and jitter.contrast == (0.2, 0.3) and jitter.saturation is None
    assert jitter.hue == (-0.1, 0.1)
    assert repr(jitter) == "ColorJitter(brightness=(0.5, 1.5), contrast=(0.2, 0.3), saturation=None, hue=(-0.1, 0.1))"
    distml.manual_seed(0)
    draws = [T.ColorJitter.get_params(jitter.brightness, jitter.contrast, None, jitter.hue) for _ in range(200)]
    assert all(sorted(d[0].tolist()) == [0, 1, 2, 3] for d in draws) and len({tuple(d[0].tolist()) for d in draws}) > 10
    assert all(0.5 <= d[1] <= 1.5 and 0.2 <= d[2] <= 0.3 and d[3] is None and -0.1 <= d[4] <= 0.1 for d in draws)
    # the transform applies exactly those factors in that order
    x = ours(torch.from_numpy(pixels))
    distml.manual_seed(5)
    order, b, c, _, h = T.ColorJitter.get_params(jitter.brightness, jitter.contrast, None, jitter.hue)
    expected = x
    for i in order.tolist():
        expected = {0: lambda y: TF.adjust_brightness(y, b), 1: lambda y: TF.adjust_contrast(y, c), 2: lambda y: y,
                    3: lambda y: TF.adjust_hue(y, h)}[i](expected)
    distml.manual_seed(5)
    np.testing.assert_array_equal(jitter(x).numpy(), expected.numpy())
    assert T.ColorJitter()(x) is x
    with pytest.raises(ValueError, match="If brightness is a single number, it must be non negative."):
        T.ColorJitter(brightness=-1)
    with pytest.raises(ValueError, match=r"hue values should be between \(-0.5, 0.5\), but got \[-0.7, 0.7\]."):
        T.ColorJitter(hue=0.7)
    with pytest.raises(TypeError, match="saturation should be a single number or a list/tuple with length 2."):
        T.ColorJitter(saturation=(1, 2, 3))


def test_random_grayscale(pixels, pil):
    x = ours(torch.from_numpy(pixels))
    out = T.RandomGrayscale(p=1.0)(x).numpy()
    assert out.shape == (3, 6, 8) and np.array_equal(out[0], t_gray(torch.from_numpy(pixels))[0].numpy())
    assert T.RandomGrayscale(p=0.0)(x) is x and T.RandomGrayscale(p=1.0)(pil).mode == "RGB"
    distml.manual_seed(1)
    changed = sum(T.RandomGrayscale(p=0.3)(x) is not x for _ in range(300))
    assert 60 < changed < 120


# ---- geometry ----

@pytest.mark.parametrize("angle", [0.0, 30.0, -77.5, 90.0, 180.0])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_rotate_matches_torchvision_on_tensors(rng, angle, mode):
    x = torch.from_numpy(rng.random((2, 7, 9)))
    for expand, center, fill in ((False, None, None), (True, None, [0.3, 0.7]), (False, (2, 5), [1.0, 0.5])):
        got = TF.rotate(ours(x), angle, T.InterpolationMode(mode), expand=expand, center=center, fill=fill).numpy()
        expected = t_rotate(x, angle, mode, expand, center, fill).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_rotate_uint8_tensors_and_pil(pixels, pil):
    x = torch.from_numpy(pixels)
    got = TF.rotate(ours(x), 33.0, T.InterpolationMode.BILINEAR, fill=[10.0, 20.0, 30.0]).numpy()
    expected = t_rotate(x, 33.0, "bilinear", fill=[10.0, 20.0, 30.0]).numpy()
    assert got.dtype == np.uint8 and np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    np.testing.assert_array_equal(np.asarray(TF.rotate(pil, 40, expand=True, fill=7)),
                                  np.asarray(pil.rotate(40, resample=Image.Resampling.NEAREST, expand=True,
                                                        fillcolor=(7, 7, 7))))


def test_random_rotation(pixels):
    t = T.RandomRotation((10, 20), interpolation=T.InterpolationMode.BILINEAR, fill=1)
    assert repr(t) == "RandomRotation(degrees=[10.0, 20.0], interpolation=bilinear, expand=False, fill=1)"
    distml.manual_seed(2)
    angles = [T.RandomRotation.get_params(t.degrees) for _ in range(100)]
    assert all(10 <= a <= 20 for a in angles) and np.std(angles) > 2
    x = ours(torch.from_numpy(pixels.astype(np.float64) / 255))
    distml.manual_seed(4)
    angle = T.RandomRotation.get_params(t.degrees)
    distml.manual_seed(4)
    np.testing.assert_array_equal(t(x).numpy(), TF.rotate(x, angle, T.InterpolationMode.BILINEAR,
                                                         fill=[1.0, 1.0, 1.0]).numpy())
    assert T.RandomRotation(5).degrees == [-5.0, 5.0]
    with pytest.raises(ValueError, match="If degrees is a single number, it must be positive."):
        T.RandomRotation(-3)
    with pytest.raises(ValueError, match="degrees should be a sequence of length 2."):
        T.RandomRotation([1, 2, 3])


@pytest.mark.parametrize("mode, torch_mode", [("edge", "replicate"), ("reflect", "reflect"), ("constant", "constant")])
def test_pad_matches_torch_on_tensors(rng, mode, torch_mode):
    x = rng.random((2, 3, 5, 6))
    got = T.Pad((1, 2, 3, 4), fill=0.5, padding_mode=mode)(distml.tensor(x)).numpy()
    extra = {"value": 0.5} if mode == "constant" else {}
    expected = F.pad(torch.from_numpy(x), (1, 3, 2, 4), mode=torch_mode, **extra).numpy()
    np.testing.assert_array_equal(got, expected)


def test_pad_symmetric_pil_and_errors(pixels, pil):
    x = distml.tensor(pixels)
    sym = TF.pad(x, [2, 1], padding_mode="symmetric").numpy()
    np.testing.assert_array_equal(sym, np.pad(pixels, ((0, 0), (1, 1), (2, 2)), mode="symmetric"))
    padded = T.Pad(2, fill=(10, 20, 30))(pil)
    assert padded.size == (12, 10) and padded.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(padded)[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(np.asarray(padded)[2:-2, 2:-2], np.asarray(pil))
    np.testing.assert_array_equal(np.asarray(T.Pad([3], padding_mode="reflect")(pil)),
                                  np.pad(np.asarray(pil), ((3, 3), (3, 3), (0, 0)), mode="reflect"))
    palette = pil.convert("P")
    assert TF.pad(palette, 1).mode == "P" and TF.pad(palette, 1).getpalette() == palette.getpalette()
    assert repr(T.Pad(1)) == "Pad(padding=1, fill=0, padding_mode=constant)"
    with pytest.raises(ValueError, match="Padding must be an int or a 1, 2, or 4 element tuple, not a 3 element"):
        T.Pad((1, 2, 3))
    with pytest.raises(TypeError, match="Got inappropriate padding arg"):
        T.Pad("1")
    with pytest.raises(TypeError, match="Got inappropriate fill arg"):
        TF.pad(x, 1, fill=(1, 2, 3))


def test_flips_crop_and_center_crop_on_pil(pixels, pil):
    array = np.asarray(pil)
    np.testing.assert_array_equal(np.asarray(T.RandomVerticalFlip(p=1.0)(pil)), array[::-1])
    np.testing.assert_array_equal(np.asarray(T.RandomHorizontalFlip(p=1.0)(pil)), array[:, ::-1])
    np.testing.assert_array_equal(TF.vflip(distml.tensor(pixels)).numpy(), pixels[:, ::-1])
    assert isinstance(T.CenterCrop(4)(pil), Image.Image)
    np.testing.assert_array_equal(np.asarray(T.CenterCrop((4, 5))(pil)), array[1:5, 2:7])
    # crops reaching outside the image are zero-filled, for tensors as for PIL
    np.testing.assert_array_equal(TF.crop(distml.tensor(pixels), -1, 6, 3, 4).numpy(),
                                  np.asarray(pil.crop((6, -1, 10, 2))).transpose(2, 0, 1))
    distml.manual_seed(0)
    assert T.RandomCrop(3, padding=1)(pil).size == (3, 3)


def test_resize_pil_uses_pil_filters(pil):
    for mode, pil_filter in ((T.InterpolationMode.BILINEAR, Image.Resampling.BILINEAR),
                             (T.InterpolationMode.BICUBIC, Image.Resampling.BICUBIC),
                             (T.InterpolationMode.NEAREST, Image.Resampling.NEAREST)):
        np.testing.assert_array_equal(np.asarray(T.Resize((4, 11), interpolation=mode)(pil)),
                                      np.asarray(pil.resize((11, 4), pil_filter)))
    assert T.Resize(3)(pil).size == (4, 3)
    x = torch.rand(1, 3, 6, 8, dtype=torch.float64)
    np.testing.assert_array_equal(T.Resize((4, 11), interpolation=T.InterpolationMode.NEAREST_EXACT)(ours(x)).numpy(),
                                  F.interpolate(x, size=(4, 11), mode="nearest-exact").numpy())
    with pytest.raises(NotImplementedError, match="InterpolationMode.BICUBIC"):
        T.Resize((4, 4), interpolation=T.InterpolationMode.BICUBIC)(ours(x))
    assert repr(T.Resize(3)) == "Resize(size=3, interpolation=bilinear, max_size=None, antialias=True)"
    with pytest.raises(TypeError, match="Size should be int or sequence. Got <class 'float'>"):
        T.Resize(3.5)
    with pytest.raises(ValueError, match="If size is a sequence, it should have 1 or 2 values"):
        T.Resize((1, 2, 3))


def test_random_resized_crop(rng):
    x = rng.random((3, 40, 60))
    t = T.RandomResizedCrop((8, 10), scale=(0.2, 0.6), ratio=(0.5, 2.0))
    assert repr(t) == ("RandomResizedCrop(size=(8, 10), scale=(0.2, 0.6), ratio=(0.5, 2.0), interpolation=bilinear, "
                       "antialias=True)")
    distml.manual_seed(0)
    for _ in range(100):
        top, left, h, w = T.RandomResizedCrop.get_params(distml.tensor(x), t.scale, t.ratio)
        assert 0 <= top <= 40 - h and 0 <= left <= 60 - w
        assert 0.2 * 2400 * 0.8 <= h * w <= 0.6 * 2400 * 1.2 and 0.4 <= w / h <= 2.5  # rounding of h and w
    distml.manual_seed(3)
    params = T.RandomResizedCrop.get_params(distml.tensor(x), t.scale, t.ratio)
    distml.manual_seed(3)
    got = t(distml.tensor(x)).numpy()
    top, left, h, w = params
    expected = F.interpolate(torch.from_numpy(x[:, top:top + h, left:left + w])[None], size=(8, 10), mode="bilinear",
                             align_corners=False, antialias=True)[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # no draw fits a 1 x 50 strip: the fallback is the central crop of the widest allowed ratio
    assert T.RandomResizedCrop.get_params(distml.zeros(1, 1, 50), (0.9, 1.0), (0.5, 2.0)) == (0, 24, 1, 2)


# ---- conversions ----

def test_functional_is_torchvisions_module_layout():
    import distml.vision.transforms.functional as functional
    assert T.functional is functional and T.InterpolationMode is TF.InterpolationMode
    assert TF.get_dimensions(distml.zeros(3, 4, 5)) == [3, 4, 5]
    assert TF.get_dimensions(Image.new("RGBA", (5, 4))) == [4, 4, 5]


def test_to_pil_image_and_pil_to_tensor(rng):
    floats = rng.random((3, 4, 5)).astype(np.float32)
    image = T.ToPILImage()(distml.tensor(floats))
    assert image.mode == "RGB" and image.size == (5, 4)
    expected = torch.from_numpy(floats).mul(255).byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.asarray(image), expected)
    back = T.PILToTensor()(image)
    assert back.dtype == distml.uint8 and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back.numpy(), expected.transpose(2, 0, 1))
    assert TF.to_pil_image(distml.tensor(floats[0])).mode == "L"
    assert TF.to_pil_image(distml.tensor(floats[:1]), mode="F").mode == "F"
    assert TF.to_pil_image(distml.zeros(4, 2, 2)).mode == "RGBA" and TF.to_pil_image(distml.zeros(2, 2, 2)).mode == "LA"
    assert TF.to_pil_image(np.zeros((2, 2, 3), np.uint8), mode="HSV").mode == "HSV"
    assert TF.to_pil_image(np.zeros((2, 2), np.int32)).mode == "I"
    assert repr(T.ToPILImage()) == "ToPILImage()" and repr(T.ToPILImage("RGB")) == "ToPILImage(mode=RGB)"
    with pytest.raises(ValueError, match=r"Incorrect mode \(RGB\) supplied for input type uint8. Should be L"):
        TF.to_pil_image(np.zeros((2, 2), np.uint8), mode="RGB")
    with pytest.raises(ValueError, match="pic should not have > 4 channels. Got 5 channels."):
        TF.to_pil_image(distml.zeros(5, 2, 2))
    with pytest.raises(ValueError, match="pic should be 2/3 dimensional. Got 1 dimensions."):
        TF.to_pil_image(distml.zeros(5))
    with pytest.raises(TypeError, match="pic should be PIL Image"):
        TF.pil_to_tensor(np.zeros((2, 2)))


@pytest.mark.parametrize("source, target", [("uint8", "float32"), ("uint8", "float64"), ("float32", "uint8"),
                                            ("float64", "int16"), ("int32", "uint8"), ("uint8", "int32"),
                                            ("int16", "int64"), ("float64", "float32")])
def test_convert_image_dtype_matches_torchvision(rng, source, target):
    if source.startswith("float"):
        x = torch.from_numpy(rng.random((2, 3, 4)).astype(source))
    else:
        info = np.iinfo(source)
        x = torch.from_numpy(rng.integers(0, info.max, (2, 3, 4), dtype=source, endpoint=True))
    got = T.ConvertImageDtype(getattr(distml, target))(ours(x))
    expected = t_convert(x, getattr(torch, target))
    assert got.dtype == getattr(distml, target)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-7)


def test_convert_image_dtype_errors():
    x = distml.zeros(1, 2, 2)
    assert TF.convert_image_dtype(x, distml.float32) is x
    with pytest.raises(RuntimeError, match="The cast from distml.float32 to distml.int64 cannot be performed safely."):
        TF.convert_image_dtype(x, distml.int64)
    with pytest.raises(TypeError, match="Input img should be Tensor Image"):
        TF.convert_image_dtype(np.zeros((2, 2)), distml.float32)


# ---- random containers ----

def test_random_apply_choice_order():
    add = T.Lambda(lambda v: v + 1)
    double = T.Lambda(lambda v: v * 2)
    assert T.RandomApply([add, double], p=1.0)(1) == 4 and T.RandomApply([add], p=0.0)(1) == 1
    distml.manual_seed(0)
    applied = sum(T.RandomApply([add], p=0.25)(0) for _ in range(400))
    assert 70 < applied < 130
    distml.manual_seed(0)
    picks = [T.RandomChoice([add, double], p=[0.9, 0.1])(10) for _ in range(300)]
    assert 240 < picks.count(11) < 290 and set(picks) == {11, 20}
    uniform = [T.RandomChoice([add, double])(10) for _ in range(300)]
    assert 110 < uniform.count(11) < 190
    orders = {T.RandomOrder([add, double])(1) for _ in range(50)}
    assert orders == {3, 4}  # (1 + 1) * 2 and 1 * 2 + 1
    assert repr(T.RandomApply([add], p=0.3)) == "RandomApply(\n    p=0.3\n    Lambda()\n)"
    assert repr(T.RandomChoice([add])) == "RandomChoice(\n    Lambda()\n)(p=None)"
    with pytest.raises(TypeError, match="Argument transforms should be a sequence"):
        T.RandomOrder(add)


def test_pipeline_reproducible_under_manual_seed(pil):
    t = T.Compose([T.RandomResizedCrop(4), T.RandomRotation(30), T.ColorJitter(0.4, 0.4, 0.4, 0.1),
                   T.RandomGrayscale(0.5), T.RandomVerticalFlip(), T.PILToTensor(),
                   T.ConvertImageDtype(distml.float32)])
    distml.manual_seed(7)
    first = [t(pil).numpy() for _ in range(6)]
    distml.manual_seed(7)
    for a in first:
        np.testing.assert_array_equal(t(pil).numpy(), a)
    assert len({a.tobytes() for a in first}) > 1
