"""Vision models with torchvision's names and state_dict layout."""
from distml.vision.models.mobilenetv2 import InvertedResidual, MobileNetV2, mobilenet_v2
from distml.vision.models.resnet import (BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50, resnet101,
                                         resnet152, resnext50_32x4d, resnext101_32x8d, resnext101_64x4d,
                                         wide_resnet50_2, wide_resnet101_2)
from distml.vision.models.vgg import VGG, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn
from distml.vision.models.vision_transformer import VisionTransformer, vit_b_16, vit_b_32, vit_h_14, vit_l_16, vit_l_32
