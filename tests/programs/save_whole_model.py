# Saving a whole module with torch.save(model, f) and loading it back with
# torch.load(f, weights_only=False); the default weights_only=True load refuses the pickled
# module, and the program reports the error type as users see it in their logs.
import os
import pickle
import tempfile

import torch
import torch.nn as nn


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


model = TinyConvNet()
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.cos(torch.arange(p.numel()) * 0.9 + i).view(p.shape) * 0.3)
model.eval()
x = torch.linspace(-1, 1, 2 * 64).view(2, 1, 8, 8)
with torch.no_grad():
    expected = model(x)
print("output:", expected)

with tempfile.TemporaryDirectory() as tmpdir:
    path = os.path.join(tmpdir, "model.pt")
    torch.save(model, path)
    print("file written:", os.path.getsize(path) > 0)

    loaded = torch.load(path, weights_only=False)
    print("loaded type:", type(loaded).__name__, "training:", loaded.training)
    with torch.no_grad():
        print("same outputs:", torch.equal(loaded(x), expected))
    print(loaded)

    try:
        torch.load(path)
        print("default load accepted the pickled module")
    except Exception as e:
        print("default load refused:", type(e).__name__)
        print("is an UnpicklingError:", isinstance(e, pickle.UnpicklingError))

    with open(path, "rb") as f:
        again = torch.load(f, map_location="cpu", weights_only=False)
    print("load from a file object:", torch.equal(again(x).detach(), expected))
