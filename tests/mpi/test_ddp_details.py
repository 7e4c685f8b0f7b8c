"""DDP's options under several ranks: device_ids/output_device, buckets by dtype, one coalesced
buffer broadcast per forward, gradient_as_bucket_view, static_graph (mpiexec ... --with-mpi)."""
import numpy as np
import pytest

import distml
import distml.distributed as dist
import distml.nn as nn
from distml import profiler
from distml.distributed import ddp as ddp_module
from distml.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi

BATCH = 4



def make_model():
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


def local_batch(step, dtype=np.float32):
    rng = np.random.default_rng(300 + 10 * step + dist.get_rank())
    return (distml.from_numpy(rng.standard_normal((BATCH, 8)).astype(dtype)),
            distml.from_numpy(rng.standard_normal((BATCH, 3)).astype(dtype)))


def mean_of_every_rank(reference, x, y):
    reference.zero_grad()
    nn.functional.mse_loss(reference(x), y).backward()
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, [np.zeros(p.shape, p.dtype.np) if p.grad is None else p.grad.numpy()
                                      for p in reference.parameters()])
    return [np.mean([g[i] for g in everyone], axis=0) for i in range(len(everyone[0]))]


def collectives(prof, name):
    return [e for e in prof.events() if e.name == name]


def test_device_ids_on_a_cpu_module_raise_as_torch():
    with pytest.raises(ValueError, match="device_ids and output_device arguments only work with"):
        DDP(make_model(), device_ids=[0])
    with pytest.raises(ValueError, match="device_ids can only be None or contain a single element"):
        DDP(make_model(), device_ids=[0, 1])
    model = DDP(make_model(), device_ids=None, output_device=None)
    assert model.device_ids is None and model.output_device is None


def test_module_without_trainable_parameters_raises():
    frozen = make_model().requires_grad_(False)
    with pytest.raises(RuntimeError, match="doesn't have any parameter that requires a gradient"):
        DDP(frozen)


class Mixed(nn.Module):
    """A float32 layer feeding a float64 one."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.b = nn.Linear(16, 3).double()

    def forward(self, x):
        return self.b(self.a(x).double()).float()


def test_buckets_hold_one_dtype_each():
    model = DDP(Mixed())
    reference = Mixed()
    reference.load_state_dict(model.module.state_dict())
    buckets = model.reducer.buckets
    assert len(buckets) == 2
    for bucket in buckets:
        assert {p.dtype for p in bucket.params} == {distml.float32 if bucket.buffer.dtype == np.float32
                                                    else distml.float64}
    x, y = local_batch(0)
    nn.functional.mse_loss(model(x), y).backward()
    for p, expected in zip(model.module.parameters(), mean_of_every_rank(reference, x, y)):
        assert p.grad.dtype == p.dtype
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_buffers_broadcast_in_one_collective_per_forward():
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 8), nn.BatchNorm1d(8))
    with profiler.profile() as prof:
        ddp = DDP(model)
    assert len(collectives(prof, "mpi:broadcast")) == 1  # parameters and buffers together
    model[1].running_var.fill_(float(dist.get_rank() + 2))
    model[3].num_batches_tracked.fill_(dist.get_rank() + 10)
    x, _ = local_batch(1)
    with profiler.profile() as prof:
        ddp.eval()
        with distml.no_grad():
            ddp(x)
    assert len(collectives(prof, "mpi:broadcast")) == 1
    np.testing.assert_array_equal(model[1].running_var.numpy(), np.full(8, 2, np.float32))
    assert int(model[3].num_batches_tracked.item()) == 10
    with profiler.profile() as prof:
        ddp(x)  # no gradient sync in the previous forward: PyTorch skips the buffer sync too
    assert not collectives(prof, "mpi:broadcast")


def test_gradient_as_bucket_view():
    model = DDP(make_model(), gradient_as_bucket_view=True, bucket_cap_mb=0.0005)
    reference = make_model()
    reference.load_state_dict(model.module.state_dict())
    optimizer = distml.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        optimizer.zero_grad(set_to_none=step == 1)
        x, y = local_batch(step)
        nn.functional.mse_loss(model(x), y).backward()
        expected = mean_of_every_rank(reference, x, y)
        for bucket in model.reducer.buckets:
            for p in bucket.params:
                assert np.shares_memory(p.grad.array, bucket.buffer)
        for p, e in zip(model.module.parameters(), expected):
            np.testing.assert_allclose(p.grad.numpy(), e, rtol=1e-5, atol=1e-7)
    with model.no_sync():  # accumulation into the views, then one reduction of the sum
        optimizer.zero_grad(set_to_none=False)
        x, y = local_batch(5)
        nn.functional.mse_loss(model(x), y).backward()
    x2, y2 = local_batch(6)
    nn.functional.mse_loss(model(x2), y2).backward()
    first, second = mean_of_every_rank(reference, x, y), mean_of_every_rank(reference, x2, y2)
    for p, a, b in zip(model.module.parameters(), first, second):
        np.testing.assert_allclose(p.grad.numpy(), a + b, rtol=1e-5, atol=1e-6)


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.used = nn.Linear(8, 3)
        self.unused = nn.Linear(8, 3)

    def forward(self, x):
        return self.used(self.body(x))


class ThreeHeads(nn.Module):
    """`some` is used on rank 0 only, `never` on no rank."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.used = nn.Linear(8, 3)
        self.some = nn.Linear(8, 3)
        self.never = nn.Linear(8, 3)
        self.use_some = dist.get_rank() == 0

    def forward(self, x):
        h = self.body(x)
        return self.used(h) + self.some(h) if self.use_some else self.used(h)


@pytest.mark.parametrize("as_view", [False, True])
def test_find_unused_parameters_keeps_globally_unused_grads_none(as_view):
    """PyTorch's reducer: a parameter no rank used keeps `.grad` None (it is not written); one
    used on some ranks gets the sum of their gradients over the world size."""
    model = DDP(ThreeHeads(), find_unused_parameters=True, gradient_as_bucket_view=as_view, bucket_cap_mb=0.0005)
    reference = ThreeHeads()
    reference.load_state_dict(model.module.state_dict())
    for step in range(2):
        model.zero_grad()
        x, y = local_batch(step)
        nn.functional.mse_loss(model(x), y).backward()
        expected = mean_of_every_rank(reference, x, y)
        for (name, p), e in zip(model.module.named_parameters(), expected):
            if name.startswith("never"):
                assert p.grad is None, name
            else:
                np.testing.assert_allclose(p.grad.numpy(), e, rtol=1e-5, atol=1e-7, err_msg=name)
    assert np.any(model.module.some.weight.grad.numpy() != 0)


def test_static_graph_finds_unused_parameters_once(monkeypatch):
    calls = []
    original = ddp_module._unused_parameters
    monkeypatch.setattr(ddp_module, "_unused_parameters", lambda m, o: calls.append(1) or original(m, o))
    model = DDP(TwoHeads(), static_graph=True)
    assert model.static_graph
    reference = TwoHeads()
    reference.load_state_dict(model.module.state_dict())
    for step in range(3):
        model.zero_grad()
        x, y = local_batch(step)
        nn.functional.mse_loss(model(x), y).backward()
    assert len(calls) == 1
    expected = mean_of_every_rank(reference, x, y)
    for (name, p), e in zip(model.module.named_parameters(), expected):
        if name.startswith("unused"):
            assert p.grad is None, name  # unused on every rank: not written, as in PyTorch
        else:
            np.testing.assert_allclose(p.grad.numpy(), e, rtol=1e-5, atol=1e-7)
    with pytest.warns(UserWarning, match="no need to set it again"):
        model._set_static_graph()


def test_set_static_graph_after_construction():
    model = DDP(TwoHeads())
    model._set_static_graph()
    x, y = local_batch(0)
    for _ in range(2):
        nn.functional.mse_loss(model(x), y).backward()
    assert model.module.used.weight.grad is not None


def test_process_group_without_global_rank_zero():
    """Replicas follow the group's first rank; gradients are averaged over the group only."""
    world = dist.get_world_size()
    group = dist.new_group(list(range(1, world)))
    if dist.get_rank() == 0:
        return
    distml.manual_seed(dist.get_rank())
    model = DDP(nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4)), process_group=group)
    x, y = local_batch(7)
    nn.functional.mse_loss(model(x)[:, :3], y).backward()
    mine = [p.detach().numpy() for p in model.module.parameters()] + [p.grad.numpy() for p in model.module.parameters()]
    members = [None] * (world - 1)
    dist.all_gather_object(members, mine, group=group)
    for other in members:
        for a, b in zip(other, mine):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
