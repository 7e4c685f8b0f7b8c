"""Vision: datasets, transforms and models with torchvision's names (`distml.vision` ~ `torchvision`)."""
from distml.vision import datasets, models, transforms
