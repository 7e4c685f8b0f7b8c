"""Image transforms (torchvision.transforms): the classes, and `functional` with the functions behind them.

    from distml.vision import transforms as T
    import distml.vision.transforms.functional as TF
"""
from distml.vision.transforms import functional
from distml.vision.transforms.functional import (InterpolationMode, adjust_brightness, adjust_contrast, adjust_hue,
                                                 adjust_saturation, center_crop, convert_image_dtype, crop,
                                                 get_dimensions, hflip, normalize, pad, pil_to_tensor, resize,
                                                 resized_crop, rgb_to_grayscale, rotate, to_grayscale, to_pil_image,
                                                 to_tensor, vflip)
from distml.vision.transforms.transforms import (CenterCrop, ColorJitter, Compose, ConvertImageDtype, Grayscale, Lambda,
                                                 Normalize, Pad, PILToTensor, RandomApply, RandomChoice, RandomCrop,
                                                 RandomGrayscale, RandomHorizontalFlip, RandomOrder, RandomResizedCrop,
                                                 RandomRotation, RandomTransforms, RandomVerticalFlip, Resize,
                                                 ToPILImage, ToTensor)
