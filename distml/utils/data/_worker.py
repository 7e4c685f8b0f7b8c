"""What runs inside a DataLoader worker process, and the pieces it shares with the main process."""
import os
import queue
import random
import sys
import traceback

import numpy as np

# How often a blocked worker or main process wakes up to check that the other side is alive.
STATUS_CHECK_INTERVAL = 5.0

_worker_info = None


class WorkerInfo:
    """Inside a worker: `id`, `num_workers`, `seed` and this worker's copy of `dataset`."""

    def __init__(self, id, num_workers, seed, dataset):
        self.id = id
        self.num_workers = num_workers
        self.seed = seed
        self.dataset = dataset

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed})"


def get_worker_info():
    """The current worker's WorkerInfo, or None in the main process.

    An IterableDataset uses it to give each worker its own share of the stream.
    """
    return _worker_info


class ExceptionWrapper:
    """An exception caught in a worker, carried to the main process as its traceback text."""

    def __init__(self, where):
        exc_type, exc, tb = sys.exc_info()
        self.exc_type = exc_type
        self.where = where
        self.text = "".join(traceback.format_exception(exc_type, exc, tb))

    def reraise(self):
        """Raise the same exception type with the worker's traceback in the message."""
        message = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.text}"
        if self.exc_type is KeyError:
            message = _KeyErrorMessage(message)
        try:
            error = self.exc_type(message)
        except Exception:
            raise RuntimeError(message) from None
        try:
            raise error
        finally:
            del error  # no cycle through this frame: the iterator (and its workers) can go at once


class _KeyErrorMessage(str):
    """KeyError quotes its message with repr(); this keeps the traceback readable."""

    def __repr__(self):
        return self


class IterableDatasetStopIteration:
    """A worker's note that its copy of the IterableDataset is exhausted."""

    def __init__(self, worker_id):
        self.worker_id = worker_id


class ResumeIteration:
    """Sent to persistent workers at the start of a new pass; each sends it back when ready."""


class MapFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset, self.auto_collation, self.collate_fn = dataset, auto_collation, collate_fn

    def fetch(self, index):
        if self.auto_collation:
            if hasattr(self.dataset, "__getitems__"):
                return self.collate_fn(self.dataset.__getitems__(index))
            return self.collate_fn([self.dataset[i] for i in index])
        return self.collate_fn(self.dataset[index])


class IterableFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.iterator = iter(dataset)
        self.auto_collation, self.collate_fn, self.drop_last = auto_collation, collate_fn, drop_last
        self.ended = False

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.iterator))
        data = []
        for _ in index:
            try:
                data.append(next(self.iterator))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < len(index)):
            raise StopIteration
        return self.collate_fn(data)


def seed_worker(seed):
    """Seed every RNG a dataset may use in this process: Python's, numpy's global and distml's."""
    random.seed(seed)
    np.random.seed(np.random.SeedSequence(seed).generate_state(4))
    import distml
    distml.manual_seed(seed)


def worker_loop(fetcher_class, dataset, index_queue, result_queue, done_event, auto_collation, collate_fn,
                drop_last, base_seed, init_fn, worker_id, num_workers):
    """Fetch the batches asked for on index_queue and put (task index, batch) on result_queue.

    Stops on a None task; a failure to fetch travels back as an ExceptionWrapper. Wakes up
    every few seconds to leave when the main process has died.
    """
    global _worker_info
    parent = os.getppid()
    seed = base_seed + worker_id
    try:
        # One kernel thread per worker, as PyTorch does: the workers are the parallelism, and
        # GNU OpenMP hangs in a forked child whose parent had started its thread team.
        import distml
        distml.set_num_threads(1)
        seed_worker(seed)
        _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
        if init_fn is not None:
            init_fn(worker_id)
        fetcher = fetcher_class(dataset, auto_collation, collate_fn, drop_last)
        init_error = None
    except Exception:
        init_error = ExceptionWrapper(f"in DataLoader worker process {worker_id}")
    exhausted = False
    try:
        while os.getppid() == parent:
            try:
                task = index_queue.get(timeout=STATUS_CHECK_INTERVAL)
            except queue.Empty:
                continue
            if task is None:
                break
            if isinstance(task, ResumeIteration):
                if init_error is None:
                    fetcher = fetcher_class(dataset, auto_collation, collate_fn, drop_last)
                exhausted = False
                result_queue.put((task, None))
                continue
            if done_event.is_set() or exhausted:
                continue
            task_index, index = task
            if init_error is not None:
                data, init_error = init_error, None
            else:
                try:
                    data = fetcher.fetch(index)
                except Exception as error:
                    if isinstance(error, StopIteration) and isinstance(fetcher, IterableFetcher):
                        data = IterableDatasetStopIteration(worker_id)
                        exhausted = True
                    else:
                        data = ExceptionWrapper(f"in DataLoader worker process {worker_id}")
            result_queue.put((task_index, data))
    except KeyboardInterrupt:
        pass
    if done_event.is_set():
        result_queue.cancel_join_thread()
        result_queue.close()
