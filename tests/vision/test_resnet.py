"""ResNets against torch.nn definitions that mirror torchvision's (torchvision is not installed here)."""
import numpy as np
import pytest
import torch
from torchvision_models import Bottleneck, ResNet, layout, randomise, resnet

import distml
from distml.vision import models
from distml.vision.models import resnet18, resnet34, resnet50


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
                                  "resnet101", "resnet152"])
def test_state_dict_keys_and_shapes_match_torchvision_layout(name):
    with torch.device("meta"):
        expected = layout(resnet(name, num_classes=7))
    assert layout(getattr(models, name)(num_classes=7)) == expected


def test_module_names():
    model = resnet18()
    assert model.fc.weight.shape == (1000, 512)
    assert model.layer1[0].conv1.weight.shape == (64, 64, 3, 3)
    assert model.layer2[0].downsample[0].weight.shape == (128, 64, 1, 1)
    assert resnet50().layer4[2].conv3.weight.shape == (2048, 512, 1, 1)


def test_torch_checkpoint_gives_same_outputs(tmp_path, rng):
    theirs = randomise(resnet("resnet18", num_classes=10)).float()  # a float32 checkpoint, as usual
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
    theirs = randomise(resnet("resnet18", num_classes=3))
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
    torch.save(resnet("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(RuntimeError, match="size mismatch for fc.weight"):
        resnet18(weights=tmp_path / "r18.pth", num_classes=10)


@pytest.mark.parametrize("groups, width", [(32, 4), (1, 128)], ids=["resnext", "wide"])
def test_grouped_and_wide_bottlenecks_give_torchs_outputs(rng, groups, width):
    # one block per stage keeps it fast; the builders' stage depths are checked by the layout test
    theirs = randomise(ResNet(Bottleneck, [1, 1, 1, 1], num_classes=5, groups=groups, width_per_group=width))
    ours = models.ResNet(models.Bottleneck, [1, 1, 1, 1], num_classes=5, groups=groups,
                         width_per_group=width).double().eval()
    ours.load_state_dict(theirs.state_dict())
    x = rng.standard_normal((1, 3, 32, 32))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with distml.no_grad():
        got = ours(distml.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_builder_arguments():
    assert models.resnext50_32x4d(num_classes=2).layer1[0].conv2.groups == 32
    with pytest.raises(ValueError, match="The parameter 'groups' expected value 32 but got 8 instead."):
        models.resnext50_32x4d(groups=8)
    with pytest.raises(ValueError, match="pretrained=True asks for torchvision's pretrained weights"):
        resnet18(pretrained=True)
    assert resnet18(pretrained=False, num_classes=3).fc.out_features == 3


def test_training_step_runs():
    model = resnet18(num_classes=4)
    out = model(distml.randn(2, 3, 32, 32))
    distml.nn.functional.cross_entropy(out, distml.tensor([0, 3])).backward()
    assert model.conv1.weight.grad.shape == (64, 3, 7, 7) and model.fc.bias.grad.shape == (4,)
