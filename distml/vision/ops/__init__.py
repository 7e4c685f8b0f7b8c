"""Building blocks torchvision keeps in torchvision.ops."""
from distml.vision.ops.misc import MLP, Conv2dNormActivation
