"""ResNet, ResNeXt and Wide ResNet with torchvision's module names, so state_dict keys and shapes line up.

    model = resnet18(num_classes=10)
    model = resnet50(weights="resnet50.pth")   # a torch.save / distml.save / safetensors state_dict
"""
import distml
from distml import nn
from distml.vision.models._utils import _build, _ovewrite_named_param


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups, bias=False,
                     dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision's v1.5), 1x1 expand by 4, and a shortcut (ResNet-50)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """conv1 (7x7/2) -> bn1 -> relu -> maxpool -> layer1..layer4 -> avgpool -> fc."""

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1, width_per_group=64,
                 replace_stride_with_dilation=None, norm_layer=None):
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes = 64
        self.dilation = 1
        replace_stride_with_dilation = replace_stride_with_dilation or [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation should be None or a 3-element tuple, got "
                             f"{replace_stride_with_dilation}")
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:  # each block then starts as the identity
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation,
                        norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                                dilation=self.dilation, norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(distml.flatten(self.avgpool(x), 1))


def _resnet(block, layers, weights, pretrained, **kwargs):
    return _build(ResNet, weights, pretrained, block, layers, **kwargs)


def resnet18(*, weights=None, pretrained=False, **kwargs):
    """ResNet-18: BasicBlocks [2, 2, 2, 2]. `weights`: None, a checkpoint path or a state_dict."""
    return _resnet(BasicBlock, [2, 2, 2, 2], weights, pretrained, **kwargs)


def resnet34(*, weights=None, pretrained=False, **kwargs):
    """ResNet-34: BasicBlocks [3, 4, 6, 3]. `weights`: None, a checkpoint path or a state_dict."""
    return _resnet(BasicBlock, [3, 4, 6, 3], weights, pretrained, **kwargs)


def resnet50(*, weights=None, pretrained=False, **kwargs):
    """ResNet-50: Bottlenecks [3, 4, 6, 3]. `weights`: None, a checkpoint path or a state_dict."""
    return _resnet(Bottleneck, [3, 4, 6, 3], weights, pretrained, **kwargs)


def resnet101(*, weights=None, pretrained=False, **kwargs):
    """ResNet-101: Bottlenecks [3, 4, 23, 3]."""
    return _resnet(Bottleneck, [3, 4, 23, 3], weights, pretrained, **kwargs)


def resnet152(*, weights=None, pretrained=False, **kwargs):
    """ResNet-152: Bottlenecks [3, 8, 36, 3]."""
    return _resnet(Bottleneck, [3, 8, 36, 3], weights, pretrained, **kwargs)


def _grouped(layers, groups, width_per_group, weights, pretrained, kwargs):
    _ovewrite_named_param(kwargs, "groups", groups)
    _ovewrite_named_param(kwargs, "width_per_group", width_per_group)
    return _resnet(Bottleneck, layers, weights, pretrained, **kwargs)


def resnext50_32x4d(*, weights=None, pretrained=False, **kwargs):
    """ResNeXt-50 32x4d: ResNet-50 with 32 groups of width 4 in each 3x3 convolution."""
    return _grouped([3, 4, 6, 3], 32, 4, weights, pretrained, kwargs)


def resnext101_32x8d(*, weights=None, pretrained=False, **kwargs):
    """ResNeXt-101 32x8d."""
    return _grouped([3, 4, 23, 3], 32, 8, weights, pretrained, kwargs)


def resnext101_64x4d(*, weights=None, pretrained=False, **kwargs):
    """ResNeXt-101 64x4d."""
    return _grouped([3, 4, 23, 3], 64, 4, weights, pretrained, kwargs)


def wide_resnet50_2(*, weights=None, pretrained=False, **kwargs):
    """Wide ResNet-50-2: ResNet-50 with the bottleneck's inner width doubled."""
    return _grouped([3, 4, 6, 3], 1, 128, weights, pretrained, kwargs)


def wide_resnet101_2(*, weights=None, pretrained=False, **kwargs):
    """Wide ResNet-101-2."""
    return _grouped([3, 4, 23, 3], 1, 128, weights, pretrained, kwargs)
