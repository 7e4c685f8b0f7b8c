# pytorch/examples "mnist" shape: a small CNN with Dropout, log_softmax + nll_loss, Adadelta and
# StepLR, a shuffled DataLoader and random initialisation; synthetic 12x12 "digits".
# Random weights and shuffling, so only robust properties are printed.
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def make_digits(n, generator):
    """Four classes of strokes: horizontal bar, vertical bar, diagonal, cross."""
    canvas = torch.zeros(4, 12, 12)
    canvas[0, 5:7, 2:10] = 1.0
    canvas[1, 2:10, 5:7] = 1.0
    for i in range(2, 10):
        canvas[2, i, i] = 1.0
        canvas[3, i, i] = 1.0
        canvas[3, i, 11 - i] = 1.0
    target = torch.randint(0, 4, (n,), generator=generator)
    data = canvas[target] + 0.3 * torch.randn(n, 12, 12, generator=generator)
    data = (data - 0.1307) / 0.3081
    return data.unsqueeze(1), target


def train(model, device, train_loader, optimizer, epoch):
    model.train()
    total = 0.0
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(train_loader)


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    return test_loss, 100.0 * correct / len(test_loader.dataset)


def main():
    torch.manual_seed(1)
    use_accel = torch.accelerator.is_available()
    if use_accel:
        device = torch.accelerator.current_accelerator()
    else:
        device = torch.device("cpu")
    print("device:", device)

    g = torch.Generator().manual_seed(0)
    train_x, train_y = make_digits(512, g)
    test_x, test_y = make_digits(128, g)
    train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=64, shuffle=True)
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=128)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    losses = []
    for epoch in range(1, 4):
        losses.append(train(model, device, train_loader, optimizer, epoch))
        scheduler.step()
    print("lr after 3 epochs:", round(scheduler.get_last_lr()[0], 4))
    print("train loss decreased:", losses[-1] < losses[0])
    test_loss, accuracy = test(model, device, test_loader)
    print("test accuracy above 90%:", accuracy > 90.0)
    print("test loss below 0.5:", test_loss < 0.5)


if __name__ == "__main__":
    main()
