"""DDP communication hooks under several ranks: register_comm_hook's interface, Work.get_future,
and the built-in hooks against their definitions (run with mpiexec -n N python -m pytest --with-mpi).

Each rank computes its local gradients on a plain replica and all-gathers them, so every rank
knows every rank's gradient and checks the hook's result against the formula.
"""
import ml_dtypes
import numpy as np
import pytest

import distml
import distml.distributed as dist
import distml.nn as nn
from distml.distributed.algorithms.ddp_comm_hooks import default_hooks
from distml.futures import Future
from distml.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi

BATCH = 4



def make_model():
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 3))


def batch(step, rank):
    rng = np.random.default_rng(1000 * step + rank)
    return (distml.from_numpy(rng.standard_normal((BATCH, 8)).astype(np.float32)),
            distml.from_numpy(rng.standard_normal((BATCH, 3)).astype(np.float32)))


def every_ranks_gradients(reference, x, y):
    """[rank][param] local gradients of the plain replica `reference` on each rank's batch."""
    reference.zero_grad()
    nn.functional.mse_loss(reference(x), y).backward()
    mine = [p.grad.numpy().copy() for p in reference.parameters()]
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    return everyone


def ddp_and_reference(**kwargs):
    distml.manual_seed(0)
    model = DDP(make_model(), bucket_cap_mb=0.001, **kwargs)  # several buckets
    reference = make_model()
    reference.load_state_dict(model.module.state_dict())
    return model, reference


def test_allreduce_hook_equals_no_hook():
    rank = dist.get_rank()
    plain, _ = ddp_and_reference()
    hooked, _ = ddp_and_reference()
    hooked.module.load_state_dict(plain.module.state_dict())
    hooked.register_comm_hook(None, default_hooks.allreduce_hook)
    x, y = batch(0, rank)
    for model in (plain, hooked):
        nn.functional.mse_loss(model(x), y).backward()
    for p, q in zip(plain.module.parameters(), hooked.module.parameters()):
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_pytorch_style_hook_with_get_future_then():
    rank, world = dist.get_rank(), dist.get_world_size()
    model, reference = ddp_and_reference()
    seen = []

    def hook(state, bucket: dist.GradBucket) -> Future[distml.Tensor]:
        seen.append((bucket.index(), bucket.is_last(), len(bucket.parameters())))
        flat = bucket.buffer()
        offset = 0
        for grad, param in zip(bucket.gradients(), bucket.parameters()):
            assert grad.shape == param.shape
            np.testing.assert_array_equal(flat.numpy()[offset:offset + grad.numel()], grad.numpy().reshape(-1))
            offset += grad.numel()
        assert offset == flat.numel()
        state["calls"] += 1
        return dist.all_reduce(flat, async_op=True).get_future().then(lambda fut: fut.value()[0].div_(world))

    state = {"calls": 0}
    model.register_comm_hook(state, hook)
    x, y = batch(1, rank)
    nn.functional.mse_loss(model(x), y).backward()
    count = len(model.reducer.buckets)
    assert state["calls"] == count >= 2
    assert [s[0] for s in seen] == list(range(count))
    assert [s[1] for s in seen] == [False] * (count - 1) + [True]
    everyone = every_ranks_gradients(reference, x, y)
    for i, p in enumerate(model.module.parameters()):
        expected = np.mean([g[i] for g in everyone], axis=0)
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_hook_result_becomes_the_gradients():
    model, _ = ddp_and_reference()

    def constant(state, bucket):
        fut = Future()
        fut.set_result(distml.full((bucket.buffer().numel(),), float(bucket.index() + 1)))
        return fut

    model.register_comm_hook(None, constant)
    x, y = batch(2, dist.get_rank())
    nn.functional.mse_loss(model(x), y).backward()
    for bucket in model.reducer.buckets:
        for p in bucket.params:
            np.testing.assert_array_equal(p.grad.numpy(), np.full(p.shape, bucket.index + 1, np.float32))


def test_register_comm_hook_errors():
    model, _ = ddp_and_reference()
    model.register_comm_hook(None, default_hooks.allreduce_hook)
    with pytest.raises(RuntimeError, match="can only be called once"):
        model.register_comm_hook(None, default_hooks.allreduce_hook)
    other, _ = ddp_and_reference()
    with pytest.raises(TypeError, match="must be callable"):
        other.register_comm_hook(None, 3)

    def wrong_bucket(state, bucket: int):
        pass

    with pytest.raises(ValueError, match="bucket annotation should be dist.GradBucket"):
        other.register_comm_hook(None, wrong_bucket)

    def wrong_return(state, bucket) -> int:
        pass

    with pytest.raises(ValueError, match="return annotation should be"):
        other.register_comm_hook(None, wrong_return)

    def wrong_size(state, bucket):
        fut = Future()
        fut.set_result(distml.zeros(1))
        return fut

    other.register_comm_hook(None, wrong_size)
    x, y = batch(0, dist.get_rank())
    with pytest.raises(RuntimeError, match="elements, expected the bucket's"):
        nn.functional.mse_loss(other(x), y).backward()


def test_work_get_future():
    rank, world = dist.get_rank(), dist.get_world_size()
    t = distml.full((5,), float(rank + 1))
    fut = dist.all_reduce(t, async_op=True).get_future()
    doubled = fut.then(lambda f: f.value()[0] * 2)
    np.testing.assert_array_equal(doubled.wait().numpy(), np.full(5, world * (world + 1), np.float32))
    assert fut.done() and fut.value()[0] is t


def _poll(future, seconds=30):
    """future.done(), asked until it holds (no wait()): True, or False after `seconds`."""
    import time
    deadline = time.monotonic() + seconds
    while not future.done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


@pytest.mark.parametrize("op", [dist.ReduceOp.SUM, dist.ReduceOp.AVG])
def test_future_done_once_the_work_finished_without_wait(op):
    """As torch's: done() turns True when the collective has finished, nobody having waited;
    the value is final then (AVG divided) and then() chains and collect_all follow."""
    from distml.futures import collect_all
    rank, world = dist.get_rank(), dist.get_world_size()
    t = distml.full((1000,), float(rank + 1))
    work = dist.all_reduce(t, op=op, async_op=True)
    fut = work.get_future()
    seen = []
    chained = fut.then(lambda f: seen.append("first") or f.value()[0] + 1)
    chained2 = chained.then(lambda f: seen.append("second") or f.value() * 10)
    other = dist.all_reduce(distml.ones(3), async_op=True).get_future()
    both = collect_all([fut, other])
    assert _poll(chained2)  # asking the end of the chain drives the whole chain
    assert fut.done() and chained.done() and work.is_completed() and seen == ["first", "second"]
    total = world * (world + 1) / 2 / (world if op == dist.ReduceOp.AVG else 1)
    np.testing.assert_allclose(t.numpy(), np.full(1000, total, np.float32))
    np.testing.assert_allclose(chained2.value().numpy(), np.full(1000, (total + 1) * 10, np.float32))
    assert _poll(both) and other.done()
    np.testing.assert_array_equal(other.value()[0].numpy(), np.full(3, world, np.float32))
    callbacks = []
    late = dist.all_reduce(distml.ones(2), async_op=True).get_future()
    late.add_done_callback(lambda f: callbacks.append(f.value()[0].numpy().copy()))
    assert _poll(late) and len(callbacks) == 1  # done() ran the callback, once
    assert late.done() and len(callbacks) == 1
    out = distml.zeros(2 * world)
    gathered = dist.all_gather_into_tensor(out, distml.full((2,), float(rank)), async_op=True).get_future()
    np.testing.assert_array_equal(gathered.wait()[0].numpy(), np.repeat(np.arange(world, dtype=np.float32), 2))


def _check_compression(hook, np_dtype, rtol):
    """The hook's gradients: the average of every rank's gradient cast to np_dtype and divided by
    the world size, summed in np_dtype (so each value is exactly representable in it)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    model, reference = ddp_and_reference()
    model.register_comm_hook(None, hook)
    x, y = batch(3, rank)
    nn.functional.mse_loss(model(x), y).backward()
    everyone = every_ranks_gradients(reference, x, y)
    for i, p in enumerate(model.module.parameters()):
        got = p.grad.numpy()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.astype(np_dtype).astype(np.float32), got)  # came through np_dtype
        compressed = [(g[i].astype(np_dtype).astype(np.float64) / world).astype(np_dtype) for g in everyone]
        exact = np.sum([c.astype(np.float64) for c in compressed], axis=0)
        # Each partial sum is rounded to np_dtype: an error of rtol times the magnitudes summed.
        bound = rtol * world * np.sum([np.abs(c.astype(np.float64)) for c in compressed], axis=0) + 1e-7
        assert np.all(np.abs(got - exact) <= bound), np.max(np.abs(got - exact) - bound)
        # Against the exact mean: the two casts add rtol of each |g / world|.
        mean = np.mean([g[i].astype(np.float64) for g in everyone], axis=0)
        magnitude = np.sum([np.abs(g[i].astype(np.float64)) / world for g in everyone], axis=0)
        assert np.all(np.abs(got - mean) <= rtol * (world + 2) * magnitude + 1e-7)


def test_fp16_compress_hook():
    _check_compression(default_hooks.fp16_compress_hook, np.float16, rtol=2.0 ** -10)


def test_bf16_compress_hook():
    _check_compression(default_hooks.bf16_compress_hook, ml_dtypes.bfloat16, rtol=2.0 ** -7)


@pytest.fixture(scope="module")
def torch_gloo():
    """torch.distributed over gloo among the same ranks (rank 0's free port, broadcast)."""
    import socket

    import torch
    import torch.distributed as tdist
    port = [None]
    if dist.get_rank() == 0:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port[0] = sock.getsockname()[1]
    dist.broadcast_object_list(port, src=0)
    tdist.init_process_group("gloo", rank=dist.get_rank(), world_size=dist.get_world_size(),
                             init_method=f"tcp://127.0.0.1:{port[0]}")
    yield torch
    tdist.destroy_process_group()


def test_bfloat16_all_reduce_as_torch_gloo(torch_gloo):
    """A bfloat16 SUM: float32 arithmetic rounded to nearest even after each rank's addition, so
    at 2 ranks bitwise torch's; at more, the order of the additions differs (within bf16 rounding)."""
    torch = torch_gloo
    rank, world = dist.get_rank(), dist.get_world_size()
    values = np.random.default_rng(rank).standard_normal(5000).astype(np.float32) * 100
    values[:4] = [1.0, 2.0 ** -8, -3.5, 3e37]
    ours = distml.from_numpy(values).to(distml.bfloat16)
    theirs = torch.from_numpy(values).to(torch.bfloat16)
    dist.all_reduce(ours)
    torch.distributed.all_reduce(theirs)
    got, expected = ours.float().numpy(), theirs.float().numpy()
    if world == 2:
        np.testing.assert_array_equal(got, expected)
    else:
        everyone = [None] * world
        dist.all_gather_object(everyone, np.abs(values.astype(ml_dtypes.bfloat16).astype(np.float64)))
        bound = 2.0 ** -8 * world * np.sum(everyone, axis=0)
        assert np.all(np.abs(got.astype(np.float64) - expected) <= bound)
    assert ours.dtype == distml.bfloat16
    maxed = distml.from_numpy(values).to(distml.bfloat16)
    dist.all_reduce(maxed, op=dist.ReduceOp.MAX)
    t_maxed = torch.from_numpy(values).to(torch.bfloat16)
    torch.distributed.all_reduce(t_maxed, op=torch.distributed.ReduceOp.MAX)
    np.testing.assert_array_equal(maxed.float().numpy(), t_maxed.float().numpy())


def test_bf16_compress_hook_as_torchs(torch_gloo):
    """distml's bf16_compress_hook against torch's (given the bucket as a tuple, which it takes;
    torch's DDP refuses it without NCCL) on the same float32 buffer of every rank."""
    torch = torch_gloo
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks as t_default
    from distml.distributed import GradBucket
    rank, world = dist.get_rank(), dist.get_world_size()
    values = np.random.default_rng(10 + rank).standard_normal(3001).astype(np.float32)
    buffer = distml.from_numpy(values.copy())
    bucket = GradBucket(0, 1, buffer, [buffer], [])
    got = default_hooks.bf16_compress_hook(None, bucket).wait()
    expected = t_default.bf16_compress_hook(None, (torch.from_numpy(values.copy()),)).wait()
    assert got is buffer and got.dtype == distml.float32
    if world == 2:
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    else:
        # Each is a sum of the same bfloat16 terms in another order: each addition rounds by 2**-8
        # of the partial sum, bounded by the sum of the terms' magnitudes.
        terms = [None] * world
        dist.all_gather_object(terms, np.abs((values.astype(ml_dtypes.bfloat16).astype(np.float32) / world)
                                             .astype(ml_dtypes.bfloat16).astype(np.float64)))
        bound = 2 * 2.0 ** -8 * world * np.sum(terms, axis=0)
        assert np.all(np.abs(got.numpy().astype(np.float64) - expected.numpy()) <= bound)


def test_fp16_hook_sends_half_the_bytes():
    """The bucket allreduces of the fp16 hook carry float16 buffers: half of float32's bytes."""
    from distml import profiler
    model, _ = ddp_and_reference()
    plain, _ = ddp_and_reference()
    model.register_comm_hook(None, default_hooks.fp16_compress_hook)
    x, y = batch(4, dist.get_rank())
    sent = []
    for m in (plain, model):
        with profiler.profile() as prof:
            nn.functional.mse_loss(m(x), y).backward()
        sent.append(sum(e.args["bytes"] for e in prof.events() if e.name == "mpi:all_reduce"))
    assert sent[1] * 2 == sent[0] > 0


def _gram_schmidt(matrices):
    """Orthonormal columns of each (n, r) matrix of a (batch, n, r) array, left to right."""
    out = matrices.copy()
    for i in range(out.shape[2]):
        out[:, :, i] /= np.linalg.norm(out[:, :, i], axis=1, keepdims=True)
        for j in range(i + 1, out.shape[2]):
            out[:, :, j] -= np.sum(out[:, :, i] * out[:, :, j], axis=1, keepdims=True) * out[:, :, i]
    return out


def _orthonormal(matrices):
    return _gram_schmidt(matrices) if matrices.shape[2] <= 2 else np.linalg.qr(matrices)[0]


class ReferencePowerSGD:
    """PowerSGD (Vogels et al. 2019, as PyTorch's hooks run it) on every rank's gradients at once.

    reduce(bucket index, is last, grads[rank][param]) returns the parameters' new gradients.
    The random starting Qs come from distml.Generator seeded by numpy's RandomState(0), as the
    hooks' do; everything else is NumPy here.
    """

    def __init__(self, world, rank, start, batched=False, same_shape=False, min_rate=2):
        self.world, self.rank, self.start, self.min_rate = world, rank, start, min_rate
        self.batched, self.same_shape = batched, same_shape
        self.rng = np.random.RandomState(0)
        self.iter, self.errors, self.qs = 0, {}, {}


    def reduce(self, index, is_last, grads):
        shapes = [g.shape for g in grads[0]]
        if self.iter < self.start:
            out = [np.mean([g[i] for g in grads], axis=0) for i in range(len(shapes))]
        else:
            flats = [np.concatenate([g.reshape(-1) for g in gs]) for gs in grads]
            out = self._batched(index, flats, shapes) if self.batched else self._per_tensor(index, flats, shapes)
        if is_last:
            self.iter += 1
        return out

    def _with_error(self, index, flats):
        if index in self.errors:
            flats = [f + e for f, e in zip(flats, self.errors[index])]
        return flats

    def _per_tensor(self, index, flats, shapes):
        flats = self._with_error(index, flats)
        sizes = [int(np.prod(s)) for s in shapes]
        offsets = np.cumsum([0] + sizes)
        span = [slice(offsets[i], offsets[i + 1]) for i in range(len(shapes))]
        out = np.empty_like(flats[0])
        groups = {}
        for i, shape in enumerate(shapes):
            n, m = shape[0], sizes[i] // shape[0]
            k = min(n, m, self.rank)
            if (n + m) * k * self.min_rate < n * m:
                groups.setdefault((n, m), []).append(i)
            else:
                out[span[i]] = np.sum([f[span[i]] for f in flats], axis=0) / self.world
        batches = [b for group in groups.values() for b in ([group] if self.same_shape else [[i] for i in group])]
        if index not in self.qs:
            generator = distml.Generator().manual_seed(self.rng.randint(1_000_000_000))
            self.qs[index] = []
            for b in batches:
                n, m = shapes[b[0]][0], sizes[b[0]] // shapes[b[0]][0]
                q = distml.randn(len(b), m, min(n, m, self.rank), generator=generator).numpy()
                self.qs[index].append(q)
        for slot, b in enumerate(batches):
            n, m = shapes[b[0]][0], sizes[b[0]] // shapes[b[0]][0]
            q = _orthonormal(self.qs[index][slot])
            mats = [np.stack([f[span[i]].reshape(n, m) for i in b]) for f in flats]
            p = _orthonormal(np.sum([mat @ q for mat in mats], axis=0))
            q = np.sum([mat.transpose(0, 2, 1) @ p for mat in mats], axis=0) / self.world
            self.qs[index][slot] = q
            approx = p @ q.transpose(0, 2, 1)
            for j, i in enumerate(b):
                out[span[i]] = approx[j].reshape(-1)
        self.errors[index] = [f - out for f in flats]
        return [out[span[i]].reshape(s) for i, s in enumerate(shapes)]

    def _batched(self, index, flats, shapes):
        length = flats[0].size
        side = int(np.ceil(np.sqrt(length)))
        padded = [np.concatenate([f, np.zeros(side * side - length, f.dtype)]) for f in flats]
        padded = self._with_error(index, padded)
        if index not in self.qs:
            generator = distml.Generator().manual_seed(self.rng.randint(1_000_000_000))
            self.qs[index] = distml.randn(side, self.rank, generator=generator).numpy()
        q = _orthonormal(self.qs[index][None])[0]
        mats = [f.reshape(side, side) for f in padded]
        p = _orthonormal(np.sum([mat @ q for mat in mats], axis=0)[None])[0]
        q = np.sum([mat.T @ p for mat in mats], axis=0) / self.world
        self.qs[index] = q
        approx = (p @ q.T).reshape(-1)
        self.errors[index] = [f - approx for f in padded]
        out, offset = [], 0
        for s in shapes:
            size = int(np.prod(s))
            out.append(approx[offset:offset + size].reshape(s))
            offset += size
        return out


def same_shapes_model():
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 3))


@pytest.mark.parametrize("hook_name,approximation_rank,same_shape,bucket_cap_mb,factory", [
    ("powerSGD_hook", 1, False, 0.001, make_model),
    ("powerSGD_hook", 2, False, 25, make_model),
    ("powerSGD_hook", 3, False, 0.001, make_model),      # rank > 2: QR instead of Gram-Schmidt
    ("powerSGD_hook", 2, True, 25, same_shapes_model),   # the two 16x16 weights in one batch
    ("powerSGD_hook", 1, False, 25, same_shapes_model),
    ("batched_powerSGD_hook", 2, False, 0.001, make_model),
    ("batched_powerSGD_hook", 4, False, 25, make_model),
])
def test_powerSGD_against_numpy_reference(hook_name, approximation_rank, same_shape, bucket_cap_mb, factory):
    from distml.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd
    rank, world = dist.get_rank(), dist.get_world_size()
    model = DDP(factory(), bucket_cap_mb=bucket_cap_mb)
    reference = factory()
    reference.load_state_dict(model.module.state_dict())
    state = powersgd.PowerSGDState(None, matrix_approximation_rank=approximation_rank, start_powerSGD_iter=2,
                                   batch_tensors_with_same_shape=same_shape)
    model.register_comm_hook(state, getattr(powersgd, hook_name))
    expected_hook = ReferencePowerSGD(world, approximation_rank, start=2, batched=hook_name.startswith("batched"),
                                      same_shape=same_shape)
    params = list(model.module.parameters())
    position = {id(p): i for i, p in enumerate(params)}
    buckets = model.reducer.buckets
    for step in range(5):
        x, y = batch(10 + step, rank)
        model.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        everyone = every_ranks_gradients(reference, x, y)
        for bucket in buckets:
            which = [position[id(p)] for p in bucket.params]
            expected = expected_hook.reduce(bucket.index, bucket.index == len(buckets) - 1,
                                            [[g[i] for i in which] for g in everyone])
            for i, e in zip(which, expected):
                np.testing.assert_allclose(params[i].grad.numpy(), e, rtol=2e-4, atol=2e-6,
                                           err_msg=f"step {step}, parameter {i}")
        mean = [np.mean([g[i] for g in everyone], axis=0) for i in range(len(params))]
        compressed = not all(np.allclose(p.grad.numpy(), m, rtol=1e-3, atol=1e-5) for p, m in zip(params, mean))
        assert compressed == (step >= 2), "PowerSGD should change the gradients from start_powerSGD_iter on"
    assert state.iter == 5
    if hook_name == "powerSGD_hook":
        ratio, before, after = state.compression_stats()
        assert before > after > 0 and ratio == before / after


def test_powerSGD_state_checks_start_iter():
    from distml.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import PowerSGDState
    with pytest.raises(ValueError, match="start_powerSGD_iter` > 1"):
        PowerSGDState(None, start_powerSGD_iter=1)
    PowerSGDState(None, start_powerSGD_iter=1, use_error_feedback=False, warm_start=False)
