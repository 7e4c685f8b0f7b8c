"""SyncBatchNorm under several ranks (mpiexec -n N python -m pytest --with-mpi): on N ranks it equals
PyTorch's BatchNorm on the concatenation of the ranks' batches, which may differ in size."""
import numpy as np
import pytest
import torch

import distml
import distml.distributed as dist
from distml import nn
from distml.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi

CHANNELS = 3



def split(sizes, rank):
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def summed(grad):
    """The gradient summed over ranks (what each rank's share of the loss contributes)."""
    total = grad.detach().numpy().copy()
    dist.all_reduce(total)
    return total


def compare(sizes, tail, dtype, steps=3, momentum=0.1, group_ranks=None):
    """SyncBatchNorm on this rank's rows of a global batch against torch.nn.BatchNorm on all of
    them (rows of the ranks in group_ranks, when given): outputs, input gradients, summed
    weight and bias gradients, running statistics."""
    rank = dist.get_rank()
    group = dist.new_group(group_ranks) if group_ranks is not None else None
    members = group_ranks if group_ranks is not None else list(range(dist.get_world_size()))
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    sync = nn.SyncBatchNorm(CHANNELS, momentum=momentum, process_group=group).to(distml.from_numpy(
        np.zeros(1, dtype)).dtype)
    bn_class = {0: torch.nn.BatchNorm1d, 1: torch.nn.BatchNorm1d, 2: torch.nn.BatchNorm2d}[len(tail)]
    reference = bn_class(CHANNELS, momentum=momentum).to(torch_dtype)
    rng = np.random.default_rng(7)
    weight, bias = rng.uniform(0.5, 1.5, CHANNELS).astype(dtype), rng.standard_normal(CHANNELS).astype(dtype)
    sync.weight.array[...], sync.bias.array[...] = weight, bias
    reference.weight.data, reference.bias.data = torch.from_numpy(weight.copy()), torch.from_numpy(bias.copy())
    tol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    my_sizes = [sizes[r] for r in members]
    for _ in range(steps):
        shape = (sum(my_sizes), CHANNELS) + tail
        x = (rng.standard_normal(shape) * 3 + rng.standard_normal(CHANNELS).reshape((1, CHANNELS) + (1,) * len(tail))
             ).astype(dtype)
        upstream = rng.standard_normal(shape).astype(dtype)
        if rank not in members:
            continue
        mine = split(my_sizes, members.index(rank))
        dx = distml.tensor(x[mine], requires_grad=True)
        out = sync(dx)
        (out * distml.tensor(upstream[mine])).sum().backward()
        tx = torch.tensor(x, requires_grad=True)
        t_out = reference(tx)
        (t_out * torch.from_numpy(upstream)).sum().backward()
        np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy()[mine], **tol)
        np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy()[mine], **tol)
    if rank not in members:
        return
    for name in ("weight", "bias"):
        grad = getattr(sync, name).grad.detach().numpy().copy()
        dist.all_reduce(grad, group=group)
        np.testing.assert_allclose(grad, getattr(reference, name).grad.numpy(), err_msg=name, **tol)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(sync, name).numpy(), getattr(reference, name).numpy(), err_msg=name, **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tail", [(), (5,), (4, 3)])
def test_equals_batchnorm_on_the_concatenated_batch(tail, dtype):
    compare([2] * dist.get_world_size(), tail, dtype)


def test_ranks_with_different_batch_sizes():
    compare([rank + 1 for rank in range(dist.get_world_size())], (4,), np.float64)


def test_a_rank_with_an_empty_batch():
    compare([0] + [3] * (dist.get_world_size() - 1), (2, 2), np.float64)


def test_cumulative_average_without_momentum():
    compare([rank + 2 for rank in range(dist.get_world_size())], (3,), np.float64, steps=4, momentum=None)


def test_process_group_of_two_ranks():
    """Ranks 0 and 1 share statistics; others (outside the group) normalise alone."""
    compare([2 + rank for rank in range(dist.get_world_size())], (3,), np.float64, group_ranks=[0, 1])


def test_eval_uses_running_statistics_without_communication(monkeypatch):
    sync = nn.SyncBatchNorm(CHANNELS)
    sync.running_mean.array[...] = [1.0, -1.0, 0.5]
    sync.running_var.array[...] = [4.0, 1.0, 0.25]
    sync.eval()
    calls = []
    for name in ("all_reduce", "all_gather_into_tensor"):
        monkeypatch.setattr(dist, name, lambda *a, name=name, **k: calls.append(name))
    x = np.random.default_rng(dist.get_rank()).standard_normal((2, CHANNELS, 4))
    reference = torch.nn.BatchNorm1d(CHANNELS).double().eval()
    reference.running_mean.copy_(torch.tensor([1.0, -1.0, 0.5]))
    reference.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    np.testing.assert_allclose(sync.double()(distml.tensor(x)).detach().numpy(),
                               reference(torch.tensor(x)).detach().numpy(), rtol=1e-12)
    assert calls == []


def test_converted_model_under_ddp_equals_batchnorm_on_the_union_of_the_data():
    rank, world = dist.get_rank(), dist.get_world_size()

    def make(lib):
        lib.manual_seed(0)
        return lib.nn.Sequential(lib.nn.Conv2d(2, 4, 3, padding=1), lib.nn.BatchNorm2d(4), lib.nn.ReLU(),
                                 lib.nn.Flatten(), lib.nn.Linear(4 * 25, 3)).double()

    model = DDP(nn.SyncBatchNorm.convert_sync_batchnorm(make(distml)))
    reference = make(torch)
    reference.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                               for k, v in model.module.state_dict().items()})
    opt = distml.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    sizes = [2 + r for r in range(world)]
    rng = np.random.default_rng(3)
    for _ in range(4):
        x = rng.standard_normal((sum(sizes), 2, 5, 5))
        y = rng.standard_normal((sum(sizes), 3))
        mine = split(sizes, rank)
        opt.zero_grad()
        # Each rank's loss is its share of the global mean, scaled by world for DDP's average.
        loss = ((model(distml.tensor(x[mine])) - distml.tensor(y[mine])) ** 2).sum() * (world / y.size)
        loss.backward()
        opt.step()
        ref_opt.zero_grad()
        ((reference(torch.tensor(x)) - torch.tensor(y)) ** 2).mean().backward()
        ref_opt.step()
    for name, value in reference.state_dict().items():
        np.testing.assert_allclose(model.module.state_dict()[name].detach().numpy(), value.numpy(), rtol=1e-9,
                                   atol=1e-11, err_msg=name)
