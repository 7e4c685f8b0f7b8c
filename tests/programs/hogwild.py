# Hogwild training (pytorch/examples "mnist_hogwild" shape): one model in shared memory,
# model.share_memory(), two torch.multiprocessing workers updating it without locks.
# Updates race, so the result is checked loosely.
import torch
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.fc1 = nn.Linear(10, 32)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x):
        return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


def make_data():
    x = torch.sin(torch.arange(600 * 10, dtype=torch.float32).view(600, 10) * 0.37)
    y = (x[:, 0] + 2 * x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    return x, y


def train(rank, model, epochs):
    torch.manual_seed(1 + rank)
    x, y = make_data()
    shard = TensorDataset(x[rank::2], y[rank::2])
    loader = DataLoader(shard, batch_size=30, shuffle=True)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    model.train()
    for epoch in range(epochs):
        for data, target in loader:
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()


def evaluate(model):
    x, y = make_data()
    model.eval()
    with torch.no_grad():
        out = model(x)
    return F.nll_loss(out, y).item(), (out.argmax(1) == y).float().mean().item()


if __name__ == "__main__":
    num_processes = 2
    model = Net()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.cos(torch.arange(p.numel(), dtype=torch.float32)).view_as(p))
    # NOTE: this is required for the ``fork`` method to work
    model.share_memory()
    print("parameters in shared memory:", all(p.is_shared() for p in model.parameters()))
    before, _ = evaluate(model)
    print(f"loss before {before:.4f}")

    processes = []
    for rank in range(num_processes):
        p = mp.Process(target=train, args=(rank, model, 5))
        p.start()
        processes.append(p)
    for p in processes:
        p.join()
    print("exit codes:", [p.exitcode for p in processes])

    after, accuracy = evaluate(model)
    print("workers' updates visible in the parent:", after < before - 0.2)
    print("accuracy above 80%:", accuracy > 0.8)
