"""VGG, MobileNetV2 and the Vision Transformer against torch.nn definitions that mirror torchvision's."""
import numpy as np
import pytest
import torch
from torchvision_models import VGG_CFGS, MobileNetV2, VisionTransformer, layout, randomise, vgg, vgg_features, vit

import distml
from distml.vision import models
from distml.vision.models.vgg import cfgs, make_layers
from distml.vision.ops import MLP, Conv2dNormActivation


def same_outputs(theirs, ours, x, rtol=1e-10, atol=1e-12):
    """Load the torch model's float64 state into ours (made float64 first) and compare eval outputs on x."""
    ours = ours.double().eval()
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with distml.no_grad():
        got = ours(distml.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def test_vgg11_bn_init_layout_and_outputs(rng):
    ours = models.vgg11_bn(num_classes=6)  # the 4096-wide classifier makes each VGG take seconds to build
    conv, bn, linear = ours.features[0], ours.features[1], ours.classifier[0]
    assert np.all(conv.bias.detach().numpy() == 0) and np.all(bn.weight.detach().numpy() == 1)
    assert abs(linear.weight.detach().numpy().std() - 0.01) < 5e-4  # normal(0, 0.01)
    std = np.sqrt(2.0 / (64 * 9))  # kaiming_normal_, fan_out, relu
    assert abs(conv.weight.detach().numpy().std() - std) < 0.1 * std
    theirs = randomise(vgg("vgg11_bn", num_classes=6), parameters=False)  # torch's own init is random enough
    assert layout(ours) == layout(theirs)
    same_outputs(theirs, ours, rng.standard_normal((2, 3, 32, 32)), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name, cfg, batch_norm", [("vgg11", "A", False), ("vgg13_bn", "B", True),
                                                   ("vgg16", "D", False), ("vgg16_bn", "D", True),
                                                   ("vgg19_bn", "E", True)])
def test_vgg_feature_layouts(name, cfg, batch_norm):
    # the classifier is shared by every VGG (checked above); the features differ
    assert cfgs[cfg] == VGG_CFGS[cfg]
    assert layout(make_layers(cfgs[cfg], batch_norm)) == layout(vgg_features(VGG_CFGS[cfg], batch_norm))


def test_vgg_errors():
    with pytest.raises(ValueError, match="pretrained=True asks for torchvision's pretrained weights"):
        models.vgg16(pretrained=True)
    with pytest.raises(ValueError, match="torchvision's named pretrained weights cannot be downloaded"):
        models.vgg11(weights="IMAGENET1K_V1")


@pytest.mark.parametrize("width_mult", [1.0, 0.5])
def test_mobilenet_v2_layout(width_mult):
    with torch.device("meta"):
        expected = layout(MobileNetV2(num_classes=9, width_mult=width_mult))
    assert layout(models.mobilenet_v2(num_classes=9, width_mult=width_mult)) == expected


def test_mobilenet_v2_outputs_and_structure(rng):
    theirs = randomise(MobileNetV2(num_classes=4, width_mult=0.35))
    ours = models.mobilenet_v2(num_classes=4, width_mult=0.35)
    same_outputs(theirs, ours, rng.standard_normal((2, 3, 32, 32)))
    full = models.mobilenet_v2()
    assert sum(p.numel() for p in full.parameters()) == 3504872  # torchvision's count
    assert isinstance(full.features[0][2], distml.nn.ReLU6) and full.features[1].use_res_connect is False
    assert full.features[3].use_res_connect and full.classifier[0].p == 0.2
    with pytest.raises(ValueError, match="inverted_residual_setting should be non-empty or a 4-element list"):
        models.MobileNetV2(inverted_residual_setting=[[1, 16, 1]])
    with pytest.raises(ValueError, match="stride should be 1 or 2 instead of 3"):
        models.mobilenetv2.InvertedResidual(8, 8, 3, 6)


def test_misc_blocks():
    block = Conv2dNormActivation(3, 8, kernel_size=5, stride=2)
    assert [type(m).__name__ for m in block] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert block[0].padding == (2, 2) and block[0].bias is None and block.out_channels == 8
    plain = Conv2dNormActivation(3, 8, norm_layer=None, activation_layer=None)
    assert len(plain) == 1 and plain[0].bias is not None
    mlp = MLP(4, [8, 3], activation_layer=distml.nn.GELU, dropout=0.1)
    assert [type(m).__name__ for m in mlp] == ["Linear", "GELU", "Dropout", "Linear", "Dropout"]


SMALL = dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=24, num_classes=5)


@pytest.mark.parametrize("representation_size", [None, 12])
def test_vision_transformer_layout_and_outputs(rng, representation_size):
    theirs = randomise(VisionTransformer(**SMALL, representation_size=representation_size))
    ours = models.VisionTransformer(**SMALL, representation_size=representation_size)
    assert layout(ours) == layout(theirs)
    assert "encoder.layers.encoder_layer_1.mlp.3.weight" in ours.state_dict()
    same_outputs(theirs, ours, rng.standard_normal((3, 3, 32, 32)))


def test_vision_transformer_gradients_match_torch(rng):
    theirs = randomise(VisionTransformer(**SMALL))
    ours = models.VisionTransformer(**SMALL).double()
    ours.load_state_dict(theirs.state_dict())
    x = rng.standard_normal((2, 3, 32, 32))
    theirs(torch.from_numpy(x)).square().sum().backward()
    ours(distml.tensor(x)).square().sum().backward()
    theirs_grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_grads[name].grad.numpy(), rtol=1e-8, atol=1e-10,
                                   err_msg=name)


def test_vit_builders_layout_and_init():
    with torch.device("meta"):
        expected = layout(vit("vit_b_32", image_size=64, num_classes=3))
    model = models.vit_b_32(image_size=64, num_classes=3)
    assert layout(model) == expected
    assert np.all(model.heads.head.weight.detach().numpy() == 0) and np.all(model.class_token.detach().numpy() == 0)
    assert abs(model.encoder.pos_embedding.detach().numpy().std() - 0.02) < 2e-3
    with pytest.raises(AssertionError, match="Wrong image height! Expected 64 but got 32!"):
        model(distml.zeros(1, 3, 32, 64))
    with pytest.raises(AssertionError, match="Input shape indivisible by patch size!"):
        models.VisionTransformer(30, 8, 1, 1, 8, 8)
    with pytest.raises(ValueError, match="pretrained=True asks for torchvision's pretrained weights"):
        models.vit_b_16(pretrained=True)
