"""DistributedDataParallel under several ranks (run with mpiexec -n N python -m pytest --with-mpi)."""
import numpy as np
import pytest

import distml
import distml.distributed as dist
import distml.nn as nn
from distml.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi

PER_RANK_BATCH = 4



def make_model(width=16):
    return nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 3))


def global_batch(step, world):
    rng = np.random.default_rng(100 + step)
    x = rng.standard_normal((PER_RANK_BATCH * world, 8)).astype(np.float32)
    y = rng.standard_normal((PER_RANK_BATCH * world, 3)).astype(np.float32)
    return distml.from_numpy(x), distml.from_numpy(y)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_n_ranks_equal_one_process_with_n_times_the_batch(optimizer):
    rank, world = dist.get_rank(), dist.get_world_size()
    distml.manual_seed(rank)  # different initial replicas: DDP must broadcast rank 0's
    model = DDP(make_model(), bucket_cap_mb=0.001)
    reference = make_model()
    reference.load_state_dict(model.module.state_dict())

    def make_optimizer(params):
        if optimizer == "sgd":
            return distml.optim.SGD(params, lr=0.1, momentum=0.9)
        return distml.optim.Adam(params, lr=0.01)

    opt, ref_opt = make_optimizer(model.parameters()), make_optimizer(reference.parameters())
    mine = slice(rank * PER_RANK_BATCH, (rank + 1) * PER_RANK_BATCH)
    for step in range(5):
        x, y = global_batch(step, world)
        opt.zero_grad()
        nn.functional.mse_loss(model(x[mine]), y[mine]).backward()
        opt.step()
        ref_opt.zero_grad()
        nn.functional.mse_loss(reference(x), y).backward()
        ref_opt.step()
    for (name, p), q in zip(model.module.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_buckets_launch_before_backward_ends():
    model = DDP(make_model(width=64), bucket_cap_mb=0.001)
    assert len(model.reducer.buckets) >= 2
    x, y = global_batch(0, dist.get_world_size())
    nn.functional.mse_loss(model(x), y).backward()
    launches = model.reducer.launch_log
    assert len(launches) == len(model.reducer.buckets)
    assert launches[0][1] > 0, "the first bucket should start while other gradients are still being computed"
    assert launches[-1][1] == 0


def test_no_sync_accumulates_locally_then_averages():
    rank, world = dist.get_rank(), dist.get_world_size()
    model = DDP(make_model())
    reference = make_model()
    reference.load_state_dict(model.module.state_dict())
    x, y = global_batch(1, world)
    mine = slice(rank * PER_RANK_BATCH, (rank + 1) * PER_RANK_BATCH)
    half = PER_RANK_BATCH // 2
    first, second = slice(mine.start, mine.start + half), slice(mine.start + half, mine.stop)
    with model.no_sync():
        nn.functional.mse_loss(model(x[first]), y[first]).backward()
    local = [p.grad.numpy().copy() for p in model.module.parameters()]
    nn.functional.mse_loss(model(x[second]), y[second]).backward()
    # Two half-batch mean losses summed = 2 x the per-rank mean loss, averaged over ranks.
    nn.functional.mse_loss(reference(x), y).backward()
    for p, q, before in zip(model.module.parameters(), reference.parameters(), local):
        np.testing.assert_allclose(p.grad.numpy(), 2 * q.grad.numpy(), rtol=1e-4, atol=1e-6)
        assert not np.allclose(before, p.grad.numpy())


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.used = nn.Linear(8, 3)
        self.unused = nn.Linear(8, 3)

    def forward(self, x):
        return self.used(self.body(x))


def test_unused_parameters():
    x, y = global_batch(2, dist.get_world_size())
    model = DDP(TwoHeads(), find_unused_parameters=True)
    for _ in range(2):
        nn.functional.mse_loss(model(x), y).backward()
    assert model.module.used.weight.grad is not None

    strict = DDP(TwoHeads())
    nn.functional.mse_loss(strict(x), y).backward()
    with pytest.raises(RuntimeError, match="find_unused_parameters=True.*unused.weight"):
        strict(x)


def test_buffers_follow_rank_zero():
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4))
    model[1].running_mean.fill_(float(dist.get_rank()))
    ddp = DDP(model)
    np.testing.assert_array_equal(model[1].running_mean.numpy(), np.zeros(4, np.float32))
    model[1].running_mean.fill_(float(dist.get_rank() + 5))
    ddp.eval()
    with distml.no_grad():
        ddp(global_batch(0, 1)[0])
    np.testing.assert_array_equal(model[1].running_mean.numpy(), np.full(4, 5, np.float32))


def test_different_models_raise_on_every_rank():
    width = 16 if dist.get_rank() == 0 else 32
    with pytest.raises(RuntimeError, match="rank 1"):
        DDP(make_model(width=width))
