"""distml.multiprocessing: shared-memory tensors across processes, Hogwild, spawn; PyTorch as the oracle.

The functions the children run are at module level: spawned children import this module.
"""
import gc
import os
import pickle
import signal
import sys
import tempfile
import time
import warnings
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest

import distml
import distml.multiprocessing as mp
from distml import nn
from distml.multiprocessing.reductions import is_shared, share_memory_

JOIN_TIMEOUT = 60  # seconds before a test gives up on its children (they normally take well under one)


def _shm_names():
    return set(os.listdir("/dev/shm"))


def _distml_mappings():
    """How many mappings of distml's shared-memory files this process holds."""
    with open("/proc/self/maps") as f:
        return sum("distml-shared" in line for line in f)


@pytest.fixture(scope="module", autouse=True)
def dev_shm_stays_clean():
    """No shared-memory names left behind (neither distml's nor multiprocessing.shared_memory's psm_),
    and no shared memory still mapped here once the tests' tensors are gone."""
    before, mappings = _shm_names(), _distml_mappings()
    yield
    gc.collect()
    left = {n for n in _shm_names() - before if "distml" in n or n.startswith("psm_")}
    assert not left, f"left in /dev/shm: {sorted(left)}"
    assert _distml_mappings() == mappings


def _join(context, seconds=JOIN_TIMEOUT):
    """ProcessContext.join until all ended (raising as it does), terminating them after `seconds`."""
    deadline = time.monotonic() + seconds
    while not context.join(timeout=max(0.0, deadline - time.monotonic())):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"children still running after {seconds} s")


# ---- share_memory_ / is_shared / Module.share_memory ----

def test_share_memory_keeps_tensor_and_values():
    t = distml.tensor([[1.5, -2.0], [3.0, 4.0]], dtype=distml.float64, requires_grad=True)
    t.grad = distml.ones(2, 2, dtype=distml.float64)
    version = t._version_number
    assert not is_shared(t)
    assert share_memory_(t) is t
    assert is_shared(t)
    np.testing.assert_array_equal(t.detach().numpy(), [[1.5, -2.0], [3.0, 4.0]])
    assert t.dtype == distml.float64 and t.requires_grad and t._version_number == version
    assert not is_shared(t.grad)  # as in PyTorch, Tensor.share_memory_ leaves .grad where it is
    array = t.array
    share_memory_(t)
    assert t.array is array  # already shared: left as is
    assert is_shared(t.data) and is_shared(t[0])  # views of shared memory are shared


@pytest.mark.skipif(not hasattr(distml.Tensor, "share_memory_"), reason="Tensor.share_memory_ not wired yet")
def test_tensor_methods():
    t = distml.ones(2)
    assert not t.is_shared()
    assert t.share_memory_() is t and t.is_shared() and is_shared(t)


@pytest.mark.parametrize("make", [lambda: distml.tensor(2.5), lambda: distml.zeros(0, 3),
                                  lambda: distml.arange(6).reshape(2, 3).T, lambda: distml.tensor([True, False])])
def test_share_memory_odd_shapes_and_dtypes(make):
    t = make()
    expected = t.numpy().copy()
    share_memory_(t)
    assert is_shared(t)
    assert t.numpy().dtype == expected.dtype
    np.testing.assert_array_equal(t.numpy(), expected)


def test_module_share_memory_covers_parameters_grads_and_buffers():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    model(distml.randn(5, 3)).sum().backward()
    params = list(model.parameters())
    grads = [p.grad for p in params]
    values = [p.detach().numpy().copy() for p in params]
    assert model.share_memory() is model
    assert list(model.parameters()) == params and [p.grad for p in params] == grads
    assert all(is_shared(t) for t in params + grads + list(model.buffers()))
    for p, value in zip(params, values):
        np.testing.assert_array_equal(p.detach().numpy(), value)


def test_grads_shared_as_torch_shares_them():
    torch = pytest.importorskip("torch")
    tm = torch.nn.Linear(2, 2)
    tm(torch.ones(1, 2)).sum().backward()
    dm = nn.Linear(2, 2)
    dm(distml.ones(1, 2)).sum().backward()
    assert is_shared(dm.share_memory().weight.grad) == tm.share_memory().weight.grad.is_shared() is True
    tp, dp = torch.nn.Parameter(torch.ones(2)), nn.Parameter(distml.ones(2))
    tp.grad, dp.grad = torch.ones(2), distml.ones(2)
    assert is_shared(share_memory_(dp).grad) == tp.share_memory_().grad.is_shared() is False


def test_memory_freed_when_the_last_tensor_goes():
    gc.collect()
    mappings, fds = _distml_mappings(), len(os.listdir("/proc/self/fd"))
    t = share_memory_(distml.zeros(1000))
    view = t[10:20]
    assert _distml_mappings() == mappings + 1
    del t
    gc.collect()
    assert _distml_mappings() == mappings + 1  # the view still holds it
    del view
    gc.collect()
    assert _distml_mappings() == mappings and len(os.listdir("/proc/self/fd")) == fds


def test_without_memfd_the_file_is_unlinked_at_once(monkeypatch):
    monkeypatch.delattr(os, "memfd_create")
    before = _shm_names()
    t = share_memory_(distml.arange(4.0))
    assert is_shared(t) and not {n for n in _shm_names() - before if "distml" in n}
    back = pickle.loads(ForkingPickler.dumps(t))
    back.add_(1)
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0, 3.0, 4.0])


# ---- pickling ----

def test_plain_pickle_copies_values():
    t = share_memory_(distml.arange(3.0))
    back = pickle.loads(pickle.dumps(t))
    assert not is_shared(back)
    np.testing.assert_array_equal(back.numpy(), t.numpy())
    back.add_(1)
    np.testing.assert_array_equal(t.numpy(), [0.0, 1.0, 2.0])


def test_forking_pickler_sends_the_same_memory():
    fresh = distml.ones(2)
    pickle.loads(ForkingPickler.dumps(fresh)).add_(1)
    assert is_shared(fresh)  # a tensor not yet shared is moved to shared memory when sent, as in PyTorch
    np.testing.assert_array_equal(fresh.numpy(), [2.0, 2.0])
    base = share_memory_(distml.arange(12.0).reshape(3, 4))
    views = [base, distml.Tensor(base.array.T[::-1, 1:]), distml.Tensor(base.array[1])]
    backs = pickle.loads(ForkingPickler.dumps(views))
    for view, back in zip(views, backs):
        assert back.array.shape == view.array.shape and back.array.strides == view.array.strides
        np.testing.assert_array_equal(back.numpy(), view.numpy())
    backs[2].fill_(-1.0)
    np.testing.assert_array_equal(base.numpy()[1], [-1.0] * 4)


def test_parameter_arrives_as_parameter_without_grad():
    torch = pytest.importorskip("torch")
    import torch.multiprocessing  # noqa: F401  (registers PyTorch's reductions)
    for requires_grad in (True, False):
        tp = torch.nn.Parameter(torch.ones(2), requires_grad=requires_grad)
        dp = nn.Parameter(distml.ones(2), requires_grad=requires_grad)
        tp.grad, dp.grad = torch.ones(2), distml.ones(2)
        tback, dback = pickle.loads(ForkingPickler.dumps(tp)), pickle.loads(ForkingPickler.dumps(dp))
        assert type(dback) is nn.Parameter and type(tback) is torch.nn.Parameter
        assert dback.requires_grad == tback.requires_grad == requires_grad
        assert dback.grad is None and tback.grad is None
    index = pickle.loads(ForkingPickler.dumps(nn.Parameter(distml.arange(3), requires_grad=False)))
    assert type(index) is nn.Parameter and not index.requires_grad


def test_non_leaf_tensor_that_requires_grad_is_refused_as_torch_does():
    torch = pytest.importorskip("torch")
    import torch.multiprocessing  # noqa: F401
    with pytest.raises(RuntimeError) as expected:
        ForkingPickler.dumps(torch.ones(2, requires_grad=True) * 2)
    with pytest.raises(RuntimeError) as got:
        ForkingPickler.dumps(distml.ones(2, requires_grad=True) * 2)
    assert str(got.value) == str(expected.value)


# ---- other processes see the writes ----

def _write_child(arg, inbox, outbox, done):
    arg.add_(1)
    inbox.get(timeout=JOIN_TIMEOUT).mul_(3)
    outbox.put(float(inbox.get(timeout=JOIN_TIMEOUT).sum()))  # the parent dropped this one after sending
    outbox.put(distml.tensor([7.0, 8.0]))
    done.wait(JOIN_TIMEOUT)  # the sender stays alive until the receiver has the tensor


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_child_writes_are_seen_by_the_parent(method):
    ctx = mp.get_context(method)
    inbox, outbox, done = ctx.Queue(), ctx.Queue(), ctx.Event()
    arg, sent = share_memory_(distml.zeros(3)), distml.ones(2)
    process = ctx.Process(target=_write_child, args=(arg, inbox, outbox, done))
    process.start()
    inbox.put(sent)
    dropped = distml.full((4,), 5.0)
    inbox.put(dropped)
    del dropped
    gc.collect()
    assert outbox.get(timeout=JOIN_TIMEOUT) == 20.0
    made_by_child = outbox.get(timeout=JOIN_TIMEOUT)
    done.set()
    process.join(JOIN_TIMEOUT)
    assert process.exitcode == 0
    np.testing.assert_array_equal(arg.numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(sent.numpy(), [3.0, 3.0])
    assert is_shared(sent)
    made_by_child.add_(1)  # its creator has exited; the memory lives while this process maps it
    np.testing.assert_array_equal(made_by_child.numpy(), [8.0, 9.0])


# ---- Hogwild ----

W_TRUE = [1.5, -2.0]


def _shard(rank):
    """Rank r's samples are zero but in feature r: the weight is right only if both ranks' updates
    landed, however their steps interleave."""
    x = np.zeros((16, 2))
    x[:, rank] = np.sin(np.arange(16.0) * 0.7 + rank)
    y = x @ np.array(W_TRUE)[:, None]
    return distml.tensor(x, dtype=distml.float32), distml.tensor(y, dtype=distml.float32)


def _hogwild(rank, model, steps_done, steps):
    x, y = _shard(rank)
    optimizer = distml.optim.SGD(model.parameters(), lr=0.2)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        steps_done[rank] += 1


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_hogwild_two_processes_train_one_model(method):
    model = nn.Linear(2, 1, bias=False)
    with distml.no_grad():
        model.weight.zero_()
    weight = model.weight
    model.share_memory()
    steps_done = share_memory_(distml.zeros(2, dtype=distml.int64))  # each rank counts into its own slot
    args = (model, steps_done, 300)
    if method == "spawn":
        context = mp.spawn(_hogwild, args=args, nprocs=2, join=False)
    else:
        context = mp.start_processes(_hogwild, args=args, nprocs=2, join=False, start_method="fork")
    assert isinstance(context, mp.ProcessContext) and context.pids() == [p.pid for p in context.processes]
    _join(context)
    assert context.join() is True
    assert steps_done.tolist() == [300, 300]
    assert model.weight is weight and is_shared(weight)
    np.testing.assert_allclose(model.weight.detach().numpy()[0], W_TRUE, atol=1e-4)


def _openmp_child(queue):
    from distml._backend import C
    p = [np.zeros(1 << 20)]
    C.sgd_step(p, [np.ones(1 << 20)], [], [], 0.5, 0.0, 0.0, 0.0, False, False)
    queue.put((distml.get_num_threads(), float(p[0][-1])))


def test_forked_child_runs_openmp_kernels_after_the_parent_did():
    from distml._backend import C
    p = [np.zeros(1 << 20)]
    C.sgd_step(p, [np.ones(1 << 20)], [], [], 0.5, 0.0, 0.0, 0.0, False, False)  # starts the OpenMP team
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    process = ctx.Process(target=_openmp_child, args=(queue,))
    process.start()
    try:
        assert queue.get(timeout=JOIN_TIMEOUT) == (1, -0.5)
    finally:
        process.join(1)
        process.kill()  # a child that hung in OpenMP


# ---- spawn / start_processes ----

def _fail(rank, mode):
    if rank == 0:
        if mode == "hang":
            time.sleep(JOIN_TIMEOUT)
        return
    if mode in ("raise", "hang"):
        raise ValueError(f"bad rank {rank}")
    if mode == "exit":
        sys.exit(3)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "interrupt":
        raise KeyboardInterrupt


def test_exception_in_a_child_raises_in_the_parent_and_stops_the_others():
    context = mp.spawn(_fail, args=("hang",), nprocs=2, join=False)
    with pytest.raises(mp.ProcessRaisedException) as info:
        _join(context)
    error = info.value
    assert isinstance(error, mp.ProcessException)
    assert error.error_index == 1 and error.error_pid == context.processes[1].pid
    assert error.msg.startswith("\n\n-- Process 1 terminated with the following error:\nTraceback")
    assert error.msg.endswith("ValueError: bad rank 1\n")
    assert context.processes[0].exitcode == -signal.SIGTERM  # terminated, not left to sleep
    assert not os.path.exists(context.error_files[1])


def _outcome(start_processes, mode):
    try:
        start_processes(_fail, args=(mode,), nprocs=2, start_method="fork")
    except Exception as error:
        last_line = error.msg.strip().splitlines()[-1]
        return (type(error).__name__, error.error_index, getattr(error, "exit_code", None),
                getattr(error, "signal_name", None), last_line)
    return None


@pytest.mark.parametrize("mode", ["raise", "exit", "kill", "interrupt"])
def test_failures_match_torch(mode, tmp_path, monkeypatch):
    torch_mp = pytest.importorskip("torch.multiprocessing")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where both put the children's error files
    ours = _outcome(mp.start_processes, mode)
    assert not os.listdir(tmp_path)  # distml removes them (PyTorch leaves its own behind)
    assert ours == _outcome(torch_mp.start_processes, mode)


def test_spawn_warns_for_other_start_methods_as_torch_does():
    torch_mp = pytest.importorskip("torch.multiprocessing")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert mp.spawn(_hogwild, nprocs=0, start_method="fork") is None
        torch_mp.spawn(_hogwild, nprocs=0, start_method="fork")
    ours, theirs = caught
    assert ours.category is theirs.category is FutureWarning
    assert str(ours.message) == str(theirs.message).replace("torch.", "distml.")


def test_exceptions_pickle_with_their_attributes():
    error = pickle.loads(pickle.dumps(mp.ProcessExitedException("gone", 1, 42, -9, "SIGKILL")))
    assert (error.msg, error.error_index, error.error_pid, error.exit_code, error.signal_name) == \
        ("gone", 1, 42, -9, "SIGKILL")


def test_stdlib_names_and_sharing_strategy():
    import multiprocessing
    for name in ("Process", "Queue", "SimpleQueue", "Pool", "Event", "Lock", "Value", "Array", "Manager",
                 "get_context", "set_start_method", "get_start_method", "cpu_count", "current_process"):
        assert getattr(mp, name) is getattr(multiprocessing, name)
    assert mp.get_sharing_strategy() == "file_descriptor"
    with pytest.raises(NotImplementedError, match="file_system"):
        mp.set_sharing_strategy("file_system")
    with pytest.raises(AssertionError, match="invalid sharing strategy 'nope'"):
        mp.set_sharing_strategy("nope")
