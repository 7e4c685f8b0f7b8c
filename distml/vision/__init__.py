"""Vision: datasets, transforms, models and image utilities with torchvision's names
(`distml.vision` ~ `torchvision`)."""
from distml.vision import datasets, models, ops, transforms, utils
