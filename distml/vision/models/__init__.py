"""Vision models with torchvision's names and state_dict layout."""
from distml.vision.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
