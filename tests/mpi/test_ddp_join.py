"""DDP with uneven inputs (join) under several ranks (mpiexec -n N python -m pytest --with-mpi).

Rank r holds BASE + r batches. In iteration s the ranks that still have a batch, A(s), train; the
others shadow them. The single-process reference takes, at iteration s, the gradient of
    sum over r in A(s) of loss_r(s) / D(s)
where D(s) is the initial world size (divide_by_initial_world_size=True) or |A(s)| (False).
"""
import numpy as np
import pytest

import distml
import distml.distributed as dist
import distml.nn as nn
from distml.distributed.algorithms import Join
from distml.distributed.algorithms.ddp_comm_hooks import default_hooks
from distml.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi

BASE, BATCH = 2, 4



def make_model():
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))


def batches_of(rank):
    rng = np.random.default_rng(50 + rank)
    return [(distml.from_numpy(rng.standard_normal((BATCH, 6)).astype(np.float32)),
             distml.from_numpy(rng.standard_normal((BATCH, 2)).astype(np.float32))) for _ in range(BASE + rank)]


def forward(model, x, rank):
    return model(x)


def train_uneven(model, optimizer, join, call=forward):
    with join:
        for x, y in batches_of(dist.get_rank()):
            optimizer.zero_grad()
            nn.functional.mse_loss(call(model, x, dist.get_rank()), y).backward()
            optimizer.step()


def reference_training(state_dict, divide_by_initial_world_size, make_optimizer, build=make_model, call=forward):
    world = dist.get_world_size()
    reference = build()
    reference.load_state_dict(state_dict)
    optimizer = make_optimizer(reference.parameters())
    data = [batches_of(r) for r in range(world)]
    for step in range(BASE + world - 1):
        active = [r for r in range(world) if step < len(data[r])]
        divisor = world if divide_by_initial_world_size else len(active)
        optimizer.zero_grad()
        loss = sum(nn.functional.mse_loss(call(reference, data[r][step][0], r), data[r][step][1]) for r in active)
        (loss / divisor).backward()
        optimizer.step()
    return reference


@pytest.mark.parametrize("divide_by_initial_world_size", [True, False])
@pytest.mark.parametrize("bucket_cap_mb", [25, 0.0005])
def test_uneven_inputs_match_one_process_on_the_union(divide_by_initial_world_size, bucket_cap_mb):
    distml.manual_seed(7)
    model = DDP(make_model(), bucket_cap_mb=bucket_cap_mb)
    start = {k: v.clone() for k, v in model.module.state_dict().items()}

    def make_optimizer(params):
        return distml.optim.SGD(params, lr=0.1, momentum=0.9)

    train_uneven(model, make_optimizer(model.parameters()),
                 model.join(divide_by_initial_world_size=divide_by_initial_world_size))
    reference = reference_training(start, divide_by_initial_world_size, make_optimizer)
    for (name, p), q in zip(model.module.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_join_with_a_comm_hook():
    """Joined ranks run the hook on zeros: the fp16 hook divides by the initial world size."""
    model = DDP(make_model(), bucket_cap_mb=0.0005)
    model.register_comm_hook(None, default_hooks.fp16_compress_hook)
    start = {k: v.clone() for k, v in model.module.state_dict().items()}

    def make_optimizer(params):
        return distml.optim.SGD(params, lr=0.1)

    train_uneven(model, make_optimizer(model.parameters()), Join([model]))
    reference = reference_training(start, True, make_optimizer)
    for p, q in zip(model.module.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-3, atol=1e-3)


class BranchOnRankZero(nn.Module):
    """The middle layer runs only on rank 0's batches: once rank 0 has joined, no active rank uses it."""

    def __init__(self):
        super().__init__()
        self.first, self.middle, self.head = nn.Linear(6, 16), nn.Linear(16, 16), nn.Linear(16, 2)

    def forward(self, x, use_middle):
        h = distml.tanh(self.first(x))
        return self.head(h + distml.tanh(self.middle(h)) if use_middle else h)


@pytest.mark.parametrize("bucket_cap_mb", [25, 0.0005])
def test_joined_ranks_mirror_the_unused_parameter_map(bucket_cap_mb):
    """find_unused_parameters under join: after rank 0 joins, the layer only it used gets no
    gradient (grad None, so momentum SGD leaves it alone), as in one process on the union."""
    world, rank = dist.get_world_size(), dist.get_rank()
    distml.manual_seed(11)
    model = DDP(BranchOnRankZero(), find_unused_parameters=True, bucket_cap_mb=bucket_cap_mb)
    start = {k: v.clone() for k, v in model.module.state_dict().items()}

    def make_optimizer(params):
        return distml.optim.SGD(params, lr=0.1, momentum=0.9)

    def call(model, x, rank):
        return model(x, rank == 0)

    train_uneven(model, make_optimizer(model.parameters()), model.join(), call)
    if rank > 0:  # in each rank's last iteration, rank 0 had joined (a joined rank keeps its grads)
        assert model.module.middle.weight.grad is None and model.module.head.weight.grad is not None
    reference = reference_training(start, True, make_optimizer, BranchOnRankZero, call)
    for (name, p), q in zip(model.module.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_buffers_and_final_model_agree_after_join():
    model = DDP(nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)))
    optimizer = distml.optim.SGD(model.parameters(), lr=0.05)
    train_uneven(model, optimizer, model.join())
    mine = [t.detach().numpy() for t in list(model.module.parameters()) + list(model.module.buffers())]
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    for other in everyone:
        for a, b in zip(other, mine):
            np.testing.assert_array_equal(a, b)
    # The last joiner (the largest rank) did every iteration: its batch-norm saw BASE + world - 1 batches.
    assert int(model.module[1].num_batches_tracked.item()) == BASE + dist.get_world_size() - 1


def test_throw_on_early_termination_raises_on_every_rank():
    model = DDP(make_model())
    optimizer = distml.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="exhausted"):
        train_uneven(model, optimizer, model.join(throw_on_early_termination=True))
    dist.barrier()  # the ranks' collectives stayed matched


def test_disabled_join_adds_no_collectives_and_even_inputs_still_train():
    from distml import profiler
    model = DDP(make_model())
    optimizer = distml.optim.SGD(model.parameters(), lr=0.1)
    x, y = batches_of(0)[0]
    with profiler.profile() as prof:
        with model.join(enable=False):
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
    names = [e.name for e in prof.events() if e.name.startswith("mpi:") and e.name != "mpi:wait"]
    assert names == ["mpi:all_reduce"] * len(model.reducer.buckets)


def test_join_errors():
    with pytest.raises(ValueError, match="at least one joinable"):
        Join([])
