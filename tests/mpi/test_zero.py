"""ZeroRedundancyOptimizer under several ranks (mpiexec -n N python -m pytest --with-mpi): standalone it
equals the plain optimizer; inside DDP's buckets (overlap_with_ddp=True + hook_with_zero_step) it equals
DDP with the plain optimizer, sends the same bytes, and keeps about 1/N of the optimizer state per rank."""
import numpy as np
import pytest

import distml
import distml.distributed as dist
from distml import nn
from distml.distributed.algorithms.ddp_comm_hooks.ddp_zero_hook import hook_with_zero_step
from distml.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook, fp16_compress_hook
from distml.distributed.optim import ZeroRedundancyOptimizer
from distml.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi

BATCH = 4
OPTIMIZERS = {"sgd": (distml.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-3)),
              "adam": (distml.optim.Adam, dict(lr=0.01)),
              "adamw": (distml.optim.AdamW, dict(lr=0.01, weight_decay=0.05, amsgrad=True))}



def make_model(seed=0):
    """Every parameter has a multiple of 12 elements, so that each bucket splits evenly over 2, 3 or
    4 ranks. float64: plain DDP's allreduce (shared memory on one host) and ZeRO's reduce-scatter
    (the ring) add the ranks' gradients in other orders, and 20 float32 Adam steps grow that last-bit
    difference past rtol 1e-5 (1.8e-5 measured at 4 ranks)."""
    distml.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 24), nn.Tanh(), nn.Linear(24, 24), nn.Tanh(), nn.Linear(24, 12)).double()


def batch(step):
    rng = np.random.default_rng(100 + step)
    world = dist.get_world_size()
    x = rng.standard_normal((BATCH * world, 8))
    y = rng.standard_normal((BATCH * world, 12))
    return distml.from_numpy(x), distml.from_numpy(y)


def mine():
    rank = dist.get_rank()
    return slice(rank * BATCH, (rank + 1) * BATCH)


def train(model, optimizer, steps, part=None, call_step=True, first=0):
    for step in range(first, first + steps):
        x, y = batch(step)
        if part is not None:
            x, y = x[part], y[part]
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        if call_step:
            optimizer.step()


def assert_same_parameters(model, reference, rtol=1e-5, atol=1e-6):
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=rtol, atol=atol, err_msg=name)


def state_numel(optimizer):
    return sum(v.array.size for state in optimizer.state.values() for k, v in state.items()
               if isinstance(v, distml.Tensor) and k != "step")


def assert_same_state(state_dict, reference_dict):
    assert state_dict["param_groups"] == reference_dict["param_groups"]
    assert sorted(state_dict["state"]) == sorted(reference_dict["state"])
    for index, state in reference_dict["state"].items():
        assert sorted(state_dict["state"][index]) == sorted(state)
        for name, value in state.items():
            np.testing.assert_allclose(state_dict["state"][index][name].numpy(), value.numpy(), rtol=1e-5,
                                       atol=1e-7, err_msg=f"{index}.{name}")


# ---- standalone ----

@pytest.mark.parametrize("bucket_view", [False, True])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_standalone_equals_the_plain_optimizer(name, bucket_view):
    cls, options = OPTIMIZERS[name]
    model, reference = make_model(), make_model()
    zero = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=cls, parameters_as_bucket_view=bucket_view,
                                   **options)
    train(model, zero, 6)
    train(reference, cls(reference.parameters(), **options), 6)
    assert_same_parameters(model, reference)


def test_standalone_partition_is_greedy_by_size_and_state_is_sharded():
    model = make_model()
    zero = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=distml.optim.Adam, lr=0.01)
    world = dist.get_world_size()
    sizes, expected = [0] * world, {}
    for p in sorted(model.parameters(), key=lambda p: p.numel(), reverse=True):
        rank = sizes.index(min(sizes))
        expected[id(p)] = rank
        sizes[rank] += p.numel()
    owned = [p for g in zero.optim.param_groups for p in g["params"]]
    assert {id(p) for p in owned} == {i for i, r in expected.items() if r == dist.get_rank()}
    train(model, zero, 1)
    assert state_numel(zero.optim) == 2 * sizes[dist.get_rank()]  # exp_avg and exp_avg_sq of its share


def test_standalone_consolidate_state_dict_load_round_trip():
    cls, options = OPTIMIZERS["adam"]
    model, reference = make_model(), make_model()
    zero = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=cls, **options)
    plain = cls(reference.parameters(), **options)
    train(model, zero, 3)
    train(reference, plain, 3)
    if dist.get_world_size() > 1 and dist.get_rank() == 1:
        with pytest.raises(RuntimeError, match=r"consolidate_state_dict\(to=1\)"):
            zero.state_dict()
    zero.consolidate_state_dict(to=0)
    saved = [zero.state_dict() if dist.get_rank() == 0 else None]
    if dist.get_rank() == 0:
        assert_same_state(saved[0], plain.state_dict())
    dist.broadcast_object_list(saved, src=0)
    restored = make_model()
    restored.load_state_dict(model.state_dict())
    fresh = ZeroRedundancyOptimizer(restored.parameters(), optimizer_class=cls, lr=0.5)
    fresh.load_state_dict(saved[0])
    assert fresh.param_groups[0]["lr"] == options["lr"]
    train(restored, fresh, 3, first=3)
    train(reference, plain, 3, first=3)
    assert_same_parameters(restored, reference)


def test_add_param_group_as_torch():
    model, reference = make_model(), make_model()
    params, ref_params = list(model.parameters()), list(reference.parameters())
    zero = ZeroRedundancyOptimizer(params[:4], optimizer_class=distml.optim.SGD, lr=0.1, momentum=0.9)
    plain = distml.optim.SGD(ref_params[:4], lr=0.1, momentum=0.9)
    train(model, zero, 2)
    train(reference, plain, 2)
    zero.add_param_group({"params": params[4:], "lr": 0.02})
    plain.add_param_group({"params": ref_params[4:], "lr": 0.02})
    assert len(zero.param_groups) == 2 and zero.param_groups[1]["lr"] == 0.02
    assert len(zero.optim.param_groups) == 2
    train(model, zero, 3, first=2)
    train(reference, plain, 3, first=2)
    assert_same_parameters(model, reference)


def test_errors_as_torch():
    with pytest.raises(ValueError, match="ZeroRedundancyOptimizer got an empty parameter list"):
        ZeroRedundancyOptimizer([], optimizer_class=distml.optim.SGD, lr=0.1)
    with pytest.raises(TypeError, match="`params` argument should be an iterable of Tensors"):
        ZeroRedundancyOptimizer(distml.ones(2), optimizer_class=distml.optim.SGD, lr=0.1)
    mixed = [nn.Parameter(distml.ones(2)), nn.Parameter(distml.ones(2, dtype=distml.float64))]
    with pytest.raises(ValueError, match="the same dense type for all parameters"):
        ZeroRedundancyOptimizer(mixed, optimizer_class=distml.optim.SGD, lr=0.1)
    with pytest.raises(ValueError, match="requires an elementwise optimizer"):
        ZeroRedundancyOptimizer(make_model().parameters(), optimizer_class=distml.optim.LBFGS, overlap_with_ddp=True)
    zero = ZeroRedundancyOptimizer(make_model().parameters(), optimizer_class=distml.optim.SGD, overlap_with_ddp=True,
                                   lr=0.1)
    with pytest.raises(RuntimeError, match="fully initialized"):
        zero.consolidate_state_dict()
    with pytest.raises(NotImplementedError, match="fp16_compress_hook"):
        hook_with_zero_step(fp16_compress_hook, DDP(make_model()), zero)


# ---- inside DDP's buckets ----

def overlapped(name, bucket_cap_mb=0.001):
    cls, options = OPTIMIZERS[name]
    ddp = DDP(make_model(seed=dist.get_rank()), bucket_cap_mb=bucket_cap_mb)
    zero = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=cls, overlap_with_ddp=True, **options)
    ddp.register_comm_hook(None, hook_with_zero_step(allreduce_hook, ddp, zero))
    return ddp, zero


def plain_ddp(name, bucket_cap_mb=0.001):
    cls, options = OPTIMIZERS[name]
    ddp = DDP(make_model(seed=dist.get_rank()), bucket_cap_mb=bucket_cap_mb)
    return ddp, cls(ddp.parameters(), **options)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_ddp_with_zero_equals_plain_ddp_over_20_steps(name):
    ddp, zero = overlapped(name)
    assert len(ddp.reducer.buckets) >= 3
    reference, optimizer = plain_ddp(name)
    train(ddp, zero, 20, part=mine(), call_step=False)
    train(reference, optimizer, 20, part=mine())
    assert_same_parameters(ddp.module, reference.module)
    with pytest.warns(UserWarning, match="should not be included in the training loop"):
        assert zero.step() is None


def test_a_single_bucket_and_a_large_one():
    ddp, zero = overlapped("adam", bucket_cap_mb=25)
    assert len(ddp.reducer.buckets) == 1
    reference, optimizer = plain_ddp("adam", bucket_cap_mb=25)
    train(ddp, zero, 5, part=mine(), call_step=False)
    train(reference, optimizer, 5, part=mine())
    assert_same_parameters(ddp.module, reference.module)


def test_parameters_are_the_all_gathers_output_in_place():
    """No copy of a bucket: each bucket's parameters view one flat array, the all-gather's output,
    whose slice this rank's optimizer steps; DDP's bucket storage is what the reduce-scatter takes
    (padded in place). A parameter whose memory is replaced from outside is taken back, its values kept."""
    ddp, zero = overlapped("sgd", bucket_cap_mb=0.001)
    reference, optimizer = plain_ddp("sgd", bucket_cap_mb=0.001)
    for shard, bucket in zip(zero._shards, ddp.reducer.buckets):
        assert all(np.shares_memory(p.array, shard.flat) for p in shard.params)
        assert all(np.shares_memory(piece.array, shard.flat) for piece in shard.pieces)
        assert bucket.storage.size == shard.flat.size and bucket.buffer.base is bucket.storage
    train(ddp, zero, 2, part=mine(), call_step=False)
    first = next(ddp.module.parameters())
    first.data = distml.from_numpy(first.detach().numpy().copy())  # e.g. a user's `p.data = ...`
    train(ddp, zero, 2, part=mine(), call_step=False, first=2)
    assert any(np.shares_memory(first.array, shard.flat) for shard in zero._shards)
    train(reference, optimizer, 4, part=mine())
    assert_same_parameters(ddp.module, reference.module)


def test_group_world_and_none_are_one_group_for_the_hook():
    ddp = DDP(make_model(seed=dist.get_rank()), process_group=dist.group.WORLD, bucket_cap_mb=0.001)
    zero = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=distml.optim.SGD, overlap_with_ddp=True, lr=0.05)
    ddp.register_comm_hook(None, hook_with_zero_step(allreduce_hook, ddp, zero))
    reference, optimizer = plain_ddp("sgd")
    optimizer = distml.optim.SGD(reference.parameters(), lr=0.05)
    train(ddp, zero, 2, part=mine(), call_step=False)
    train(reference, optimizer, 2, part=mine())
    assert_same_parameters(ddp.module, reference.module)


def bytes_sent(monkeypatch, run):
    """Bytes this rank sends in `run()`, counting each collective as the ring algorithm does
    (N ranks, B bytes): allreduce 2(N-1)/N B, reduce-scatter and all-gather (N-1)/N B each,
    broadcast B."""
    n, sent = dist.get_world_size(), []
    counted = {"all_reduce": lambda args: 2 * (n - 1) * args[0].array.nbytes // n,
               "reduce_scatter_tensor": lambda args: (n - 1) * args[0].array.nbytes,
               "all_gather_into_tensor": lambda args: (n - 1) * args[1].array.nbytes,
               "broadcast": lambda args: args[0].array.nbytes}
    for name, cost in counted.items():
        original = getattr(dist, name)

        def counting(*args, original=original, cost=cost, **kwargs):
            sent.append(cost(args))
            return original(*args, **kwargs)

        monkeypatch.setattr(dist, name, counting)
    run()
    monkeypatch.undo()
    return sum(sent)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_bytes_sent_equal_plain_ddp(monkeypatch, name):
    ddp, zero = overlapped(name)
    reference, optimizer = plain_ddp(name)
    zero_bytes = bytes_sent(monkeypatch, lambda: train(ddp, zero, 2, part=mine(), call_step=False))
    ddp_bytes = bytes_sent(monkeypatch, lambda: train(reference, optimizer, 2, part=mine()))
    assert zero_bytes == ddp_bytes > 0
    standalone = ZeroRedundancyOptimizer(reference.parameters(), optimizer_class=OPTIMIZERS[name][0],
                                         **OPTIMIZERS[name][1])
    torch_way = bytes_sent(monkeypatch, lambda: train(reference, standalone, 2, part=mine()))
    if dist.get_world_size() == 2:  # PyTorch's DDP + ZeRO: allreduce, then each rank broadcasts its partition
        assert torch_way > 1.4 * ddp_bytes


def test_state_per_rank_is_about_one_nth():
    ddp, zero = overlapped("adam")
    train(ddp, zero, 1, part=mine(), call_step=False)
    total = sum(p.numel() for p in ddp.parameters())
    mine_numel = state_numel(zero.optim)
    assert mine_numel == 2 * sum(piece.numel() for g in zero.optim.param_groups for piece in g["params"])
    counts = [None] * dist.get_world_size()
    dist.all_gather_object(counts, mine_numel)
    assert sum(counts) == 2 * total
    assert max(counts) == 2 * total // dist.get_world_size()  # each bucket splits evenly here


def test_overlap_consolidate_state_dict_matches_plain_and_loads_back():
    ddp, zero = overlapped("adamw")
    reference, optimizer = plain_ddp("adamw")
    train(ddp, zero, 4, part=mine(), call_step=False)
    train(reference, optimizer, 4, part=mine())
    zero.consolidate_state_dict(to=dist.get_world_size() - 1)
    saved = [None]
    if dist.get_rank() == dist.get_world_size() - 1:
        saved = [zero.state_dict()]
        assert_same_state(saved[0], optimizer.state_dict())
    dist.broadcast_object_list(saved, src=dist.get_world_size() - 1)
    # A new DDP + ZeRO from the saved model and optimizer continues as plain DDP does.
    resumed, fresh = overlapped("adamw")
    resumed.module.load_state_dict(ddp.module.state_dict())
    fresh.load_state_dict(saved[0])
    train(resumed, fresh, 3, part=mine(), call_step=False, first=4)
    train(reference, optimizer, 3, part=mine(), first=4)
    assert_same_parameters(resumed.module, reference.module)
    # The saved state loads into a plain optimizer too: it has the plain optimizer's layout.
    other = distml.optim.AdamW(make_model().parameters(), **OPTIMIZERS["adamw"][1])
    other.load_state_dict(saved[0])


def test_join_with_uneven_batch_counts_equals_one_process():
    """Rank r holds 2 + r batches; under ddp.join() the joined ranks still step their slices."""
    world, rank = dist.get_world_size(), dist.get_rank()
    ddp, zero = overlapped("adam")
    reference = make_model(seed=0)
    reference.load_state_dict(ddp.module.state_dict())
    plain = distml.optim.Adam(reference.parameters(), **OPTIMIZERS["adam"][1])
    counts = [2 + r for r in range(world)]
    with ddp.join():
        for step in range(counts[rank]):
            x, y = batch(step)
            zero.zero_grad()
            nn.functional.mse_loss(ddp(x[mine()]), y[mine()]).backward()
    for step in range(max(counts)):
        x, y = batch(step)
        plain.zero_grad()
        loss = sum(nn.functional.mse_loss(reference(x[r * BATCH:(r + 1) * BATCH]), y[r * BATCH:(r + 1) * BATCH])
                   for r in range(world) if step < counts[r])
        (loss / world).backward()
        plain.step()
    assert_same_parameters(ddp.module, reference)
