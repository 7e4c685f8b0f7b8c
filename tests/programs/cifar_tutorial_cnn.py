# The "Training a classifier" (CIFAR-10) tutorial loop on synthetic 3x32x32 images (torchvision
# is not a dependency, so the Normalize transform is a small callable): iter(trainloader) / next,
# the LeNet-like Net, running_loss printing, torch.max(outputs, 1) and per-class accuracy.
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, Dataset

classes = ("plane", "car", "bird", "cat")


class Normalize:
    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, img):
        return (img - self.mean) / self.std


transform = Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


class StripesDataset(Dataset):
    """Stripes at angle c * 45 degrees, in colour channel c (class 3: in every channel)."""

    def __init__(self, n, transform=None):
        self.n, self.transform = n, transform
        r = torch.arange(32, dtype=torch.float32)
        self.yy, self.xx = r.view(32, 1).expand(32, 32), r.view(1, 32).expand(32, 32)

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        label = idx % 4
        direction = [self.xx, self.yy, self.xx + self.yy, self.xx - self.yy][label]
        pattern = 0.5 + 0.5 * torch.sin(direction * 0.8 + idx * 0.37)
        img = torch.full((3, 32, 32), 0.5)
        img[label if label < 3 else slice(None)] = pattern
        if self.transform:
            img = self.transform(img)
        return img, label


trainset = StripesDataset(96, transform=transform)
trainloader = DataLoader(trainset, batch_size=8, shuffle=False, num_workers=0)
testloader = DataLoader(StripesDataset(32, transform=transform), batch_size=8)

dataiter = iter(trainloader)
images, labels = next(dataiter)
print("batch:", tuple(images.shape), "labels:", " ".join(f"{classes[labels[j]]:5s}" for j in range(4)))
print("normalised range:", round(images.min().item(), 3), round(images.max().item(), 3))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 4)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def pseudo_uniform(n, seed):
    """Deterministic values in [-1, 1) from integer arithmetic (an LCG), exact everywhere."""
    k = torch.arange(n, dtype=torch.int64) + seed * 7919
    return ((k * 1103515245 + 12345) % 2147483648).float() / 1073741824 - 1


net = Net()
with torch.no_grad():
    for i, p in enumerate(net.parameters()):
        fan_in = p[0].numel() if p.dim() > 1 else p.numel()
        p.copy_(pseudo_uniform(p.numel(), i).view_as(p) / fan_in ** 0.5)
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(net.parameters(), lr=1e-3)

for epoch in range(3):
    running_loss = 0.0
    for i, data in enumerate(trainloader, 0):
        inputs, labels = data
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        if i % 6 == 5:
            print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 6:.3f}")
            running_loss = 0.0
print("Finished Training")

correct_pred = {classname: 0 for classname in classes}
total_pred = {classname: 0 for classname in classes}
with torch.no_grad():
    for data in testloader:
        images, labels = data
        outputs = net(images)
        _, predictions = torch.max(outputs, 1)
        for label, prediction in zip(labels, predictions):
            if label == prediction:
                correct_pred[classes[label]] += 1
            total_pred[classes[label]] += 1
for classname, correct_count in correct_pred.items():
    accuracy = 100 * float(correct_count) / total_pred[classname]
    print(f"Accuracy for class: {classname:5s} is {accuracy:.1f} %")
