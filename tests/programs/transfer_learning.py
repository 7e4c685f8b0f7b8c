# The fine-tuning recipe: a pretrained-style backbone (a small ResNet-like nn.Module), frozen
# with requires_grad_(False), its head replaced by a new nn.Linear(model.fc.in_features, n),
# an optimizer over the trainable parameters only, named_modules / named_children
# introspection, zero_grad(set_to_none=True) and torch.inference_mode() for evaluation.
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class TinyResNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.layer1 = BasicBlock(8)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.layer1(self.stem(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def pseudo_uniform(n, seed):
    """Deterministic values in [-1, 1) from an integer LCG (exact in any framework)."""
    k = torch.arange(n, dtype=torch.int64) * 7 + seed * 104729
    return ((k * 1103515245 + 12345) % 2147483648).float() / 1073741824 - 1


model = TinyResNet()                           # stands in for a downloaded pretrained network
with torch.no_grad():
    for i, (name, p) in enumerate(model.named_parameters()):
        if "bn" in name or name.startswith("stem.1"):
            p.copy_(1.0 if name.endswith("weight") else 0.0)
        else:
            p.copy_(pseudo_uniform(p.numel(), i).view_as(p) * 0.5)
print("children:", [name for name, _ in model.named_children()])
print("conv layers:", [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)])
print("total parameters:", sum(p.numel() for p in model.parameters()))

for param in model.parameters():
    param.requires_grad = False
num_ftrs = model.fc.in_features
model.fc = nn.Linear(num_ftrs, 2)
with torch.no_grad():
    model.fc.weight.copy_(torch.tensor([[0.1, -0.2, 0.3, 0.0, 0.1, 0.2, -0.1, 0.05]]).repeat(2, 1) * torch.tensor([[1.0], [-1.0]]))
    model.fc.bias.zero_()
trainable = [p for p in model.parameters() if p.requires_grad]
print("trainable tensors:", len(trainable), "trainable parameters:", sum(p.numel() for p in trainable))

optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=0.5, momentum=0.9)
images = torch.sin(torch.arange(8 * 3 * 8 * 8, dtype=torch.float32).view(8, 3, 8, 8) * 0.05)
images[4:] = 1.5 * torch.cos(images[4:] * 3) - 0.5
labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])

model.eval()                                   # keep the frozen BatchNorm statistics
for epoch in range(15):
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    if epoch % 5 == 0:
        print(f"epoch {epoch} loss {loss.item():.4f}")
print("backbone grads are None:", all(p.grad is None for n, p in model.named_parameters() if not n.startswith("fc")))
print("head grad shape:", tuple(model.fc.weight.grad.shape))

with torch.inference_mode():
    probs = F.softmax(model(images), dim=1)
    print("inference_mode output requires grad:", probs.requires_grad)
print("probabilities:", probs[:, 1])
print("accuracy:", (probs.argmax(1) == labels).float().mean().item())
model.requires_grad_(True)
print("unfrozen:", all(p.requires_grad for p in model.parameters()))
