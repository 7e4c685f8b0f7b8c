"""Image transforms with torchvision's names and formulas (torchvision.transforms.transforms).

Random choices are drawn from distml's global RNG, so `distml.manual_seed` (and the
per-worker seeding of DataLoader workers) makes them reproducible.

    transform = Compose([RandomCrop(28, padding=2), ToTensor(), Normalize((0.1307,), (0.3081,))])
"""
import math
import numbers

import distml
from distml.tensor import Tensor
from distml.vision.transforms import functional as F


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


class ToTensor:
    """H x W x C (or H x W) image -> C x H x W float tensor; uint8 values are scaled to [0, 1] (see F.to_tensor)."""

    def __call__(self, pic):
        return F.to_tensor(pic)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Normalize:
    """(x - mean[c]) / std[c] for each channel c of a (..., C, H, W) float tensor.

        Normalize((0.1307,), (0.3081,))
    """

    def __init__(self, mean, std, inplace=False):
        self.mean, self.std, self.inplace = mean, std, inplace

    def __call__(self, tensor):
        return F.normalize(tensor, self.mean, self.std, self.inplace)

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class ToPILImage:
    """Tensor or array -> PIL image (see to_pil_image): `ToPILImage()(distml.rand(3, 8, 8))`."""

    def __init__(self, mode=None):
        self.mode = mode

    def __call__(self, pic):
        return F.to_pil_image(pic, self.mode)

    def __repr__(self):
        return f"{type(self).__name__}(" + (f"mode={self.mode}" if self.mode is not None else "") + ")"


class PILToTensor:
    """PIL image -> (C, H, W) tensor of the image's dtype, values unchanged (ToTensor scales to [0, 1])."""

    def __call__(self, pic):
        return F.pil_to_tensor(pic)

    def __repr__(self):
        return f"{type(self).__name__}()"


class ConvertImageDtype:
    """A tensor image in `dtype`, values rescaled: `ConvertImageDtype(distml.float32)` maps uint8 0..255 to 0..1."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, image):
        return F.convert_image_dtype(image, self.dtype)

    def __repr__(self):
        return f"{type(self).__name__}()"



# ---- the transform classes ----

def _draw(p):
    """Whether a uniform draw from distml's global generator falls below p."""
    return distml.rand(1).item() < p


class RandomHorizontalFlip:
    """Mirror left-right with probability p."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        return F.hflip(img) if _draw(self.p) else img

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom with probability p."""

    def __call__(self, img):
        return F.vflip(img) if _draw(self.p) else img


class CenterCrop:
    """The central size (h, w) region (int: square); smaller images are zero-padded first."""

    def __init__(self, size):
        self.size = F._pair(size)

    def __call__(self, img):
        return F.center_crop(img, self.size)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size})"


class Pad:
    """Pad every image the same way (see pad): `Pad(4, padding_mode="reflect")`, `Pad((1, 2, 3, 4), fill=255)`."""

    def __init__(self, padding, fill=0, padding_mode="constant"):
        if not isinstance(padding, (numbers.Number, tuple, list)):
            raise TypeError("Got inappropriate padding arg")
        if not isinstance(fill, (numbers.Number, tuple, list)):
            raise TypeError("Got inappropriate fill arg")
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
        if isinstance(padding, (tuple, list)) and len(padding) not in (1, 2, 4):
            raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a {len(padding)} element "
                             f"tuple")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img):
        return F.pad(img, self.padding, self.fill, self.padding_mode)

    def __repr__(self):
        return f"{type(self).__name__}(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode})"


class RandomCrop:
    """A random size (h, w) region, after optional padding.

        RandomCrop(32, padding=4)                      # CIFAR-style
        RandomCrop(28, pad_if_needed=True, padding_mode="reflect")
    """

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = F._pair(size)
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = padding, pad_if_needed, fill, padding_mode

    @staticmethod
    def get_params(img, output_size):
        """(top, left, height, width) of a random crop of output_size."""
        h, w = F._size(img)
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
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        h, w = F._size(img)
        th, tw = self.size
        if self.pad_if_needed and w < tw:
            img = F.pad(img, [tw - w, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and h < th:
            img = F.pad(img, [0, th - h], self.fill, self.padding_mode)
        return F.crop(img, *self.get_params(img, self.size))

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class Resize:
    """Resample to size ((h, w), or an int for the shorter edge) with bilinear (default) or another mode.

    On tensors it equals torchvision's Resize (interpolate with align_corners=False and, by
    default, antialias=True when shrinking); PIL images go through PIL's resize as in
    torchvision. On array images torchvision would call PIL, whose bilinear filter is the same
    antialiased triangle filter but computed in 8-bit fixed point, so values can differ from
    PIL's by one grey level.
    """

    def __init__(self, size, interpolation=F.InterpolationMode.BILINEAR, max_size=None, antialias=True):
        if not isinstance(size, (int, list, tuple)):
            raise TypeError(f"Size should be int or sequence. Got {type(size)}")
        if isinstance(size, (list, tuple)) and len(size) not in (1, 2):
            raise ValueError("If size is a sequence, it should have 1 or 2 values")
        self.size, self.interpolation, self.max_size, self.antialias = size, F._mode(interpolation), max_size, antialias

    def __call__(self, img):
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)

    def __repr__(self):
        return (f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation.value}, "
                f"max_size={self.max_size}, antialias={self.antialias})")


class RandomResizedCrop:
    """A crop of random area (a `scale` fraction of the image) and aspect ratio (`ratio`, w / h), resized to size.

        RandomResizedCrop(224)          # the ImageNet training crop
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=F.InterpolationMode.BILINEAR, antialias=True):
        self.size = F._pair(size)
        if not isinstance(scale, (tuple, list)):
            raise TypeError("Scale should be a sequence")
        if not isinstance(ratio, (tuple, list)):
            raise TypeError("Ratio should be a sequence")
        self.scale, self.ratio = scale, ratio
        self.interpolation, self.antialias = F._mode(interpolation), antialias

    @staticmethod
    def get_params(img, scale, ratio):
        """(top, left, height, width): up to 10 draws of area and log-uniform aspect ratio that fit, else the
        largest central crop within the ratio range (torchvision's procedure)."""
        height, width = F._size(img)
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            target_area = area * distml.empty(1).uniform_(scale[0], scale[1]).item()
            aspect_ratio = math.exp(distml.empty(1).uniform_(log_ratio[0], log_ratio[1]).item())
            w = int(round(math.sqrt(target_area * aspect_ratio)))
            h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w <= width and 0 < h <= height:
                top = distml.randint(0, height - h + 1, size=(1,)).item()
                left = distml.randint(0, width - w + 1, size=(1,)).item()
                return top, left, h, w
        in_ratio = float(width) / float(height)
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            h, w = height, int(round(height * max(ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        top, left, h, w = self.get_params(img, self.scale, self.ratio)
        return F.resized_crop(img, top, left, h, w, self.size, self.interpolation, antialias=self.antialias)

    def __repr__(self):
        return (f"{type(self).__name__}(size={self.size}, scale={tuple(round(s, 4) for s in self.scale)}, "
                f"ratio={tuple(round(r, 4) for r in self.ratio)}, interpolation={self.interpolation.value}, "
                f"antialias={self.antialias})")


def _setup_angle(x, name):
    if isinstance(x, numbers.Number):
        if x < 0:
            raise ValueError(f"If {name} is a single number, it must be positive.")
        return [float(-x), float(x)]
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise (TypeError if not isinstance(x, (tuple, list)) else ValueError)(
            f"{name} should be a sequence of length 2.")
    return [float(d) for d in x]


class RandomRotation:
    """Rotate by an angle drawn uniformly from degrees ((min, max), or d for (-d, d)); see rotate.

        RandomRotation(15, interpolation=InterpolationMode.BILINEAR, fill=0)
    """

    def __init__(self, degrees, interpolation=F.InterpolationMode.NEAREST, expand=False, center=None, fill=0):
        self.degrees = _setup_angle(degrees, "degrees")
        if center is not None and (not isinstance(center, (tuple, list)) or len(center) != 2):
            raise ValueError("center should be a sequence of length 2.")
        if fill is None:
            fill = 0
        elif not isinstance(fill, (numbers.Number, tuple, list)):
            raise TypeError("Fill should be either a sequence or a number.")
        self.interpolation, self.expand, self.center, self.fill = F._mode(interpolation), expand, center, fill

    @staticmethod
    def get_params(degrees):
        return float(distml.empty(1).uniform_(float(degrees[0]), float(degrees[1])).item())

    def __call__(self, img):
        fill = self.fill
        if isinstance(img, Tensor):
            channels = F.get_dimensions(img)[0]
            fill = [float(fill)] * channels if isinstance(fill, numbers.Number) else [float(f) for f in fill]
        return F.rotate(img, self.get_params(self.degrees), self.interpolation, self.expand, self.center, fill)

    def __repr__(self):
        text = (f"{type(self).__name__}(degrees={self.degrees}, interpolation={self.interpolation.value}, "
                f"expand={self.expand}")
        if self.center is not None:
            text += f", center={self.center}"
        if self.fill is not None:
            text += f", fill={self.fill}"
        return text + ")"


def _check_jitter(value, name, center=1.0, bound=(0, float("inf")), clip_first_on_zero=True):
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"If {name} is a single number, it must be non negative.")
        value = [center - float(value), center + float(value)]
        if clip_first_on_zero:
            value[0] = max(value[0], 0.0)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        value = [float(value[0]), float(value[1])]
    else:
        raise TypeError(f"{name} should be a single number or a list/tuple with length 2.")
    if not bound[0] <= value[0] <= value[1] <= bound[1]:
        raise ValueError(f"{name} values should be between {bound}, but got {value}.")
    return None if value[0] == value[1] == center else tuple(value)


class ColorJitter:
    """Random brightness, contrast, saturation and hue changes, applied in a random order.

    Each factor is drawn uniformly from its range: a number b means [max(0, 1 - b), 1 + b]
    (hue: h means [-h, h], h <= 0.5), a pair is the range itself.

        ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    """

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self.brightness = _check_jitter(brightness, "brightness")
        self.contrast = _check_jitter(contrast, "contrast")
        self.saturation = _check_jitter(saturation, "saturation")
        self.hue = _check_jitter(hue, "hue", center=0, bound=(-0.5, 0.5), clip_first_on_zero=False)

    @staticmethod
    def get_params(brightness, contrast, saturation, hue):
        """(order of the four adjustments, brightness, contrast, saturation, hue factors or None)."""
        fn_idx = distml.randperm(4)
        factors = [None if r is None else float(distml.empty(1).uniform_(r[0], r[1]).item())
                   for r in (brightness, contrast, saturation, hue)]
        return (fn_idx, *factors)

    def __call__(self, img):
        fn_idx, *factors = self.get_params(self.brightness, self.contrast, self.saturation, self.hue)
        adjust = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
        for fn_id in fn_idx.tolist():
            if factors[fn_id] is not None:
                img = adjust[fn_id](img, factors[fn_id])
        return img

    def __repr__(self):
        return (f"{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


class Grayscale:
    """To greyscale (see rgb_to_grayscale) with 1 or 3 output channels."""

    def __init__(self, num_output_channels=1):
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        return F.rgb_to_grayscale(img, num_output_channels=self.num_output_channels)

    def __repr__(self):
        return f"{type(self).__name__}(num_output_channels={self.num_output_channels})"


class RandomGrayscale:
    """To greyscale with probability p, keeping the number of channels."""

    def __init__(self, p=0.1):
        self.p = p

    def __call__(self, img):
        channels = F.get_dimensions(img)[0]
        return F.rgb_to_grayscale(img, num_output_channels=channels) if _draw(self.p) else img

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class RandomTransforms:
    """The base of RandomChoice and RandomOrder: a list of transforms."""

    def __init__(self, transforms):
        if not isinstance(transforms, (list, tuple)):
            raise TypeError("Argument transforms should be a sequence")
        self.transforms = transforms

    def __repr__(self):
        return type(self).__name__ + "(" + "".join(f"\n    {t}" for t in self.transforms) + "\n)"


class RandomApply(RandomTransforms):
    """All of transforms, in order, with probability p: `RandomApply([ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8)`."""

    def __init__(self, transforms, p=0.5):
        super().__init__(transforms)
        self.p = p

    def __call__(self, img):
        if self.p < distml.rand(1).item():
            return img
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        return (type(self).__name__ + "(" + f"\n    p={self.p}" + "".join(f"\n    {t}" for t in self.transforms)
                + "\n)")


class RandomChoice(RandomTransforms):
    """One of transforms, picked with probabilities p (default: equally likely)."""

    def __init__(self, transforms, p=None):
        super().__init__(transforms)
        if p is not None and not isinstance(p, (list, tuple)):
            raise TypeError("Argument p should be a sequence")
        self.p = p

    def __call__(self, *args):
        if self.p is None:
            index = distml.randint(0, len(self.transforms), (1,)).item()
        else:
            index = distml.multinomial(distml.tensor(self.p, dtype=distml.float64), 1).item()
        return self.transforms[index](*args)

    def __repr__(self):
        return f"{super().__repr__()}(p={self.p})"


class RandomOrder(RandomTransforms):
    """All of transforms, in a random order."""

    def __call__(self, img):
        for i in distml.randperm(len(self.transforms)).tolist():
            img = self.transforms[i](img)
        return img
