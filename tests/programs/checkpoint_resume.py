# The "saving and loading a general checkpoint" recipe: torch.save of a dict with the model
# and optimizer state_dicts, torch.load with the default weights_only=True, load_state_dict,
# and resuming gives the same trajectory as never stopping.
import os
import tempfile

import torch
import torch.nn as nn
import torch.optim as optim


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def fresh_model():
    model = Net()
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.linspace(-0.5, 0.5, p.numel()).view_as(p) * (1 + 0.1 * i))
    return model


x = torch.linspace(-1, 1, 64).view(16, 4)
y = (x ** 2).sum(1, keepdim=True)


def train_steps(model, optimizer, n):
    loss = None
    for _ in range(n):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    return loss.item()


model = fresh_model()
optimizer = optim.Adam(model.parameters(), lr=0.01)
loss = train_steps(model, optimizer, 5)
print("state_dict keys:", list(model.state_dict().keys()))
print("optimizer state keys:", sorted(optimizer.state_dict().keys()))

with tempfile.TemporaryDirectory() as tmp:
    PATH = os.path.join(tmp, "checkpoint.pt")
    torch.save({
        "epoch": 5,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "loss": loss,
    }, PATH)
    weights_path = os.path.join(tmp, "weights.pth")
    torch.save(model.state_dict(), weights_path)

    model.eval()
    with torch.no_grad():
        out5 = model(x)
    model.train()
    continued = train_steps(model, optimizer, 5)

    model2 = fresh_model()
    optimizer2 = optim.Adam(model2.parameters(), lr=0.01)
    checkpoint = torch.load(PATH)
    result = model2.load_state_dict(checkpoint["model_state_dict"])
    optimizer2.load_state_dict(checkpoint["optimizer_state_dict"])
    epoch = checkpoint["epoch"]
    print("load_state_dict:", result)
    print(f"resumed at epoch {epoch}, saved loss {checkpoint['loss']:.5f}")
    print("num_batches_tracked:", model2.bn.num_batches_tracked.item())
    model2.train()
    resumed = train_steps(model2, optimizer2, 5)
    print(f"continued loss {continued:.5f} resumed loss {resumed:.5f}")

    model3 = Net()
    model3.load_state_dict(torch.load(weights_path, map_location="cpu"))
    model3.eval()
    model.eval()
    model2.eval()
    print("weights file reproduces the 5-step model:", torch.allclose(model3(x), out5))
    print("resumed equals continued:", torch.allclose(model(x), model2(x), atol=1e-5))

    incompatible = model3.load_state_dict({"fc2.bias": torch.zeros(1)}, strict=False)
    print("missing:", len(incompatible.missing_keys), "unexpected:", incompatible.unexpected_keys)
