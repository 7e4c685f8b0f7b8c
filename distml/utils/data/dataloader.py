"""DataLoader: batches from a dataset, in the main process or prefetched by worker processes."""
import itertools
import multiprocessing
import queue
import sys
import warnings
import weakref
from collections.abc import Mapping

from distml import _backend
from distml.profiler import _recorder
from distml.utils.data import _worker
from distml.utils.data._collate import default_collate, default_convert
from distml.utils.data.dataset import IterableDataset
from distml.utils.data.distributed import DistributedSampler
from distml.utils.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, _draw_seed


def pin_memory(data):
    """A batch with its tensors (inside tuples, lists, namedtuples and dicts, and anything with a
    pin_memory() method) in page-locked host memory, as the DataLoader's pin_memory=True hands it out."""
    if hasattr(data, "pin_memory"):
        return data.pin_memory()
    if isinstance(data, Mapping):
        return type(data)({key: pin_memory(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(pin_memory(value) for value in data))
    if isinstance(data, (tuple, list)):
        return type(data)(pin_memory(value) for value in data)
    return data


class _InfiniteConstantSampler(Sampler):
    """The "indices" of an IterableDataset: None forever (the dataset decides what comes)."""

    def __iter__(self):
        while True:
            yield None


class DataLoader:
    """Iterate over a dataset in batches: `for x, y in DataLoader(data, batch_size=64, shuffle=True): ...`

    - `sampler` / `batch_sampler`: any object with `__iter__` and `__len__` yielding indices (lists of
      indices); `shuffle=True` means a RandomSampler driven by `generator` (or distml's global RNG).
    - `batch_size=None` turns batching off: each sample goes through `collate_fn` (default_convert) alone.
    - `num_workers > 0` starts that many processes (fork on Linux) that fetch and collate whole
      batches ahead, `prefetch_factor` (2) batches each; batches still come in sampler order.
      Worker i runs kernels on one thread, is seeded with base_seed + i and calls
      `worker_init_fn(i)`; inside it, `get_worker_info()` says which worker it is. An
      IterableDataset is iterated by every worker in full unless it shards itself with it.
    - `pin_memory=True` copies each batch's tensors into page-locked host memory (`pin_memory`), so
      `.to("cuda", non_blocking=True)` copies them asynchronously; without a usable CUDA device it
      warns, as PyTorch does, and loads into ordinary memory.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing. Let num_workers > 0 "
                             "to enable multiprocessing, otherwise set prefetch_factor to None.")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if isinstance(dataset, IterableDataset):
            for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, "
                                     f"but got {name}={value}")
            sampler = _InfiniteConstantSampler()
        elif sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = 2 if num_workers > 0 and prefetch_factor is None else prefetch_factor
        self.collate_fn = collate_fn or (default_collate if batch_sampler is not None else default_convert)
        if pin_memory and _backend.cuda_device_count() == 0:
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then device "
                          "pinned memory won't be used.")
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.persistent_workers = persistent_workers
        self._iterator = None

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self):
        if not self.persistent_workers:
            return self._make_iterator()
        if self._iterator is None:
            self._iterator = self._make_iterator()
        else:
            self._iterator._reset(self)
        return self._iterator

    def _make_iterator(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        return _MultiProcessIter(self)

    def __len__(self):
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_sampler)


class _BaseIter:
    def __init__(self, loader):
        self._dataset = loader.dataset
        self._index_sampler = loader._index_sampler
        self._fetcher_class = _worker.IterableFetcher if isinstance(loader.dataset, IterableDataset) \
            else _worker.MapFetcher
        self._fetcher_args = (loader.dataset, loader._auto_collation, loader.collate_fn, loader.drop_last)
        self._pin = loader.pin_memory and _backend.cuda_device_count() > 0

    def _reset(self, loader):
        self._sampler_iter = iter(self._index_sampler)

    def _prefetched(self):
        """How many sampler indices this iterator has drawn but not yet handed to the consumer."""
        return 0

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._index_sampler)


class _SingleProcessIter(_BaseIter):
    def __init__(self, loader):
        super().__init__(loader)
        self._reset(loader)

    def _reset(self, loader):
        super()._reset(loader)
        self._fetcher = self._fetcher_class(*self._fetcher_args)

    @_recorder.ranged("enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__")
    def __next__(self):
        data = self._fetcher.fetch(next(self._sampler_iter))
        return pin_memory(data) if self._pin else data


class _MultiProcessIter(_BaseIter):
    """Workers fetch whole batches; task i goes to the next live worker, results are put back in order.

    Each worker has its own index queue; all share one result queue. Up to prefetch_factor
    tasks per worker are outstanding; a result that arrives before its turn waits in
    `_task_info` (the reorder buffer).
    """

    _shutdown = True  # until the workers exist

    def __init__(self, loader):
        super().__init__(loader)
        self._num_workers = loader.num_workers
        self._prefetch = loader.prefetch_factor * loader.num_workers
        self._timeout = loader.timeout
        self._persistent = loader.persistent_workers
        context = loader.multiprocessing_context
        if context is None:
            context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
        elif isinstance(context, str):
            context = multiprocessing.get_context(context)
        base_seed = _draw_seed(loader.generator)
        self._result_queue = context.Queue()
        self._done_event = context.Event()
        self._index_queues, self._workers = [], []
        for worker_id in range(self._num_workers):
            index_queue = context.Queue()
            index_queue.cancel_join_thread()
            process = context.Process(
                target=_worker.worker_loop, daemon=True,
                args=(self._fetcher_class, loader.dataset, index_queue, self._result_queue, self._done_event,
                      loader._auto_collation, loader.collate_fn, loader.drop_last, base_seed,
                      loader.worker_init_fn, worker_id, self._num_workers))
            process.start()
            self._index_queues.append(index_queue)
            self._workers.append(process)
        self._shutdown = False
        self._reset(loader, first=True)

    def _reset(self, loader, first=False):
        super()._reset(loader)
        self._send_idx = 0
        self._rcvd_idx = 0
        self._task_info = {}  # task index -> (worker id,) while pending, (worker id, data) once early
        self._task_index = {}  # task index -> its sampler indices, until the consumer takes its batch
        self._tasks_outstanding = 0
        self._workers_status = [True] * self._num_workers
        self._worker_cycle = itertools.cycle(range(self._num_workers))
        if not first:
            for index_queue in self._index_queues:
                index_queue.put(_worker.ResumeIteration())
            waiting = self._num_workers
            while waiting:
                task_index, _ = self._get_data()
                waiting -= isinstance(task_index, _worker.ResumeIteration)
        for _ in range(self._prefetch):
            self._try_put_index()

    def _try_put_index(self):
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            return
        for _ in range(self._num_workers):
            worker_id = next(self._worker_cycle)
            if self._workers_status[worker_id]:
                break
        else:
            return
        self._index_queues[worker_id].put((self._send_idx, index))
        self._task_info[self._send_idx] = (worker_id,)
        self._task_index[self._send_idx] = index
        self._tasks_outstanding += 1
        self._send_idx += 1

    @_recorder.ranged("enumerate(DataLoader)#_MultiProcessingDataLoaderIter.__next__")
    def __next__(self):
        while True:
            # Skip tasks whose worker ran out of data (an exhausted IterableDataset copy).
            while self._rcvd_idx < self._send_idx:
                info = self._task_info[self._rcvd_idx]
                if len(info) == 2 or self._workers_status[info[0]]:
                    break
                del self._task_info[self._rcvd_idx]
                del self._task_index[self._rcvd_idx]
                self._rcvd_idx += 1
            else:
                if not self._persistent:
                    self._shutdown_workers()
                raise StopIteration
            if len(self._task_info[self._rcvd_idx]) == 2:
                return self._process(self._task_info.pop(self._rcvd_idx)[1])
            task_index, data = self._get_data()
            self._tasks_outstanding -= 1
            if isinstance(data, _worker.IterableDatasetStopIteration):
                self._workers_status[data.worker_id] = False
                if not self._persistent:
                    self._index_queues[data.worker_id].put(None)
                self._try_put_index()
            elif task_index != self._rcvd_idx:
                self._task_info[task_index] += (data,)
            else:
                del self._task_info[task_index]
                return self._process(data)

    def _process(self, data):
        del self._task_index[self._rcvd_idx]
        self._rcvd_idx += 1
        self._try_put_index()
        if isinstance(data, _worker.ExceptionWrapper):
            data.reraise()
        return pin_memory(data) if self._pin else data

    def _prefetched(self):
        return sum(len(index) if isinstance(index, list) else 1 for index in self._task_index.values())

    def _get_data(self):
        if self._timeout > 0:
            found, data = self._try_get_data(self._timeout)
            if not found:
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds")
            return data
        while True:
            found, data = self._try_get_data(_worker.STATUS_CHECK_INTERVAL)
            if found:
                return data

    def _try_get_data(self, timeout):
        try:
            return True, self._result_queue.get(timeout=timeout)
        except queue.Empty:
            dead = [w for i, w in enumerate(self._workers) if self._workers_status[i] and not w.is_alive()]
            if dead:
                pids = ", ".join(str(w.pid) for w in dead)
                raise RuntimeError(f"DataLoader worker (pid(s) {pids}) exited unexpectedly") from None
            return False, None

    def _shutdown_workers(self):
        """Stop and join every worker (terminating any that hang); safe to call twice."""
        if self._shutdown:
            return
        self._shutdown = True
        try:
            self._done_event.set()
            for index_queue in self._index_queues:
                index_queue.put(None)
            for process in self._workers:
                process.join(timeout=_worker.STATUS_CHECK_INTERVAL)
            for index_queue in self._index_queues:
                index_queue.close()
            self._result_queue.cancel_join_thread()
            self._result_queue.close()
        finally:
            for process in self._workers:
                if process.is_alive():
                    process.terminate()
                    process.join()

    def __del__(self):
        self._shutdown_workers()


class StatefulDataLoader(DataLoader):
    """A DataLoader that can save and restore its place in an epoch (torchdata's StatefulDataLoader API):

        loader = StatefulDataLoader(train_set, batch_size=32, sampler=DistributedSampler(train_set))
        ...
        state = loader.state_dict()      # after k batches of epoch e
        loader.load_state_dict(state)    # (any world size) the next iter() continues epoch e

    The position is what the consumer has taken from the loader, not what workers prefetched
    (`num_workers > 0` works alike). The sampler must have `state_dict`/`load_state_dict`
    (DistributedSampler does; see it for how the rest of the epoch is dealt out to a different
    number of ranks). Iterating it is the same as iterating a DataLoader.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._live = None  # the latest iterator, while it exists: what its workers prefetched is not taken

    def _stateful_sampler(self):
        sampler = getattr(self.batch_sampler, "sampler", self.sampler)
        if isinstance(self.dataset, IterableDataset) or not hasattr(sampler, "state_dict"):
            raise TypeError(f"StatefulDataLoader: expected a sampler with state_dict()/load_state_dict() "
                            f"(e.g. DistributedSampler), but got {type(sampler).__name__}")
        return sampler

    def __iter__(self):
        iterator = super().__iter__()
        self._live = weakref.ref(iterator)
        return iterator

    def state_dict(self):
        """{"sampler": the sampler's state at the samples the consumer has taken}."""
        sampler = self._stateful_sampler()
        iterator = self._live() if self._live is not None else None
        ahead = iterator._prefetched() if iterator is not None else 0
        if not ahead:
            return {"sampler": sampler.state_dict()}
        if not isinstance(sampler, DistributedSampler):
            raise NotImplementedError(f"StatefulDataLoader.state_dict with workers prefetching needs a "
                                      f"DistributedSampler, got {type(sampler).__name__}; use num_workers=0")
        # After set_epoch the sampler counts afresh while an abandoned iterator may still hold batches.
        return {"sampler": sampler._state(max(0, sampler._yielded - ahead))}

    def load_state_dict(self, state_dict):
        self._stateful_sampler().load_state_dict(state_dict["sampler"])
