"""ResNets against a torch.nn definition that mirrors torchvision's (torchvision is not installed here)."""
import numpy as np
import pytest
import torch
from torch import nn as tnn

import distml
from distml.vision.models import resnet18, resnet34, resnet50


# ---- torchvision's resnet.py, reduced to what the default constructors use ----

class TorchBasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchResNet(tnn.Module):
    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU(inplace=True)
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = tnn.Sequential(tnn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                        tnn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


TORCH_MODELS = {resnet18: (TorchBasicBlock, [2, 2, 2, 2]), resnet34: (TorchBasicBlock, [3, 4, 6, 3]),
                resnet50: (TorchBottleneck, [3, 4, 6, 3])}


@pytest.mark.parametrize("ours", [resnet18, resnet34, resnet50], ids=lambda f: f.__name__)
def test_state_dict_keys_and_shapes_match_torchvision_layout(ours):
    block, layers = TORCH_MODELS[ours]
    expected = [(k, tuple(v.shape)) for k, v in TorchResNet(block, layers, num_classes=7).state_dict().items()]
    got = [(k, tuple(v.shape)) for k, v in ours(num_classes=7).state_dict().items()]
    assert got == expected


def test_module_names():
    model = resnet18()
    assert model.fc.weight.shape == (1000, 512)
    assert model.layer1[0].conv1.weight.shape == (64, 64, 3, 3)
    assert model.layer2[0].downsample[0].weight.shape == (128, 64, 1, 1)
    assert resnet50().layer4[2].conv3.weight.shape == (2048, 512, 1, 1)


def randomised_torch_resnet18(num_classes):
    """A torch resnet18 with random BatchNorm statistics and affine parameters, in float64."""
    torch.manual_seed(0)
    model = TorchResNet(TorchBasicBlock, [2, 2, 2, 2], num_classes=num_classes).double()
    for m in model.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_torch_checkpoint_gives_same_outputs(tmp_path, rng):
    theirs = randomised_torch_resnet18(num_classes=10).float()  # a float32 checkpoint, as usual
    torch.save(theirs.state_dict(), tmp_path / "resnet18.pth")
    ours = resnet18(weights=tmp_path / "resnet18.pth", num_classes=10).double().eval()
    theirs.double()  # compare in float64 from the same float32 weights
    x = rng.standard_normal((2, 3, 40, 40))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with distml.no_grad():
        got = ours(distml.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10)


def test_safetensors_weights_and_state_dict_weights(tmp_path):
    from safetensors.torch import save_file
    theirs = randomised_torch_resnet18(num_classes=3)
    state = {k: v.float().contiguous() for k, v in theirs.state_dict().items()}
    save_file(state, str(tmp_path / "r.safetensors"))
    ours = resnet18(weights=str(tmp_path / "r.safetensors"), num_classes=3)
    np.testing.assert_array_equal(ours.fc.weight.detach().numpy(), state["fc.weight"].numpy())
    again = resnet18(weights=ours.state_dict(), num_classes=3)
    np.testing.assert_array_equal(again.layer3[1].bn2.running_var.numpy(), state["layer3.1.bn2.running_var"].numpy())


def test_weights_errors(tmp_path):
    with pytest.raises(ValueError, match="torchvision's named pretrained weights cannot be downloaded"):
        resnet18(weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="pass the path of a checkpoint file"):
        resnet34(weights=str(tmp_path / "missing.pth"))
    torch.save(TorchResNet(TorchBasicBlock, [2, 2, 2, 2]).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(RuntimeError, match="size mismatch for fc.weight"):
        resnet18(weights=tmp_path / "r18.pth", num_classes=10)


def test_training_step_runs():
    model = resnet18(num_classes=4)
    out = model(distml.randn(2, 3, 32, 32))
    distml.nn.functional.cross_entropy(out, distml.tensor([0, 3])).backward()
    assert model.conv1.weight.grad.shape == (64, 3, 7, 7) and model.fc.bias.grad.shape == (4,)
