# Exporting to ONNX as the PyTorch tutorial does: torch.onnx.export with input/output names and a dynamic
# batch axis (the TorchScript exporter, dynamo=False), then inference with onnxruntime at another batch
# size, checked against the model itself. Weights and inputs come from linspace so both runs see the same.
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.onnx


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


def fill(model):
    with torch.no_grad():
        for k, p in enumerate(model.parameters()):
            p.copy_(torch.linspace(-0.5, 0.5 + 0.1 * k, p.numel()).reshape(p.shape))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.linspace(-0.2, 0.2, m.num_features))
                m.running_var.copy_(torch.linspace(0.5, 1.5, m.num_features))


def images(n):
    return torch.sin(torch.linspace(0, 20, n * 64)).reshape(n, 1, 8, 8)


for name, model, example, other in [
    ("mlp", nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)),
     torch.linspace(-1, 1, 24).reshape(4, 6), torch.cos(torch.linspace(0, 9, 42)).reshape(7, 6)),
    ("cnn", SmallNet(), images(2), images(5)),
]:
    fill(model)
    model.eval()
    path = f"{name}.onnx"
    torch.onnx.export(model, (example,), path, dynamo=False, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=17)
    onnx.checker.check_model(onnx.load(path))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    print(name, [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()],
          session.get_inputs()[0].shape)
    (result,) = session.run(None, {"input": other.numpy()})
    print(name, "output", result.shape)
    print(np.round(result, 4))
    with torch.no_grad():
        print(name, "matches the model:", bool(np.allclose(result, model(other).numpy(), rtol=1e-4, atol=1e-5)))
