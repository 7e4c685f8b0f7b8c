"""DataLoader against torch.utils.data.DataLoader: batches, shuffling, collation, workers, errors."""
import collections
import multiprocessing
import os
import time

import numpy as np
import pytest
import torch
import torch.utils.data as tdata

import distml
from distml.utils.data import (DataLoader, Dataset, IterableDataset, SequentialSampler, TensorDataset,
                               default_collate, get_worker_info)


def assert_same(ours, theirs):
    """Same structure, container types, dtypes and values; distml Tensor where the reference has a Tensor."""
    if isinstance(theirs, distml.Tensor):
        theirs = torch.from_numpy(theirs.numpy())
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, distml.Tensor), type(ours)
        assert ours.numpy().dtype == theirs.numpy().dtype
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs)
        for k in theirs:
            assert_same(ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b)
    else:
        assert ours == theirs


Point = collections.namedtuple("Point", "x y")


class Samples(Dataset):
    """Nested samples of every kind default_collate handles."""

    def __init__(self, n=10):
        self.n = n

    def __getitem__(self, i):
        return {"image": np.full((2, 3), i, dtype=np.float32), "label": i, "weight": i / 2, "flag": i % 2 == 0,
                "name": f"s{i}", "pair": (np.int16(i), [i, -i]), "point": Point(i, np.float64(i))}

    def __len__(self):
        return self.n


class Range(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        return np.array([i, i * i])

    def __len__(self):
        return self.n


@pytest.mark.parametrize("batch_size,drop_last", [(3, False), (3, True), (5, False), (1, False), (12, True)])
def test_sequential_batches_identical_to_torch(batch_size, drop_last):
    ours = list(DataLoader(Samples(), batch_size=batch_size, drop_last=drop_last))
    theirs = list(tdata.DataLoader(Samples(), batch_size=batch_size, drop_last=drop_last))
    assert len(ours) == len(theirs) == len(DataLoader(Samples(), batch_size=batch_size, drop_last=drop_last))
    for a, b in zip(ours, theirs):
        assert_same(a, b)


def test_default_collate_matches_torch_on_nested_samples():
    batch = [Samples()[i] for i in range(4)]
    assert_same(default_collate(batch), tdata.default_collate(batch))
    tensors = [distml.tensor(np.arange(3) + i) for i in range(2)]
    assert_same(default_collate(tensors), torch.stack([torch.arange(3) + i for i in range(2)]))


def test_default_collate_errors_match_torch():
    for collate in (default_collate, tdata.default_collate):
        with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
            collate([[1, 2], [1]])
        with pytest.raises(TypeError, match="default_collate: batch must contain tensors, numpy arrays, numbers, "
                                            "dicts or lists; found <class 'object'>"):
            collate([object()])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0 "
                                           r"and \[3\] at entry 1"):
        default_collate([np.zeros(2), np.zeros(3)])


def test_batch_size_none_converts_samples_like_torch():
    ours = list(DataLoader(Samples(3), batch_size=None))
    theirs = list(tdata.DataLoader(Samples(3), batch_size=None))
    for a, b in zip(ours, theirs):
        assert_same(a, b)


def test_shuffle_gives_permutations_reproducible_by_seed():
    data = TensorDataset(distml.arange(20))
    loader = DataLoader(data, batch_size=6, shuffle=True)
    distml.manual_seed(0)
    epochs = [np.concatenate([b[0].numpy() for b in loader]) for _ in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(20))
    assert epochs[0].tolist() != epochs[1].tolist()
    distml.manual_seed(0)
    again = np.concatenate([b[0].numpy() for b in loader])
    np.testing.assert_array_equal(again, epochs[0])
    g = distml.Generator().manual_seed(4)
    with_generator = [b[0].tolist() for b in DataLoader(data, batch_size=6, shuffle=True, generator=g)]
    assert [len(b) for b in with_generator] == [6, 6, 6, 2]


def test_custom_sampler_and_batch_sampler():
    data = Range(6)

    class Reverse:
        def __iter__(self):
            return iter(range(5, -1, -1))

        def __len__(self):
            return 6

    batches = [b[:, 0].tolist() for b in DataLoader(data, batch_size=4, sampler=Reverse())]
    assert batches == [[5, 4, 3, 2], [1, 0]]
    batches = [b[:, 0].tolist() for b in DataLoader(data, batch_sampler=[[0, 5], [2], [3, 1, 4]])]
    assert batches == [[0, 5], [2], [3, 1, 4]]


def test_collate_fn_and_len():
    loader = DataLoader(Range(7), batch_size=3, collate_fn=lambda batch: len(batch))
    assert list(loader) == [3, 3, 1] and len(loader) == 3


def test_option_errors_match_torch():
    cases = [
        (dict(sampler=SequentialSampler(range(3)), shuffle=True), "sampler option is mutually exclusive with shuffle"),
        (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive with batch_size"),
        (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching"),
        (dict(num_workers=-1), "num_workers option should be non-negative"),
        (dict(timeout=-1), "timeout option should be non-negative"),
        (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
        (dict(prefetch_factor=2), "prefetch_factor option could only be specified in multiprocessing"),
    ]
    for kwargs, message in cases:
        for cls in (DataLoader, tdata.DataLoader):
            with pytest.raises(ValueError, match=message):
                cls(Range(3), **kwargs)


class Stream(IterableDataset):
    """0..n-1, split between workers by get_worker_info()."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))

    def __len__(self):
        return self.n


class TorchStream(tdata.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = tdata.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_iterable_dataset_matches_torch(num_workers):
    ours = [b.tolist() for b in DataLoader(Stream(11), batch_size=3, num_workers=num_workers)]
    theirs = [b.tolist() for b in tdata.DataLoader(TorchStream(11), batch_size=3, num_workers=num_workers)]
    assert ours == theirs
    assert len(DataLoader(Stream(11), batch_size=3)) == 4
    with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified shuffle option, "
                                         "but got shuffle=True"):
        DataLoader(Stream(3), shuffle=True)


# ---- worker processes ----

def test_workers_preserve_order_and_match_single_process():
    data = Samples(23)
    single = list(DataLoader(data, batch_size=4))
    for workers, prefetch in ((1, 2), (3, 1), (4, 3)):
        multi = list(DataLoader(data, batch_size=4, num_workers=workers, prefetch_factor=prefetch))
        assert len(multi) == len(single)
        for a, b in zip(multi, single):
            assert_same(a, b)


class SlowFirst(Dataset):
    """Item 0 is slow, so later batches arrive first and must wait in the reorder buffer."""

    def __getitem__(self, i):
        if i == 0:
            time.sleep(0.3)
        return i

    def __len__(self):
        return 12


def test_out_of_order_results_are_reordered():
    batches = [b.tolist() for b in DataLoader(SlowFirst(), batch_size=2, num_workers=3)]
    assert batches == [[2 * i, 2 * i + 1] for i in range(6)]


class WhoAmI(Dataset):
    def __getitem__(self, i):
        info = get_worker_info()
        return np.array([i, info.id, info.num_workers, os.getpid(), info.seed, int(np.random.randint(1 << 30))])

    def __len__(self):
        return 8


def test_worker_info_seeds_and_init_fn():
    assert get_worker_info() is None
    calls = multiprocessing.get_context("fork").Queue()
    loader = DataLoader(WhoAmI(), batch_size=2, num_workers=2, worker_init_fn=calls.put)
    rows = np.concatenate([b.numpy() for b in loader])
    assert rows[:, 0].tolist() == list(range(8))
    assert rows[:, 1].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]  # batches go round the workers
    assert set(rows[:, 2]) == {2} and os.getpid() not in set(rows[:, 3])
    seeds = {row[1]: row[4] for row in rows}
    assert seeds[1] == seeds[0] + 1
    assert len(set(rows[:, 5])) == 8  # workers' numpy RNGs are seeded differently
    assert sorted([calls.get(timeout=5), calls.get(timeout=5)]) == [0, 1]


class Failing(Dataset):
    def __getitem__(self, i):
        if i == 5:
            raise ValueError(f"cannot read sample {i}")
        return i

    def __len__(self):
        return 10


def test_worker_exception_reraised_with_traceback():
    loader = DataLoader(Failing(), batch_size=2, num_workers=2)
    got = []
    with pytest.raises(ValueError) as info:
        for batch in loader:
            got.append(batch.tolist())
    message = str(info.value)
    assert got == [[0, 1], [2, 3]]
    assert "Caught ValueError in DataLoader worker process 0." in message
    assert "Original Traceback (most recent call last):" in message
    assert "cannot read sample 5" in message and "in __getitem__" in message
    del info  # its traceback holds the iterator, which holds the workers
    assert multiprocessing.active_children() == []


def test_key_error_message_stays_readable():
    class Missing(Dataset):
        def __getitem__(self, i):
            return {}["absent"]

        def __len__(self):
            return 2

    with pytest.raises(KeyError, match="Caught KeyError in DataLoader worker process 0") as info:
        next(iter(DataLoader(Missing(), num_workers=1)))
    assert "\\n" not in str(info.value)
    del info
    assert multiprocessing.active_children() == []


def test_early_stop_leaves_no_child_processes():
    loader = DataLoader(Range(1000), batch_size=2, num_workers=3)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert multiprocessing.active_children() == []
    iterator = iter(loader)
    next(iterator)
    workers = list(iterator._workers)
    assert len(multiprocessing.active_children()) == 3
    del iterator
    assert multiprocessing.active_children() == [] and not any(w.is_alive() for w in workers)


def test_persistent_workers_reused_across_epochs():
    loader = DataLoader(Range(9), batch_size=4, num_workers=2, persistent_workers=True)
    first = [b.tolist() for b in loader]
    pids = {w.pid for w in loader._iterator._workers}
    second = [b.tolist() for b in loader]
    assert first == second == [b.tolist() for b in DataLoader(Range(9), batch_size=4)]
    assert {w.pid for w in loader._iterator._workers} == pids
    stream = DataLoader(Stream(5), batch_size=2, num_workers=2, persistent_workers=True)
    assert [b.tolist() for b in stream] == [b.tolist() for b in stream] == [[0, 2], [1, 3], [4]]
    del loader, stream
    assert multiprocessing.active_children() == []


@pytest.fixture
def short_interval(monkeypatch):
    """Workers and the main process check on each other every 0.2 s instead of 5 s."""
    from distml.utils.data import _worker
    monkeypatch.setattr(_worker, "STATUS_CHECK_INTERVAL", 0.2)


class Hang(Dataset):
    def __getitem__(self, i):
        time.sleep(10)

    def __len__(self):
        return 2


def test_timeout(short_interval):
    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0.2 seconds"):
        next(iter(DataLoader(Hang(), num_workers=1, timeout=0.2)))
    assert multiprocessing.active_children() == []


class Exit(Dataset):
    def __getitem__(self, i):
        os._exit(3)

    def __len__(self):
        return 2


def test_dead_worker_reported(short_interval):
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly"):
        list(DataLoader(Exit(), num_workers=1))


class Pooling(Dataset):
    """Samples made by a _C kernel with an OpenMP loop, reporting the worker's thread count."""

    def __getitem__(self, i):
        import distml.nn.functional as F
        pooled = F.max_pool2d(distml.ones(1, 4, 64, 64) * i, 2)[0]
        return pooled.sum().item(), distml.get_num_threads()

    def __len__(self):
        return 4


def test_workers_run_openmp_kernels_after_the_parent_did():
    """GNU OpenMP hangs in a forked child once the parent has a thread team, unless the child uses one thread."""
    import distml.nn.functional as F
    before = distml.get_num_threads()
    distml.set_num_threads(2)
    try:
        F.max_pool2d(distml.randn(8, 4, 16, 16), 2)
        sums, threads = zip(*[b for batch in DataLoader(Pooling(), batch_size=2, num_workers=2, timeout=60)
                              for b in zip(*batch)])
    finally:
        distml.set_num_threads(before)
    assert [s.item() for s in sums] == [4 * 32 * 32 * i for i in range(4)]
    assert {t.item() for t in threads} == {1}
