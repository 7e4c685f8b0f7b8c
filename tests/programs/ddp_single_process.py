# The DDP tutorial's shape (setup / demo_basic / cleanup) run as a single process without a
# launcher: a world of size 1 with the default backend, DistributedDataParallel around a toy
# model, a DistributedSampler, all_reduce, and the usual "save on rank 0" checkpoint.
import os
import socket
import tempfile

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.optim as optim
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(rank, world_size):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(free_port())
    # No backend named: PyTorch then sets up the default one for each device type (gloo for CPU
    # tensors, nccl for CUDA), which keeps the script runnable on CPU-only machines.
    dist.init_process_group(rank=rank, world_size=world_size)


def cleanup():
    dist.destroy_process_group()


class ToyModel(nn.Module):
    def __init__(self):
        super(ToyModel, self).__init__()
        self.net1 = nn.Linear(10, 10)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(10, 5)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


def demo_basic(rank, world_size):
    print(f"Running basic DDP example on rank {rank}.")
    setup(rank, world_size)
    print("initialized:", dist.is_initialized(), "rank", dist.get_rank(), "of", dist.get_world_size())

    model = ToyModel().to(rank if torch.cuda.is_available() else "cpu")
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.linspace(-0.3, 0.3, p.numel()).view_as(p) * (i + 1))
    ddp_model = DDP(model)

    x = torch.cos(torch.arange(40 * 10, dtype=torch.float32).view(40, 10) * 0.1)
    y = torch.sin(torch.arange(40 * 5, dtype=torch.float32).view(40, 5) * 0.2)
    dataset = TensorDataset(x, y)
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)
    loader = DataLoader(dataset, batch_size=8, sampler=sampler)
    print("samples on this rank:", len(sampler))

    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for inputs, labels in loader:
            optimizer.zero_grad()
            loss = loss_fn(ddp_model(inputs), labels)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch} loss {loss.item():.5f}")

    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    print("all_reduce sum:", total.item())

    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ddp.pt")
            torch.save(ddp_model.state_dict(), path)
            state = torch.load(path, map_location={"cuda:0": "cpu"})
            print("checkpoint keys:", list(state.keys())[:2])
            model2 = ToyModel()
            model2.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
            print("module weights restored:", torch.equal(model2.net2.bias, ddp_model.module.net2.bias))
    dist.barrier()
    cleanup()
    print("finished, initialized:", dist.is_initialized())


if __name__ == "__main__":
    print("distributed available:", dist.is_available())
    demo_basic(0, 1)
